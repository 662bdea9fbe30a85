"""Event ingestion over HTTP, against a raw Django baseline measured in the same run.

    python -m bench.bench_ingest [--duration 300] [--rate 300] [--replays 0.1] [--workers 2]
                                 [--batches 30] [--overload 1,1.5,2,3] [--step 30]
    BENCH_SHORT=1 python -m bench.bench_ingest      # about 2 minutes (make bench SHORT=1)

On a private stack (bench.faults.harness: a fresh PostgreSQL database, a private Redis), the
production layout: ``uvicorn acw_site.asgi:application --workers 2`` with DEBUG off, next to
the raw baseline ``uvicorn bench.raw_site:application --workers 2`` (one row per event, one
multi-row INSERT per batch; same pool). The load generator is an asyncio client (aiohttp) in
this process, on the same machine. Phases:

1. capacity: 32 connections posting single events as fast as answered, raw then product;
2. single events at ``--rate``/s for ``--duration`` s, ``--replays`` of them sent again (a
   client's retry: answered ``duplicate``), open loop (latency from the planned send time);
   then every accepted event_id must be stored once, and nothing else;
3. batches of 1,000 events (``--batch-clients`` clients, 200 agents mixed), raw then product;
4. overload: open loop at multiples of the measured capacity, ``--step`` s each: offered vs
   completed, 503s (+ Retry-After) and their answer times, p99 of what was served.

Each phase prints the CPU seconds of the load generator, the uvicorn workers and the
PostgreSQL backends serving the database (others' processes on the machine are not counted).
Rate limits are raised for the run (API_RATE_TOKEN); ``--app-dir`` serves the product from
another checkout (a "before" figure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench._setup import ROOT, SHORT, percentile

HEADERS = {"Content-Type": "application/json", "X-Forwarded-Proto": "https"}


# --- Traffic ---------------------------------------------------------------------------------


class Traffic:
    """Endless in-order traffic of many agents (calls with ACW), round robin over the agents.

    The agents are created up front (in bulk), so that what is measured is the steady state of
    known agents; ``agent.logged_in`` starts each one's traffic."""

    def __init__(self, prefix: str, agents: int) -> None:
        from django.utils import timezone

        from agents.models import Agent, AgentState, Team

        team, _ = Team.objects.get_or_create(name="Bench")
        created = Agent.objects.bulk_create(
            [
                Agent(external_id=f"{prefix}-{n}", name=f"{prefix}-{n}", team=team)
                for n in range(agents)
            ]
        )
        AgentState.objects.bulk_create([AgentState(agent=agent) for agent in created])
        self.prefix, self.agents = prefix, agents
        self.base = timezone.now() - timedelta(hours=20)
        self.count = 0
        self._steps = [0] * agents

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        agent = self.count % self.agents
        step = self._steps[agent]
        self._steps[agent] += 1
        self.count += 1
        name = f"{self.prefix}-{agent}"
        at = (self.base + timedelta(seconds=step * 2 + agent / self.agents)).isoformat()
        body: dict[str, Any] = {"event_id": f"{name}-{step}", "agent": name, "occurred_at": at}
        if step == 0:
            return {**body, "type": "agent.logged_in"}
        call = f"{name}-c{(step - 1) // 3}"
        kind = (step - 1) % 3
        if kind == 0:
            return {**body, "type": "interaction.started", "interaction_id": call, "channel": "phone"}  # fmt: skip
        if kind == 1:
            return {**body, "type": "interaction.ended", "interaction_id": call}
        return {**body, "type": "acw.ended", "wrap_up_code": "resolved"}


@dataclass
class Outcome:
    statuses: dict[int, int] = field(default_factory=dict)
    served_ms: list[float] = field(default_factory=list)  # 2xx answers
    busy_ms: list[float] = field(default_factory=list)  # 503 answers
    retry_after: set[str] = field(default_factory=set)
    accepted: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    events_per_request: int = 1

    def add(self, status: int, ms: float, event_id: str | None, retry_after: str | None) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if 200 <= status < 300:
            self.served_ms.append(ms)
        if status == 201 and event_id is not None:
            self.accepted.append(event_id)
        if status == 503:
            self.busy_ms.append(ms)
            self.retry_after.add(retry_after or "none")

    @property
    def served(self) -> int:
        return len(self.served_ms)

    def line(self, label: str) -> str:
        rate = self.served * self.events_per_request / self.elapsed if self.elapsed else 0.0
        ms = self.served_ms or [0.0]
        return (
            f"{label:<34} {rate:8.0f} events/s  requests {sum(self.statuses.values()):>6}  "
            f"p50 {percentile(ms, 50):7.1f} ms  p99 {percentile(ms, 99):7.1f} ms  "
            f"statuses {dict(sorted(self.statuses.items()))}"
        )


async def _post(session: Any, url: str, body: dict[str, Any], token: str) -> tuple[int, str | None]:
    async with session.post(
        url, data=json.dumps(body), headers={**HEADERS, "Authorization": f"Bearer {token}"}
    ) as response:
        await response.read()
        return response.status, response.headers.get("Retry-After")


def _session() -> Any:
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=512),
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def closed_loop(url: str, token: str, bodies: Iterator[dict[str, Any]], connections: int,
                      seconds: float, per_request: int = 1) -> Outcome:  # fmt: skip
    """``connections`` clients, each posting the next body as soon as the last is answered."""
    outcome = Outcome(events_per_request=per_request)
    end = time.monotonic() + seconds
    async with _session() as session:

        async def client() -> None:
            while time.monotonic() < end:
                body = next(bodies)
                sent = time.monotonic()
                status, retry = await _post(session, url, body, token)
                outcome.add(status, (time.monotonic() - sent) * 1000, body.get("event_id"), retry)

        began = time.monotonic()
        await asyncio.gather(*(client() for _ in range(connections)))
        outcome.elapsed = time.monotonic() - began
    return outcome


async def open_loop(url: str, token: str, traffic: Traffic, rate: float, seconds: float,
                    replays: float, rng: random.Random) -> Outcome:  # fmt: skip
    """Post at ``rate`` per second whatever the answers; latency from the planned send time.
    A share ``replays`` of the posts send an event already sent again."""
    outcome = Outcome()
    sent: list[dict[str, Any]] = []
    tasks: set[asyncio.Task[None]] = set()
    async with _session() as session:

        async def one(body: dict[str, Any], planned: float) -> None:
            try:
                status, retry = await _post(session, url, body, token)
            except Exception:
                status, retry = 0, None
            outcome.add(status, (time.monotonic() - planned) * 1000, body["event_id"], retry)

        began = time.monotonic()
        n = 0
        while (planned := began + n / rate) < began + seconds:
            delay = planned - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if sent and rng.random() < replays:
                body = rng.choice(sent[-2000:])
            else:
                body = next(traffic)
                sent.append(body)
            task = asyncio.create_task(one(body, planned))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        await asyncio.gather(*tasks)
        outcome.elapsed = time.monotonic() - began
    return outcome


def batches(traffic: Traffic, size: int) -> Iterator[dict[str, Any]]:
    while True:
        yield {"events": [next(traffic) for _ in range(size)]}


# --- Processes and their CPU -----------------------------------------------------------------


class Cpu:
    """CPU seconds of the load generator, the uvicorn processes and the database's backends."""

    def __init__(self, servers: dict[str, subprocess.Popen[bytes]], db_name: str) -> None:
        import psutil

        self.psutil = psutil
        self.servers, self.db_name = servers, db_name

    def _backends(self) -> list[int]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.db_name],
            )
            return [pid for (pid,) in cursor.fetchall()]

    def _seconds(self, pids: list[int]) -> dict[int, float]:
        seconds = {}
        for pid in pids:
            try:
                times = self.psutil.Process(pid).cpu_times()
            except self.psutil.Error:
                continue
            seconds[pid] = times.user + times.system
        return seconds

    def sample(self) -> dict[str, dict[int, float]]:
        groups = {"load generator": [os.getpid()], "postgres backends": self._backends()}
        for name, process in self.servers.items():
            parent = self.psutil.Process(process.pid)
            groups[name] = [parent.pid, *(child.pid for child in parent.children(recursive=True))]
        return {name: self._seconds(pids) for name, pids in groups.items()}

    @staticmethod
    def line(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]],
             elapsed: float) -> str:  # fmt: skip
        parts = []
        for name, now in after.items():
            used = sum(seconds - before.get(name, {}).get(pid, 0.0) for pid, seconds in now.items())
            parts.append(f"{name} {used:.1f} s ({used / elapsed:.0%} of a core)")
        return "    CPU: " + "; ".join(parts)


# --- The run ---------------------------------------------------------------------------------


def _serve(s: Any, name: str, app: str, workers: int, app_dir: Path, env: dict[str, str]
           ) -> tuple[subprocess.Popen[bytes], str]:  # fmt: skip
    from bench.faults.stack import free_port, wait_for_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
        cwd=app_dir, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
        stdout=(log := (ROOT / ".run" / f"bench-ingest-{name}.log").open("wb")),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    log.close()
    s.webs.append(process)  # stopped with the stack
    wait_for_port(port, 90)
    return process, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=20 if SHORT else 300)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--replays", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--capacity-seconds", type=float, default=10 if SHORT else 30)
    parser.add_argument("--batches", type=int, default=8 if SHORT else 30)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--batch-clients", type=int, default=2)
    parser.add_argument("--overload", default="1,1.5,2,3")
    parser.add_argument("--step", type=float, default=8 if SHORT else 30)
    parser.add_argument("--app-dir", type=Path, default=ROOT)
    args = parser.parse_args()
    (ROOT / ".run").mkdir(exist_ok=True)

    from bench.faults.harness import stack

    with stack("bench_ingest") as s:
        from django.db import connection

        from agents.models import Event
        from bench.raw_site import CREATE_TABLE

        with connection.cursor() as cursor:
            cursor.execute(CREATE_TABLE)
        token = s.token()
        env = {"DATABASE_URL": s.direct_url(), "DEBUG": "0", "SECRET_KEY": "bench",
               "ALLOWED_HOSTS": "127.0.0.1", "API_RATE_TOKEN": "100000000/min",
               "LOG_LEVEL": "WARNING", "PYTHONPATH": str(args.app_dir)}  # fmt: skip
        product, product_url = _serve(s, "product", "acw_site.asgi:application", args.workers, args.app_dir, env)  # fmt: skip
        raw, raw_url = _serve(s, "raw", "bench.raw_site:application", args.workers, ROOT, env)
        cpu = Cpu({"uvicorn product": product, "uvicorn raw": raw}, s.db_name)
        rng = random.Random(1)
        load = os.getloadavg()
        print(f"machine: {os.cpu_count()} cores, load average before the run "
              f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; product from {args.app_dir}; "
              f"uvicorn --workers {args.workers} each; load generator: aiohttp, this process")  # fmt: skip

        def phase(label: str, run: Any) -> Outcome:
            before, began = cpu.sample(), time.monotonic()
            outcome: Outcome = asyncio.run(run)
            print(outcome.line(label))
            print(Cpu.line(before, cpu.sample(), time.monotonic() - began))
            if outcome.busy_ms:
                print(f"    503 answered in p50 {percentile(outcome.busy_ms, 50):.1f} ms, "
                      f"p99 {percentile(outcome.busy_ms, 99):.1f} ms; Retry-After "
                      f"{sorted(outcome.retry_after)}")  # fmt: skip
            return outcome

        print("\n1. capacity, single events (32 connections, closed loop)")
        raw_single = phase("raw baseline", closed_loop(f"{raw_url}/raw/event", token, Traffic("raw", 500), 32, args.capacity_seconds))  # fmt: skip
        product_single = phase("product", closed_loop(f"{product_url}/api/v1/events", token, Traffic("cap", 500), 32, args.capacity_seconds))  # fmt: skip
        capacity = product_single.served / product_single.elapsed
        raw_capacity = raw_single.served / raw_single.elapsed
        print(f"    product / raw: {capacity / raw_capacity:.0%}")

        print(f"\n2. single events at {args.rate:g}/s for {args.duration:g} s, "
              f"{args.replays:.0%} sent twice (open loop)")  # fmt: skip
        steady = phase("product", open_loop(f"{product_url}/api/v1/events", token, Traffic("run", 500), args.rate, args.duration, args.replays, rng))  # fmt: skip
        accepted = set(steady.accepted)
        stored = set(
            Event.objects.filter(agent__external_id__startswith="run-").values_list(
                "event_id", flat=True
            )
        )
        print(f"    accepted {len(steady.accepted)} (distinct {len(accepted)}), stored "
              f"{len(stored)}; accepted but not stored: {len(accepted - stored)}; stored but "
              f"never accepted: {len(stored - accepted)}; duplicates answered: "
              f"{steady.statuses.get(200, 0)}")  # fmt: skip

        print(f"\n3. batches of {args.batch_size} ({args.batch_clients} clients, closed loop, "
              f"each its own 200 agents, mixed in every batch)")  # fmt: skip
        per_client = max(1, args.batches // args.batch_clients)

        def per_client_batches(prefix: str) -> list[Iterator[dict[str, Any]]]:
            return [batches(Traffic(f"{prefix}{n}", 200), args.batch_size) for n in range(args.batch_clients)]  # fmt: skip

        async def limited(url: str, traffic: list[Iterator[dict[str, Any]]]) -> Outcome:
            outcome = Outcome(events_per_request=args.batch_size)
            async with _session() as session:

                async def client(bodies: Iterator[dict[str, Any]]) -> None:
                    for _ in range(per_client):
                        body = next(bodies)
                        sent = time.monotonic()
                        status, retry = await _post(session, url, body, token)
                        outcome.add(status, (time.monotonic() - sent) * 1000, None, retry)

                began = time.monotonic()
                await asyncio.gather(*(client(bodies) for bodies in traffic))
                outcome.elapsed = time.monotonic() - began
            return outcome

        raw_batch = phase("raw baseline (one multi-row INSERT)", limited(f"{raw_url}/raw/batch", per_client_batches("rawb")))  # fmt: skip
        product_batch = phase("product", limited(f"{product_url}/api/v1/events", per_client_batches("bat")))  # fmt: skip
        batch_rate = product_batch.served * args.batch_size / product_batch.elapsed
        raw_batch_rate = raw_batch.served * args.batch_size / raw_batch.elapsed
        print(f"    product / raw: {batch_rate / raw_batch_rate:.0%}")

        print(f"\n4. overload: open loop past the capacity ({capacity:.0f}/s), {args.step:g} s a step")  # fmt: skip
        for multiple in [float(m) for m in args.overload.split(",")]:
            rate = capacity * multiple
            phase(f"offered {rate:.0f}/s ({multiple:g}x)", open_loop(f"{product_url}/api/v1/events", token, Traffic(f"ov{multiple:g}", 500), rate, args.step, 0.0, rng))  # fmt: skip

        load = os.getloadavg()
        print(f"\nsummary: single events {capacity:.0f}/s (raw baseline {raw_capacity:.0f}/s, "
              f"{capacity / raw_capacity:.0%}); at {args.rate:g}/s: p99 "
              f"{percentile(steady.served_ms or [0], 99):.0f} ms, lost {len(accepted - stored)}; "
              f"batches {batch_rate:.0f} events/s (raw {raw_batch_rate:.0f}/s, "
              f"{batch_rate / raw_batch_rate:.0%}); load average after "
              f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")  # fmt: skip
    short = "BENCH_SHORT=1 " if SHORT else ""
    print(f"reproduce: {short}.venv/bin/python -m bench.bench_ingest "
          f"(PostgreSQL at FAULTS_POSTGRES, default postgres://postgres@127.0.0.1:5432/postgres)")  # fmt: skip


if __name__ == "__main__":
    main()
