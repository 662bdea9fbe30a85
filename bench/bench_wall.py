"""Event to wall latency: from the ingestion call to the frame arriving at every wall that shows it.

    python -m bench.bench_wall [--agents 200] [--teams 10] [--servers 2] [--walls 50]
                               [--rate 30] [--seconds 20]

Runs on DATABASE_URL/REDIS_URL in a throw-away test database. Starts ``--servers`` daphne
processes against it (same Redis, same CHANNEL_LAYER_PREFIX), opens ``--walls`` WebSockets spread
over them (half as a manager who sees every team, half as supervisors of two teams each), then
calls ``agents.services.ingest_event()`` in this process at ``--rate`` events/s. Each event
changes an agent's live state (not_ready with a unique reason, then available, in turn), so each
one is identified in the frames by the agent and its ``since``. Latency runs from the start of
the ``ingest_event`` call (validation, row lock, commit, publish) to the frame's arrival at the
client, for every wall that can see the agent's team.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench._setup import percentile, size, with_bench_database

SUPERVISORS = 5
DRAIN_SECONDS = 3.0


@dataclass
class Wall:
    """One wall client: which teams it sees and every text frame it received, with the time."""

    url: str
    cookie: str
    teams: set[str]
    frames: list[tuple[float, str]] = field(default_factory=list)


def _key(agent: str, since: str) -> tuple[str, datetime]:
    # The server renders ``since`` from the database value; compare instants, not strings.
    return agent, datetime.fromisoformat(since)


def _session_cookie(user: Any) -> str:
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def _setup_floor(agents: int, teams: int) -> tuple[list[tuple[str, str]], list[tuple[str, set]]]:
    """Teams, logged-in agents, a manager and supervisors; returns agents and (cookie, teams)."""
    from django.contrib.auth.models import Group, User
    from django.utils import timezone

    from agents import access, services
    from agents.models import Team
    from agents.tests.factories import event

    team_names = [f"Team {n:02d}" for n in range(teams)]
    floor = []
    for n in range(agents):
        external_id = f"wall{n:04d}"
        team = team_names[n % teams]
        services.provision_agent(external_id, name=f"Agent {n:04d}", team_name=team)
        floor.append((external_id, team))
    now = timezone.now()
    logins = [event(a, "agent.logged_in", now, event_id=f"{a}-login") for a, _ in floor]
    assert all(r.status == "accepted" for r in services.ingest_events(logins))

    manager = User.objects.create_user("bench-manager")
    manager.groups.add(Group.objects.get(name=access.MANAGERS))
    viewers = [(_session_cookie(manager), set(team_names))]
    for n in range(SUPERVISORS):
        user = User.objects.create_user(f"bench-supervisor-{n}")
        user.groups.add(Group.objects.get(name=access.SUPERVISORS))
        watched = {team_names[(2 * n) % teams], team_names[(2 * n + 1) % teams]}
        for team in Team.objects.filter(name__in=watched):
            team.supervisors.add(user)
        viewers.append((_session_cookie(user), watched))
    return floor, viewers


async def _run_wall(wall: Wall, ready: asyncio.Event, stop: asyncio.Event) -> None:
    from websockets.asyncio.client import connect

    ws_url = wall.url.replace("http://", "ws://") + "/ws/wall/"
    async with connect(
        ws_url, origin=wall.url, additional_headers={"Cookie": wall.cookie}, max_size=None
    ) as ws:
        first = await asyncio.wait_for(ws.recv(), timeout=30)
        assert json.loads(first)["type"] == "snapshot", first[:200]
        ready.set()
        while not stop.is_set():
            try:
                text = await asyncio.wait_for(ws.recv(), timeout=0.2)
            except TimeoutError:
                continue
            # Time first, parse after the run: the clients must not be the bottleneck.
            wall.frames.append((time.perf_counter(), str(text)))


class Clients:
    """The wall clients, on their own event loop in a thread (ingestion is sync Django code)."""

    def __init__(self, walls: list[Wall]) -> None:
        self.walls = walls
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.stop_event: asyncio.Event | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.thread.start()

        async def open_all() -> None:
            self.stop_event = asyncio.Event()
            readies = []
            for wall in self.walls:
                ready = asyncio.Event()
                readies.append(ready)
                self.tasks.append(asyncio.create_task(_run_wall(wall, ready, self.stop_event)))
                # A few at a time: every connect reads a snapshot from the database.
                if len(self.tasks) % 10 == 0:
                    await asyncio.sleep(0.1)
            waiting = [asyncio.create_task(r.wait()) for r in readies]
            await asyncio.wait(
                [*waiting, *self.tasks], timeout=60, return_when=asyncio.FIRST_EXCEPTION
            )
            for task in self.tasks:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            assert all(r.is_set() for r in readies), "not every wall got its snapshot"

        asyncio.run_coroutine_threadsafe(open_all(), self.loop).result(timeout=90)

    def stop(self) -> None:
        async def close_all() -> None:
            if self.stop_event is not None:
                self.stop_event.set()
            await asyncio.gather(*self.tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)


def _send_events(
    floor: list[tuple[str, str]], rate: float, seconds: float
) -> tuple[dict[tuple[str, datetime], tuple[float, str]], float, list[float]]:
    """Ingest at ``rate`` events/s for ``seconds``: the send time and team of each change, the
    elapsed time and each ``ingest_event`` call's duration (ms)."""
    from django.utils import timezone

    from agents import services
    from agents.tests.factories import event

    sent: dict[tuple[str, datetime], tuple[float, str]] = {}
    calls: list[float] = []
    count = int(rate * seconds)
    began = time.perf_counter()
    for n in range(count):
        delay = began + n / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        # Round-robin over the floor: one agent's changes are seconds apart, so no coalescing
        # window ever merges two changes of one agent (which would hide the earlier one).
        agent, team = floor[n % len(floor)]
        turn = n // len(floor)
        t0 = time.perf_counter()
        occurred_at = timezone.now()
        if turn % 2 == 0:
            fields = {"reason": f"bench-{n}"}
            raw = event(agent, "agent.not_ready", occurred_at, event_id=f"bench-{n}", **fields)
        else:
            raw = event(agent, "agent.available", occurred_at, event_id=f"bench-{n}")
        result = services.ingest_event(raw)
        calls.append((time.perf_counter() - t0) * 1000)
        assert result.status == "accepted", result
        sent[(agent, occurred_at)] = (t0, team)
    return sent, time.perf_counter() - began, calls


def _report(walls: list[Wall], sent: dict[tuple[str, datetime], tuple[float, str]]) -> None:
    latencies: list[float] = []
    frames = resyncs = unmatched = 0
    expected = sum(sum(1 for w in walls if team in w.teams) for _, team in sent.values())
    for wall in walls:
        for received, text in wall.frames:
            frames += 1
            frame = json.loads(text)
            if frame["type"] == "snapshot":
                resyncs += 1
                continue
            if frame["type"] == "agent":
                payloads = [frame["agent"]]
            elif frame["type"] == "agents":
                payloads = frame["agents"]
            else:
                continue
            for payload in payloads:
                hit = sent.get(_key(payload["agent"], payload["since"]))
                if hit is None:
                    unmatched += 1
                else:
                    latencies.append((received - hit[0]) * 1000)
    print(
        f"frames received: {frames}; resync snapshots: {resyncs}; unmatched payloads: {unmatched}"
    )
    print(
        f"deliveries matched / expected: {len(latencies)} / {expected} "
        f"({len(latencies) / expected:.1%})"
    )
    if latencies:
        print(
            f"latency event -> wall: p50 {percentile(latencies, 50):.1f} ms  "
            f"p95 {percentile(latencies, 95):.1f} ms  p99 {percentile(latencies, 99):.1f} ms  "
            f"max {max(latencies):.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--servers", type=int, default=2, choices=[1, 2, 3, 4])
    parser.add_argument("--walls", type=int, default=size(50, 10))
    parser.add_argument("--rate", type=float, default=30, help="events per second")
    parser.add_argument("--seconds", type=float, default=size(20, 5))
    args = parser.parse_args()
    if not (0 < args.walls <= 500 and 0 < args.rate <= 1000 and 0 < args.seconds <= 300):
        parser.error("walls 1-500, rate up to 1000/s, seconds up to 300")

    def run() -> None:
        from django.conf import settings
        from django.db import connection

        from tests.browser.support import Server

        if connection.vendor != "postgresql" or settings.USING_EMBEDDED_REDIS:
            # The servers are other processes: they cannot see an in-memory SQLite database.
            print("skipped: needs DATABASE_URL (PostgreSQL) and REDIS_URL")
            return
        floor, viewers = _setup_floor(args.agents, args.teams)
        logs = Path(tempfile.mkdtemp(prefix="bench-wall-"))
        servers = [Server(logs / f"daphne-{n}.log") for n in range(args.servers)]
        clients: Clients | None = None
        try:
            for server in servers:
                server.start()
            walls = []
            for n in range(args.walls):
                cookie, teams = viewers[0] if n % 2 == 0 else viewers[1 + (n // 2) % SUPERVISORS]
                walls.append(Wall(servers[n % len(servers)].url, cookie, teams))
            clients = Clients(walls)
            clients.start()
            print(
                f"database: {connection.vendor}; agents: {args.agents} in {args.teams} teams; "
                f"servers: {args.servers}; walls: {args.walls}; rate: {args.rate:g}/s "
                f"for {args.seconds:g} s"
            )
            sent, elapsed, calls = _send_events(floor, args.rate, args.seconds)
            time.sleep(DRAIN_SECONDS)
        finally:
            if clients is not None:
                clients.stop()
            for server in servers:
                server.stop()
        print(
            f"events sent: {len(sent)} in {elapsed:.1f} s ({len(sent) / elapsed:.1f}/s); "
            f"ingest_event call p50 {percentile(calls, 50):.1f} ms  "
            f"p99 {percentile(calls, 99):.1f} ms"
        )
        _report(walls, sent)
        print(f"server logs: {logs}")

    with_bench_database(run)
    print(
        "reproduce: DATABASE_URL=postgres://postgres@127.0.0.1:5432/test "
        "REDIS_URL=redis://127.0.0.1:6379/0 CHANNEL_LAYER_PREFIX=bench "
        f".venv/bin/python -m bench.bench_wall --agents {args.agents} --teams {args.teams} "
        f"--servers {args.servers} --walls {args.walls} --rate {args.rate:g} "
        f"--seconds {args.seconds:g}"
    )


if __name__ == "__main__":
    main()
