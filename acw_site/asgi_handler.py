"""Django's ASGI handler, with the whole middleware chain and the view run in one thread hop,
in threads kept from one request to the next.

Every view and every middleware of this site is synchronous. Django's own ``ASGIHandler``
builds its chain for async serving: the synchronous middleware run in a worker thread, hand
the request back to the event loop (``async_to_sync``) for the innermost async-capable
middleware, which hands it to a worker thread again for the view, and the answer travels the
same way back. Each crossing waits for the other side to be scheduled: on a loaded machine
that waiting was half of an event request's time (py-spy, docs/benchmarks.md). Here the
chain is built synchronous end to end and entered once, in the request's thread
(``thread_sensitive``, as Django does for a synchronous view: one thread per request, the
database connection never shared). Reading the body, the request signals and sending the
answer stay Django's.

Django starts a new thread for every request and stops it after; under load, starting and
joining them was a tenth of the web process's CPU (py-spy). Here a request borrows an idle
thread (one at a time on it, as before: ``ThreadSensitiveContext`` with its own executor) and
gives it back once everything it left there has run: at once, normally, with no further hop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler


class SyncChainASGIHandler(ASGIHandler):
    _middleware_chain: Any

    def __init__(self) -> None:
        # Threads of requests served before, idle: at most as many as requests ever served at
        # once.
        self._idle_threads: deque[_RequestThread] = deque()
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        try:
            thread = self._idle_threads.popleft()
        except IndexError:
            thread = _RequestThread()
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        finally:
            if thread.idle:
                self._idle_threads.append(thread)
            else:
                # A view whose client went away goes on to its end: idle after it.
                thread.submit(self._idle_threads.append, thread)


class _RequestThread(ThreadPoolExecutor):
    """One thread, given the calls of one request at a time, that tells whether all it was
    given has run (each count is written by one thread only: no lock)."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="request")
        self._given = 0  # by the event loop's thread
        self._done = 0  # by this executor's thread

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self._given += 1
        return super().submit(self._run, fn, *args, **kwargs)

    def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            self._done += 1

    @property
    def idle(self) -> bool:
        return self._done == self._given
