"""The Django session and user of a WebSocket, read once at the handshake.

Channels' ``AuthMiddlewareStack`` wraps the connection's ``send`` to save a modified session
and set its cookie on ``http.response.start``, a message a WebSocket never sends; the wrapper
still runs its checks for every frame. A wall sends thousands of frames a second from one
process (docs/benchmarks.md, wall fan-out), so the WebSocket stack here loads the session and
the user the same way and hands the server's ``send`` through untouched. The wall consumer
re-reads the session itself when it checks rights (``agents.consumers``), so a logout elsewhere
still closes the wall.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from channels.auth import AuthMiddleware
from channels.sessions import CookieMiddleware
from django.conf import settings


class WebSocketSessionMiddleware:
    """Puts the session named by the request's cookie in ``scope["session"]``; no ``send`` wrap.

    The store is lazy: nothing is read until the session is first used (by ``AuthMiddleware``).
    """

    def __init__(self, application: Any) -> None:
        self.application = application
        self.session_store = import_module(settings.SESSION_ENGINE).SessionStore

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        session_key = scope["cookies"].get(settings.SESSION_COOKIE_NAME)
        scope = {**scope, "session": self.session_store(session_key)}
        return await self.application(scope, receive, send)


def WebSocketAuthStack(application: Any) -> Any:
    """Cookies, then the session, then the user: ``scope["session"]`` and ``scope["user"]``."""
    return CookieMiddleware(WebSocketSessionMiddleware(AuthMiddleware(application)))
