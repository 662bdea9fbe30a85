"""How long the retention purge holds its locks, and how fast it deletes.

    python -m bench.bench_retention [--agents 40] [--events 250] [--batch-size 2000]

Runs on DATABASE_URL in a throw-away test database: ingests ``agents × events`` events 60 days
ago (retention off), then purges with ACW_RETENTION_DAYS=30 and prints the events deleted per
second and the time between two batch commits (each batch is one transaction holding one agent's
row lock: ingestion for that agent waits at most that long).
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import timedelta

from bench._setup import percentile, size, with_bench_database


def history(agent: str, n: int, rng: random.Random) -> list[dict]:
    from django.utils import timezone

    base = timezone.now() - timedelta(days=60)
    t = 0
    events: list[dict] = []

    def add(type_: str, **fields: object) -> None:
        events.append(
            {
                "event_id": f"{agent}-{len(events)}",
                "type": type_,
                "agent": agent,
                "occurred_at": (base + timedelta(seconds=t)).isoformat(),
                **fields,
            }
        )

    add("agent.logged_in")
    call = 0
    while len(events) < n:
        call += 1
        cid = f"{agent}-c{call}"
        t += rng.randint(1, 30)
        add("interaction.started", interaction_id=cid, channel="phone")
        t += rng.randint(60, 300)
        add("interaction.ended", interaction_id=cid)
        t += rng.randint(5, 25)
        add("acw.ended", wrap_up_code="resolved", note=f"note for {cid}")
    return events[:n]


def run(agents: int, per_agent: int, batch_size: int) -> None:
    from django.conf import settings

    from agents import retention, services
    from agents.models import Event

    rng = random.Random(7)
    for a in range(agents):
        services.ingest_events(history(f"agent-{a:03d}", per_agent, rng))
    total = Event.objects.count()
    settings.ACW_RETENTION_DAYS = 30

    gaps: list[float] = []
    last = [time.perf_counter()]

    def progress(step: str, _done: int) -> None:
        now = time.perf_counter()
        if step == "events":
            gaps.append((now - last[0]) * 1000)
        last[0] = now

    began = time.perf_counter()
    report = retention.purge_expired(batch_size=batch_size, progress=progress)
    elapsed = time.perf_counter() - began
    assert report is not None
    print(
        f"events stored {total:,}; purged {report.events:,} events, {report.notes:,} notes, "
        f"{report.contact_ids:,} contact ids of {report.agents} agents in {elapsed:.1f} s "
        f"({report.events / elapsed:,.0f} events/s overall)"
    )
    print(
        f"batch size {batch_size}: {len(gaps)} event batches; time per batch p50 "
        f"{percentile(gaps, 50):.1f} ms, p99 {percentile(gaps, 99):.1f} ms, "
        f"max {max(gaps):.1f} ms"
    )
    print(
        f"reproduce: python -m bench.bench_retention --agents {agents} --events {per_agent} "
        f"--batch-size {batch_size}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=size(40, 10))
    parser.add_argument("--events", type=int, default=size(250, 50), help="events per agent")
    parser.add_argument("--batch-size", type=int, default=2000)
    args = parser.parse_args()
    with_bench_database(lambda: run(args.agents, args.events, args.batch_size))


if __name__ == "__main__":
    main()
