"""What a wall's snapshot and one agent's rendering cost, for a floor of N agents.

    python -m bench.bench_snapshot [--agents 1000] [--rounds 20]

Runs on DATABASE_URL in a throw-away test database. Prints, per round's median: the time to
render one agent (``agent_payload``, the serializer that the API and every wall frame use), the
time of ``selectors.wall_snapshot`` for every team (what a manager's wall reads on connect and on
each resync: the queries plus the rendering), the rendering's share of it, and the JSON encoding
of the snapshot frame (done once per read and shared by every wall that asked: ``wall_hub``).
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench._setup import size, with_bench_database


def run(agents: int, rounds: int) -> None:
    from agents import selectors, services, wall_hub
    from agents.events import agent_payload
    from agents.models import AgentState, Team
    from agents.tests.factories import event

    for n in range(agents):
        external_id = f"snap{n:05d}"
        services.provision_agent(external_id, name=f"Agent {n:05d}", team_name=f"Team {n % 20:02d}")
        fields = {"interaction_id": f"c{n}", "channel": "phone"}
        services.ingest_event(event(external_id, "interaction.started", 60, **fields))
        if n % 2:
            services.ingest_event(event(external_id, "interaction.ended", 30, **fields))
    team_ids = set(Team.objects.values_list("pk", flat=True))
    rows = list(AgentState.objects.select_related("agent__team"))

    render, snapshot, encoding = [], [], []
    for _ in range(rounds):
        began = time.perf_counter()
        for live in rows:
            agent_payload(live)
        render.append((time.perf_counter() - began) / len(rows))
        began = time.perf_counter()
        read = selectors.wall_snapshot(team_ids)
        snapshot.append(time.perf_counter() - began)
        began = time.perf_counter()
        wall_hub.encode({"type": "snapshot", "agents": read["agents"], "alerts": read["alerts"]})
        encoding.append(time.perf_counter() - began)

    one = statistics.median(render)
    whole = statistics.median(snapshot)
    print(f"agents: {len(rows)}, rounds: {rounds}")
    print(f"agent_payload: {one * 1e6:.1f} µs per agent")
    print(
        f"wall_snapshot (all teams): {whole * 1000:.1f} ms, of which rendering {one * len(rows) / whole:.0%}"
    )
    print(
        f"snapshot frame JSON encoding (once per read): {statistics.median(encoding) * 1000:.1f} ms"
    )
    print(f"reproduce: python -m bench.bench_snapshot --agents {agents} --rounds {rounds}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=size(1000, 200))
    parser.add_argument("--rounds", type=int, default=size(20, 5))
    args = parser.parse_args()
    with_bench_database(lambda: run(args.agents, args.rounds))


if __name__ == "__main__":
    main()
