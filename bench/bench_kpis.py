"""Server time and queries of every KPI API call and page over 1, 30 and 365 days of history.

    python -m bench.bench_kpis [--agents 200] [--days 365] [--repeat 20] [--keepdb]

Runs on DATABASE_URL (PostgreSQL, as in production) in a test database ``test_<name>``: seeds
it with ``manage.py seed_history --agents A --days D`` (about 27 interactions per agent-day),
then requests each URL ``--repeat`` times through Django's full request stack as a manager and
prints p50 / p95 / max server time (ms) and the queries per request. ``--keepdb`` keeps the
seeded database between runs (it is seeded only once); without it the database is dropped.
docs/benchmarks.md records the figures.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta
from typing import Any

from bench._setup import percentile, size

PERIODS = (1, 30, 365)
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


def urls(first: str, last: str, team: str, department: str, agent: str) -> list[str]:
    """Every call the KPI pages make, for the site days ``first`` to ``last``."""
    period = f"from={first}&to={last}"
    out = [f"/api/v1/kpis?group_by={g}&{period}" for g in GROUP_BYS]
    out += [
        f"/api/v1/kpis?group_by=agent&{period}&team={team}",
        f"/api/v1/kpis?group_by=team&{period}&department={department}",
        f"/api/v1/kpis?group_by=day&{period}&agent={agent}",
        f"/api/v1/kpis?group_by=weekday_hour&{period}&channel=phone",
        f"/api/v1/kpis?group_by=interval&{period}&format=csv",
        f"/api/v1/kpis/distribution?{period}",
        f"/api/v1/kpis/distribution?{period}&team={team}&bin_seconds=5",
        f"/kpis/?{period}&group_by=agent",
    ]
    # The coaching list and its API (docs/coaching.md).
    out += [f"/kpis/coaching/?{period}", f"/api/v1/coaching?{period}"]
    return out


def measure(client: Any, url: str, repeat: int) -> tuple[list[float], int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times = []
    queries = 0
    size = 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            t0 = time.perf_counter()
            response = client.get(url)
            body = b"".join(response.streaming_content) if response.streaming else response.content
            times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (url, response.status_code, body[:200])
        queries = len(captured)
        size = len(body)
    return times, queries, size


def run(args: argparse.Namespace) -> None:
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.test import Client

    from agents.models import Agent, Department, Team
    from reporting.queries import site_today

    if not Agent.objects.filter(external_id__startswith="hist-").exists():
        t0 = time.perf_counter()
        call_command("seed_history", agents=args.agents, days=args.days)
        print(
            f"seed_history --agents {args.agents} --days {args.days}: "
            f"{time.perf_counter() - t0:.0f} s"
        )
    user, _ = User.objects.get_or_create(username="bench-manager")
    user.groups.add(Group.objects.get(name="Managers"))
    client = Client()
    client.force_login(user)
    team = Team.objects.filter(name__startswith="Hist").order_by("name").first()
    department = Department.objects.order_by("name").first()
    agent = Agent.objects.filter(external_id__startswith="hist-").order_by("external_id").first()
    assert team and department and agent, "no seeded history"
    last = site_today() - timedelta(days=1)
    print(f"{'days':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>7} {'bytes':>9}  url")
    worst = 0.0
    for days in PERIODS:
        first = last - timedelta(days=days - 1)
        for url in urls(str(first), str(last), team.name, department.name, agent.external_id):
            client.get(url)  # warm the caches as a running server has them
            times, queries, size = measure(client, url, args.repeat)
            p95 = percentile(times, 95)
            worst = max(worst, p95)
            print(
                f"{days:>4} {percentile(times, 50):>8.1f} {p95:>8.1f} {max(times):>8.1f} "
                f"{queries:>7} {size:>9}  {url}",
                flush=True,
            )
    print(f"worst p95: {worst:.1f} ms; load average now: {os.getloadavg()[0]:.1f}")
    print(
        f"reproduce: python -m bench.bench_kpis --agents {args.agents} --days {args.days} "
        f"--repeat {args.repeat}{' --keepdb' if args.keepdb else ''}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=size(200, 20))
    parser.add_argument("--days", type=int, default=size(365, 7))
    parser.add_argument("--repeat", type=int, default=size(20, 3))
    parser.add_argument("--keepdb", action="store_true", help="keep (and reuse) the database")
    args = parser.parse_args()

    import django

    import bench._setup  # noqa: F401  (sets up Django's environment)

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    from acw_site.celery import app

    app.conf.task_always_eager = True
    setup_test_environment()
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
