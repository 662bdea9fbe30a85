"""Throughput and latency of the one ingestion function, in order and with late events.

    python -m bench.bench_ingest [--agents 200] [--events 25] [--late 0.1]

Runs on DATABASE_URL (PostgreSQL in production) in a throw-away test database; prints events/s
and per-event latency percentiles for in-order traffic and for traffic where a share of the
events arrive late (each late one replays its agent's later events).
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import timedelta

from bench._setup import percentile, with_bench_database


def shift(agent: str, n: int, start: float, rng: random.Random) -> list[dict]:
    from django.utils import timezone

    from agents.tests.factories import event

    base = timezone.now() - timedelta(hours=10)
    t = start
    events = []

    def add(type_: str, **fields: object) -> None:
        at = base + timedelta(seconds=t)
        events.append(event(agent, type_, at, event_id=f"{agent}-{len(events)}", **fields))

    add("agent.logged_in")
    call = 0
    while len(events) < n:
        t += rng.randint(1, 30)
        call += 1
        cid = f"{agent}-c{call}"
        add("interaction.started", interaction_id=cid, channel="phone")
        t += rng.randint(60, 300)
        add("interaction.ended", interaction_id=cid)
        t += rng.randint(5, 25)
        add("acw.ended", wrap_up_code="resolved")
    return events[:n]


def measure(label: str, events: list[dict]) -> None:
    from agents import services

    latencies = []
    began = time.perf_counter()
    for raw in events:
        t0 = time.perf_counter()
        status = services.ingest_event(raw).status
        latencies.append((time.perf_counter() - t0) * 1000)
        assert status == "accepted", status
    elapsed = time.perf_counter() - began
    print(
        f"{label:<28} {len(events):>6} events  {len(events) / elapsed:8.0f} events/s  "
        f"p50 {percentile(latencies, 50):6.2f} ms  p99 {percentile(latencies, 99):6.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--events", type=int, default=25, help="events per agent")
    parser.add_argument("--late", type=float, default=0.1, help="share of late events")
    args = parser.parse_args()

    def run() -> None:
        from django.db import connection

        rng = random.Random(1)
        in_order = [e for a in range(args.agents) for e in shift(f"in-{a}", args.events, 0, rng)]
        # Interleave agents the way a telephony stream does.
        in_order.sort(key=lambda e: e["occurred_at"])
        late = [e for a in range(args.agents) for e in shift(f"late-{a}", args.events, 0, rng)]
        late.sort(key=lambda e: e["occurred_at"])
        # Move a share of events later in the stream: they arrive after newer ones.
        for index in rng.sample(range(len(late)), int(len(late) * args.late)):
            late.append(late[index])
            late[index] = None  # type: ignore[call-overload]
        late = [e for e in late if e is not None]
        print(f"database: {connection.vendor}; agents: {args.agents}; late share: {args.late}")
        measure("in order", in_order)
        measure(f"{args.late:.0%} late", late)

    with_bench_database(run)
    print(
        "reproduce: DATABASE_URL=postgres://postgres@127.0.0.1:5432/test "
        "REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python -m bench.bench_ingest"
    )


if __name__ == "__main__":
    main()
