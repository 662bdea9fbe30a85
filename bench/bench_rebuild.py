"""``rebuild_rollups`` of the whole history next to the plain SQL aggregate of the same raw rows,
and the incremental run with the open interval of every agent dirty, on an already seeded
database (``manage.py seed_history``; a year takes half an hour to seed, so it is not redone).

    DATABASE_URL=postgres://.../bench_db python -m bench.bench_rebuild [--runs 3] [--from DATE]
        [--dirty AGENTS]

Unlike the other benchmarks this one works on the database DATABASE_URL names: it rewrites its
rollups (the same rows) and runs one incremental rollup, nothing else. Each run times the plain
aggregate (the 15-minute GROUP BY alone, nothing written) and then the rebuild, back to back, so
that both see the same load; the rebuild should stay within 5× of the aggregate. ``--runs 0``
times the incremental run alone.
``bench.bench_kpis`` reports the same figures after seeding its own database.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date, datetime, timedelta

import bench._setup  # noqa: F401  (sets up Django's environment)


def plain_aggregate(start: datetime, end: datetime) -> tuple[int, float]:
    """(15-minute groups, seconds) of the raw rows' GROUP BY that the 15-minute rollups hold,
    counted and not written: the floor a rebuild is compared with."""
    from django.db import connection

    with connection.cursor() as cursor:
        t0 = time.perf_counter()
        cursor.execute(
            "SELECT count(*) FROM (SELECT to_timestamp(floor(extract(epoch FROM i.ended_at) "
            "/ 900) * 900), i.agent_id, i.team_id, i.channel, COALESCE(a.wrap_up_code, ''), "
            "count(*), sum(i.talk_seconds), sum(i.hold_seconds), sum(a.duration_seconds) "
            "FROM agents_interaction i LEFT JOIN agents_acwsession a ON a.interaction_id = i.id "
            "WHERE i.ended_at >= %s AND i.ended_at < %s GROUP BY 1, 2, 3, 4, 5) g",
            [start, end],
        )
        groups = cursor.fetchone()[0]
        return groups, time.perf_counter() - t0


def rebuild_against_aggregate(first: date, last: date, *, full: bool) -> str:
    """One run: the plain aggregate of ``first`` to ``last``, then ``rebuild_rollups`` (of
    everything if ``full``, else ``--from first``), as one line with the load average."""
    from django.core.management import call_command

    from reporting.queries import site_day_bounds

    groups, plain = plain_aggregate(*site_day_bounds(first, last))
    t0 = time.perf_counter()
    options = [] if full else ["--from", first.isoformat()]
    call_command("rebuild_rollups", *options, verbosity=0)
    rebuild = time.perf_counter() - t0
    how = "(all)" if full else f"--from {first}"
    return (
        f"rebuild_rollups {how}: {rebuild:.1f} s; plain SQL aggregate of {first}..{last} "
        f"({groups} 15-minute groups): {plain:.1f} s; ratio {rebuild / plain:.1f}×; "
        f"load average {_load()}"
    )


def incremental_with_agents_dirty(moment: datetime, agents: int | None = None) -> str:
    """``compute_rollups`` after the interval holding ``moment`` was marked dirty for every
    agent, or for the ``agents`` added last (the open interval at the end of a busy minute)."""
    from agents.models import Agent
    from reporting import rollups
    from reporting.queries import quarter_start

    bucket = quarter_start(moment)
    agent_ids = list(Agent.objects.order_by("-pk").values_list("pk", flat=True)[:agents])
    for agent_id in agent_ids:
        rollups.mark_dirty(agent_id, [bucket])
    t0 = time.perf_counter()
    done = rollups.compute_rollups()
    return (
        f"compute_rollups: {done} dirty intervals of {len(agent_ids)} agents in "
        f"{time.perf_counter() - t0:.2f} s; load average {_load()}"
    )


def _load() -> str:
    return " ".join(f"{n:.1f}" for n in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--dirty", type=int, help="Agents dirty in the incremental run (default: all of them)."
    )
    parser.add_argument(
        "--from",
        dest="first",
        type=date.fromisoformat,
        help="Rebuild with --from DATE instead of everything (the aggregate covers the same days).",
    )
    args = parser.parse_args()

    import django

    django.setup()
    from reporting import rollups
    from reporting.queries import site_day_bounds, site_today

    first = args.first or rollups.first_activity_day()
    assert first, "no history: seed it first (manage.py seed_history)"
    last = site_today()
    for _ in range(args.runs):
        print(rebuild_against_aggregate(first, last, full=args.first is None), flush=True)
    busy = site_day_bounds(last - timedelta(days=1), last - timedelta(days=1))[1]
    print(incremental_with_agents_dirty(busy - timedelta(hours=8), args.dirty), flush=True)


if __name__ == "__main__":
    main()
