"""``rebuild_rollups`` of the whole history next to the plain SQL aggregates of the same raw rows,
and the incremental run with the open interval of every agent dirty, on an already seeded
database (``manage.py seed_history``; a year takes half an hour to seed, so it is not redone).

    DATABASE_URL=postgres://.../bench_db python -m bench.bench_rebuild [--runs 3] [--from DATE]
        [--dirty AGENTS] [--profile TOP] [--no-incremental]
    BENCH_SHORT=1 python -m bench.bench_rebuild      # its own 40 agents × 30 days, one run

Unlike the other benchmarks this one works on the database DATABASE_URL names: it rewrites its
rollups (the same rows) and runs one incremental rollup, nothing else. With ``BENCH_SHORT=1``
(``make bench SHORT=1``) it seeds a test database of its own instead (``test_<name>``, dropped
at the end) with 40 agents × 30 days, and rebuilds once: a quick check that it runs. Each run
times the plain aggregates and then the rebuild, back to back, so that all see the same load. The baseline is
the issue's: the 15-minute GROUP BY of the raw rows and their day GROUP BY (per agent, site
day, team, channel and code, the day in the site time zone as the day rows have it), two
statements timed together, nothing written; the rebuild should stay within 5× of them. Each
line also gives the ratio to the 15-minute aggregate alone (the baseline until then) and the
CPU seconds of the PostgreSQL backends during the rebuild, of its own connection and of those
its worker threads open (when the server runs on this machine: less blurred by the load than
the duration; the plain aggregates are planned in parallel, so their backend's CPU is not their
cost). ``--profile TOP`` times each statement of each rebuild, on every connection
(``connection.execute_wrapper``: their times add up to more than the rebuild's when they run
at once), and prints the TOP slowest, then the time per kind (insert, index, constraint,
analyze), and the same for the incremental run. ``--runs 0`` times the incremental run alone.
``bench.bench_kpis`` reports the same figures after seeding its own database.
"""

from __future__ import annotations

import argparse
import os
import re
import threading
import time
from collections import defaultdict
from contextlib import nullcontext
from datetime import date, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import bench._setup  # noqa: F401  (sets up Django's environment)

_RAW = (
    "FROM agents_interaction i LEFT JOIN agents_acwsession a ON a.interaction_id = i.id "
    "WHERE i.ended_at >= %s AND i.ended_at < %s"
)
_SUMS = "count(*), sum(i.talk_seconds), sum(i.hold_seconds), sum(a.duration_seconds)"
_KEYS = "i.agent_id, i.team_id, i.channel, COALESCE(a.wrap_up_code, '')"


def plain_aggregate(start: datetime, end: datetime) -> tuple[int, float]:
    """(15-minute groups, seconds) of the raw rows' GROUP BY that the 15-minute rollups hold,
    counted and not written."""
    quarter = "date_bin('15 minutes', i.ended_at, TIMESTAMPTZ '1970-01-01 00:00:00+00')"
    return _count_groups(quarter, [start, end])


def plain_day_aggregate(start: datetime, end: datetime) -> tuple[int, float]:
    """(day groups, seconds) of the raw rows' GROUP BY that the agent day rows hold: per agent,
    site day (the site time zone's midnight, as the day rows' ``bucket_start``), team, channel
    and code, counted and not written."""
    from reporting.queries import site_tz

    return _count_groups("date_trunc('day', i.ended_at, %s)", [site_tz().key, start, end])


def _count_groups(bucket: str, params: list[Any]) -> tuple[int, float]:
    from django.db import connection

    with connection.cursor() as cursor:
        t0 = time.perf_counter()
        cursor.execute(
            f"SELECT count(*) FROM (SELECT {bucket}, {_KEYS}, {_SUMS} {_RAW} "
            "GROUP BY 1, 2, 3, 4, 5) g",
            params,
        )
        groups = cursor.fetchone()[0]
        return groups, time.perf_counter() - t0


def rebuild_against_aggregate(
    first: date, last: date, *, full: bool, profile: StatementTimes | None = None
) -> str:
    """One run: the plain aggregates of ``first`` to ``last`` (15 minutes, then days), then
    ``rebuild_rollups`` (of everything if ``full``, else ``--from first``), as one line with
    the load average. The ratio is to both aggregates together (the issue's baseline); the
    ratio to the 15-minute one alone (the baseline until then) is printed after it. With
    ``profile``, the rebuild's statements are timed into it."""
    from django.core.management import call_command
    from django.db import connection
    from django.db.backends.signals import connection_created

    from reporting.queries import site_day_bounds

    bounds = site_day_bounds(first, last)
    quarters, plain = plain_aggregate(*bounds)
    days, plain_days = plain_day_aggregate(*bounds)
    both = plain + plain_days
    options = [] if full else ["--from", first.isoformat()]
    # CPU seconds of each backend at its first statement of the rebuild: this connection's,
    # and those of the connections opened meanwhile (``rebuild_all``'s worker threads).
    started = {_backend_pid(connection): _backend_cpu(_backend_pid(connection))}

    def opened(sender: Any, connection: Any, **kwargs: Any) -> None:
        pid = _backend_pid(connection)
        started.setdefault(pid, _backend_cpu(pid))
        if profile:
            connection.execute_wrappers.append(profile)

    connection_created.connect(opened)
    t0 = time.perf_counter()
    try:
        with connection.execute_wrapper(profile) if profile else nullcontext():
            call_command("rebuild_rollups", *options, verbosity=0)
    finally:
        connection_created.disconnect(opened)
    rebuild = time.perf_counter() - t0
    rebuild_cpu = sum(_backend_cpu(pid) - cpu for pid, cpu in started.items())
    how = "(all)" if full else f"--from {first}"
    return (
        f"rebuild_rollups {how}: {rebuild:.1f} s (backends' CPU {rebuild_cpu:.1f} s); plain SQL "
        f"aggregates of {first}..{last}: {both:.1f} s ({quarters} 15-minute groups "
        f"{plain:.1f} s + {days} day groups {plain_days:.1f} s); ratio {rebuild / both:.1f}× "
        f"(to the 15-minute one alone {rebuild / plain:.1f}×); load average {_load()}"
    )


def incremental_with_agents_dirty(
    moment: datetime, agents: int | None = None, profile: StatementTimes | None = None
) -> str:
    """``compute_rollups`` after the interval holding ``moment`` was marked dirty for every
    agent, or for the ``agents`` added last (the open interval at the end of a busy minute);
    with ``profile``, each of its statements timed."""
    from django.db import connection

    from agents.models import Agent
    from reporting import rollups
    from reporting.queries import quarter_start

    bucket = quarter_start(moment)
    agent_ids = list(Agent.objects.order_by("-pk").values_list("pk", flat=True)[:agents])
    for agent_id in agent_ids:
        rollups.mark_dirty(agent_id, [bucket])
    t0 = time.perf_counter()
    with connection.execute_wrapper(profile) if profile else nullcontext():
        done = rollups.compute_rollups()
    return (
        f"compute_rollups: {done} dirty intervals of {len(agent_ids)} agents in "
        f"{time.perf_counter() - t0:.2f} s; load average {_load()}"
    )


class StatementTimes:
    """A ``connection.execute_wrapper`` that times each statement: the rebuild's profile."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        self.threads: dict[int, float] = defaultdict(float)

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            seconds = time.perf_counter() - t0
            self.times[statement_label(sql, params)].append(seconds)
            self.threads[threading.get_ident()] += seconds

    def report(self, top: int) -> str:
        """The ``top`` statements by time, then the time per kind of statement."""
        total = sum(sum(times) for times in self.times.values())
        ranked = sorted(self.times.items(), key=lambda item: -sum(item[1]))
        lines = [f"{len(self.times)} statements, {total:.1f} s in the database:"]
        lines += [
            f"  {sum(times):7.2f} s {100 * sum(times) / total:5.1f} %  {label}"
            + (f" (×{len(times)})" if len(times) > 1 else "")
            for label, times in ranked[:top]
        ]
        kinds: dict[str, float] = defaultdict(float)
        for label, times in self.times.items():
            kinds[label.split(" ", 1)[0]] += sum(times)
        lines.append(
            "  by kind: "
            + ", ".join(f"{kind} {seconds:.1f} s" for kind, seconds in sorted(kinds.items()))
        )
        if len(self.threads) > 1:
            lines.append(
                "  by connection: "
                + ", ".join(f"{seconds:.1f} s" for seconds in self.threads.values())
            )
        return "\n".join(lines)


def statement_label(sql: str, params: Any) -> str:
    """A short name of a statement of the rebuild: its kind, the table it writes and the one it
    reads first, and the grain it writes (its first parameter, when that is one)."""
    text = " ".join(sql.split())
    grain = params[0] if params and isinstance(params[0], str) and len(params[0]) == 1 else None
    insert = re.match(r"(?:WITH .*?)?INSERT INTO (\S+)", text)
    if text.startswith("WITH n ") or insert:
        target = insert[1] if insert else "?"
        source = re.search(r" FROM (?:unnest\(.*?\) AS c\(.*?\) JOIN )?(\"?\w+\"?)", text)
        return (
            f"insert {target.strip(chr(34))} <- {source[1].strip(chr(34)) if source else '?'}"
            + (f" [{grain}]" if grain else "")
        )
    if text.startswith("ANALYZE"):
        return f"analyze {text.split()[1].strip(chr(34))}"
    index = re.match(r"CREATE (?:UNIQUE )?INDEX \S+ ON (\S+) USING \w+ (\(.*\))", text)
    if index:
        return f"index {index[1].strip(chr(34))} {index[2]}"
    constraint = re.match(r"ALTER TABLE (\S+) ADD CONSTRAINT \S+ (.*)", text)
    if constraint:
        what = constraint[2].split(" REFERENCES ")[0].split(" DEFERRABLE")[0]
        return f"constraint {constraint[1].strip(chr(34))} {what}"
    return f"other {text[:100]}"


def _backend_pid(connection: Any) -> int:
    """The process id of the PostgreSQL backend of ``connection`` (a Django connection)."""
    connection.ensure_connection()
    return int(connection.connection.info.backend_pid)


def _backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) of the PostgreSQL backend ``pid`` so far, when the server
    runs on this machine (else 0): the rebuild's work, less blurred by the load than its
    duration (parallel workers of a query, if any, are not counted)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    parser.add_argument(
        "--profile",
        type=int,
        metavar="TOP",
        help="Time each statement of each rebuild and of the incremental run, and print the TOP slowest after each.",
    )
    parser.add_argument(
        "--no-incremental", action="store_true", help="Skip the incremental run at the end."
    )
    args = parser.parse_args()
    if os.environ.get("BENCH_SHORT") == "1":
        from bench._setup import with_bench_database

        with_bench_database(lambda: _seeded_and_run(args))
        return
    import django

    django.setup()
    run(args)


def _seeded_and_run(args: argparse.Namespace) -> None:
    from django.core.management import call_command

    call_command("seed_history", agents=40, days=30, stdout=StringIO())
    args.runs = min(args.runs, 1)
    run(args)
    print("reproduce: BENCH_SHORT=1 python -m bench.bench_rebuild", flush=True)


def run(args: argparse.Namespace) -> None:
    """The rebuilds and the incremental run ``args`` ask for, on the current database."""
    from reporting import rollups
    from reporting.queries import site_day_bounds, site_today

    first = args.first or rollups.first_activity_day()
    assert first, "no history: seed it first (manage.py seed_history)"
    last = site_today()
    for _ in range(args.runs):
        profile = StatementTimes() if args.profile else None
        full = args.first is None
        print(rebuild_against_aggregate(first, last, full=full, profile=profile), flush=True)
        if profile:
            print(profile.report(args.profile), flush=True)
    if args.no_incremental:
        return
    busy = site_day_bounds(last - timedelta(days=1), last - timedelta(days=1))[1]
    profile = StatementTimes() if args.profile else None
    print(incremental_with_agents_dirty(busy - timedelta(hours=8), args.dirty, profile), flush=True)
    if profile:
        print(profile.report(args.profile), flush=True)


if __name__ == "__main__":
    main()
