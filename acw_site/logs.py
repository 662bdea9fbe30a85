"""Logging: plain or JSON lines (``LOG_FORMAT``), each carrying the request id of its request.

``acw_site.middleware.RequestIdMiddleware`` sets the id for the request being served (taken
from the proxy's ``X-Request-ID`` when it sends a sane one, else a new one) and returns it in
the response's ``X-Request-ID``; ``RequestIdFilter`` adds it to every record logged meanwhile
(``-`` outside a request: Celery tasks, commands). ``settings.LOGGING`` is built by
``logging_config()``.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id: ContextVar[str] = ContextVar("request_id", default="-")

# What we accept from a proxy: nginx's $request_id (32 hex digits), a UUID, or the like. Anything
# else (too long, control characters, spaces) is replaced, so logs cannot be forged through it.
_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def incoming_or_new_request_id(incoming: str | None) -> str:
    """The proxy's id if it is sane, else a fresh one (32 hex digits)."""
    if incoming and _SANE_ID.match(incoming):
        return incoming
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (the current request's id, or ``-``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class NoTracebackForClientErrors(logging.Filter):
    """A 4xx is the client's business: log the line, not a traceback.

    Django logs a ``PermissionDenied`` (403) and a ``SuspiciousOperation`` (400, e.g. a
    disallowed Host header) with the exception attached; these are expected in production and a
    traceback only buries real errors. 5xx records keep theirs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500:
            record.exc_info = None
            record.exc_text = None
        return True


# LogRecord attributes that are not "extra" fields.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """``settings.LOGGING`` for ``LOG_FORMAT`` ``plain`` (the default) or ``json``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "acw_site.logs.RequestIdFilter"},
            "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
            "client_errors": {"()": "acw_site.logs.NoTracebackForClientErrors"},
        },
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
            "json": {"()": "acw_site.logs.JsonFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["request_id", "client_errors"],
            },
            # Server errors (5xx) e-mailed to ADMINS, as Django does by default (not with DEBUG).
            "mail_admins": {
                "class": "django.utils.log.AdminEmailHandler",
                "level": "ERROR",
                "filters": ["require_debug_false", "client_errors"],
            },
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Replaces Django's default: its own console handler (with DEBUG) printed every
            # django.* line a second time, tracebacks of 403s included.
            "django": {"handlers": ["mail_admins"], "level": "INFO", "propagate": True},
            "django.db.backends": {"level": "WARNING"},
            # django-axes announces its configuration at every start; lockouts are warnings.
            "axes.apps": {"level": "WARNING"},
        },
    }
