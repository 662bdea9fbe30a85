"""Site-wide middleware: the request id, the page language, and a clear 503 page while the database
is down."""

from __future__ import annotations

import sys
from collections.abc import Callable

from django.contrib.messages.middleware import MessageMiddleware
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.locale import LocaleMiddleware
from django.template.loader import render_to_string
from django.utils import translation
from django.views import defaults

from agents.api_errors import RETRY_AFTER_SECONDS

from . import logs

DATABASE_DOWN = (OperationalError, InterfaceError)
API_PREFIXES = ("/api/",)
# Machine-facing paths: their messages, labels and names are part of the API contract and stay
# English whatever the client's Accept-Language (docs/i18n.md).
ENGLISH_ONLY_PREFIXES = API_PREFIXES


class PageLocaleMiddleware(LocaleMiddleware):
    """Django's LocaleMiddleware (session choice, then Accept-Language) for the pages; the API
    always in English."""

    def process_request(self, request: HttpRequest) -> None:
        if request.path_info.startswith(ENGLISH_ONLY_PREFIXES):
            translation.activate("en")
            request.LANGUAGE_CODE = "en"
            return
        super().process_request(request)

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if request.path_info.startswith(ENGLISH_ONLY_PREFIXES):
            return response
        return super().process_response(request, response)


class PageMessageMiddleware(MessageMiddleware):
    """Django's messages (the notices shown once on the next page) for the pages only.

    The API shows none: setting up their storage for every API request (a cookie signer each
    time) was 3 % of an event request's CPU. Without it, nothing is read or written at the
    response either (Django skips a request without storage).
    """

    def process_request(self, request: HttpRequest) -> None:
        if not request.path_info.startswith(API_PREFIXES):
            super().process_request(request)


class RequestIdMiddleware:
    """Every request gets an id, in its log lines and in the response's ``X-Request-ID``.

    First in ``MIDDLEWARE``, so that whatever is logged while serving it carries the id. A
    proxy's ``X-Request-ID`` (nginx: ``proxy_set_header X-Request-ID $request_id``) is kept, so
    the proxy's access log and ours can be joined.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        value = logs.incoming_or_new_request_id(request.headers.get("X-Request-ID"))
        # Not reset on the way out: Django logs a 4xx/5xx response after the middleware chain
        # returns, and that line must carry the id too. Each ASGI request runs in a context of
        # its own, and the next request in a thread sets its own id first.
        logs.request_id.set(value)
        response = self.get_response(request)
        response["X-Request-ID"] = value
        return response


def database_unavailable() -> HttpResponse:
    """The 503 page with ``Retry-After``; rendered without the request (no session, no user)."""
    html = render_to_string("503.html", {"retry_after": RETRY_AFTER_SECONDS})
    response = HttpResponse(html, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    """A page whose view meets a database outage answers 503 + ``Retry-After``, not 500.

    Only connection-level errors: an IntegrityError or DataError is a bug to see, not an outage
    to wait out. The API has the same rule in its own error handler (``agents.api_errors``).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return database_unavailable() if isinstance(exception, DATABASE_DOWN) else None


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: an outage met outside a view (in another middleware) is a 503 too."""
    if isinstance(sys.exc_info()[1], DATABASE_DOWN):
        return database_unavailable()
    return defaults.server_error(request)
