"""Served over ASGI, a request enters the synchronous middleware chain and the view once.

Django's own handler went back to the event loop in the middle of the chain (for the one
async-capable middleware) and then to a thread again for the view: each crossing waits for the
other side to be scheduled (docs/design.md, traps of the stack).
"""

from __future__ import annotations

import gc
import json
import logging
import threading
from typing import Any

import pytest
from asgiref.sync import AsyncToSync
from channels.testing import HttpCommunicator

from acw_site.middleware import RequestIdMiddleware
from agents import api
from agents.tests.factories import event


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_an_event_request_runs_its_middleware_and_view_in_one_thread(
    api_token: str, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from acw_site.asgi import application

    threads: dict[str, int] = {}
    back_to_the_loop: list[Any] = []
    outermost, view = RequestIdMiddleware.__call__, api.EventsView.post

    def outermost_recorded(self: RequestIdMiddleware, request: Any) -> Any:
        threads["middleware"] = threading.get_ident()
        return outermost(self, request)

    def view_recorded(self: api.EventsView, request: Any) -> Any:
        threads["view"] = threading.get_ident()
        return view(self, request)

    def no_way_back(self: AsyncToSync, *args: Any, **kwargs: Any) -> Any:
        back_to_the_loop.append(self.awaitable)
        raise AssertionError("the request went back to the event loop")

    monkeypatch.setattr(RequestIdMiddleware, "__call__", outermost_recorded)
    monkeypatch.setattr(api.EventsView, "post", view_recorded)
    monkeypatch.setattr(AsyncToSync, "__call__", no_way_back)
    response = await _post(application, event("alice", "agent.logged_in"), api_token)
    assert response["status"] == 201, response["body"]
    assert back_to_the_loop == []
    assert threads["middleware"] == threads["view"] != threading.get_ident()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_requests_one_after_the_other_are_served_in_one_kept_thread(
    api_token: str, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from acw_site.asgi import application

    threads: list[threading.Thread] = []  # the objects: a new thread may reuse an old one's id
    view = api.EventsView.post

    def view_recorded(self: api.EventsView, request: Any) -> Any:
        threads.append(threading.current_thread())
        return view(self, request)

    monkeypatch.setattr(api.EventsView, "post", view_recorded)
    for type_ in ("agent.logged_in", "agent.available", "agent.logged_out"):
        response = await _post(application, event("alice", type_), api_token)
        assert response["status"] == 201, response["body"]
    # Each request waits until the previous one's thread is idle again, so all three reuse it.
    assert len(threads) == 3
    assert threads[0] is threads[1] is threads[2]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_a_request_crosses_to_its_thread_once_with_its_signals_around_the_view(
    api_token: str, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``request_started``, the view and ``request_finished`` in one crossing (Django's handler
    crossed three times: the signal, the chain, ``close()``)."""
    from django.core import signals

    from acw_site.asgi import application
    from acw_site.asgi_handler import _RequestThread

    crossings: list[Any] = []
    seen: list[tuple[str, int]] = []
    submit, view = _RequestThread.submit, api.EventsView.post

    def submit_counted(self: _RequestThread, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        crossings.append(fn)
        return submit(self, fn, *args, **kwargs)

    def view_recorded(self: api.EventsView, request: Any) -> Any:
        seen.append(("view", threading.get_ident()))
        return view(self, request)

    def started(**kwargs: Any) -> None:
        seen.append(("started", threading.get_ident()))

    def finished(**kwargs: Any) -> None:
        seen.append(("finished", threading.get_ident()))

    monkeypatch.setattr(_RequestThread, "submit", submit_counted)
    monkeypatch.setattr(api.EventsView, "post", view_recorded)
    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        response = await _post(application, event("alice", "agent.logged_in"), api_token)
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    assert response["status"] == 201, response["body"]
    assert len(crossings) == 1
    assert [name for name, _ in seen] == ["started", "view", "finished"]
    assert len({thread for _, thread in seen}) == 1


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_a_refused_request_is_logged_with_its_id(api_token: str) -> None:
    """Django logs a 4xx after the chain: the line carries the request's id (logs.py)."""
    from acw_site import logs
    from acw_site.asgi import application

    lines: list[tuple[str, str]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append((record.getMessage(), logs.request_id.get()))

    handler = Collect(logging.WARNING)
    logging.getLogger("django.request").addHandler(handler)
    try:
        response = await _post(application, {"type": "agent.logged_in"}, "not-a-token")
    finally:
        logging.getLogger("django.request").removeHandler(handler)
    assert response["status"] == 401
    request_id = {k.lower(): v for k, v in response["headers"]}[b"x-request-id"].decode()
    assert lines == [("Unauthorized: /api/v1/events", request_id)]


async def _post(application: Any, body: dict[str, Any], token: str) -> dict[str, Any]:
    request = HttpCommunicator(
        application,
        "POST",
        "/api/v1/events",
        body=json.dumps(body).encode(),
        headers=[
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"x-forwarded-proto", b"https"),
            (b"authorization", f"Bearer {token}".encode()),
        ],
    )
    response = await request.get_response(timeout=10)
    await request.wait(timeout=10)  # the application's end, after the answer
    return response


def test_a_request_thread_is_idle_only_once_all_it_was_given_has_run() -> None:
    from acw_site.asgi_handler import _RequestThread

    thread = _RequestThread()
    release = threading.Event()
    running = thread.submit(release.wait)  # a view whose client went away, still running
    assert not thread.idle
    release.set()
    running.result(timeout=10)
    assert thread.idle
    thread.shutdown()


def test_the_server_process_freezes_what_it_loaded_before_its_first_request() -> None:
    """The objects loaded at start (the views among them) are out of the collector's reach, so
    a full collection no longer walks them (acw_site/startup.py)."""
    from acw_site import asgi

    try:
        collected = {id(o) for o in gc.get_objects()}  # every generation but the frozen one
        assert id(asgi.application) not in collected and id(api.EventsView) not in collected
    finally:
        gc.unfreeze()
