"""KPI rollups: the write side of the rollup tables.

``agents.services`` marks the intervals of the rows it writes (``dirty_buckets_of_rows()``)
and calls ``mark_dirty_before_replay()`` in the transaction that writes an agent's interactions
and ACWs, under that agent's live-state row lock, so every change to the raw rows leaves a
``DirtyInterval`` (agent × 15 minutes) behind. ``compute_rollups()`` (every minute) takes the
same lock per agent, claims its marks and recomputes the days holding those intervals (their
weeks and months once ended); ``rebuild_range()`` recomputes whole site days (and their weeks
and months) from the raw rows with set-based SQL (``INSERT ... SELECT ... GROUP BY``: the daily
close, ``manage.py rebuild_rollups --from``), and ``rebuild_all()`` every day into fresh tables
swapped in (``manage.py rebuild_rollups``, ``manage.py seed_history``). All are idempotent.

``KpiRollup`` holds per site day, week and month, agent, team, channel and code the KPI sums
and the coaching sums; ``ChecklistRollup`` the ticked checklist steps per day. Their day rows
are computed from the raw rows of the whole agent-day whenever one of its intervals is dirty:
whether an ACW followed a long call or came late in the shift depends on the agent's whole day
(docs/coaching.md). There are no agent rows per 15 minutes (about one interaction each).

The team tables (``TeamKpiRollup``: days, weeks and months per team, channel and code) are
sums of the agent rows; ``TeamIntervalRollup`` (15 minutes per team and channel) counts the raw
rows, ``SiteIntervalRollup`` sums it per 15 minutes and ``TeamHourRollup`` (days, weeks and
months per team, channel, site weekday and hour) per hour. ``TeamAcwDurationRollup`` (days,
weeks and months per team and channel: how many ACWs lasted each whole number of seconds)
counts the raw rows of each site day, and sums its days into weeks and months; it has no agent
table. Whatever rewrites agent rows marks their buckets in ``StaleBucket`` in the same
transaction, and ``refresh_stale_buckets()`` rewrites those team rows (at the end of every
``compute_rollups()`` run); readers use a team bucket only when it is neither stale nor dirty.
Week and month rows (agents and teams) are summed from the days once the week or month has
ended, by the daily close (``close_day``); a stale week or month is read as days.
"""

from __future__ import annotations

import logging
import math
import operator
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache, reduce
from typing import Any, cast

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Min, Q, QuerySet
from django.utils import timezone

from agents.models import (
    AcwSession,
    Agent,
    AgentState,
    Department,
    Event,
    HoldPeriod,
    Interaction,
    Team,
)
from agents.states import Rows

from .models import (
    ChecklistRollup,
    DirtyInterval,
    Grain,
    KpiRollup,
    SiteIntervalRollup,
    StaleBucket,
    TeamAcwDurationRollup,
    TeamHourRollup,
    TeamIntervalRollup,
    TeamKpiRollup,
)
from .queries import (
    MEASURES,
    QUARTER,
    bucket_end,
    joined_ranges,
    quarter_ceil,
    quarter_start,
    site_day,
    site_day_bounds,
    site_month_bounds,
    site_today,
    site_tz,
    site_week_bounds,
)

logger = logging.getLogger(__name__)


# --- Dirty intervals ------------------------------------------------------------------------


def mark_dirty(agent_id: int, moments: Iterable[datetime | None]) -> None:
    """Mark the agent's 15-minute intervals holding ``moments`` for the next rollup run."""
    _mark_dirty_many((agent_id, moment) for moment in moments)


def _mark_dirty_many(marks: Iterable[tuple[int, datetime | None]]) -> None:
    """Called on raw writes, so it is one ``INSERT ... ON CONFLICT DO NOTHING`` at most
    (for any number of agents), and no query when nothing ended."""
    buckets = _buckets(marks)
    if buckets:
        DirtyInterval.objects.bulk_create(
            [
                DirtyInterval(agent_id=agent_id, bucket_start=bucket)
                for agent_id, bucket in sorted(buckets)
            ],
            ignore_conflicts=True,
        )


def _buckets(marks: Iterable[tuple[int, datetime | None]]) -> set[tuple[int, datetime]]:
    return {(agent_id, quarter_start(moment)) for agent_id, moment in marks if moment is not None}


def dirty_buckets_of_rows(touched: Iterable[tuple[int, Rows]]) -> set[tuple[int, datetime]]:
    """The intervals ``(agent id, start)`` that several agents' rows written by a projection
    count in, to be marked dirty by the writer in the same transaction (``agents.services``
    writes them with its other rows, ``DirtyInterval``'s ``marked_at`` set).

    An interaction counts in the interval it ended in, and its ACW (which starts at that end)
    counts there too.
    """
    return _buckets(
        (agent_id, moment)
        for agent_id, rows in touched
        for moment in (
            *(row.ended_at for row in rows.interactions.values()),
            *(row.started_at for row in rows.acws.values()),
        )
    )


def mark_dirty_before_replay(
    event_keys: Iterable[int], until: Mapping[int, datetime] | None = None
) -> None:
    """Before a late event's replay deletes and rewrites rows: mark where they counted so far.

    A replay from time t can only move interaction ends that are at or after t, so marking every
    interval of the agent's interactions that ended since t covers the rows it deletes and the
    ones whose end it moves; the rewritten rows are marked by ``dirty_buckets_of_rows``. A replay that
    stopped where the history converged (``until``: agent id -> that event's time) changes only
    rows that were closed by then (the ones open there are kept), so the marks stop there too.
    """
    firsts = (
        Event.objects.filter(pk__in=list(event_keys))
        .values("agent_id")
        .annotate(first=Min("occurred_at"))
        .order_by()
    )
    for row in firsts:
        ended = Interaction.objects.filter(agent_id=row["agent_id"], ended_at__gte=row["first"])
        if until and row["agent_id"] in until:
            ended = ended.filter(ended_at__lte=until[row["agent_id"]])
        mark_dirty(row["agent_id"], ended.values_list("ended_at", flat=True))


# --- Rollups --------------------------------------------------------------------------------


def _day_start(moment: datetime) -> datetime:
    return _day_start_in(moment, settings.TIME_ZONE)


@lru_cache(maxsize=4096)
def _day_start_in(moment: datetime, time_zone: str) -> datetime:
    # Cached: a busy minute asks for the same few 15-minute buckets for every agent. The time
    # zone is part of the key (tests change it).
    day = site_day(moment)
    return site_day_bounds(day, day)[0]


# (agent id, bucket start) of one grain.
AgentBucket = tuple[int, datetime]

# Marks recomputed per statement (each is two parameters of a derived table).
MARKS_PER_STATEMENT = 1000


def compute_rollups() -> int:
    """Recompute every dirty interval and its day; returns how many intervals.

    One transaction holding the live-state row locks of every dirty agent (taken in id order):
    every raw write of an agent holds its lock and marks its intervals in its own transaction,
    so no change can slip in between claiming the marks and reading the raw rows. The work is
    set-based (a few statements per grain, whatever the number of agents), so the locks are
    held for well under a second at the open interval of a large site. Then the team rows of
    the buckets it changed (``refresh_stale_buckets``).
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # The day rows of a busy minute's agents are sorted and hashed by the ten thousand:
            # at the default 4 MB the sort of the day rows' statement spilled to disk.
            _execute("SET LOCAL work_mem = '32MB'", [])
        agent_ids = sorted(set(DirtyInterval.objects.values_list("agent_id", flat=True)))
        if agent_ids:
            locked = AgentState.objects.select_for_update().filter(agent_id__in=agent_ids)
            list(locked.order_by("agent_id").values_list("pk", flat=True))
        marks = list(
            DirtyInterval.objects.filter(agent_id__in=agent_ids).values_list(
                "pk", "agent_id", "bucket_start"
            )
        )
        DirtyInterval.objects.filter(pk__in=[pk for pk, *_ in marks]).delete()
        _recompute(sorted({(agent_id, bucket) for _, agent_id, bucket in marks}))
    refresh_stale_buckets(ended=False)
    return len(marks)


def _recompute(quarters: list[AgentBucket]) -> None:
    """The agent day rows of these 15-minute intervals from the raw rows of their whole
    agent-days (rows whose sums did not change are left as they are, ``_write_rows``); their
    team buckets, and their weeks and months, are marked stale."""
    if not quarters:
        return
    days = sorted({(agent_id, _day_start(bucket)) for agent_id, bucket in quarters})
    months = sorted({(agent_id, site_month_bounds(site_day(day))[0]) for agent_id, day in days})
    weeks = sorted({(agent_id, site_week_bounds(site_day(day))[0]) for agent_id, day in days})
    # Weeks and months are summed from their days once they have ended
    # (``refresh_stale_buckets``): no query reads the current ones as such, and summing them
    # again every minute would cost more than the rest of the run.
    for n in range(0, len(days), MARKS_PER_STATEMENT):
        chunk = days[n : n + MARKS_PER_STATEMENT]
        bounds = [(start, bucket_end(Grain.DAY, start), agent_id) for agent_id, start in chunk]
        _insert_days(bounds, replacing=chunk)
    _mark_team_stale(
        {
            (grain, start)
            for grain, buckets in (
                (Grain.QUARTER, quarters),
                (Grain.DAY, days),
                (Grain.WEEK, weeks),
                (Grain.MONTH, months),
            )
            for _, start in buckets
        }
    )


def _agent_buckets_q(buckets: Sequence[AgentBucket]) -> Q:
    """Rows of these (agent, bucket start) pairs: one condition per bucket (at a busy minute
    every agent is dirty in the same interval)."""
    agents: dict[datetime, list[int]] = defaultdict(list)
    for agent_id, start in buckets:
        agents[start].append(agent_id)
    return reduce(
        operator.or_, [Q(bucket_start=start, agent_id__in=ids) for start, ids in agents.items()]
    )


def _mark_team_stale(buckets: Iterable[tuple[str, datetime]]) -> None:
    StaleBucket.objects.bulk_create(
        [StaleBucket(grain=grain, bucket_start=start) for grain, start in buckets],
        ignore_conflicts=True,
    )


# --- Set-based SQL --------------------------------------------------------------------------
#
# What one ended interaction adds (``queries.Measures.add_interaction``, the reference the
# property tests compare with), summed by the database: a year of a whole site, or the open
# interval of every agent, is a few statements instead of a Python loop per row. Rows go in
# in the order of their table's unique key: the indexes of a fresh table (``rebuild_all``) are
# then built from sorted rows, three times as fast, and a period's rows lie together on disk.

_VENDOR_SQL = {
    "postgresql": {
        # Whole microseconds since 1970 rounded down to 15 minutes: the same buckets as
        # ``floor(extract(epoch ...) / 900) * 900``, whose ``numeric`` arithmetic took 0.5 s
        # per 650,000 rows (a rebuild computes it for every interaction, twice).
        "quarter": "date_bin('15 minutes', {0}, TIMESTAMPTZ '1970-01-01 00:00:00+00')",
        "whole_seconds": "GREATEST(0, floor({0}))::integer",
        "late": "{0} > {1} + interval '{2} hours'",
        "unnest": "CROSS JOIN LATERAL jsonb_array_elements_text("
        "CASE WHEN jsonb_typeof({0}) = 'array' THEN {0} END) AS e(value)",
        "is_array": "jsonb_typeof({0}) = 'array'",
        "step": "e.value",
        "local_weekday": "date_part('isodow', timezone({1}, {0}))::integer",
        "local_hour": "date_part('hour', timezone({1}, {0}))::integer",
    },
    "sqlite": {
        "quarter": "datetime((CAST(strftime('%%s', {0}) AS INTEGER) / 900) * 900, 'unixepoch')",
        "whole_seconds": "MAX(0, CAST({0} AS INTEGER))",
        "late": "{0} > strftime('%%Y-%%m-%%d %%H:%%M:%%f', {1}, '+{2} hours')",
        "unnest": ", json_each({0}) AS e",
        "is_array": "json_type({0}) = 'array'",
        "step": "CAST(e.value AS TEXT)",  # json_each gives a number as a number
        "local_weekday": "django_datetime_extract('iso_week_day', {0}, {1}, 'UTC')",
        "local_hour": "django_datetime_extract('hour', {0}, {1}, 'UTC')",
    },
}


def _sql(name: str, *operands: str) -> str:
    return _VENDOR_SQL[connection.vendor][name].format(*operands)


_CLOSED = "a.ended_at IS NOT NULL"
# Per measure: what one ended interaction ``i`` left-joined to its ACW ``a`` adds to it ...
_RAW_VALUES = {
    "interactions": "1",
    "talk_seconds": "i.talk_seconds",
    "hold_seconds": "i.hold_seconds",
    "acw_seconds": f"CASE WHEN {_CLOSED} THEN COALESCE(a.duration_seconds, 0) ELSE 0 END",
    "acw_count": f"CASE WHEN {_CLOSED} THEN 1 ELSE 0 END",
    "extensions": f"CASE WHEN {_CLOSED} THEN COALESCE(a.extensions, 0) ELSE 0 END",
    "extended": f"CASE WHEN {_CLOSED} AND a.extensions > 0 THEN 1 ELSE 0 END",
    "timeouts": f"CASE WHEN {_CLOSED} AND a.end_reason = 'timeout' THEN 1 ELSE 0 END",
    "overruns": f"CASE WHEN {_CLOSED} AND a.overrun THEN 1 ELSE 0 END",
    "too_short": f"CASE WHEN {_CLOSED} AND a.too_short THEN 1 ELSE 0 END",
}
# ... and its sum over them.
_RAW_SUMS = {name: f"SUM({value})" for name, value in _RAW_VALUES.items()}
assert tuple(_RAW_SUMS) == MEASURES


# While ``rebuild_all`` writes into fresh tables: model -> the name of its fresh table.
_fresh_tables: ContextVar[Mapping[type[models.Model], str] | None] = ContextVar(
    "fresh_rollup_tables", default=None
)


def _table(model: type[models.Model]) -> str:
    """The quoted table the SQL of this module reads and writes for ``model``: its fresh copy
    while ``rebuild_all`` fills one, so every step of a rebuild works unchanged on either."""
    fresh = _fresh_tables.get() or {}
    return connection.ops.quote_name(fresh.get(model, model._meta.db_table))


# While ``rebuild_all`` reads the raw rows once (``_raw_rows_read_once``): the name of the
# temporary table holding every ended interaction of the span with its ACW's columns.
_raw_table: ContextVar[str | None] = ContextVar("raw_rollup_rows", default=None)

# The columns of an interaction ``i`` and of its ACW ``a`` that the statements on the raw rows
# read (``_raw_rows``).
_RAW_INTERACTION_COLUMNS = (
    "ended_at",
    "agent_id",
    "team_id",
    "channel",
    "talk_seconds",
    "hold_seconds",
)
_RAW_ACW_COLUMNS = (
    "ended_at",
    "duration_seconds",
    "wrap_up_code",
    "extensions",
    "end_reason",
    "overrun",
    "too_short",
    "checklist",
)


def _raw_rows(calendar: str, *, with_acw: bool = False) -> str:
    """``FROM`` of the raw rows: the interactions ``i`` placed in their buckets by ``calendar``
    (``_calendar``'s, with ``{}`` for the table), each with its ACW ``a``: left-joined, or
    (``with_acw``) only those that have one. While ``rebuild_all`` reads the raw rows once, the
    rows of its temporary table, each ACW column ``a.x`` being that row's ``a_x`` (a lateral
    subquery without a table, which the planner flattens: no join)."""
    table = _raw_table.get()
    if table is None:
        join = "JOIN" if with_acw else "LEFT JOIN"
        return (
            f"{calendar.format(_table(Interaction))} "
            f"{join} {_table(AcwSession)} a ON a.interaction_id = i.id"
        )
    columns = ", ".join(f"i.a_{name} AS {name}" for name in _RAW_ACW_COLUMNS)
    return f"{calendar.format(table)} CROSS JOIN LATERAL (SELECT {columns}) a"


# The tables whose rows a rebuild counts from the raw rows (each in one statement).
_FROM_RAW_ROWS = (KpiRollup, ChecklistRollup, TeamAcwDurationRollup, TeamIntervalRollup)


@contextmanager
def _raw_rows_read_once(start: datetime, end: datetime, into: Tables) -> Iterator[None]:
    """The raw rows of [start, end) joined once into a temporary table that the statements on
    the raw rows read instead (``_raw_rows``; PostgreSQL, in the rebuild's transaction), if
    more than one of the tables ``into`` names is written from them.

    A full rebuild writes four tables from the raw rows (the agent day rows, the checklist and
    team duration day rows, the 15-minute team rows), and each statement read the year's
    interactions and ACWs and joined them: four joins of every interaction. The temporary table
    is written once, without WAL, and read by each. Dropped at the end. For one statement it
    would only add a write and a read of every row to the join (10 s of 1,000 agents' year)."""
    if sum(model in into for model in _FROM_RAW_ROWS) < 2:
        yield
        return
    table = "rollup_raw_rows"
    interaction = ", ".join(f"i.{name}" for name in _RAW_INTERACTION_COLUMNS)
    acw = ", ".join(f"a.{name} AS a_{name}" for name in _RAW_ACW_COLUMNS)
    _execute(
        f"CREATE TEMPORARY TABLE {table} ON COMMIT DROP AS SELECT {interaction}, {acw} "
        f"FROM {_table(Interaction)} i LEFT JOIN {_table(AcwSession)} a "
        "ON a.interaction_id = i.id WHERE i.ended_at >= %s AND i.ended_at < %s",
        [_db(start), _db(end)],
    )
    _analyze_sample(table)
    token = _raw_table.set(table)
    try:
        yield
    finally:
        _raw_table.reset(token)
    _execute(f"DROP TABLE {table}", [])


def _db(moment: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(moment)


def _execute(sql: str, params: Sequence[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


Bounds = tuple[datetime, datetime] | tuple[datetime, datetime, int]
"""A bucket [start, end) of all agents, or of one agent (id last)."""

Tables = Collection[type[models.Model]]
"""The rollup tables a step of a rebuild writes (``into``): a stream of ``rebuild_all``'s."""


def _writes(model: type[models.Model], into: Tables | None) -> bool:
    """Whether a step writing ``into`` (every table if None) writes ``model``'s rows."""
    return into is None or model in into


def _calendar(bounds: Sequence[Bounds], column: str) -> tuple[str, list[Any]]:
    """A derived table ``c(b_start, b_end[, b_agent])`` of ``bounds`` (all of one shape), and
    the join condition of ``column`` (a time) and its row's ``agent_id`` to it. Day and month
    ends are not a fixed length in UTC, so buckets come from Python, not from SQL arithmetic."""
    per_agent = len(bounds[0]) == 3
    names = ("b_start", "b_end", "b_agent")[: len(bounds[0])]
    if connection.vendor == "postgresql":
        # Three array parameters, however many buckets: a thousand-row UNION ALL takes longer
        # to plan than to run.
        types = ("timestamptz[]", "timestamptz[]", "bigint[]")[: len(names)]
        arrays = ", ".join(f"%s::{t}" for t in types)
        table = f"unnest({arrays}) AS c({', '.join(names)})"
        params: list[Any] = [list(values) for values in zip(*bounds, strict=True)]
    else:
        one = ", ".join(f"%s AS {name}" for name in names)
        table = f"({' UNION ALL '.join([f'SELECT {one}'] * len(bounds))}) c"
        params = [_db(v) if isinstance(v, datetime) else v for bucket in bounds for v in bucket]
    alias = column.split(".")[0]
    on = f"{column} >= c.b_start AND {column} < c.b_end"
    if not per_agent and connection.vendor == "postgresql":
        return _site_calendar(bounds, column)
    if per_agent:
        on += f" AND {alias}.agent_id = c.b_agent"
        if connection.vendor == "postgresql":
            # The same agents as a plain list: the rows are then read through the agent
            # indexes, not every agent's rows of the span (a busy site's day, for the dirty
            # open interval of a third of its agents).
            on += f" AND {alias}.agent_id = ANY(%s::bigint[])"
            per_agent_bounds = cast(Sequence[tuple[datetime, datetime, int]], bounds)
            params.append(sorted({agent_id for _, _, agent_id in per_agent_bounds}))
    return f"{table} JOIN {{}} {alias} ON {on}", params


def _site_calendar(bounds: Sequence[Bounds], column: str) -> tuple[str, list[Any]]:
    """``_calendar`` of site-wide buckets on PostgreSQL: each row's bucket is looked up, not
    joined. ``width_bucket`` finds the last start at or before ``column`` in the sorted starts,
    and the row is kept if it is before that bucket's end. A range join with the buckets is a
    nested loop comparing every row with every bucket (a year of raw rows with 366 days: 74 s
    for the checklist rows of a rebuild), and an equality join on the looked-up start is
    estimated at a two-hundredth of the rows (then joined to their ACWs one index probe at a
    time: 32 s instead of 13 s for a year's duration rows)."""
    alias = column.split(".")[0]
    ordered = sorted(bounds)
    starts, ends = [b[0] for b in ordered], [b[1] for b in ordered]
    bucket = (
        "CROSS JOIN LATERAL (SELECT (%s::timestamptz[])[n] AS b_start, "
        "(%s::timestamptz[])[n] AS b_end "
        f"FROM (SELECT width_bucket({column}, %s::timestamptz[]) AS n) w "
        f"WHERE {column} < (%s::timestamptz[])[n]) c"
    )
    return f"{{}} {alias} {bucket}", [starts, ends, starts, ends]


def _sums_calendar(source: str, target: str, bounds: Sequence[Bounds]) -> tuple[str, list[Any]]:
    """``_calendar`` for summing ``source`` rows (``k``) into the ``target`` buckets ``bounds``.

    Site-wide buckets on PostgreSQL list every ``source`` bucket start inside them
    (``c.b_source``), so rows join their bucket by equality, a hash join: the only plan for a
    range join is a nested loop comparing every row with every bucket, which a rebuild of a year
    (35,000 quarters into 365 days, in tables that have no index yet) cannot afford. Per-agent
    buckets keep the range join, which the agent indexes serve.
    """
    if len(bounds[0]) == 3 or connection.vendor != "postgresql":
        return _calendar(bounds, "k.bucket_start")
    rows = [
        (inner, start, end)
        for start, end, *_ in bounds
        for inner in _inner_starts(source, target, start, end)
    ]
    arrays = ", ".join(["%s::timestamptz[]"] * 3)
    table = f"unnest({arrays}) AS c(b_source, b_start, b_end)"
    params: list[Any] = [list(values) for values in zip(*rows, strict=True)]
    return f"{table} JOIN {{}} k ON k.bucket_start = c.b_source", params


def _inner_starts(source: str, target: str, start: datetime, end: datetime) -> list[datetime]:
    """The starts of the ``source`` grain's buckets inside the ``target`` bucket [start, end)."""
    if source == target:
        return [start]
    if source == Grain.QUARTER:
        first = quarter_ceil(start)
        return [first + n * QUARTER for n in range(math.ceil((end - first) / QUARTER))]
    assert source == Grain.DAY and target in (Grain.WEEK, Grain.MONTH), (source, target)
    return [day for day, _ in _day_bounds(site_day(start), site_day(end) - timedelta(days=1))]


def _span(bounds: Sequence[Bounds]) -> list[Any]:
    """[first start, last end) of ``bounds``: a plain range the indexes serve."""
    return [_db(min(b[0] for b in bounds)), _db(max(b[1] for b in bounds))]


def _insert_team_durations(
    grain: str,
    bounds: Sequence[Bounds],
    *,
    replacing: _TeamDays | None = None,
    into: Tables | None = None,
) -> None:
    """``TeamAcwDurationRollup`` rows of ``bounds`` (if ``into`` names their table): of site
    days (``grain`` day) counted from the raw rows, of weeks or months summed from their day
    rows; in place of the day rows ``replacing`` (``_write_rows``).

    There are no agent duration rows: at whole seconds they barely shrink from the raw ACWs
    (an agent's 15-minute interval holds one ACW, a day a few dozen different lengths), so
    they cost a rebuild as much as the raw rows again in every grain, and what asks for one
    agent's histogram reads that agent's raw rows instead (``queries.acw_duration_counts``)."""
    if not bounds or not _writes(TeamAcwDurationRollup, into):
        return
    if grain == Grain.DAY:
        calendar, params = _calendar(bounds, "i.ended_at")
        seconds = _sql("whole_seconds", "a.duration_seconds")
        keys = f"c.b_start, c.b_end, i.team_id, i.channel, {seconds}"
        select = (
            f"SELECT %s, {keys}, COUNT(*) FROM {_raw_rows(calendar, with_acw=True)} "
            f"WHERE {_CLOSED} AND a.duration_seconds IS NOT NULL "
            f"AND i.ended_at >= %s AND i.ended_at < %s GROUP BY {keys} ORDER BY {keys}"
        )
    else:
        calendar, params = _sums_calendar(Grain.DAY, grain, bounds)
        keys = "c.b_start, c.b_end, k.team_id, k.channel, k.seconds"
        select = (
            f"SELECT %s, {keys}, SUM(k.count) "
            f"FROM {calendar.format(_table(TeamAcwDurationRollup))} "
            "WHERE k.grain = %s AND k.bucket_start >= %s AND k.bucket_start < %s "
            f"GROUP BY {keys} ORDER BY {keys}"
        )
        params.append(Grain.DAY)
    _write_rows(
        TeamAcwDurationRollup,
        ("grain", "bucket_start", "bucket_end", "team_id", "channel", "seconds", "count"),
        select,
        [grain, *params, *_span(bounds)],
        replacing,
    )


# --- Agent day rows ---------------------------------------------------------------------------
#
# From the raw rows of whole agent-days: "after a long call" and "late in the shift" are
# relative to the agent's own day, so a day row is never a sum of shorter buckets.

LONG_CALL_QUANTILE = 0.75
"""A long call: talk + hold ranked above the agent's 75th percentile of that site day."""
LATE_AFTER_HOURS = 6
"""Late in the shift: ended more than 6 h after the agent's first interaction that day."""

_COACHING_KEYS = ("agent_id", "team_id", "channel", "wrap_up_code")
_COACHING_SUMS = (
    "durations",
    "duration_sum",
    "duration_squares",
    "acw_squares",
    "long_count",
    "long_seconds",
    "long_squares",
    "late_count",
    "late_seconds",
    "late_squares",
)
COACHING_MEASURES = (*MEASURES, *_COACHING_SUMS)
"""The summed columns of ``KpiRollup`` (the KPI sums, then the coaching sums), in the order
``coaching_day_sql`` selects them."""


def _coaching_values(rank: str, shift_start: str) -> list[str]:
    """What an ended interaction ``i`` and its ACW ``a`` add to each coaching sum, given the
    closed ACW's place in the agent's day (``rank``: percent rank of talk + hold among the
    day's closed ACWs; ``shift_start``: the first of their interactions' ends)."""
    closed = f"{_CLOSED} AND a.duration_seconds IS NOT NULL"
    whole = _sql("whole_seconds", "a.duration_seconds")
    seconds = "COALESCE(a.duration_seconds, 0)"
    is_long = f"{_CLOSED} AND {rank} > {LONG_CALL_QUANTILE}"
    is_late = f"{_CLOSED} AND " + _sql("late", "i.ended_at", shift_start, str(LATE_AFTER_HOURS))

    def where(condition: str, value: str) -> str:
        return f"CASE WHEN {condition} THEN {value} ELSE 0 END"

    return [
        where(closed, "1"),
        where(closed, f"CAST({whole} AS FLOAT)"),
        where(closed, f"CAST({whole} AS FLOAT) * {whole}"),
        where(_CLOSED, f"{seconds} * {seconds}"),
        where(is_long, "1"),
        where(is_long, seconds),
        where(is_long, f"{seconds} * {seconds}"),
        where(is_late, "1"),
        where(is_late, seconds),
        where(is_late, f"{seconds} * {seconds}"),
    ]


def coaching_day_sql(bounds: Sequence[Bounds]) -> tuple[str, list[Any]]:
    """SELECT of the ``KpiRollup`` day rows of ``bounds`` (whole site days, of every agent
    or of one agent each) from the raw rows: ``b_start, b_end``, the keys, then
    ``COACHING_MEASURES``, each column named as in the table. Window functions place each
    closed ACW in its agent's day, in the same pass over the raw rows as the sums: each row's
    values are computed first (the window functions cannot be summed where they are computed),
    then summed. In the order of the table's unique key (see the note on set-based SQL): the
    window functions hand the rows over agent by agent, and a month's day rows read by a
    coaching list would otherwise lie on three times as many pages."""
    calendar, params = _calendar(bounds, "i.ended_at")
    # The closed ACWs of an agent's day are one partition (the other rows' places are unused).
    day = f"PARTITION BY i.agent_id, c.b_start, {_CLOSED}"
    rank = f"PERCENT_RANK() OVER ({day} ORDER BY i.talk_seconds + i.hold_seconds)"
    shift_start = f"MIN(i.ended_at) OVER ({day})"
    keys = dict(
        zip(
            ("b_start", "b_end", *_COACHING_KEYS),
            ("c.b_start", "c.b_end", "i.agent_id", "i.team_id", "i.channel"),
            strict=False,
        ),
        wrap_up_code="COALESCE(a.wrap_up_code, '')",
    )
    values = zip(
        COACHING_MEASURES,
        [*_RAW_VALUES.values(), *_coaching_values(rank, shift_start)],
        strict=True,
    )
    columns = ", ".join(f"{value} AS {name}" for name, value in [*keys.items(), *values])
    group = ", ".join(keys)
    sums = ", ".join(f"SUM({name}) AS {name}" for name in COACHING_MEASURES)
    sql = (
        f"SELECT {group}, {sums} FROM (SELECT {columns} FROM {_raw_rows(calendar)} "
        f"WHERE i.ended_at >= %s AND i.ended_at < %s) r GROUP BY {group} ORDER BY {group}"
    )
    return sql, [*params, *_span(bounds)]


def checklist_day_sql(bounds: Sequence[Bounds]) -> tuple[str, list[Any]]:
    """SELECT of the ``ChecklistRollup`` rows of ``bounds`` from the raw rows: ``b_start,
    b_end, agent_id, team_id, channel, step, ticked, ticked_seconds`` (each ticked step of a
    closed ACW, unnested in the database)."""
    calendar, params = _calendar(bounds, "i.ended_at")
    keys = f"c.b_start, c.b_end, i.agent_id, i.team_id, i.channel, {_sql('step')}"
    sql = (
        f"SELECT {keys}, COUNT(*), SUM(COALESCE(a.duration_seconds, 0)) "
        f"FROM {_raw_rows(calendar, with_acw=True)} {_sql('unnest', 'a.checklist')} "
        f"WHERE {_CLOSED} AND {_sql('is_array', 'a.checklist')} "
        f"AND i.ended_at >= %s AND i.ended_at < %s GROUP BY {keys} ORDER BY {keys}"
    )
    return sql, [*params, *_span(bounds)]


def _insert_days(
    bounds: Sequence[Bounds],
    *,
    replacing: Sequence[AgentBucket] | None = None,
    into: Tables | None = None,
) -> int:
    """Both agent tables' day rows of ``bounds`` (site days) from the raw rows (or those of
    the tables ``into`` names), in place of the rows of the agent-days ``replacing``
    (``_write_rows``); returns the ``KpiRollup`` rows written."""
    if not bounds:
        return 0
    rows = 0
    if _writes(KpiRollup, into):
        columns = ("bucket_start", "bucket_end", *_COACHING_KEYS, *COACHING_MEASURES)
        sql, params = coaching_day_sql(bounds)
        rows = _write_rows(
            KpiRollup,
            ("grain", "computed_at", *columns),
            f"SELECT %s, %s, g.* FROM ({sql}) g",
            [Grain.DAY, _db(timezone.now()), *params],
            replacing,
        )
    if not _writes(ChecklistRollup, into):
        return rows
    sql, params = checklist_day_sql(bounds)
    _write_rows(
        ChecklistRollup,
        (
            "bucket_start",
            "bucket_end",
            "agent_id",
            "team_id",
            "channel",
            "step",
            "ticked",
            "ticked_seconds",
        ),
        sql,
        params,
        replacing,
    )
    return rows


@dataclass(frozen=True)
class _TeamDays:
    """Every team's day rows of the site days starting at ``starts``: what the refresh of stale
    days replaces (``_write_rows``)."""

    starts: Sequence[datetime]


Replacing = Sequence[AgentBucket] | _TeamDays
"""The day rows a write replaces: those of these agent-days, or every team's of these days."""


def _write_rows(
    model: type[models.Model],
    columns: Sequence[str],
    select: str,
    params: Sequence[Any],
    replacing: Replacing | None = None,
) -> int:
    """Insert the rows of ``select`` (its columns named by ``columns``) into ``model``'s table;
    with ``replacing``, in place of those day rows; returns the rows written.

    Replacing on PostgreSQL is one statement that updates the rows whose key is still there,
    but only where a sum changed, inserts the new keys and deletes the keys that are gone
    (unchanged rows are left out before the ``INSERT``, where ``ON CONFLICT`` would lock each
    one, a write to its page; the callers' locks keep other writers of these rows out): when
    the open interval of every agent is recomputed, most of their day rows, and of their
    teams' day rows, are unchanged, and deleting and inserting them again rewrote every one of
    them and its index entries (and checked its foreign keys again at the commit).
    """
    table = _table(model)
    names = ", ".join(columns)
    if replacing is not None and connection.vendor != "postgresql":
        _replaced_rows(model, replacing).delete()
    if replacing is None or connection.vendor != "postgresql":
        return _execute(f"INSERT INTO {table} ({names}) {select}", params)
    keys = _unique_key(model)
    values = [column for column in columns if column not in keys]
    sums = [column for column in values if column != "computed_at"]
    key = [column for column in keys if column != "grain"]
    replaced, replaced_params = _replaced_sql(model, replacing)
    # The rows there now (``o``), read in one range and joined by hashing: the statement's
    # rows are underestimated (a tenth), and a join with the table itself was planned as one
    # index probe per row (18,005 probes, 0.4 s).
    within, within_params = _replaced_range(model, replacing)
    changed = (
        f"SELECT n.* FROM n LEFT JOIN o ON {' AND '.join(f'o.{c} = n.{c}' for c in keys)} "
        f"WHERE o.{keys[0]} IS NULL OR ({', '.join(f'o.{v}' for v in sums)}) "
        f"IS DISTINCT FROM ({', '.join(f'n.{v}' for v in sums)})"
    )
    return _execute(
        f"WITH n ({names}) AS ({select}), gone AS (DELETE FROM {table} k {replaced} "
        f"AND ({', '.join(f'k.{c}' for c in key)}) NOT IN (SELECT {', '.join(key)} FROM n)), "
        f"o AS MATERIALIZED (SELECT * FROM {table} k WHERE {within}) "
        f"INSERT INTO {table} AS k ({names}) {changed} ON CONFLICT ({', '.join(keys)}) "
        f"DO UPDATE SET {', '.join(f'{v} = EXCLUDED.{v}' for v in values)}",
        [*params, *replaced_params, *within_params],
    )


def _replaced_rows(model: type[models.Model], replacing: Replacing) -> QuerySet[Any]:
    """The day rows of ``model`` that ``replacing`` names."""
    if isinstance(replacing, _TeamDays):
        return model._default_manager.filter(grain=Grain.DAY, bucket_start__in=replacing.starts)
    rows = model._default_manager.filter(_agent_buckets_q(replacing))
    return rows.filter(grain=Grain.DAY) if _has_grain(model) else rows


def _replaced_sql(model: type[models.Model], replacing: Replacing) -> tuple[str, list[Any]]:
    """``[USING ...] WHERE ...`` of a DELETE of the day rows ``k`` of ``model`` that
    ``replacing`` names, and its parameters."""
    within, params = _replaced_range(model, replacing)
    if isinstance(replacing, _TeamDays):
        return f"WHERE {within}", params
    starts, agents = zip(*((start, agent_id) for agent_id, start in replacing), strict=True)
    return (
        "USING unnest(%s::timestamptz[], %s::bigint[]) AS d(b_start, b_agent) "
        f"WHERE k.bucket_start = d.b_start AND k.agent_id = d.b_agent AND {within}",
        [list(starts), list(agents), *params],
    )


def _replaced_range(model: type[models.Model], replacing: Replacing) -> tuple[str, list[Any]]:
    """A condition on the rows ``k`` that holds for the day rows ``replacing`` names, and its
    parameters: for agent-days, every pair of their agents and days (a list and a range the
    indexes serve)."""
    if isinstance(replacing, _TeamDays):
        return "k.grain = %s AND k.bucket_start = ANY(%s::timestamptz[])", [
            Grain.DAY,
            list(replacing.starts),
        ]
    starts = [start for _, start in replacing]
    sql = "k.agent_id = ANY(%s::bigint[]) AND k.bucket_start >= %s AND k.bucket_start <= %s"
    params: list[Any] = [
        sorted({agent_id for agent_id, _ in replacing}),
        _db(min(starts)),
        _db(max(starts)),
    ]
    if _has_grain(model):
        sql += " AND k.grain = %s"
        params.append(Grain.DAY)
    return sql, params


def _has_grain(model: type[models.Model]) -> bool:
    return any(field.name == "grain" for field in model._meta.get_fields())


def _unique_key(model: type[models.Model]) -> list[str]:
    """The columns of ``model``'s unique key (its one ``UniqueConstraint``)."""
    (key,) = [c for c in model._meta.constraints if isinstance(c, models.UniqueConstraint)]
    fields = [model._meta.get_field(name) for name in key.fields]
    return [field.column for field in fields if isinstance(field, models.Field)]


def _insert_sums(
    target: str,
    bounds: Sequence[Bounds],
    *,
    agents: bool = True,
    replacing: Replacing | None = None,
    into: Tables | None = None,
) -> None:
    """The ``target`` grain rows of ``bounds`` (buckets) as sums of the agent rows of the same
    buckets (``target``) or, for agent rows, of the day rows inside them: agent week and month
    rows (every column, in the order of the table's unique key: in the order the grouping
    happens to give, each week's rows lay one to a page among the year's), or
    (``agents=False``) team day, week and month rows of the KPI sums (if ``into`` names their
    table); in place of the day rows ``replacing`` (``_write_rows``)."""
    model = KpiRollup if agents else TeamKpiRollup
    if not bounds or not _writes(model, into):
        return
    source = Grain.DAY if agents else target
    calendar, calendar_params = _sums_calendar(source, target, bounds)
    measures = COACHING_MEASURES if agents else MEASURES
    sums = ", ".join(f"SUM(k.{name})" for name in measures)
    who = "k.agent_id, k.team_id" if agents else "k.team_id"
    _write_rows(
        model,
        (
            "grain",
            "bucket_start",
            "bucket_end",
            *who.replace("k.", "").split(", "),
            "channel",
            "wrap_up_code",
            *measures,
            "computed_at",
        ),
        f"SELECT %s, c.b_start, c.b_end, {who}, k.channel, k.wrap_up_code, {sums}, %s "
        f"FROM {calendar.format(_table(KpiRollup))} "
        "WHERE k.grain = %s AND k.bucket_start >= %s AND k.bucket_start < %s "
        f"GROUP BY c.b_start, c.b_end, {who}, k.channel, k.wrap_up_code "
        f"ORDER BY c.b_start, {who}, k.channel, k.wrap_up_code",
        [target, _db(timezone.now()), *calendar_params, source, *_span(bounds)],
        replacing,
    )


def _insert_team_intervals(ranges: Sequence[tuple[datetime, datetime]]) -> None:
    """The 15-minute team rows of the interactions that ended in ``ranges`` (whole 15-minute
    intervals) from the raw rows, then their site rows from the team rows."""
    if not ranges:
        return
    within = " OR ".join(["({0} >= %s AND {0} < %s)"] * len(ranges))
    params = [_db(timezone.now()), *(_db(moment) for bounds in ranges for moment in bounds)]
    keys = f"{_sql('quarter', 'i.ended_at')}, i.team_id, i.channel"
    _execute(
        f"INSERT INTO {_table(TeamIntervalRollup)} (bucket_start, team_id, channel, "
        f"{', '.join(MEASURES)}, computed_at) "
        f"SELECT {keys}, {', '.join(_RAW_SUMS.values())}, %s FROM {_raw_rows('{} i')} "
        f"WHERE {within.format('i.ended_at')} GROUP BY {keys} ORDER BY {keys}",
        params,
    )
    sums = ", ".join(f"SUM(k.{name})" for name in MEASURES)
    _execute(
        f"INSERT INTO {_table(SiteIntervalRollup)} (bucket_start, {', '.join(MEASURES)}, "
        f"computed_at) SELECT k.bucket_start, {sums}, %s FROM {_table(TeamIntervalRollup)} k "
        f"WHERE {within.format('k.bucket_start')} GROUP BY k.bucket_start "
        "ORDER BY k.bucket_start",
        params,
    )


def _insert_team_hours(
    grain: str, bounds: Sequence[Bounds], *, replacing: _TeamDays | None = None
) -> None:
    """``TeamHourRollup`` rows of the site days (``grain`` day: sums of their 15-minute team
    rows, per weekday and hour of the site time zone), weeks or months (sums of their day
    rows); in place of the day rows ``replacing`` (``_write_rows``)."""
    if not bounds:
        return
    source: type[models.Model]
    if grain == Grain.DAY:
        calendar, params = _sums_calendar(Grain.QUARTER, Grain.DAY, bounds)
        source, where = TeamIntervalRollup, "k.bucket_start >= %s AND k.bucket_start < %s"
        zone = _site_zone_literal()
        weekday = _sql("local_weekday", "k.bucket_start", zone)
        hour = _sql("local_hour", "k.bucket_start", zone)
    else:
        calendar, params = _sums_calendar(Grain.DAY, grain, bounds)
        source, where = (
            TeamHourRollup,
            "k.grain = %s AND k.bucket_start >= %s AND k.bucket_start < %s",
        )
        params.append(Grain.DAY)
        weekday, hour = "k.weekday", "k.hour"
    sums = ", ".join(f"SUM(k.{name})" for name in MEASURES)
    keys = f"c.b_start, k.team_id, k.channel, {weekday}, {hour}"
    _write_rows(
        TeamHourRollup,
        (
            "grain",
            "computed_at",
            "bucket_start",
            "team_id",
            "channel",
            "weekday",
            "hour",
            *MEASURES,
        ),
        f"SELECT %s, %s, {keys}, {sums} "
        f"FROM {calendar.format(_table(source))} WHERE {where} GROUP BY {keys} ORDER BY {keys}",
        [grain, _db(timezone.now()), *params, *_span(bounds)],
        replacing,
    )


def _site_zone_literal() -> str:
    """The site time zone's name as an SQL string literal (a zone key has no quote; written
    into the statement because it appears in both its select list and its GROUP BY)."""
    key = site_tz().key
    assert re.fullmatch(r"[\w/+-]+", key), key
    return f"'{key}'"


def _day_bounds(first: date, last: date) -> list[tuple[datetime, datetime]]:
    return [
        site_day_bounds(first + timedelta(days=n), first + timedelta(days=n))
        for n in range((last - first).days + 1)
    ]


def _week_bounds(first: date, last: date) -> list[tuple[datetime, datetime]]:
    out = [site_week_bounds(first)]
    while out[-1][1] < site_day_bounds(last, last)[1]:
        out.append(site_week_bounds(site_day(out[-1][1])))
    return out


def _month_bounds(first: date, last: date) -> list[tuple[datetime, datetime]]:
    out = [site_month_bounds(first)]
    while out[-1][1] < site_day_bounds(last, last)[1]:
        out.append(site_month_bounds(site_day(out[-1][1])))
    return out


_ROLLUP_TABLES = (
    KpiRollup,
    TeamKpiRollup,
    TeamAcwDurationRollup,
    TeamIntervalRollup,
    SiteIntervalRollup,
    TeamHourRollup,
    ChecklistRollup,
)


@dataclass(frozen=True)
class _Span:
    """What a rebuild of the site days ``first`` to ``last`` rewrites: their 15-minute and day
    buckets, and (``months``) the weeks and months they touch."""

    start: datetime
    end: datetime
    days: list[tuple[datetime, datetime]]
    months: list[tuple[datetime, datetime]]
    weeks: list[tuple[datetime, datetime]]

    @classmethod
    def of(cls, first: date, last: date, *, months: bool) -> _Span:
        return cls(
            *site_day_bounds(first, last),
            _day_bounds(first, last),
            _month_bounds(first, last) if months else [],
            _week_bounds(first, last) if months else [],
        )

    def rows(self, model: type[models.Model]) -> Q:
        """The rows of ``model`` (a rollup table or ``StaleBucket``) that it rewrites."""
        in_days = Q(bucket_start__gte=self.start, bucket_start__lt=self.end)
        if not any(field.name == "grain" for field in model._meta.get_fields()):
            return in_days
        rows = in_days & ~Q(grain__in=[Grain.MONTH, Grain.WEEK])
        for grain, buckets in ((Grain.MONTH, self.months), (Grain.WEEK, self.weeks)):
            if buckets:
                start, end = buckets[0][0], buckets[-1][1]
                rows |= Q(grain=grain, bucket_start__gte=start, bucket_start__lt=end)
        return rows


def rebuild_range(first: date, last: date, *, months: bool = True) -> int:
    """Recompute every rollup of the site days ``first`` to ``last`` from the raw rows, and
    (``months``) the month rows of the months they touch (sums of their day rows); returns the
    agent day rows written. Set-based: a few statements whatever the length of the range.

    Reads without agent locks: an event ingested meanwhile leaves its dirty mark (nothing here
    deletes marks), so the next ``compute_rollups()`` corrects whatever this wrote too early.
    Callers keep it from overlapping ``compute_rollups()`` (the ``rollups`` lock).
    """
    span = _Span.of(first, last, months=months)
    with _bulk_transaction():
        for model in _ROLLUP_TABLES:
            model._default_manager.filter(span.rows(model)).delete()
        rows = _write_rollups(span)
        StaleBucket.objects.filter(span.rows(StaleBucket)).delete()
    analyze(*_ROLLUP_TABLES)
    return rows


def rebuild_all() -> int:
    """``rebuild_range`` of every site day from the first one with activity to today, written
    (on PostgreSQL) into fresh tables that then replace the rollup tables; returns the
    agent day rows written, 0 if there are no interactions.

    Rewriting most rows of a table in place is slow three times over: each row updates six
    indexes one entry at a time, queues two foreign-key checks, and meets the dead row it
    replaces in the unique index. Here each fresh table is filled without indexes or foreign
    keys (``_fresh_tables``), which are then built in one pass each, and swapped in at the end of
    one transaction (``_swap_in``): readers see the old rows until the commit, never an empty
    table, and wait only for the swap itself. Rows outside those days (none, since every rollup
    row comes from an interaction) are not carried over.

    Called outside a transaction, the fresh tables are filled on two connections at once
    (``_rebuild_in_streams``): a single ``INSERT ... SELECT`` runs on one core, and the
    rebuild is a few dozen of them. Inside a transaction (whose uncommitted rows other
    connections cannot see) it is one transaction on the caller's connection
    (``_rebuild_in_one_transaction``). Either way it reads the raw rows as of one snapshot and
    deletes no dirty mark: an interaction committed after that snapshot is left out of the
    rebuilt rows but keeps its ``DirtyInterval``, so the next ``compute_rollups()`` adds it.
    Callers keep ``compute_rollups()`` and ``refresh_stale_buckets()`` out until the swap
    (the ``rollups`` lock): what they wrote into the old tables would be dropped with them.
    """
    first = first_activity_day()
    if first is None:
        return 0
    last = max(first, site_today())
    if connection.vendor != "postgresql":
        return rebuild_range(first, last)
    span = _Span.of(first, last, months=True)
    if connection.in_atomic_block:
        return _rebuild_in_one_transaction(span)
    return _rebuild_in_streams(span)


def _rebuild_in_one_transaction(span: _Span) -> int:
    """``rebuild_all`` on the caller's connection, in one transaction: the fresh tables are
    created, filled, indexed and swapped in by it (the raw rows are read once, by the first
    statement that reads them: ``_raw_rows_read_once``)."""
    with _bulk_transaction():
        fresh: dict[type[models.Model], str] = {
            model: _create_fresh_table(model) for model in _ROLLUP_TABLES
        }
        with _writing_into(fresh):
            with _raw_rows_read_once(span.start, span.end, tuple(fresh)):
                rows = _write_rollups(span)
            analyze(*fresh)
        renames = _index_fresh_tables(fresh)
        _swap_in(fresh, [renames[model] for model in fresh])
        StaleBucket.objects.filter(span.rows(StaleBucket)).delete()
    return rows


_STREAMS: tuple[Tables, ...] = (
    (KpiRollup, TeamKpiRollup),
    (
        ChecklistRollup,
        TeamAcwDurationRollup,
        TeamIntervalRollup,
        SiteIntervalRollup,
        TeamHourRollup,
    ),
)
"""The tables ``_rebuild_in_streams`` fills on each of its connections. Each chain of sums
stays on one connection: the agent day rows (from the raw rows), their weeks and months and
the team KPI rows summed from them on one; on the other the checklist rows, the team duration
day rows and the 15-minute team rows (each from the raw rows), the duration weeks and months,
and the site and hour rows summed from the 15-minute team rows: so that both take about as
long (docs/benchmarks.md)."""


def _rebuild_in_streams(span: _Span) -> int:
    """``rebuild_all`` with the fresh tables filled on two connections at once, one per
    ``_STREAMS`` entry, each reading the raw rows as of the same snapshot.

    The fresh tables are created and committed first (the worker connections must see them;
    any left by a run that crashed are dropped). The coordinating transaction (repeatable
    read) exports its snapshot (``pg_export_snapshot``, as ``pg_dump -j`` does) and each
    worker thread (Django gives each thread its own connection) imports it in a repeatable
    read transaction of its own, fills its tables (from its own temporary table of the raw rows
    where more than one of them is counted from those, ``_raw_rows_read_once``: written by both
    at once, where one table written by one worker and read by the other would be written
    before either could start), analyses them, builds
    their indexes and keys and commits. The coordinating transaction then swaps every table in
    and deletes the stale marks of its snapshot (a mark written since is kept). If a worker
    fails, the other one is cancelled, the fresh tables are dropped and the error raised: the
    old tables stay as they were."""
    fresh: dict[type[models.Model], str] = {
        model: f"{model._meta.db_table}_fresh" for model in _ROLLUP_TABLES
    }
    with transaction.atomic():
        _drop_fresh_tables(fresh)
        for model in fresh:
            _create_fresh_table(model)
    try:
        with _bulk_transaction(repeatable_read=True):
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_export_snapshot()")
                (snapshot,) = cursor.fetchone()
            rows, renames = _fill_streams(snapshot, span, fresh)
            _swap_in(fresh, [renames[model] for model in fresh])
            StaleBucket.objects.filter(span.rows(StaleBucket)).delete()
    except BaseException:
        with transaction.atomic():
            _drop_fresh_tables(fresh)
        raise
    return rows


def _fill_streams(
    snapshot: str, span: _Span, fresh: Mapping[type[models.Model], str]
) -> tuple[int, dict[type[models.Model], list[str]]]:
    """Run ``_fill_stream`` of every ``_STREAMS`` entry in a thread of its own; returns the
    agent day rows and the renames of each table's indexes and constraints. The first error
    (or an interrupt of this thread) cancels the statement the other workers are running, and
    is raised once they have ended."""
    backends: dict[int, int] = {}
    with ThreadPoolExecutor(len(_STREAMS), thread_name_prefix="rebuild_all") as pool:
        futures = [
            pool.submit(
                _fill_stream,
                snapshot,
                span,
                {model: fresh[model] for model in stream},
                backends,
                n,
            )
            for n, stream in enumerate(_STREAMS)
        ]

        def cancel_running() -> None:
            with connection.cursor() as cursor:
                for n, future in enumerate(futures):
                    if not future.done() and n in backends:
                        cursor.execute("SELECT pg_cancel_backend(%s)", [backends[n]])

        try:
            done, running = wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:
            cancel_running()
            raise
        error = next((f.exception() for f in futures if f in done and f.exception()), None)
        if error is not None:
            cancel_running()
            wait(running)
            raise error
    rows = 0
    renames: dict[type[models.Model], list[str]] = {}
    for future in futures:
        stream_rows, stream_renames = future.result()
        rows += stream_rows
        renames.update(stream_renames)
    return rows, renames


def _fill_stream(
    snapshot: str,
    span: _Span,
    fresh: Mapping[type[models.Model], str],
    backends: dict[int, int],
    n: int,
) -> tuple[int, dict[type[models.Model], list[str]]]:
    """Fill, analyse and index the fresh tables ``fresh`` names, in one transaction on this
    thread's connection reading the raw rows as of ``snapshot`` (its backend's process id is
    left in ``backends[n]``, for a cancel); returns the agent day rows and the renames
    (``_index_fresh_tables``). Closes the thread's connection."""
    try:
        with _bulk_transaction(snapshot=snapshot):
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                (backends[n],) = cursor.fetchone()
            with _writing_into(fresh):
                with _raw_rows_read_once(span.start, span.end, tuple(fresh)):
                    rows = _write_rollups(span, into=tuple(fresh))
                analyze(*fresh)
            renames = _index_fresh_tables(fresh)
        return rows, renames
    finally:
        connection.close()


def _drop_fresh_tables(fresh: Mapping[type[models.Model], str]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {', '.join(map(_quote, fresh.values()))}")


def _write_rollups(span: _Span, into: Tables = _ROLLUP_TABLES) -> int:
    """Every rollup row of ``span`` (of the tables ``into`` names, which must hold every table
    their rows are summed from), into tables holding none of them: the agent day rows (and the
    checklist rows) from the raw rows of whole days, their weeks and months summed from them
    (the same statements the incremental runs use), the team duration day rows from the raw
    rows and their weeks and months from them, the team KPI rows from the agent rows, the
    15-minute team and site rows from the raw rows, and the team hour rows from the 15-minute
    team rows. Returns the agent day rows."""
    rows = _insert_days(span.days, into=into)
    _insert_team_durations(Grain.DAY, span.days, into=into)
    _analyze_fresh(into, KpiRollup, TeamAcwDurationRollup)
    summed = ((Grain.MONTH, span.months), (Grain.WEEK, span.weeks))
    for grain, buckets in summed:
        _insert_sums(grain, buckets, into=into)
        _insert_team_durations(grain, buckets, into=into)
    _insert_sums(Grain.DAY, span.days, agents=False, into=into)
    for grain, buckets in summed:
        _insert_sums(grain, buckets, agents=False, into=into)
    if TeamIntervalRollup in into:
        _insert_team_intervals([(span.start, span.end)])
    if TeamHourRollup in into:
        _analyze_fresh(into, TeamIntervalRollup)
        _insert_team_hours(Grain.DAY, span.days)
        _analyze_fresh(into, TeamHourRollup)
        for grain, buckets in summed:
            _insert_team_hours(grain, buckets)
    return rows


def _analyze_fresh(into: Tables, *models: type[models.Model]) -> None:
    """Statistics of the fresh tables being filled (of ``models``, those ``into`` names), for
    the next step that reads them: without them the month sums were planned as nested loops
    (120 days of agent duration months: 0.7 → 5 s). Tables rewritten in place keep usable
    statistics (one ``ANALYZE`` at the end)."""
    if _fresh_tables.get():
        _analyze_sample(*(_table(model) for model in models if model in into))


# Rows ``_analyze_sample`` reads per table: 300 × this statistics target.
SAMPLE_STATISTICS_TARGET = 10


def _analyze_sample(*tables: str) -> None:
    """``ANALYZE`` of these (quoted) tables from a small sample (3,000 rows instead of 30,000),
    for the steps of a rebuild that read them next: the plans only need their size and the
    rough spread of their bucket starts (the same plans as with the full sample, a tenth of the
    pages read). The tables that readers query are analysed in full at the end."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('default_statistics_target')")
        (target,) = cursor.fetchone()
        cursor.execute(
            "SELECT set_config('default_statistics_target', %s, true)",
            [str(SAMPLE_STATISTICS_TARGET)],
        )
        for table in tables:
            cursor.execute(f"ANALYZE {table}")
        cursor.execute("SELECT set_config('default_statistics_target', %s, true)", [target])


@contextmanager
def _bulk_transaction(*, repeatable_read: bool = False, snapshot: str = "") -> Iterator[None]:
    """A transaction for a bulk rewrite. On PostgreSQL: no wait for the commit to reach the
    disk (a crash loses at most a rebuild, which is run again), and memory for the large
    GROUP BYs and index builds instead of sorting on disk; at the repeatable read isolation
    level (``repeatable_read``: one snapshot for every statement), or reading as of the
    ``snapshot`` another one exported (``pg_export_snapshot``)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                if repeatable_read or snapshot:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                if snapshot:
                    # A statement without parameters: the identifier is a literal.
                    assert re.fullmatch(r"[0-9A-F-]+", snapshot), snapshot
                    cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                cursor.execute(
                    "SET LOCAL synchronous_commit = off; SET LOCAL work_mem = '128MB'; "
                    "SET LOCAL maintenance_work_mem = '256MB'"
                )
        yield


# --- Fresh tables (PostgreSQL) --------------------------------------------------------------


@contextmanager
def _writing_into(fresh: Mapping[type[models.Model], str]) -> Iterator[None]:
    """Point this module's SQL (``_table``) at the fresh tables ``fresh`` names."""
    token = _fresh_tables.set(fresh)
    try:
        yield
    finally:
        _fresh_tables.reset(token)


def _create_fresh_table(model: type[models.Model]) -> str:
    """An empty copy of ``model``'s table (columns, defaults, identity, checks) without its
    indexes and foreign keys; returns its name."""
    table = model._meta.db_table
    fresh = f"{table}_fresh"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {_quote(fresh)} (LIKE {_quote(table)} INCLUDING ALL EXCLUDING INDEXES)"
        )
    return fresh


def _index_fresh_tables(
    fresh: Mapping[type[models.Model], str],
) -> dict[type[models.Model], list[str]]:
    """Build on each fresh table the indexes and key constraints of its model's table, under
    temporary names; returns per model the statements that give them the table's own names
    (once the table is gone).

    The foreign keys come last, for every table at once, after locking the tables they
    reference (``SHARE ROW EXCLUSIVE``, as adding one does, until the commit; in one statement,
    in the same order on every connection): writes to the agents and teams wait for the
    commit from the first foreign key on, so not during the index builds, and a second
    connection of ``_rebuild_in_streams`` waits there for the first one's commit instead of
    taking one of the locks before it and deadlocking."""
    renames: dict[type[models.Model], list[str]] = {}
    foreign_keys: list[tuple[str, str]] = []
    with connection.cursor() as cursor:
        for model, table in fresh.items():
            renames[model] = []
            for statement, rename, referenced in _fresh_table_keys(cursor, model, table):
                if referenced:
                    foreign_keys.append((statement, referenced))
                else:
                    cursor.execute(statement)
                renames[model].append(rename)
        if foreign_keys:
            referenced_tables = sorted({referenced for _, referenced in foreign_keys})
            cursor.execute(f"LOCK TABLE {', '.join(referenced_tables)} IN SHARE ROW EXCLUSIVE MODE")
        for statement, _ in foreign_keys:
            cursor.execute(statement)
    return renames


def _fresh_table_keys(
    cursor: Any, model: type[models.Model], fresh: str
) -> list[tuple[str, str, str]]:
    """The statements that build on ``fresh`` the indexes and key constraints of ``model``'s
    table under temporary names, each with the one that renames it once the table is gone and
    (a foreign key) the table it references, else ``""``."""
    table = model._meta.db_table
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid), "
        "CASE WHEN contype = 'f' THEN confrelid::regclass::text ELSE '' END "
        "FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'x', 'f') "
        "ORDER BY contype = 'f', conname",
        [table],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
        "ORDER BY c.relname",
        [table],
    )
    indexes = cursor.fetchall()
    statements = []
    for n, (name, definition, referenced) in enumerate(constraints):
        temporary = f"{fresh}_{n}"
        statements.append(
            (
                f"ALTER TABLE {_quote(fresh)} ADD CONSTRAINT {_quote(temporary)} {definition}",
                f"ALTER TABLE {_quote(table)} RENAME CONSTRAINT {_quote(temporary)} "
                f"TO {_quote(name)}",
                referenced,
            )
        )
    for n, (name, definition) in enumerate(indexes, start=len(constraints)):
        temporary = f"{fresh}_{n}"
        head = _INDEX_HEAD.match(definition)
        assert head, definition
        statements.append(
            (
                f"{head[1]}{_quote(temporary)} ON {_quote(fresh)}{definition[head.end() :]}",
                f"ALTER INDEX {_quote(temporary)} RENAME TO {_quote(name)}",
                "",
            )
        )
    return statements


# "CREATE [UNIQUE] INDEX name ON [ONLY] schema.table" of ``pg_get_indexdef``.
_INDEX_HEAD = re.compile(r"^(CREATE (?:UNIQUE )?INDEX )\S+ ON (?:ONLY )?\S+")


def _swap_in(fresh: Mapping[type[models.Model], str], renames: Sequence[Sequence[str]]) -> None:
    """Replace each model's table with its fresh one, giving the fresh one the table's name, its
    indexes' and constraints' names (``renames``) and its identity sequence's name. The tables
    are locked in one statement first: a reader waits for the commit, then reads the new table.
    """
    names = [model._meta.db_table for model in fresh]
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {', '.join(map(_quote, names))} IN ACCESS EXCLUSIVE MODE")
        for name, table, statements in zip(names, fresh.values(), renames, strict=True):
            cursor.execute(
                "SELECT pg_get_serial_sequence(%s, 'id'), pg_get_serial_sequence(%s, 'id')",
                [_quote(name), _quote(table)],
            )
            old_sequence, sequence = cursor.fetchone()
            _check_foreign_keys_now(cursor, name)
            cursor.execute(f"DROP TABLE {_quote(name)}")
            cursor.execute(f"ALTER TABLE {_quote(table)} RENAME TO {_quote(name)}")
            for statement in statements:
                cursor.execute(statement)
            cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {_unqualified(old_sequence)}")


def _check_foreign_keys_now(cursor: Any, table: str) -> None:
    """Run the foreign-key checks still queued for ``table`` (rows an enclosing transaction
    wrote; they would run at the commit): a table with queued checks cannot be dropped."""
    cursor.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
        [_quote(table)],
    )
    names = [_quote(name) for (name,) in cursor.fetchall()]
    if names:
        cursor.execute(f"SET CONSTRAINTS {', '.join(names)} IMMEDIATE")


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _unqualified(sequence: str) -> str:
    """``schema.name`` (as ``pg_get_serial_sequence`` gives it) without its schema."""
    return sequence.rsplit(".", 1)[-1]


def refresh_stale_buckets(now: datetime | None = None, *, ended: bool = True) -> int:
    """Rewrite what ``StaleBucket`` lists: the team rows of 15-minute buckets from the raw rows,
    of day buckets from the agent rows (the duration rows from the raw rows), and (``ended``)
    the agent and team rows of weeks and months that have ended (by ``now``) from their day
    rows; returns how many buckets. Callers hold the ``rollups`` lock
    (or are ``compute_rollups``).

    The minute run leaves weeks and months to the daily close (``close_day``): a late change to
    the week or month that just ended (an ACW closed after midnight) would otherwise sum it
    again for every agent in every run that sees one: 7-12 s for a week, 8-18 s for a month at
    1,000 agents, where the run must stay under a second. Until then they are read as their
    days (and the weeks of a stale month as weeks)."""
    now = now or timezone.now()
    summed = (Grain.WEEK, Grain.MONTH) if ended else ()
    with transaction.atomic():
        stale = [
            (pk, grain, start)
            for pk, grain, start in StaleBucket.objects.values_list("pk", "grain", "bucket_start")
            if grain not in (Grain.WEEK, Grain.MONTH)
            or (grain in summed and bucket_end(grain, start) <= now)
        ]
        if not stale:
            return 0
        quarters = [start for _, grain, start in stale if grain == Grain.QUARTER]
        if quarters:
            TeamIntervalRollup.objects.filter(bucket_start__in=quarters).delete()
            SiteIntervalRollup.objects.filter(bucket_start__in=quarters).delete()
            _insert_team_intervals(joined_ranges((q, q + QUARTER) for q in quarters))
        days = [
            (s, bucket_end(Grain.DAY, s)) for _, g, s in sorted(stale, key=_start) if g == Grain.DAY
        ]
        if days:
            # In place: a day's team rows are mostly unchanged by the open interval.
            replacing = _TeamDays([s for s, _ in days])
            _insert_sums(Grain.DAY, days, agents=False, replacing=replacing)
            _insert_team_durations(Grain.DAY, days, replacing=replacing)
            _insert_team_hours(Grain.DAY, days, replacing=replacing)
        closing = [
            (g, (s, bucket_end(g, s))) for _, g, s in sorted(stale, key=_start) if g in summed
        ]
        for grain, bucket in closing:
            for model in (KpiRollup, TeamKpiRollup, TeamAcwDurationRollup, TeamHourRollup):
                model._default_manager.filter(grain=grain, bucket_start=bucket[0]).delete()
            _insert_sums(grain, [bucket])
            _insert_sums(grain, [bucket], agents=False)
            _insert_team_durations(grain, [bucket])
            _insert_team_hours(grain, [bucket])
        StaleBucket.objects.filter(pk__in=[pk for pk, *_ in stale]).delete()
    return len(stale)


def _start(stale: tuple[int, str, datetime]) -> datetime:
    return stale[2]


def rebuild_day(day: date, *, month: bool = True) -> int:
    """``rebuild_range`` of one site day."""
    return rebuild_range(day, day, months=month)


def analyze(*tables: type[models.Model]) -> None:
    """Fresh planner statistics for ``tables`` (default: the raw and rollup tables and the
    agents, teams and departments they join), on PostgreSQL, after a rebuild or a bulk load:
    with stale ones the planner picks plans made for nearly empty tables (a nested loop that
    scans a million rollup rows per site day; with teams never analysed, a loop over 111 teams
    through the team index, twice as slow as one pass over the year's day rows)."""
    if connection.vendor != "postgresql":
        return
    every = (Event, Interaction, HoldPeriod, AcwSession, Agent, Team, Department, *_ROLLUP_TABLES)
    with connection.cursor() as cursor:
        for model in tables or every:
            cursor.execute(f"ANALYZE {_table(model)}")


def close_day(day: date | None = None) -> int:
    """The daily close: recompute yesterday (site time zone) from the raw rows, as a safety net
    behind the dirty marks (e.g. after rows were repaired by hand), with its week and month;
    then sum every other ended week or month listed as stale (``refresh_stale_buckets``: the
    minute run leaves weeks to this)."""
    rows = rebuild_day(day or site_today() - timedelta(days=1))
    refresh_stale_buckets()
    return rows


def first_activity_day() -> date | None:
    """The site day of the first ended interaction (where a full rebuild starts)."""
    first = Interaction.objects.filter(ended_at__isnull=False).order_by("ended_at").first()
    return site_day(first.ended_at) if first and first.ended_at else None
