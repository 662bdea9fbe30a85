"""Event to wall latency and fan-out cost, against a raw WebSocket baseline in the same run.

    python -m bench.bench_wall [--agents 200] [--teams 10] [--servers 1] [--walls 1000]
                               [--rate 30] [--seconds 20] [--no-baseline]

Runs on DATABASE_URL/REDIS_URL in a throw-away test database. Starts ``--servers`` web
processes as deployed (uvicorn, DEBUG off) against it (same Redis, same REDIS_PREFIX), opens
``--walls`` WebSockets spread over them (half as a manager who sees every team, half as
supervisors of two teams each), then calls ``agents.services.ingest_event()`` in this process at
``--rate`` events/s. Each event changes an agent's live state (not_ready with a unique reason,
then available, in turn), so each one is identified in the frames by the agent and its
``since``. Latency runs from the start of the ``ingest_event`` call (validation, row lock,
commit, publish) to the frame's arrival at the client, for every wall that can see the agent's
team.

The wall clients run in a process of their own (``--client`` mode), so that they do not share
this process's interpreter lock with the ingestion. The baseline then runs the same clients
against a raw ``websockets`` server (``--raw-server`` mode: no Django, no Channels) fed through
one Redis pub/sub channel at the same rate with frames of the same size: what this machine
gives for the same fan-out with nothing of the product in between.

BENCH_SHORT=1 runs a smaller case (100 walls for 5 s) unless sizes are given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench._setup import ROOT, percentile, size, with_bench_database

SUPERVISORS = 5
# Deliveries are complete once no frame arrived for this long.
DRAIN_SECONDS = 3.0
# Handshakes in flight at once while the walls connect.
CONNECTING_AT_ONCE = 50
CONNECT_ATTEMPTS = 3
CLK_TCK = os.sysconf("SC_CLK_TCK")
INGEST_THREADS = 4


@dataclass
class Wall:
    """One wall client: where it connects and which teams it sees."""

    url: str
    cookie: str
    teams: frozenset[str]


# --- Process figures ------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- The clients (a process of their own) ---------------------------------------------------


async def _client_main(walls: list[Wall], control: Any) -> None:
    """Open every wall, report the connect time, record frames until told to stop, then send
    back what matters of each frame: (wall, arrival, type, [(agent, since)])."""
    from websockets.asyncio.client import connect

    received: list[list[tuple[float, str]]] = [[] for _ in walls]
    ready = [asyncio.Event() for _ in walls]
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
    sockets: list[Any] = []
    retries: list[int] = []

    async def run(index: int, wall: Wall) -> None:
        ws_url = wall.url.replace("http://", "ws://")
        async with gate:
            for attempt in range(CONNECT_ATTEMPTS):
                # A refused or dropped handshake is tried again, as the wall page does.
                try:
                    ws = await connect(
                        ws_url,
                        origin=wall.url.split("/ws/")[0],  # type: ignore[arg-type]
                        additional_headers={"Cookie": wall.cookie},
                        max_size=None,
                        open_timeout=60,
                    )
                    first = await asyncio.wait_for(ws.recv(), timeout=60)
                    break
                except Exception:
                    if attempt == CONNECT_ATTEMPTS - 1:
                        raise
                    retries.append(index)
                    await asyncio.sleep(1)
            sockets.append(ws)
        assert json.loads(first)["type"] == "snapshot", str(first)[:200]
        ready[index].set()
        frames = received[index]
        try:
            async for text in ws:
                # Time first, parse after the run: the clients must not be the bottleneck.
                frames.append((time.perf_counter(), str(text)))
        except Exception:
            pass

    began = time.perf_counter()
    tasks = [asyncio.create_task(run(n, wall)) for n, wall in enumerate(walls)]
    all_ready = asyncio.ensure_future(asyncio.gather(*(r.wait() for r in ready)))
    # A wall's task ends early only if it failed.
    await asyncio.wait([all_ready, *tasks], timeout=120, return_when=asyncio.FIRST_COMPLETED)
    failed = [t.exception() for t in tasks if t.done() and t.exception() is not None]
    connected = sum(r.is_set() for r in ready)
    seconds = time.perf_counter() - began
    control.send(("connected", connected, seconds, len(retries), repr(failed[:3])))
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, control.recv) == "count":
        control.send(sum(len(frames) for frames in received))
    # "stop"
    for ws in sockets:
        await ws.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    summary = []
    for index, frames in enumerate(received):
        for arrived, text in frames:
            frame = json.loads(text)
            kind = frame["type"]
            if kind == "agent":
                keys = [(frame["agent"]["agent"], frame["agent"]["since"])]
            elif kind == "agents":
                keys = [(a["agent"], a["since"]) for a in frame["agents"]]
            else:
                keys = []
            summary.append((index, arrived, kind, keys))
    control.send(("frames", summary))


def _client_process(walls: list[Wall], control: Any) -> None:
    asyncio.run(_client_main(walls, control))


class Clients:
    """The wall clients, in a process of their own."""

    def __init__(self, walls: list[Wall]) -> None:
        self.walls = walls
        context = multiprocessing.get_context("spawn")
        self.control, child = context.Pipe()
        self.process = context.Process(target=_client_process, args=(walls, child), daemon=True)

    def start(self) -> float:
        """Open every wall; the seconds until the last one had its snapshot."""
        self.process.start()
        _, connected, seconds, retries, failed = self.control.recv()
        if retries:
            print(f"handshakes tried again: {retries}")
        if connected != len(self.walls):
            raise RuntimeError(f"{connected} of {len(self.walls)} walls connected: {failed}")
        return seconds

    def wait_until_quiet(self, quiet: float = DRAIN_SECONDS, limit: float = 180) -> None:
        """Wait until no frame arrived for ``quiet`` seconds (every delivery is in)."""
        deadline = time.monotonic() + limit
        self.control.send("count")
        count = self.control.recv()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            self.control.send("count")
            now = self.control.recv()
            if now == count:
                return
            count = now

    def stop(self) -> list[tuple[int, float, str, list[tuple[str, str]]]]:
        self.control.send("stop")
        _, summary = self.control.recv()
        self.process.join(timeout=30)
        return summary


# --- The raw baseline server (a process of its own) -----------------------------------------


async def _raw_server_main(port: int, redis_url: str, channel: str, snapshot_body: str) -> None:
    """A WebSocket server without Django: a snapshot on connect, then each published frame to
    every socket that shows its team, behind the socket's own seq (as the product does)."""
    import redis.asyncio as aioredis
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    by_team: dict[str, set[Any]] = {}
    seqs: dict[Any, int] = {}

    async def send(ws: Any, body: str) -> None:
        seqs[ws] += 1
        await ws.send(f'{{"seq": {seqs[ws]}, {body}')

    async def handler(ws: Any) -> None:
        query = ws.request.path.partition("?teams=")[2]
        teams = [team for team in query.replace("%20", " ").split(",") if team]
        seqs[ws] = 0
        await send(ws, snapshot_body)
        for team in teams:
            by_team.setdefault(team, set()).add(ws)
        try:
            await ws.wait_closed()
        finally:
            for team in teams:
                by_team[team].discard(ws)
            del seqs[ws]

    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    async with serve(handler, "127.0.0.1", port, max_size=None):
        print("ready", flush=True)
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            team, body = json.loads(message["data"])
            for ws in list(by_team.get(team, ())):
                with contextlib.suppress(ConnectionClosed):  # closed meanwhile
                    await send(ws, body)


class RawServer:
    def __init__(self, redis_url: str, channel: str, snapshot_body: str, log: Path) -> None:
        from tests.browser.support import _free_port

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "bench.bench_wall", "--raw-server", str(self.port)]
        args += ["--raw-redis", redis_url, "--raw-channel", channel]
        self.snapshot_file = log.with_suffix(".snapshot.json")
        self.snapshot_file.write_text(snapshot_body)
        args += ["--raw-snapshot", str(self.snapshot_file)]
        self.proc = subprocess.Popen(
            args, cwd=ROOT, stdout=subprocess.PIPE, stderr=log.open("ab"), text=True
        )

    def start(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"raw server did not start: {line!r}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


# --- The floor and the events ---------------------------------------------------------------


def _key(agent: str, since: str) -> tuple[str, datetime]:
    # The server renders ``since`` from the database value; compare instants, not strings.
    return agent, datetime.fromisoformat(since)


def _session_cookie(user: Any) -> str:
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def _setup_floor(
    agents: int, teams: int
) -> tuple[list[tuple[str, str]], list[tuple[str, frozenset[str]]]]:
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
    viewers = [(_session_cookie(manager), frozenset(team_names))]
    for n in range(SUPERVISORS):
        user = User.objects.create_user(f"bench-supervisor-{n}")
        user.groups.add(Group.objects.get(name=access.SUPERVISORS))
        watched = {team_names[(2 * n) % teams], team_names[(2 * n + 1) % teams]}
        for team in Team.objects.filter(name__in=watched):
            team.supervisors.add(user)
        viewers.append((_session_cookie(user), frozenset(watched)))
    return floor, viewers


def _pace(rate: float, seconds: float) -> Any:
    """Yield the event numbers at ``rate`` per second for ``seconds``."""
    began = time.perf_counter()
    for n in range(int(rate * seconds)):
        delay = began + n / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield n


def _send_events(
    floor: list[tuple[str, str]], rate: float, seconds: float
) -> tuple[dict[tuple[str, datetime], tuple[float, str]], float, list[float]]:
    """Ingest at ``rate`` events/s for ``seconds``: the send time and team of each change, the
    elapsed time and each ``ingest_event`` call's duration (ms).

    Calls run on ``INGEST_THREADS`` threads (as several web requests would), so that the rate
    holds even when one call takes longer than the interval on a loaded machine.
    """
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection
    from django.utils import timezone

    from agents import services
    from agents.tests.factories import event

    sent: dict[tuple[str, datetime], tuple[float, str]] = {}
    calls: list[float] = []

    def ingest(n: int) -> None:
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

    everyone = threading.Barrier(INGEST_THREADS)

    def close_connection() -> None:
        everyone.wait(timeout=30)  # one per thread: each closes its own connection
        connection.close()

    began = time.perf_counter()
    with ThreadPoolExecutor(INGEST_THREADS) as pool:
        futures = [pool.submit(ingest, n) for n in _pace(rate, seconds)]
        for future in futures:
            future.result()
        for _ in range(INGEST_THREADS):
            pool.submit(close_connection)
    return sent, time.perf_counter() - began, calls


def _publish_raw(
    floor: list[tuple[str, str]], rate: float, seconds: float, channel: str, template: dict
) -> tuple[dict[tuple[str, datetime], tuple[float, str]], float]:
    """The baseline's events: a frame of the product's size per event, straight to Redis."""
    import redis
    from django.conf import settings
    from django.utils import timezone

    client = redis.Redis.from_url(settings.REDIS_URL)
    sent: dict[tuple[str, datetime], tuple[float, str]] = {}
    began = time.perf_counter()
    for n in _pace(rate, seconds):
        agent, team = floor[n % len(floor)]
        t0 = time.perf_counter()
        occurred_at = timezone.now()
        payload = {**template, "agent": agent, "since": occurred_at.isoformat()}
        body = json.dumps({"type": "agent", "agent": payload})[1:]
        client.publish(channel, json.dumps([team, body]))
        sent[(agent, occurred_at)] = (t0, team)
    return sent, time.perf_counter() - began


# --- Report ---------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    connect_seconds: float
    expected: int
    matched: int
    resyncs: int
    latencies: list[float]
    cpu: dict[str, float]
    rss: dict[str, float]
    elapsed: float

    def line(self) -> str:
        lat = self.latencies or [float("nan")]
        share = self.matched / self.expected if self.expected else 0
        cpu = ", ".join(
            f"{name} {seconds:.1f} s ({seconds / self.elapsed:.2f} cores)"
            for name, seconds in self.cpu.items()
        )
        per_delivery = self.cpu.get("web0", 0) / max(self.matched, 1) * 1e6
        rss = ", ".join(f"{name} {mb:.0f} MB" for name, mb in self.rss.items())
        return (
            f"{self.label}: connect {self.connect_seconds:.1f} s; deliveries "
            f"{self.matched} / {self.expected} ({share:.1%}); resync snapshots {self.resyncs}; "
            f"latency p50 {percentile(lat, 50):.1f} ms  p95 {percentile(lat, 95):.1f} ms  "
            f"p99 {percentile(lat, 99):.1f} ms  max {max(lat):.1f} ms\n"
            f"  CPU from the first event until the last frame arrived ({self.elapsed:.1f} s): "
            f"{cpu}; web0 per delivery {per_delivery:.0f} µs\n  RSS after connecting: {rss}"
        )


def _match(
    walls: list[Wall],
    summary: list[tuple[int, float, str, list[tuple[str, str]]]],
    sent: dict[tuple[str, datetime], tuple[float, str]],
) -> tuple[int, int, list[float]]:
    """(expected deliveries, resync snapshots, latencies in ms of the matched ones)."""
    expected = sum(sum(1 for w in walls if team in w.teams) for _, team in sent.values())
    latencies: list[float] = []
    resyncs = 0
    for _, arrived, kind, keys in summary:
        if kind == "snapshot":
            resyncs += 1
        for agent, since in keys:
            hit = sent.get(_key(agent, since))
            if hit is not None:
                latencies.append((arrived - hit[0]) * 1000)
    return expected, resyncs, latencies


def _run_product(args: argparse.Namespace, floor: list, viewers: list, logs: Path) -> Result:
    from tests.browser.support import Server

    servers = [Server(logs / f"web-{n}.log", production=True) for n in range(args.servers)]
    clients: Clients | None = None
    try:
        for server in servers:
            server.start()
        walls = []
        for n in range(args.walls):
            cookie, teams = viewers[0] if n % 2 == 0 else viewers[1 + (n // 2) % SUPERVISORS]
            walls.append(Wall(servers[n % len(servers)].url + "/ws/wall/", cookie, teams))
        clients = Clients(walls)
        connect_seconds = clients.start()
        pids = {f"web{n}": s.proc.pid for n, s in enumerate(servers) if s.proc is not None}
        pids["clients"] = clients.process.pid or 0
        pids["ingest"] = os.getpid()
        rss = {name: rss_mb(pid) for name, pid in pids.items() if name.startswith("web")}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        began = time.perf_counter()
        sent, elapsed, calls = _send_events(floor, args.rate, args.seconds)
        clients.wait_until_quiet()
        busy = time.perf_counter() - began
        cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        summary = clients.stop()
        clients = None
    finally:
        if clients is not None:
            clients.process.kill()
        for server in servers:
            server.stop()
    print(
        f"events sent: {len(sent)} in {elapsed:.1f} s ({len(sent) / elapsed:.1f}/s); "
        f"ingest_event call p50 {percentile(calls, 50):.1f} ms  p99 {percentile(calls, 99):.1f} ms"
    )
    expected, resyncs, latencies = _match(walls, summary, sent)
    return Result(
        "product", connect_seconds, expected, len(latencies), resyncs, latencies, cpu, rss, busy,
    )  # fmt: skip


def _run_baseline(args: argparse.Namespace, floor: list, viewers: list, logs: Path) -> Result:
    from django.conf import settings

    from agents.models import AgentState, Team
    from agents.selectors import wall_snapshot
    from agents.serializers import agent_payload

    live = AgentState.objects.select_related("agent__team").first()
    assert live is not None
    template = dict(agent_payload(live))
    snapshot = wall_snapshot(set(Team.objects.values_list("pk", flat=True)))
    snapshot_body = json.dumps({"type": "snapshot", "agents": snapshot["agents"], "alerts": []})
    channel = f"{settings.REDIS_PREFIX}:bench-wall-raw:{os.getpid()}"
    server = RawServer(settings.REDIS_URL, channel, snapshot_body[1:], logs / "raw.log")
    clients: Clients | None = None
    try:
        server.start()
        walls = []
        for n in range(args.walls):
            cookie, teams = viewers[0] if n % 2 == 0 else viewers[1 + (n // 2) % SUPERVISORS]
            query = ",".join(sorted(teams)).replace(" ", "%20")
            walls.append(Wall(f"{server.url}/ws/wall/?teams={query}", cookie, teams))
        clients = Clients(walls)
        connect_seconds = clients.start()
        pids = {"web0": server.proc.pid, "clients": clients.process.pid or 0}
        pids["ingest"] = os.getpid()
        rss = {"web0": rss_mb(server.proc.pid)}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        began = time.perf_counter()
        sent, elapsed = _publish_raw(floor, args.rate, args.seconds, channel, template)
        clients.wait_until_quiet()
        busy = time.perf_counter() - began
        cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        summary = clients.stop()
        clients = None
    finally:
        if clients is not None:
            clients.process.kill()
        server.stop()
    print(f"baseline events published: {len(sent)} in {elapsed:.1f} s")
    expected, resyncs, latencies = _match(walls, summary, sent)
    return Result(
        "baseline (raw websockets)", connect_seconds, expected, len(latencies), resyncs,
        latencies, cpu, rss, busy,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--servers", type=int, default=1, choices=[1, 2, 3, 4])
    parser.add_argument("--walls", type=int, default=size(1000, 100))
    parser.add_argument("--rate", type=float, default=30, help="events per second")
    parser.add_argument("--seconds", type=float, default=size(20, 5))
    parser.add_argument("--no-baseline", action="store_true", help="skip the raw baseline")
    parser.add_argument("--raw-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--raw-redis", help=argparse.SUPPRESS)
    parser.add_argument("--raw-channel", help=argparse.SUPPRESS)
    parser.add_argument("--raw-snapshot", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_server:
        snapshot_body = Path(args.raw_snapshot).read_text()
        coroutine = _raw_server_main(
            args.raw_server, args.raw_redis, args.raw_channel, snapshot_body
        )
        asyncio.run(coroutine)
        return
    if not (0 < args.walls <= 2000 and 0 < args.rate <= 1000 and 0 < args.seconds <= 300):
        parser.error("walls 1-2000, rate up to 1000/s, seconds up to 300")

    def run() -> None:
        from django.conf import settings
        from django.db import connection

        if connection.vendor != "postgresql" or settings.USING_EMBEDDED_REDIS:
            # The servers are other processes: they cannot see an in-memory SQLite database.
            print("skipped: needs DATABASE_URL (PostgreSQL) and REDIS_URL")
            return
        floor, viewers = _setup_floor(args.agents, args.teams)
        logs = Path(tempfile.mkdtemp(prefix="bench-wall-"))
        print(
            f"agents: {args.agents} in {args.teams} teams; servers: {args.servers}; "
            f"walls: {args.walls}; rate: {args.rate:g}/s for {args.seconds:g} s; "
            f"load average before: {load_average()}"
        )
        product = _run_product(args, floor, viewers, logs)
        print(product.line())
        print(f"load average after the product run: {load_average()}")
        if not args.no_baseline:
            baseline = _run_baseline(args, floor, viewers, logs)
            print(baseline.line())
            print(f"load average after the baseline run: {load_average()}")
            if baseline.latencies and product.latencies:
                ratios = [
                    percentile(product.latencies, p) / max(percentile(baseline.latencies, p), 0.1)
                    for p in (50, 99)
                ]
                print(f"product / baseline latency: p50 ×{ratios[0]:.1f}  p99 ×{ratios[1]:.1f}")
        print(f"server logs: {logs}")

    with_bench_database(run)
    print(
        f"reproduce: DATABASE_URL={os.environ.get('DATABASE_URL', '')} "
        f"REDIS_URL={os.environ.get('REDIS_URL', '')} "
        f"REDIS_PREFIX={os.environ.get('REDIS_PREFIX', '')} "
        f".venv/bin/python -m bench.bench_wall --agents {args.agents} --teams {args.teams} "
        f"--servers {args.servers} --walls {args.walls} --rate {args.rate:g} "
        f"--seconds {args.seconds:g}" + (" --no-baseline" if args.no_baseline else "")
    )


if __name__ == "__main__":
    main()
