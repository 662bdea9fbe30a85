"""Overload push-back for the APIs: a bounded number of requests per web process, a short queue.

Django serves each request of a process in a thread of its own, all sharing the process's
interpreter and its database pool (``DB_POOL_MAX_SIZE``): requests beyond what the process can
serve only make every request slower, and a client that gives up meanwhile would still be
served (and its events committed) behind its back. This ASGI middleware lets at most ``API_CONCURRENCY``
requests to ``/api/`` into Django at once; up to ``API_QUEUE_LENGTH`` more wait for their turn,
in arrival order, at most ``API_QUEUE_TIMEOUT`` seconds. Anything beyond is answered at once,
and a request that waited too long is answered when its time is up, in both cases ``503`` with
``Retry-After`` and nothing read or written (docs/api.md, "Overload"). Throughput stays at what
the process can do; the queue bounds the latency of what it accepts. Pages and WebSockets are
not limited.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

from django.conf import settings

LIMITED_PREFIX = "/api/"
RETRY_AFTER_SECONDS = 1
BUSY = json.dumps({"error": "server busy: retry after the Retry-After delay"}).encode()


class OverloadLimiter:
    """ASGI middleware around the HTTP application (``acw_site.asgi``)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = 0
        self._waiting: deque[asyncio.Future[bool]] = deque()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(LIMITED_PREFIX):
            await self.app(scope, receive, send)
            return
        if not await self._enter():
            await _busy(send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._leave()

    async def _enter(self) -> bool:
        """Wait for a turn; False: the queue is full, or the wait outlasted its bound."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests): nothing of the old one counts
            self._loop, self._running, self._waiting = loop, 0, deque()
        if self._running < settings.API_CONCURRENCY and not self._waiting:
            self._running += 1
            return True
        if len(self._waiting) >= settings.API_QUEUE_LENGTH:
            return False
        turn: asyncio.Future[bool] = loop.create_future()
        self._waiting.append(turn)
        expiry = loop.call_later(settings.API_QUEUE_TIMEOUT, self._expire, turn)
        try:
            return await turn
        except asyncio.CancelledError:
            # The client went away while waiting: give back a turn handed over meanwhile.
            if turn.done() and not turn.cancelled() and turn.result():
                self._leave()
            elif turn in self._waiting:
                self._waiting.remove(turn)
            raise
        finally:
            expiry.cancel()

    def _expire(self, turn: asyncio.Future[bool]) -> None:
        if not turn.done():
            self._waiting.remove(turn)
            turn.set_result(False)

    def _leave(self) -> None:
        """Hand the finished request's turn to the longest waiting one, if any."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(True)
                return
        self._running -= 1


async def _busy(send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(BUSY)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BUSY})
