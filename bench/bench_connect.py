"""Amazon Connect records/s through the Firehose endpoint.

    python -m bench.bench_connect [--agents 100] [--requests 6] [--records 500]

Runs on DATABASE_URL in a throw-away test database. Builds a floor of agents taking calls
(login, connect, hold, resume, end, gone, status changes) as Connect agent event records,
packs them into Firehose requests of ``--records`` records, and POSTs each through the real
endpoint (Django's test client: URL routing, access key, base64/JSON, the adapter, ingestion,
the status row). Prints, per request, the time to the 200 answer, then records/s and events/s;
and the same requests delivered a second time (Firehose retries: every event a duplicate).
Firehose waits for the answer for the endpoint's configured timeout (3 minutes by default).
"""

from __future__ import annotations

import argparse
import base64
import json
import time
import uuid
from datetime import timedelta
from typing import Any

from bench._setup import percentile, size, with_bench_database


def floor(agents: int, per_agent: int) -> list[dict[str, Any]]:
    """Our events for ``agents`` agents, ``per_agent`` each, interleaved by time."""
    from django.utils import timezone

    from agents.tests.factories import event

    base = timezone.now() - timedelta(hours=2)
    events: list[dict[str, Any]] = []

    def add(agent: str, t: float, type_: str, **fields: Any) -> None:
        events.append(event(agent, type_, base + timedelta(seconds=t), **fields))

    for a in range(agents):
        agent = f"agent{a:04d}@example.com"
        t = float(a % 30)
        add(agent, t, "agent.logged_in")
        for call in range(1, per_agent // 5 + 2):
            cid = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{agent}-{call}"))
            for step, type_, fields in (
                (20, "interaction.started", {"channel": "phone", "queue": "Support"}),
                (60, "interaction.held", {}),
                (20, "interaction.resumed", {}),
                (90, "interaction.ended", {}),
            ):
                t += step
                add(agent, t, type_, interaction_id=cid, **fields)
            t += 25
            add(agent, t, "acw.ended")
            if call % 3 == 0:
                add(agent, t + 5, "agent.not_ready", reason="break")
                t += 305
                add(agent, t, "agent.available")
    events.sort(key=lambda e: e["occurred_at"])
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=size(100, 20))
    parser.add_argument("--requests", type=int, default=size(6, 2))
    parser.add_argument("--records", type=int, default=500, help="records per request")
    args = parser.parse_args()

    def run() -> None:
        from django.db import connection
        from django.test import Client

        from agents.models import ApiToken, Event
        from integrations.simulation import ConnectFeed

        _, token = ApiToken.issue("bench")
        feed = ConnectFeed({})
        total = args.requests * args.records
        records = []
        for event in floor(args.agents, total // args.agents + 8):
            records.extend(feed.records(event))
        records = records[:total]
        bodies = []
        for start in range(0, len(records), args.records):
            chunk = records[start : start + args.records]
            bodies.append(
                json.dumps(
                    {
                        "requestId": str(uuid.uuid4()),
                        "timestamp": int(time.time() * 1000),
                        "records": [
                            {"data": base64.b64encode(json.dumps(r).encode()).decode()}
                            for r in chunk
                        ],
                    }
                )
            )
        client = Client()
        print(
            f"database: {connection.vendor}; agents: {args.agents}; "
            f"{len(bodies)} requests of {args.records} records"
        )

        def deliver(label: str) -> None:
            seconds = []
            events_before = Event.objects.count()
            began = time.perf_counter()
            for body in bodies:
                t0 = time.perf_counter()
                response = client.post(
                    "/api/v1/integrations/amazon-connect",
                    body,
                    content_type="application/json",
                    HTTP_X_AMZ_FIREHOSE_ACCESS_KEY=token,
                )
                seconds.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.content
            elapsed = time.perf_counter() - began
            stored = Event.objects.count() - events_before
            print(
                f"{label:<24} {len(records) / elapsed:7.0f} records/s  "
                f"{stored / elapsed:6.0f} new events/s  per request: "
                f"p50 {percentile(seconds, 50):5.2f} s  max {max(seconds):5.2f} s"
            )

        deliver("first delivery")
        deliver("redelivery (duplicates)")

    with_bench_database(run)
    print(
        "reproduce: DATABASE_URL=postgres://postgres@127.0.0.1:5432/test "
        "REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python -m bench.bench_connect"
    )


if __name__ == "__main__":
    main()
