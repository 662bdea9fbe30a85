"""Web hardening: the login lockout page, Permissions-Policy, the WebSocket origin check and
who may read the API schema. Each is switched on in ``settings.py``; README: Configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject, CSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.http.request import validate_host
from django.shortcuts import render
from rest_framework.permissions import BasePermission

# --- Login throttling (django-axes) ---------------------------------------------------------


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any
) -> HttpResponse:
    """The page a locked-out login gets: 429, ``Retry-After``, and what to do now."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    response = render(
        request,
        "registration/lockout.html",
        {"minutes": minutes, "failure_limit": settings.AXES_FAILURE_LIMIT},
        status=429,
    )
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response


# --- Content-Security-Policy ----------------------------------------------------------------

# Response attributes by which a view sets a policy of its own (django-csp's decorators).
_OWN_POLICY = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_exempt",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
    "_csp_exempt_ro",
)


class SiteCSPMiddleware(CSPMiddleware):
    """django-csp's middleware, with the site's policy built once instead of for every response.

    The headers depend only on the settings unless a view set a policy of its own or a page
    used a nonce: those responses go through django-csp unchanged. Building the two policies
    (both asked for on every response, the report-only one empty) was a tenth of an event
    request's middleware CPU. A change of the CSP settings (tests) is picked up at once.
    """

    _headers: tuple[tuple[str, str, tuple[str, ...]], ...] | None = None

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if getattr(request, "_csp_nonce", None) is not None or any(
            hasattr(response, name) for name in _OWN_POLICY
        ):
            return super().process_response(request, response)
        if response.status_code in (500, 404) and settings.DEBUG:
            return response
        for header, value, excluded in self._site_headers(request, response):
            if header not in response and not request.path_info.startswith(excluded):
                response[header] = value
        if getattr(request, "_csp_nonce", None) is None:
            request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)  # type: ignore[attr-defined]
        return response

    def _site_headers(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
        """(header, policy, excluded path prefixes) of each non-empty policy, from the
        settings as django-csp reads them."""
        cls = type(self)
        if cls._headers is None:
            headers = []
            for header, setting, report_only in (
                (HEADER, "CONTENT_SECURITY_POLICY", False),
                (HEADER_REPORT_ONLY, "CONTENT_SECURITY_POLICY_REPORT_ONLY", True),
            ):
                parts = self.get_policy_parts(request, response, report_only=report_only)
                value = build_policy(**asdict(parts), report_only=report_only)
                excluded = (getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES")
                if value:
                    headers.append((header, value, tuple(excluded or ())))
            cls._headers = tuple(headers)
        return cls._headers


@receiver(setting_changed)
def _forget_site_headers(setting: str, **kwargs: Any) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        SiteCSPMiddleware._headers = None


# --- Permissions-Policy ---------------------------------------------------------------------


class PermissionsPolicyMiddleware:
    """Adds ``Permissions-Policy``: the site uses none of these browser features, so a script
    that got in anyway cannot use them either (Django's SecurityMiddleware does not set it)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.header = ", ".join(f"{feature}=()" for feature in settings.PERMISSIONS_POLICY)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", self.header)
        return response


# --- WebSocket origin -----------------------------------------------------------------------

DEFAULT_PORTS = {"http": 80, "https": 443}
LOCAL_HOSTS = [".localhost", "127.0.0.1", "[::1]"]


def _origin(scheme: str, host: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` with the default port filled in; None if unparsable."""
    try:
        parts = urlsplit(f"{scheme}://{host}")
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return scheme, parts.hostname.lower(), port


def _own_origin(scope: dict[str, Any]) -> tuple[str, str, int] | None:
    """The origin the browser was served from, as Django's ``request.is_secure()`` sees it."""
    headers = dict(scope.get("headers") or [])
    secure = scope.get("scheme") in ("wss", "https")
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name = proxy_header[0].removeprefix("HTTP_").lower().replace("_", "-").encode()
        if name in headers:
            secure = headers[name].decode("latin-1").split(",")[0].strip() == proxy_header[1]
    host = headers.get(b"host", b"").decode("latin-1")
    return _origin("https" if secure else "http", host)


def same_origin(scope: dict[str, Any]) -> bool:
    """Whether the WebSocket's ``Origin`` is the page's own: scheme, host and port all equal
    (or one of ``CSRF_TRUSTED_ORIGINS``, as for a form post), and the host is allowed."""
    headers = dict(scope.get("headers") or [])
    raw = headers.get(b"origin", b"").decode("latin-1")
    parts = urlsplit(raw)
    claimed = _origin(parts.scheme, parts.netloc) if parts.scheme in DEFAULT_PORTS else None
    if claimed is None:
        return False
    trusted = {
        _origin(urlsplit(item).scheme, urlsplit(item).netloc)
        for item in settings.CSRF_TRUSTED_ORIGINS
    }
    own = _own_origin(scope)
    if claimed != own and claimed not in trusted:
        return False
    host = f"[{claimed[1]}]" if ":" in claimed[1] else claimed[1]
    # As Django does for requests: with DEBUG and no ALLOWED_HOSTS, the local names only.
    allowed = settings.ALLOWED_HOSTS or (LOCAL_HOSTS if settings.DEBUG else [])
    return validate_host(host, allowed)


class SameOriginValidator:
    """ASGI middleware refusing a WebSocket handshake from any other origin (a page on
    another host, another port of this host, or plain http for an https site)."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not same_origin(scope):
            denier = WebsocketDenier()
            return await denier(scope, receive, send)
        return await self.application(scope, receive, send)


# --- The API schema and its docs ------------------------------------------------------------


class SchemaAccess(BasePermission):
    """``/api/schema/`` and ``/api/docs/``: logged-in staff, or anyone when
    ``API_SCHEMA_PUBLIC`` is on (the schema maps every endpoint: not for strangers by default)."""

    message = "the API schema is for staff (log in to admin) unless API_SCHEMA_PUBLIC is on"

    def has_permission(self, request: Any, view: Any) -> bool:
        if settings.API_SCHEMA_PUBLIC:
            return True
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)
