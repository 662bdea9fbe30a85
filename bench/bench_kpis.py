"""Server time and queries of every KPI API call and page over 1, 30 and 365 days of history
(or the ``--days`` seeded, if fewer),
against a hand-written SQL baseline on the rollups, plus the rollup jobs themselves.

    python -m bench.bench_kpis [--agents 200] [--days 365] [--repeat 20] [--keepdb] [--reads-only]
    BENCH_SHORT=1 python -m bench.bench_kpis      # 40 agents, 60 days, 5 repetitions
    python -m bench.bench_kpis --database-as-is --reads-only   # a database seeded beforehand

Runs on DATABASE_URL (PostgreSQL, as in production) in a test database ``test_<name>``: seeds
it with ``manage.py seed_history --agents A --days D`` (about 27 interactions per agent-day),
then:

- ``rebuild_rollups`` of the whole history, next to the plain SQL aggregate of the same raw rows
  (the 15-minute GROUP BY alone, nothing written): the rebuild should stay within 5× of it;
- the incremental run (``compute_rollups``) after every agent's last interval was marked dirty
  (the open interval at the end of a busy minute);
- each URL ``--repeat`` times through Django's full request stack as a manager: p50 / p95 / max
  server time (ms), the median time a request spends in the SQL statements of its own
  connection (``sql ms``: the rest is Python, or waiting for a read run beside them on a
  connection of its own), the statements per request on every connection, and the p95 of the
  baseline, a hand-written SQL statement that reads the same grouping from the rollup tables
  (agent rows, no dirty or open ACW handling), with the ratio call / baseline.

``--keepdb`` keeps the seeded database between runs (it is seeded only once); without it the
database is dropped. ``--database-as-is`` reads DATABASE_URL's own database instead, as it is
(seeded beforehand with ``manage.py seed_history``; never dropped): with ``--reads-only``
nothing is written to it but the benchmark's manager user. docs/benchmarks.md records the
figures.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from datetime import date, datetime, timedelta
from typing import Any

from bench._setup import percentile, size

PERIODS = (1, 30, 365)
"""The periods read, in days, each ending yesterday; the longest is at most the seeded days."""
GROUP_BYS = (
    "agent",
    "team",
    "department",
    "channel",
    "wrap_up_code",
    "day",
    "interval",
    "weekday_hour",
)
SHORT = os.environ.get("BENCH_SHORT") == "1"


def urls(first: str, last: str, team: Any, department: str, agent: str) -> list[tuple[str, str]]:
    """(url, grouping of its baseline) of every call the KPI pages make, for the site days
    ``first`` to ``last``."""
    period = f"from={first}&to={last}"
    out = [(f"/api/v1/kpis?group_by={g}&{period}", g) for g in GROUP_BYS]
    out += [
        (f"/api/v1/kpis?group_by=agent&{period}&team={team.name}", "agent"),
        (f"/api/v1/kpis?group_by=team&{period}&department={department}", "team"),
        (f"/api/v1/kpis?group_by=day&{period}&agent={agent}", "day"),
        (f"/api/v1/kpis?group_by=weekday_hour&{period}&channel=phone", "weekday_hour"),
        (f"/api/v1/kpis?group_by=interval&{period}&format=csv", "interval"),
        (f"/api/v1/kpis/distribution?{period}", "distribution"),
        (f"/api/v1/kpis/distribution?{period}&team={team.name}&bin_seconds=5", "distribution"),
        # One agent's intervals and histogram: that agent's raw rows (no agent rows per 15
        # minutes, no agent duration rows).
        (f"/api/v1/kpis?group_by=interval&{period}&agent={agent}", "interval"),
        (f"/api/v1/kpis/distribution?{period}&agent={agent}", "distribution"),
        (f"/kpis/?{period}&group_by=agent", "agent"),
        (f"/kpis/?{period}&group_by=department", "department"),
        (f"/kpis/teams/{team.pk}/?{period}", "agent"),
        (f"/kpis/agents/{agent}/?{period}", "day"),
    ]
    # The coaching list, its API and the checklist analysis (docs/coaching.md).
    out += [
        (f"/kpis/coaching/?{period}", "agent"),
        (f"/api/v1/coaching?{period}", "agent"),
        (f"/kpis/coaching/?{period}&csv=checklist", "agent"),
    ]
    # The staffing what-if (docs/staffing.md): one measured hour of the period's last day, and
    # the API's Erlang C for a large floor (the same whatever the period).
    out += [
        (f"/kpis/staffing/?team={team.pk}&day={last}&hour=11", "team"),
        (
            "/api/v1/staffing?volume=4000&interval_seconds=3600&aht_seconds=420"
            "&acw_change_seconds=-15",
            "team",
        ),
    ]
    return out


# The baseline: one hand-written statement per grouping on the agent day rollups (the 15-minute
# team rows for the groupings by time of day, the team day rows for the histogram), summed by
# the database.
_BASELINE_GROUP = {
    "agent": "k.agent_id",
    "team": "k.team_id",
    "department": "t.department_id",
    "channel": "k.channel",
    "wrap_up_code": "k.wrap_up_code",
    "day": "k.bucket_start",
}


def baseline_sql(group_by: str) -> str:
    if group_by == "distribution":
        return (
            "SELECT k.seconds, SUM(k.count) FROM reporting_teamacwdurationrollup k "
            "WHERE k.grain = 'day' AND k.bucket_start >= %s AND k.bucket_start < %s "
            "GROUP BY k.seconds"
        )
    sums = (
        "SUM(k.interactions), SUM(k.talk_seconds), SUM(k.hold_seconds), SUM(k.acw_seconds), "
        "SUM(k.acw_count), SUM(k.timeouts), SUM(k.extended), SUM(k.too_short)"
    )
    if group_by in ("interval", "weekday_hour"):
        return (
            f"SELECT k.bucket_start, {sums} FROM reporting_teamintervalrollup k "
            "WHERE k.bucket_start >= %s AND k.bucket_start < %s GROUP BY k.bucket_start"
        )
    column = _BASELINE_GROUP[group_by]
    return (
        f"SELECT {column}, {sums} FROM reporting_kpirollup k "
        "JOIN agents_team t ON t.id = k.team_id "
        "WHERE k.grain = 'day' AND k.bucket_start >= %s AND k.bucket_start < %s "
        f"GROUP BY {column}"
    )


def timed(run: Any, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def measure(client: Any, url: str, repeat: int) -> tuple[list[float], list[float], int, int]:
    """Server times (ms), the time of each request spent in the SQL statements of its own
    connection (ms; a read run beside them on a connection of its own, as the coaching list's
    recent window, overlaps them and is not added), the statements of a request on every
    connection and its response's bytes."""
    from django.db import connection
    from django.db.backends.signals import connection_created

    times: list[float] = []
    in_sql: list[float] = []
    size = 0
    statements = 0
    beside: list[int] = []

    def counted(execute: Any, *args: Any) -> Any:
        beside.append(1)
        return execute(*args)

    def count_beside(sender: Any, connection: Any, **kwargs: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            connection.execute_wrappers.append(counted)

    connection_created.connect(count_beside)
    try:
        for _ in range(repeat):
            spent = [0.0, 0]
            beside.clear()

            def timed_statement(execute: Any, *args: Any, spent: list[float] = spent) -> Any:
                t0 = time.perf_counter()
                try:
                    return execute(*args)
                finally:
                    spent[0] += time.perf_counter() - t0
                    spent[1] += 1

            with connection.execute_wrapper(timed_statement):
                t0 = time.perf_counter()
                response = client.get(url)
                body = (
                    b"".join(response.streaming_content) if response.streaming else response.content
                )
                times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, (url, response.status_code, body[:200])
            in_sql.append(spent[0] * 1000)
            statements = int(spent[1]) + len(beside)
            size = len(body)
    finally:
        connection_created.disconnect(count_beside)
    return times, in_sql, statements, size


def rollup_jobs(first: date, last: date) -> None:
    """The full rebuild next to the plain aggregate, and the incremental run
    (``bench.bench_rebuild``)."""
    from bench.bench_rebuild import incremental_with_agents_dirty, rebuild_against_aggregate
    from reporting.queries import site_day_bounds

    print(rebuild_against_aggregate(first, last, full=False))
    # Every agent's last busy interval of the last day, dirty at once (a live minute).
    print(incremental_with_agents_dirty(site_day_bounds(first, last)[1] - timedelta(hours=8)))


def _load() -> str:
    return " ".join(f"{n:.1f}" for n in os.getloadavg())


def run(args: argparse.Namespace) -> None:
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from acw_site.startup import freeze_loaded_objects
    from agents.models import Agent, Department, Team
    from reporting.queries import site_day_bounds, site_today

    if not Agent.objects.filter(external_id__startswith="hist-").exists():
        t0 = time.perf_counter()
        call_command("seed_history", agents=args.agents, days=args.days)
        print(
            f"seed_history --agents {args.agents} --days {args.days}: "
            f"{time.perf_counter() - t0:.0f} s"
        )
    last = site_today() - timedelta(days=1)
    if not args.reads_only:
        rollup_jobs(last - timedelta(days=args.days - 1), last)
    user, _ = User.objects.get_or_create(username="bench-manager")
    user.groups.add(Group.objects.get(name="Managers"))
    client = Client()
    client.force_login(user)
    team = Team.objects.filter(name__startswith="Hist").order_by("name").first()
    department = Department.objects.order_by("name").first()
    agent = Agent.objects.filter(external_id__startswith="hist-").order_by("external_id").first()
    assert team and department and agent, "no seeded history"
    # As a server process does before its first request (acw_site/asgi.py).
    freeze_loaded_objects()
    print(f"load average: {_load()}")
    print(
        f"{'days':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'sql ms':>7} {'queries':>7} "
        f"{'bytes':>9} {'base ms':>8} {'ratio':>6}  url"
    )
    worst = 0.0
    for days in sorted({min(days, args.days) for days in PERIODS}):
        first = last - timedelta(days=days - 1)
        bounds: tuple[datetime, datetime] = site_day_bounds(first, last)
        baselines: dict[str, float] = {}
        for url, group_by in urls(str(first), str(last), team, department.name, agent.external_id):
            if args.only and not any(part in url for part in args.only.split(",")):
                continue
            client.get(url)  # warm the caches as a running server has them
            times, in_sql, queries, size = measure(client, url, args.repeat)
            if group_by not in baselines:
                sql = baseline_sql(group_by)

                def query(sql: str = sql, bounds: Any = bounds) -> None:
                    with connection.cursor() as cursor:
                        cursor.execute(sql, list(bounds))
                        cursor.fetchall()

                baselines[group_by] = percentile(timed(query, args.repeat), 95)
            p95 = percentile(times, 95)
            worst = max(worst, p95)
            print(
                f"{days:>4} {percentile(times, 50):>8.1f} {p95:>8.1f} {max(times):>8.1f} "
                f"{percentile(in_sql, 50):>7.1f} {queries:>7} {size:>9} {baselines[group_by]:>8.1f} "
                f"{p95 / max(baselines[group_by], 0.1):>6.1f}  {url}",
                flush=True,
            )
    print(f"worst p95: {worst:.1f} ms; load average now: {_load()}")
    print(
        f"reproduce: {'BENCH_SHORT=1 ' if SHORT else ''}python -m bench.bench_kpis "
        f"--agents {args.agents} --days {args.days} --repeat {args.repeat}"
        f"{' --keepdb' if args.keepdb else ''}{' --reads-only' if args.reads_only else ''}"
        f"{' --database-as-is' if args.database_as_is else ''}"
        f"{f' --only {args.only}' if args.only else ''}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--agents", type=int, default=size(200, 40))
    parser.add_argument("--days", type=int, default=size(365, 60))
    parser.add_argument("--repeat", type=int, default=size(20, 5))
    parser.add_argument("--keepdb", action="store_true", help="keep (and reuse) the database")
    parser.add_argument(
        "--reads-only", action="store_true", help="skip the rebuild and the incremental run"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated: measure only the URLs containing one of these"
    )
    parser.add_argument(
        "--database-as-is",
        action="store_true",
        help="read DATABASE_URL's database as it is (no test database, never dropped)",
    )
    args = parser.parse_args()

    # One user makes every request here: at --repeat 20 that is more than the per-user limit
    # of a minute (a 429 is not what is measured).
    os.environ.setdefault("API_RATE_USER", "1000000/min")

    import django

    import bench._setup  # noqa: F401  (sets up Django's environment)

    django.setup()
    from django.db import connection
    from django.test.utils import teardown_test_environment

    from acw_site.celery import app
    from bench._setup import setup_bench_environment

    app.conf.task_always_eager = True
    setup_bench_environment()
    if args.database_as_is:
        try:
            run(args)
        finally:
            teardown_test_environment()
        return
    name = connection.creation.create_test_db(
        verbosity=0, autoclobber=True, serialize=False, keepdb=args.keepdb
    )
    try:
        run(args)
    finally:
        if not args.keepdb:
            connection.creation.destroy_test_db(name, verbosity=0)
        teardown_test_environment()


if __name__ == "__main__":
    main()
