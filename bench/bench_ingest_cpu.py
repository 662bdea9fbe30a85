"""CPU per single in-order event through ``ingest_event()``, in this process and in its
PostgreSQL backend: the web process's share of an event without HTTP, which a loaded machine
blurs less than a rate.

    DEBUG=0 SECRET_KEY=bench python -m bench.bench_ingest_cpu [--agents 200] [--events 3000]
                                                              [--warmup 400] [--profile FILE]
                                                              [--http]

On a fresh test database (``test_<name>`` of DATABASE_URL, migrated by this checkout's code),
with the site's Redis pub/sub layer (REDIS_URL): ``--agents`` agents are created up front, then
``--warmup`` events and ``--events`` measured ones go through ``ingest_event()`` one at a time,
in order, as ``bench.bench_ingest``'s traffic (calls with ACW, round robin over the agents).
Prints the process CPU (``time.process_time``, all its threads) and the backend's
(``/proc/<pid>/stat``, utime + stime; not over HTTP, whose requests take the pool's
connections) per measured event. ``--profile`` writes a cProfile of the measured events instead
(timed by each thread's CPU, so that waiting for PostgreSQL and Redis is not counted; the CPU
figures then include the profiler's cost).

``--http`` sends each event as ``POST /api/v1/events`` (a token, ``X-Forwarded-Proto: https``
as behind the proxy) through the site's ASGI application itself (``acw_site.asgi.application``:
Channels' router, the overload limiter, Django's handler, the middleware, DRF's view), called
with ASGI's ``scope``/``receive``/``send`` on an event loop of this process (uvloop, as uvicorn
picks it): no server and no socket, so that the figure is the application's whole path of a
request, and its difference to the default mode that path's share around ``ingest_event()``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Callable
from typing import Any

from bench._setup import with_bench_database


def _backend_seconds(pid: int) -> float:
    """User + system CPU seconds of a process of this machine (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may hold spaces: count the fields after its ")".
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class AsgiPoster:
    """POSTs JSON bodies to an ASGI application, one request at a time, on one event loop."""

    def __init__(self, application: Any, path: str, token: str) -> None:
        import uvloop

        self.application, self.path = application, path
        self.headers = [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"x-forwarded-proto", b"https"),
            (b"user-agent", b"bench"),
        ]
        self.loop = uvloop.new_event_loop()

    def post(self, body: dict[str, Any]) -> tuple[int, bytes]:
        """The answer's status and body."""
        return self.loop.run_until_complete(self._post(json.dumps(body).encode()))

    async def _post(self, raw: bytes) -> tuple[int, bytes]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [*self.headers, (b"content-length", str(len(raw)).encode())],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        received = False
        answer: dict[str, Any] = {"status": 0, "body": b""}

        async def receive() -> dict[str, Any]:
            nonlocal received
            if received:  # asked again only once the answer is sent: the client stays
                await asyncio.Event().wait()
            received = True
            return {"type": "http.request", "body": raw, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")

        await self.application(scope, receive, send)
        return answer["status"], answer["body"]


def _http_ingest(token: str) -> Callable[[dict[str, Any]], str]:
    """``ingest_event()``'s stand-in that goes through the ASGI application; the status."""
    from acw_site.asgi import application

    poster = AsgiPoster(application, "/api/v1/events", token)

    def ingest(body: dict[str, Any]) -> str:
        status, answer = poster.post(body)
        if status not in (200, 201):
            raise RuntimeError(f"{status}: {answer[:300]!r}")
        return str(json.loads(answer)["status"])

    return ingest


def _direct_ingest(body: dict[str, Any]) -> str:
    from agents.services import ingest_event

    return ingest_event(body).status


def _start_profiling(http: bool) -> list[Any]:
    """cProfile, timed by CPU (waits not counted), in this thread and, over HTTP, in
    the thread the requests' middleware and view run in (the handler's one idle thread after
    the warm-up: requests are sent one at a time)."""
    import cProfile

    # Each thread's own CPU: the process's would count one thread's work in the other's waits.
    profilers = [cProfile.Profile(time.thread_time)]
    profilers[0].enable()
    if http:
        from acw_site.asgi import django_asgi_app

        (thread,) = django_asgi_app._idle_threads
        profilers.append(cProfile.Profile(time.thread_time))
        thread.submit(profilers[1].enable).result()
    return profilers


def _stop_profiling(profilers: list[Any], path: str) -> None:
    import pstats

    profilers[0].disable()
    if len(profilers) > 1:
        from acw_site.asgi import django_asgi_app

        django_asgi_app._idle_threads[0].submit(profilers[1].disable).result()
    stats = pstats.Stats(profilers[0])
    for other in profilers[1:]:
        stats.add(other)
    stats.dump_stats(path)


def run(agents: int, events: int, warmup: int, profile: str | None, http: bool = False) -> None:
    from django.conf import settings
    from django.db import connection

    from agents.models import ApiToken
    from bench.bench_ingest import Traffic

    traffic = Traffic("cpu", agents)
    ingest = _http_ingest(ApiToken.issue("bench")[1]) if http else _direct_ingest
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    for _ in range(warmup):
        assert ingest(next(traffic)) == "accepted"
    bodies = [next(traffic) for _ in range(events)]
    profilers = _start_profiling(http) if profile else []
    began, cpu, db = time.monotonic(), time.process_time(), _backend_seconds(backend)
    for body in bodies:
        ingest(body)
    cpu, db = time.process_time() - cpu, _backend_seconds(backend) - db
    elapsed = time.monotonic() - began
    if profile:
        _stop_profiling(profilers, profile)
    load = os.getloadavg()
    # Over HTTP the requests use the pool's connections, not the one whose backend is read.
    backend_cpu = "n/a" if http else f"{db / events * 1000:.2f} ms/event"
    path = "POST /api/v1/events through the ASGI application" if http else "ingest_event()"
    print(
        f"{events} events ({path}, {agents} agents, after {warmup}), DEBUG={settings.DEBUG}: "
        f"process {cpu / events * 1000:.2f} ms/event, PostgreSQL backend {backend_cpu}, "
        f"{events / elapsed:.0f} events/s wall clock; "
        f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--profile", default=None)
    parser.add_argument("--http", action="store_true", help="through the ASGI application")
    args = parser.parse_args()
    with_bench_database(lambda: run(args.agents, args.events, args.warmup, args.profile, args.http))


if __name__ == "__main__":
    main()
