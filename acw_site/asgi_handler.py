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

Django's handler also crosses to the thread for the ``request_started`` signal before the chain
and for ``response.close()`` (the ``request_finished`` signal: the database connection back to
its pool) after the answer is sent: three round trips per request, each a wake-up of the thread
and then of the event loop (a tenth of an event request's CPU in-process). Here one crossing
sends ``request_started``, runs the chain and the view, logs a 4xx/5xx answer as Django does,
and closes a response whose body is already complete (not a streaming one) before it is sent:
the connection goes back to the pool as the answer leaves, not after. A streaming response is
sent and then closed, as by Django.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, ASGIRequest, get_script_prefix
from django.http import HttpResponseBase
from django.urls import set_script_prefix, set_urlconf
from django.utils.log import log_response


class SyncChainASGIHandler(ASGIHandler):
    _middleware_chain: Any

    def __init__(self) -> None:
        # Threads of requests served before, idle: at most as many as requests ever served at
        # once.
        self._idle_threads: deque[_RequestThread] = deque()
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        self._serve_in_thread = sync_to_async(self._serve, thread_sensitive=True)

    def _serve(self, request: ASGIRequest, scope: dict[str, Any]) -> Any:
        """In the request's thread: Django's ``request_started``, ``get_response()`` (the
        chain, then a 4xx/5xx logged) and, for a complete body, ``close()``."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        set_urlconf(settings.ROOT_URLCONF)
        response = self._middleware_chain(request)
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            log_response(
                "%s: %s", response.reason_phrase, request.path, response=response, request=request
            )
        if not response.streaming:
            response.close()
        return response

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Django's ``handle()``, with ``request_started``, the chain and ``close()`` in one
        crossing to the request's thread (module docstring)."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None
            await signals.request_started.asend(sender=self.__class__, scope=scope)
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        async def process_request() -> HttpResponseBase:
            response = await self._serve_in_thread(request, scope)
            # The client may go away while the answer is sent.
            with contextlib.suppress(asyncio.CancelledError):
                await self.send_response(response, send)
            return response

        # The disconnect listener first: it raises nothing unexpected that would keep the
        # view's task uncancelled.
        listening = asyncio.create_task(self.listen_for_disconnect(receive))
        serving = asyncio.create_task(process_request())
        tasks = [listening, serving]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = serving.result()
        except asyncio.CancelledError:
            # The client went away during the view, as Django answers it (the view, when it
            # ends, has closed a complete response itself: its receivers may run twice, and
            # Django's own are idempotent).
            await signals.request_finished.asend(sender=self.__class__)
        else:
            if response.streaming:
                await sync_to_async(response.close)()
        body_file.close()

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
