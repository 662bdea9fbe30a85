"""A web process through Redis and database faults (private redis-server, a cuttable proxy).

- The first wall handshake after a Redis restart, in a process that had no wall open during
  the restart, is accepted (it was a 500).
- With the database unreachable, API requests answer 503 + Retry-After fast (about a second,
  not the pool's full timeout), and the same process serves again once it is back.
- Beyond its concurrency limit and queue (acw_site.overload) a process answers 503 +
  Retry-After and writes nothing of the refused requests, and serves again once a turn frees.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from django.conf import settings
from django.test import Client

from agents.tests.factories import event
from bench.faults.stack import PrivateRedis, TcpProxy, free_port, stop_process, wait_for_port

from .conftest import needs_postgresql

pytestmark = [
    needs_postgresql,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


class Web:
    """One uvicorn process on the test database (optionally through a proxy) and a Redis."""

    def __init__(
        self,
        log: Path,
        redis_url: str,
        db_port: int | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        db = settings.DATABASES["default"]
        port = db_port or db.get("PORT") or 5432
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DEBUG": "1", "REDIS_URL": redis_url,
               "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@127.0.0.1:{port}/{db['NAME']}",
               **(extra_env or {})}  # fmt: skip
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "acw_site.asgi:application",
                 "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
                cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        wait_for_port(self.port, 30)

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    with PrivateRedis() as server:
        yield server


def _session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def _open_wall(web: Web, cookie: str) -> dict[str, Any]:
    """Open /ws/wall/ and return its first frame (raises on a refused handshake)."""
    url = web.url.replace("http", "ws") + "/ws/wall/"
    headers = {"Cookie": cookie, "Origin": web.url}
    async with websockets.connect(url, additional_headers=headers, open_timeout=10) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), 10))


def _post_event(web: Web, token: str, event: dict[str, Any]) -> int:
    request = urllib.request.Request(
        f"{web.url}/api/v1/events",
        data=json.dumps(event).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_the_first_wall_after_a_redis_restart_is_accepted(
    private_redis: PrivateRedis, supervisor_sam: Any, alice: Any, api_token: str, tmp_path: Path
) -> None:
    web = Web(tmp_path / "web.log", private_redis.url)
    try:
        cookie = _session_cookie(supervisor_sam)
        # A wall came and went, and an event was published: the process's pub/sub connection
        # exists, with nothing subscribed (so nothing reads it) when Redis restarts.
        assert asyncio.run(_open_wall(web, cookie))["type"] == "snapshot"
        assert _post_event(web, api_token, event("alice", "agent.logged_in")) == 201
        private_redis.restart(down_seconds=1)
        again = asyncio.run(_open_wall(web, cookie))
        assert again["type"] == "snapshot"
        assert [(a["agent"], a["state"]) for a in again["agents"]] == [("alice", "available")]
        assert "Internal Server Error" not in (tmp_path / "web.log").read_text()
    finally:
        web.stop()


def test_with_the_database_down_the_api_answers_503_fast_and_recovers(
    api_token: str, alice: Any, tmp_path: Path, private_redis: PrivateRedis
) -> None:
    db_port = int(settings.DATABASES["default"].get("PORT") or 5432)
    proxy = TcpProxy(db_port).start()
    web = Web(tmp_path / "web.log", private_redis.url, db_port=proxy.port)
    try:
        assert _post_event(web, api_token, event("alice", "agent.logged_in", 60)) == 201
        proxy.down()
        lost = event("alice", "agent.not_ready", 30, reason="break")
        statuses, times = [], []
        for _ in range(3):
            started = time.monotonic()
            statuses.append(_post_event(web, api_token, lost))
            times.append(time.monotonic() - started)
        per_request = max(times)
        assert statuses == [503] * 3
        # Fail fast: the slowest 503 (the one that waits for a new pooled connection) within
        # the pool timeout (1 s) plus overhead; it took the old 10 s pool timeout before. A
        # loose bound, to be a fact about the timeout and not about this machine's speed.
        assert per_request < 5, times
        proxy.up()
        # Same process, no restart. The pool reconnects in the background (with a backoff after
        # its failed attempts), so a request may still get a 503 just after the database is
        # back: the client retries after Retry-After, as told.
        after = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            after.append(_post_event(web, api_token, lost))
            if after[-1] != 503:
                break
            time.sleep(1)
        assert after[-1] == 201 and set(after[:-1]) <= {503}, after
        assert _post_event(web, api_token, lost) == 200  # and it was not half-stored before
    finally:
        web.stop()
        proxy.close()


def _raw_post(web: Web, token: str, event: dict[str, Any], *, hold_body: bool = False) -> Any:
    """Open a connection and send a POST of ``event``; with ``hold_body`` only its headers (the
    request then occupies its turn until ``_finish`` sends the body)."""
    body = json.dumps(event).encode()
    sock = socket.create_connection(("127.0.0.1", web.port), timeout=30)
    sock.sendall(
        (
            f"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        + (b"" if hold_body else body)
    )
    return sock, body


def _answer(sock: Any) -> tuple[int, dict[str, str]]:
    """The status and headers of the answer on ``sock`` (then closed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in head[1:])
    return int(head[0].split()[1]), {name.lower(): value for name, value in headers.items()}


def test_beyond_its_limit_and_queue_a_process_answers_503_and_writes_nothing(
    api_token: str, alice: Any, tmp_path: Path, private_redis: PrivateRedis
) -> None:
    from agents.models import Event

    # One request at a time, one more may wait (for at most half a second).
    limits = {"API_CONCURRENCY": "1", "API_QUEUE_LENGTH": "1", "API_QUEUE_TIMEOUT": "0.5"}
    web = Web(tmp_path / "web.log", private_redis.url, extra_env=limits)
    try:
        first = event("alice", "agent.logged_in", 60)
        held, held_body = _raw_post(web, api_token, first, hold_body=True)
        # The held request occupies the only turn (its body has not arrived). Of the next two,
        # one finds the queue full and one waits in it past its bound: both are refused.
        refused = [
            _raw_post(web, api_token, event("alice", "agent.not_ready", 30 - n, reason="break"))
            for n in range(2)
        ]
        answers = [_answer(sock) for sock, _ in refused]
        assert [status for status, _ in answers] == [503, 503]
        assert all(headers["retry-after"] == "1" for _, headers in answers)
        held.sendall(held_body)
        assert _answer(held)[0] == 201
        # Nothing of the refused requests was written; the process serves again.
        assert list(Event.objects.values_list("event_id", flat=True)) == [first["event_id"]]
        assert _post_event(web, api_token, event("alice", "agent.available", 10)) == 201
    finally:
        web.stop()
