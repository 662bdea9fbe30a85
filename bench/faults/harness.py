"""The private stack a fault scenario runs on, and the clients that load it.

``Stack`` creates a fresh PostgreSQL database of its own (``faults_<scenario>``, dropped at the
end), starts a private ``redis-server``, a TCP proxy in front of PostgreSQL (the "database
down" switch), and on demand uvicorn web processes, a Celery worker and the one beat, all with
``REDIS_PREFIX=faults``. The scenario's own process uses Django directly on the same database
(not through the proxy), to check what was stored even while the database is "down" for the
stack.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .stack import PrivateRedis, TcpProxy, free_port, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".run" / "faults"


def _admin_url() -> str:
    return os.environ.get("FAULTS_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")


class Stack:
    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        # FAULTS_DATABASE: another name, so that two stacks can share one PostgreSQL server.
        self.db_name = os.environ.get("FAULTS_DATABASE") or f"faults_{scenario}"
        admin = urlsplit(_admin_url())
        self.pg_host, self.pg_port = admin.hostname or "127.0.0.1", admin.port or 5432
        self.pg_user = admin.username or "postgres"
        self.redis = PrivateRedis()
        self.proxy = TcpProxy(self.pg_port, self.pg_host)
        self.webs: list[subprocess.Popen[bytes]] = []
        self.web_ports: list[int] = []
        self.worker: subprocess.Popen[bytes] | None = None
        self.beat: subprocess.Popen[bytes] | None = None
        LOGS.mkdir(parents=True, exist_ok=True)

    # --- set-up ------------------------------------------------------------------------------

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(_admin_url(), autocommit=True) as conn:
            conn.execute(sql)

    def direct_url(self) -> str:
        return f"postgres://{self.pg_user}@{self.pg_host}:{self.pg_port}/{self.db_name}"

    def proxied_url(self) -> str:
        return f"postgres://{self.pg_user}@127.0.0.1:{self.proxy.port}/{self.db_name}"

    def start(self) -> Stack:
        """Fresh database, Redis and proxy; Django set up in this process on the database."""
        self._admin(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{self.db_name}"')
        self.redis.start()
        self.proxy.start()
        os.environ.update(
            DATABASE_URL=self.direct_url(), REDIS_URL=self.redis.url, REDIS_PREFIX="faults",
            DEBUG="1", DJANGO_SETTINGS_MODULE="acw_site.settings",
        )  # fmt: skip
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        return self

    def child_env(self) -> dict[str, str]:
        return {**os.environ, "DATABASE_URL": self.proxied_url(), "PYTHONUNBUFFERED": "1",
                "LOG_LEVEL": "WARNING"}  # fmt: skip

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (LOGS / f"{self.scenario}-{name}.log").open("ab")
        return subprocess.Popen(
            argv, cwd=ROOT, env={**self.child_env(), **(env or {})}, stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip

    def start_web(self, count: int = 1, env: dict[str, str] | None = None) -> list[str]:
        """Start ``count`` uvicorn processes; returns the URLs of those just started."""
        ports = [free_port() for _ in range(count)]
        for port in ports:
            self.webs.append(self._spawn(f"web{port}", [
                sys.executable, "-m", "uvicorn", "acw_site.asgi:application",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            ], env))  # fmt: skip
            self.web_ports.append(port)
        for port in ports:
            wait_for_port(port, 60)
        return [f"http://127.0.0.1:{port}" for port in ports]

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.web_ports]

    def restart_web(self, index: int) -> None:
        port = self.web_ports[index]
        stop_process(self.webs[index])
        self.webs[index] = self._spawn(f"web{port}", [
            sys.executable, "-m", "uvicorn", "acw_site.asgi:application",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ])  # fmt: skip
        wait_for_port(port, 60)

    def start_worker(self) -> subprocess.Popen[bytes]:
        self.worker = self._spawn("worker", [
            sys.executable, "-m", "celery", "-A", "acw_site", "worker", "--pool=threads",
            "--concurrency=4", "--loglevel=WARNING", "--without-gossip", "--without-mingle",
        ])  # fmt: skip
        return self.worker

    def start_beat(self) -> subprocess.Popen[bytes]:
        self.beat = self._spawn("beat", [
            sys.executable, "-m", "celery", "-A", "acw_site", "beat", "--loglevel=WARNING",
            f"--schedule={LOGS / (self.scenario + '-beat-schedule')}",
        ])  # fmt: skip
        return self.beat

    def token(self) -> str:
        from agents.models import ApiToken

        return ApiToken.issue("faults")[1]

    def session_cookie(self, username: str = "faults-manager") -> str:
        from django.contrib.auth.models import Group, User
        from django.test import Client

        user, _ = User.objects.get_or_create(username=username)
        user.groups.add(Group.objects.get(name="Managers"))
        client = Client()
        client.force_login(user)
        return f"sessionid={client.cookies['sessionid'].value}"

    def close(self) -> None:
        for process in [*self.webs, self.worker, self.beat]:
            if process is not None:
                stop_process(process)
        self.proxy.close()
        self.redis.close()
        from django.db import connections

        connections.close_all()
        with contextlib.suppress(Exception):
            self._admin(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')


@contextlib.contextmanager
def stack(scenario: str) -> Iterator[Stack]:
    running = Stack(scenario)
    try:
        yield running.start()
    finally:
        running.close()


# --- HTTP clients ------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    seconds: float
    body: dict[str, Any] = field(default_factory=dict)
    retry_after: str | None = None


def post(url: str, token: str, body: Any, timeout: float = 30) -> Answer:
    """POST JSON to ``url``/api/v1/events; status 0 when the connection itself failed."""
    parts = urlsplit(url)
    started = time.monotonic()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", "/api/v1/events", json.dumps(body), {
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})  # fmt: skip
        response = conn.getresponse()
        raw = response.read()
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"raw": raw[:200].decode(errors="replace")}
        return Answer(response.status, time.monotonic() - started, parsed,
                      response.getheader("Retry-After"))  # fmt: skip
    except OSError:
        return Answer(0, time.monotonic() - started)
    finally:
        conn.close()


def get_json(url: str, path: str, token: str) -> tuple[int, Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if response.status == 200 else raw)
    finally:
        conn.close()


class Traffic:
    """Client threads that deliver events one by one, retrying each until it is stored.

    A client does what the API asks of an integration: on 503 (or a refused connection) it
    waits (``Retry-After``, at most 1 s here) and sends the same event again, so an event is
    lost only if the server answered success without storing it. Every answer is recorded.
    """

    def __init__(self, urls: list[str], token: str, events: list[dict[str, Any]],
                 clients: int = 4, rate: float = 50.0) -> None:  # fmt: skip
        self.urls, self.token, self.clients, self.rate = urls, token, clients, rate
        self.queue = list(reversed(events))
        self.lock = threading.Lock()
        self.answers: list[tuple[float, Answer]] = []
        self.stored: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(clients)]  # fmt: skip

    def _next(self) -> dict[str, Any] | None:
        with self.lock:
            return self.queue.pop() if self.queue else None

    def _run(self, index: int) -> None:
        url = self.urls[index % len(self.urls)]
        interval = self.clients / self.rate
        while not self.stop.is_set():
            event = self._next()
            if event is None:
                return
            while not self.stop.is_set():
                tick = time.monotonic()
                answer = post(url, self.token, event)
                with self.lock:
                    self.answers.append((time.time(), answer))
                if answer.status in (200, 201):
                    with self.lock:
                        self.stored.append(event["event_id"])
                    break
                if answer.status not in (0, 502, 503):
                    break  # a client error: nothing to retry (counted as such)
                time.sleep(min(1.0, float(answer.retry_after or 1)))
            time.sleep(max(0.0, interval - (time.monotonic() - tick)))

    def start(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def join(self, timeout: float) -> None:
        give_up = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, give_up - time.monotonic()))
        self.stop.set()

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> dict[int, int]:
        counts: dict[int, int] = {}
        for at, answer in self.answers:
            if since <= at < until:
                counts[answer.status] = counts.get(answer.status, 0) + 1
        return counts


def live_events(agents: int, minutes: float, prefix: str, seed: int = 7) -> list[dict[str, Any]]:
    """A realistic stream for ``agents`` agents starting now (simulation model, shortened ACW
    so timeouts happen while a scenario runs). ``occurred_at`` is rewritten when sent."""
    import random
    from datetime import timedelta

    from django.utils import timezone

    from agents import simulation
    from agents.states import PolicySpec

    start = timezone.now() - timedelta(minutes=minutes)
    roster = [simulation.SimAgent(external_id=f"{prefix}-a{i:03d}", team_id=0,
                                  team_name="North", persona=simulation.persona_for(f"a{i}"))
              for i in range(agents)]  # fmt: skip
    events = [event for _, event in simulation.timeline(
        roster, random.Random(seed), start=start, end=timezone.now(),
        policy_for=lambda team_id, channel: PolicySpec(), id_prefix=prefix)]  # fmt: skip
    return events


def report(title: str, command: str, rows: list[tuple[str, Any]], ok: bool) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"\n== {title}: {'PASS' if ok else 'FAIL'}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print(f"  reproduce: {command}")


def projection_rows() -> dict[str, Any]:
    """Everything the event log implies, in comparable form (no ids, no write times)."""
    from agents.models import AcwSession, AgentState, HoldPeriod, Interaction

    def rows(queryset: Any, *fields: str) -> list[tuple[Any, ...]]:
        return sorted(tuple(str(v) for v in row) for row in queryset.values_list(*fields))

    return {
        "states": rows(AgentState.objects, "agent__external_id", "state", "reason", "since",
                       "interaction_id", "acw_deadline"),
        "interactions": rows(Interaction.objects, "agent__external_id", "interaction_id",
                             "started_at", "ended_at", "talk_seconds", "hold_seconds"),
        "acw_sessions": rows(AcwSession.objects, "agent__external_id", "started_at", "deadline",
                             "ended_at", "end_reason", "extensions"),
        "holds": rows(HoldPeriod.objects, "interaction__interaction_id", "started_at", "ended_at"),
    }  # fmt: skip


def same_as_replay() -> tuple[bool, str]:
    """Is what is stored exactly what replaying the event log from scratch gives?"""
    from django.core.management import call_command

    before = projection_rows()
    quiet = io.StringIO()
    with contextlib.redirect_stderr(quiet):
        call_command("replay_events", verbosity=0, stdout=quiet, stderr=quiet)
    after = projection_rows()
    differing = [name for name in before if before[name] != after[name]]
    sizes = ", ".join(f"{len(v)} {k}" for k, v in before.items())
    return not differing, (f"identical ({sizes})" if not differing else f"differ: {differing}")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# --- Walls -------------------------------------------------------------------------------------

WALL_FIELDS = ("state", "reason", "since", "interaction_id", "acw_deadline")


def shown(agent: dict[str, Any], now_iso: str) -> tuple[Any, ...]:
    """What a tile shows at ``now``: an ACW past its deadline flips to ``acw_timeout``, as the
    page does (static/js/wall.js, timedOut)."""
    from datetime import datetime

    deadline, timeout = agent.get("acw_deadline"), agent.get("acw_timeout")
    if (
        agent["state"] == "acw"
        and deadline
        and timeout
        and (datetime.fromisoformat(now_iso) >= datetime.fromisoformat(deadline))
    ):
        agent = {**agent, "state": timeout["state"], "reason": timeout["reason"],
                 "since": deadline, "interaction_id": None, "acw_deadline": None}  # fmt: skip
    return tuple(
        datetime.fromisoformat(agent[f])
        if f in ("since", "acw_deadline") and agent[f]
        else agent[f]
        for f in WALL_FIELDS
    )


class Walls:
    """``count`` wall WebSockets (as a manager) spread over the web processes, in a thread.

    Each applies the frames as the page does and reconnects (every 0.5 s) when its socket
    closes. ``snapshots`` records when each wall received a snapshot.
    """

    def __init__(self, urls: list[str], cookie: str, count: int) -> None:
        import asyncio

        self.urls, self.cookie, self.count = urls, cookie, count
        self.agents: list[dict[str, dict[str, Any]]] = [{} for _ in range(count)]
        self.snapshots: list[list[float]] = [[] for _ in range(count)]
        self.handshake_errors: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tasks: list[Any] = []

    async def _wall(self, index: int) -> None:
        import asyncio

        import websockets

        url = self.urls[index % len(self.urls)]
        ws_url = url.replace("http", "ws") + "/ws/wall/"
        headers = {"Cookie": self.cookie, "Origin": url}
        while True:
            try:
                async with websockets.connect(ws_url, additional_headers=headers,
                                              open_timeout=10) as ws:  # fmt: skip
                    async for raw in ws:
                        self._apply(index, json.loads(raw))
            except websockets.InvalidStatus as error:
                self.handshake_errors.append(str(error))
            except (TimeoutError, OSError, websockets.WebSocketException):
                pass
            await asyncio.sleep(0.5)

    def _apply(self, index: int, frame: dict[str, Any]) -> None:
        agents = self.agents[index]
        kind = frame["type"]
        if kind == "snapshot":
            agents.clear()
            agents.update({a["agent"]: a for a in frame["agents"]})
            self.snapshots[index].append(time.time())
        elif kind == "agent":
            agents[frame["agent"]["agent"]] = frame["agent"]
        elif kind == "agents":
            agents.update({a["agent"]: a for a in frame["agents"]})
        elif kind == "agent_removed":
            agents.pop(frame["agent"], None)

    def start(self) -> Walls:
        import asyncio

        self.thread.start()
        self.tasks = [asyncio.run_coroutine_threadsafe(self._wall(i), self.loop)
                      for i in range(self.count)]  # fmt: skip
        return self

    def differences(self, api_agents: list[dict[str, Any]], now_iso: str) -> int:
        """How many (wall, agent) pairs differ from the API's rows."""
        expected = {a["agent"]: shown(a, now_iso) for a in api_agents}
        wrong = 0
        for agents in self.agents:
            seen = {key: shown(a, now_iso) for key, a in list(agents.items())}
            wrong += sum(1 for key in expected.keys() | seen.keys()
                         if expected.get(key) != seen.get(key))  # fmt: skip
        return wrong

    def close(self) -> None:
        import asyncio

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def wait_until_walls_match(walls: Walls, url: str, token: str, timeout: float) -> float | None:
    """Seconds until every wall equals ``GET /api/v1/agents/state`` (None: not within timeout)."""
    from django.utils import timezone

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        now_iso = timezone.now().isoformat()
        status, body = get_json(url, "/api/v1/agents/state", token)
        if status == 200 and walls.differences(body["agents"], now_iso) == 0:
            return time.monotonic() - started
        time.sleep(0.2)
    return None


def kpis_match(rolled: list[Any], raw: list[Any]) -> bool:
    """Rolled-up and raw KPI rows are the same rows with the same seconds (to 1 µs)."""
    if [(r.key, r.interactions) for r in rolled] != [(r.key, r.interactions) for r in raw]:
        return False
    return all(
        abs(getattr(a, f) - getattr(b, f)) < 1e-6
        for a, b in zip(rolled, raw, strict=True)
        for f in ("talk_seconds", "hold_seconds", "acw_seconds")
    )
