"""The API's error envelope: every error is ``{"error": "<field>: <message>"}``."""

from __future__ import annotations

from typing import Any

from django.db import InterfaceError, OperationalError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

RETRY_AFTER_SECONDS = 5


def _flatten(detail: Any, prefix: str = "") -> str:
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        name = (
            prefix
            if key in ("non_field_errors", "detail")
            else (f"{prefix}.{key}" if prefix else key)
        )
        return _flatten(value, name)
    if isinstance(detail, list) and detail:
        return _flatten(detail[0], prefix)
    text = str(detail)
    if text == "This field is required.":
        text = "is required"
    return f"{prefix}: {text}" if prefix else text


def error_text(detail: Any) -> str:
    """The first error of a DRF ``errors``/``detail`` structure as ``"<field>: <message>"`` (the
    API's envelope text; pages show the same words)."""
    return _flatten(detail)


def error_envelope_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every API error is ``{"error": "<field>: <message>"}``; a database outage is 503.

    Only connection-level errors mean "unavailable, retry": an IntegrityError or DataError is a
    bug or a bad value, and a client told to retry it would retry forever.
    """
    if isinstance(exc, OperationalError | InterfaceError):
        response = Response(
            {"error": "database unavailable, retry later"},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException):
        detail = {"body": exc.detail} if isinstance(exc, exceptions.ParseError) else exc.detail
        response.data = {"error": _flatten(detail)}
    return response
