"""The WebSocket auth stack: the session's user reaches the consumer, ``send`` goes untouched."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model

from acw_site.ws_auth import WebSocketAuthStack
from agents.tests.test_consumers import session_cookie

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


class Recorder:
    """An ASGI app that keeps the scope and the ``send`` it was called with."""

    def __init__(self) -> None:
        self.scope: dict[str, Any] = {}
        self.send: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope, self.send = scope, send
        # The user is resolved by AuthMiddleware before the app runs; read it here.
        self.username = await sync_to_async(lambda: scope["user"].get_username())()


async def _call(cookie_header: bytes | None) -> tuple[Recorder, Any]:
    app = Recorder()
    headers = [(b"cookie", cookie_header)] if cookie_header else []
    scope = {"type": "websocket", "path": "/ws/wall/", "headers": headers}

    async def send(message: dict[str, Any]) -> None:  # the server's own send
        raise AssertionError("nothing is sent by the stack itself")

    await WebSocketAuthStack(app)(scope, None, send)
    return app, send


async def test_the_session_cookie_gives_the_consumer_its_user_and_the_servers_own_send() -> None:
    user = await sync_to_async(get_user_model().objects.create_user)("walt", password="x" * 12)
    cookie = await sync_to_async(session_cookie)(user)

    app, send = await _call(f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())

    assert app.username == "walt"
    assert app.scope["session"].session_key == cookie
    # Frames go straight to the server: no per-frame wrapper between the wall and the socket.
    assert app.send is send


async def test_no_cookie_or_an_unknown_session_is_anonymous() -> None:
    app, _ = await _call(None)
    assert app.username == ""
    app, _ = await _call(f"{settings.SESSION_COOKIE_NAME}=not-a-session".encode())
    assert app.username == ""
