"""KPI rollups: the write side of the rollup tables.

``agents.services`` calls ``mark_dirty_rows()`` / ``mark_dirty_before_replay()`` in the
transaction that writes an agent's interactions and ACWs, under that agent's live-state row
lock, so every change to the raw rows leaves a ``DirtyInterval`` (agent × 15 minutes) behind.
``compute_rollups()`` (every minute) takes the same lock per agent, claims its marks and
recomputes exactly those intervals, their days and their months; ``rebuild_range()`` recomputes
whole site days (and their months) from the raw rows with set-based SQL (``INSERT ... SELECT ...
GROUP BY``: the daily close, ``manage.py rebuild_rollups``, ``manage.py seed_history``). All are
idempotent. Two tables share the keys and grains: ``KpiRollup`` (the KPI sums) and
``AcwDurationRollup`` (how many ACWs lasted each whole number of seconds).

The team tables (``TeamKpiRollup``: days and months per team, channel and code;
``TeamIntervalRollup``: 15 minutes per team and channel) are sums of the agent rows. Whatever
rewrites agent rows marks their buckets in ``StaleTeamBucket`` in the same transaction, and
``refresh_team_buckets()`` rewrites those team rows from the agent rows (at the end of every
``compute_rollups()`` run); readers use a team bucket only when it is neither stale nor dirty.
"""

from __future__ import annotations

import logging
import operator
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache, reduce
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Min, Q, QuerySet, Sum
from django.utils import timezone

from agents.models import AcwSession, AgentState, Event, HoldPeriod, Interaction
from agents.states import Rows

from .models import (
    AcwDurationRollup,
    DirtyInterval,
    Grain,
    KpiRollup,
    StaleTeamBucket,
    TeamIntervalRollup,
    TeamKpiRollup,
)
from .queries import (
    MEASURES,
    QUARTER,
    RAW_FIELDS,
    Measures,
    acw_whole_seconds,
    quarter_start,
    site_day,
    site_day_bounds,
    site_month_bounds,
    site_today,
)

logger = logging.getLogger(__name__)


# --- Dirty intervals ------------------------------------------------------------------------


def mark_dirty(agent_id: int, moments: Iterable[datetime | None]) -> None:
    """Mark the agent's 15-minute intervals holding ``moments`` for the next rollup run.

    Called on every raw write, so it is one ``INSERT ... ON CONFLICT DO NOTHING`` at most, and
    no query when nothing ended.
    """
    buckets = {quarter_start(moment) for moment in moments if moment is not None}
    if buckets:
        DirtyInterval.objects.bulk_create(
            [DirtyInterval(agent_id=agent_id, bucket_start=bucket) for bucket in buckets],
            ignore_conflicts=True,
        )


def mark_dirty_rows(agent_id: int, rows: Rows) -> None:
    """The intervals of the interactions that ended and the ACWs a projection wrote.

    An interaction counts in the interval it ended in, and its ACW (which starts at that end)
    counts there too.
    """
    mark_dirty(
        agent_id,
        [
            *(row.ended_at for row in rows.interactions.values()),
            *(row.started_at for row in rows.acws.values()),
        ],
    )


def mark_dirty_before_replay(event_keys: Iterable[int]) -> None:
    """Before a late event's replay deletes and rewrites rows: mark where they counted so far.

    A replay from time t can only move interaction ends that are at or after t, so marking every
    interval of the agent's interactions that ended since t covers the rows it deletes and the
    ones whose end it moves; the rewritten rows are marked by ``mark_dirty_rows``.
    """
    firsts = (
        Event.objects.filter(pk__in=list(event_keys))
        .values("agent_id")
        .annotate(first=Min("occurred_at"))
        .order_by()
    )
    for row in firsts:
        ended = Interaction.objects.filter(agent_id=row["agent_id"], ended_at__gte=row["first"])
        mark_dirty(row["agent_id"], ended.values_list("ended_at", flat=True))


# --- Rollups --------------------------------------------------------------------------------

RollupKey = tuple[datetime, int, int, str, str]
"""(bucket start, agent id, team id, channel, wrap-up code)."""

DurationKey = tuple[datetime, int, int, str, int]
"""(bucket start, agent id, team id, channel, whole seconds of ACW)."""


@dataclass
class Fresh:
    """Rollup rows computed from raw rows, for both rollup tables."""

    measures: dict[RollupKey, Measures] = field(default_factory=lambda: defaultdict(Measures))
    durations: dict[DurationKey, int] = field(default_factory=lambda: defaultdict(int))


def aggregate(interactions: QuerySet[Interaction]) -> Fresh:
    """15-minute measures and ACW durations of ended ``interactions``."""
    out = Fresh()
    for row in interactions.filter(ended_at__isnull=False).values(*RAW_FIELDS).iterator():
        bucket = quarter_start(row["ended_at"])
        agent_team_channel = (row["agent_id"], row["team_id"], row["channel"])
        out.measures[(bucket, *agent_team_channel, row["acw__wrap_up_code"] or "")].add_interaction(
            row
        )
        seconds = acw_whole_seconds(row)
        if seconds is not None:
            out.durations[(bucket, *agent_team_channel, seconds)] += 1
    return out


def _day_start(moment: datetime) -> datetime:
    return _day_start_in(moment, settings.TIME_ZONE)


@lru_cache(maxsize=4096)
def _day_start_in(moment: datetime, time_zone: str) -> datetime:
    # Cached: a day's worth of rollup keys asks for the same few 15-minute buckets thousands
    # of times. The time zone is part of the key (tests change it).
    day = site_day(moment)
    return site_day_bounds(day, day)[0]


def sum_days(quarters: Fresh) -> Fresh:
    days = Fresh()
    for (bucket, *rest), measures in quarters.measures.items():
        days.measures[(_day_start(bucket), *rest)].add(measures)  # type: ignore[index]
    for (bucket, *rest), count in quarters.durations.items():
        days.durations[(_day_start(bucket), *rest)] += count  # type: ignore[index]
    return days


def bucket_end(grain: str, start: datetime) -> datetime:
    if grain == Grain.QUARTER:
        return start + QUARTER
    if grain == Grain.MONTH:
        return site_month_bounds(site_day(start))[1]
    day = site_day(start)
    return site_day_bounds(day, day)[1]


def _month_rollups(month_start: datetime, scope: Q) -> Fresh:
    """The month rows starting at ``month_start`` inside ``scope``: sums of their day rows
    (added up by the database: a month of a whole site is tens of thousands of day rows)."""
    in_month = Q(
        scope,
        grain=Grain.DAY,
        bucket_start__gte=month_start,
        bucket_start__lt=bucket_end(Grain.MONTH, month_start),
    )
    fresh = Fresh()
    keys = ("agent_id", "team_id", "channel")
    sums = {f"s_{name}": Sum(name) for name in MEASURES}  # (a field's own name is taken)
    for r in KpiRollup.objects.filter(in_month).values(*keys, "wrap_up_code").annotate(**sums):
        fresh.measures[
            (month_start, r["agent_id"], r["team_id"], r["channel"], r["wrap_up_code"])
        ].add({name: r[f"s_{name}"] for name in MEASURES})
    durations = (
        AcwDurationRollup.objects.filter(in_month)
        .values(*keys, "seconds")
        .annotate(n=Sum("count"))
        .values_list(*keys, "seconds", "n")
    )
    for agent, team, channel, seconds, n in durations:
        fresh.durations[(month_start, agent, team, channel, seconds)] = n
    return fresh


def rebuild_month(day: date, agent_id: int | None = None) -> None:
    """Recompute the month rows of the site month holding ``day`` from its day rows (of one
    agent, or of all)."""
    month_start = site_month_bounds(day)[0]
    scope = Q(agent_id=agent_id) if agent_id is not None else Q()
    _replace_rollups(
        Grain.MONTH, Q(scope, bucket_start=month_start), _month_rollups(month_start, scope)
    )


_KEY_FIELDS = ("bucket_start", "agent_id", "team_id", "channel")


def _replace(
    model: type[models.Model],
    grain: str,
    scope: Q,
    keys: Sequence[str],
    fresh: Mapping[tuple[Any, ...], Mapping[str, Any]],
) -> None:
    """Make ``model``'s ``grain`` rows inside ``scope`` exactly ``fresh`` ({values of ``keys``
    (the first is ``bucket_start``): values of the other fields}): delete the rest, upsert."""
    existing = model._default_manager.filter(scope, grain=grain).values_list("pk", *keys)
    stale = [pk for pk, *key in existing if tuple(key) not in fresh]
    if stale:
        model._default_manager.filter(pk__in=stale).delete()
    if not fresh:
        return
    values = list(next(iter(fresh.values())))
    updated = [*values, "bucket_end"]
    if any(f.name == "computed_at" for f in model._meta.concrete_fields):
        updated.append("computed_at")
    model._default_manager.bulk_create(
        [
            model(
                grain=grain,
                bucket_end=bucket_end(grain, key[0]),
                **dict(zip(keys, key, strict=True)),
                **row,
            )
            for key, row in fresh.items()
        ],
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["grain", *keys],
        update_fields=updated,
    )


def _replace_rollups(grain: str, scope: Q, fresh: Fresh) -> None:
    """Make the ``grain`` rows of both agent tables inside ``scope`` exactly ``fresh``."""
    _replace(
        KpiRollup,
        grain,
        scope,
        (*_KEY_FIELDS, "wrap_up_code"),
        {key: {name: getattr(m, name) for name in MEASURES} for key, m in fresh.measures.items()},
    )
    _replace(
        AcwDurationRollup,
        grain,
        scope,
        (*_KEY_FIELDS, "seconds"),
        {key: {"count": n} for key, n in fresh.durations.items()},
    )


def _merge(buckets: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Adjacent 15-minute intervals as ranges (fewer ORs in the raw query)."""
    ranges: list[tuple[datetime, datetime]] = []
    for bucket in sorted(buckets):
        if ranges and ranges[-1][1] == bucket:
            ranges[-1] = (ranges[-1][0], bucket + QUARTER)
        else:
            ranges.append((bucket, bucket + QUARTER))
    return ranges


def _recompute_agent(agent_id: int, buckets: list[datetime]) -> None:
    ranges = [Q(ended_at__gte=s, ended_at__lt=e) for s, e in _merge(buckets)]
    raw = Interaction.objects.filter(reduce(operator.or_, ranges), agent_id=agent_id)
    _replace_rollups(Grain.QUARTER, Q(agent_id=agent_id, bucket_start__in=buckets), aggregate(raw))
    day_starts = sorted({_day_start(bucket) for bucket in buckets})
    in_days = reduce(
        operator.or_,
        [Q(bucket_start__gte=s, bucket_start__lt=bucket_end(Grain.DAY, s)) for s in day_starts],
    )
    # The days are sums of their (just updated) 15-minute rows.
    quarters = Fresh()
    for r in KpiRollup.objects.filter(in_days, grain=Grain.QUARTER, agent_id=agent_id).values(
        *_KEY_FIELDS, "wrap_up_code", *MEASURES
    ):
        quarters.measures[
            (r["bucket_start"], r["agent_id"], r["team_id"], r["channel"], r["wrap_up_code"])
        ].add(r)
    for bucket, agent, team, channel, seconds, count in AcwDurationRollup.objects.filter(
        in_days, grain=Grain.QUARTER, agent_id=agent_id
    ).values_list(*_KEY_FIELDS, "seconds", "count"):
        quarters.durations[(bucket, agent, team, channel, seconds)] += count
    _replace_rollups(
        Grain.DAY, Q(agent_id=agent_id, bucket_start__in=day_starts), sum_days(quarters)
    )
    months = sorted({site_month_bounds(site_day(s))[0] for s in day_starts})
    for month in months:
        rebuild_month(site_day(month), agent_id)
    _mark_team_stale(
        [
            *((Grain.QUARTER, b) for b in buckets),
            *((Grain.DAY, d) for d in day_starts),
            *((Grain.MONTH, m) for m in months),
        ]
    )


def _mark_team_stale(buckets: Iterable[tuple[str, datetime]]) -> None:
    StaleTeamBucket.objects.bulk_create(
        [StaleTeamBucket(grain=grain, bucket_start=start) for grain, start in buckets],
        ignore_conflicts=True,
    )


def compute_rollups() -> int:
    """Recompute every dirty interval (and its day); returns how many intervals it recomputed.

    One transaction per agent, holding the agent's live-state row lock: every raw write of that
    agent holds the same lock and marks its intervals in its own transaction, so no change can
    slip in between claiming the marks and reading the raw rows. Then the team rows of the
    buckets it changed (``refresh_team_buckets``).
    """
    done = 0
    agent_ids = list(DirtyInterval.objects.values_list("agent_id", flat=True).distinct().order_by())
    for agent_id in agent_ids:
        with transaction.atomic():
            AgentState.objects.select_for_update().filter(agent_id=agent_id).exists()
            marks = DirtyInterval.objects.filter(agent_id=agent_id)
            buckets = sorted(set(marks.values_list("bucket_start", flat=True)))
            if not buckets:
                continue
            marks.delete()
            _recompute_agent(agent_id, buckets)
            done += len(buckets)
    refresh_team_buckets()
    return done


# --- Set-based SQL --------------------------------------------------------------------------
#
# The same sums as ``aggregate`` / ``Measures.add_interaction``, computed by the database: a
# year of a whole site is rebuilt in a few statements instead of a Python loop per row.

_VENDOR_SQL = {
    "postgresql": {
        "quarter": "to_timestamp(floor(extract(epoch FROM {0}) / 900) * 900)",
        "plus_quarter": "({0} + interval '15 minutes')",
        "whole_seconds": "GREATEST(0, floor({0}))::integer",
    },
    "sqlite": {
        "quarter": "datetime((CAST(strftime('%%s', {0}) AS INTEGER) / 900) * 900, 'unixepoch')",
        "plus_quarter": "datetime({0}, '+15 minutes')",
        "whole_seconds": "MAX(0, CAST({0} AS INTEGER))",
    },
}


def _sql(name: str, operand: str) -> str:
    return _VENDOR_SQL[connection.vendor][name].format(operand)


_CLOSED = "a.ended_at IS NOT NULL"
# Per measure: its sum over ended interactions ``i`` left-joined to their ACW ``a``.
_RAW_SUMS = {
    "interactions": "COUNT(*)",
    "talk_seconds": "SUM(i.talk_seconds)",
    "hold_seconds": "SUM(i.hold_seconds)",
    "acw_seconds": f"SUM(CASE WHEN {_CLOSED} THEN COALESCE(a.duration_seconds, 0) ELSE 0 END)",
    "acw_count": f"SUM(CASE WHEN {_CLOSED} THEN 1 ELSE 0 END)",
    "extensions": f"SUM(CASE WHEN {_CLOSED} THEN COALESCE(a.extensions, 0) ELSE 0 END)",
    "extended": f"SUM(CASE WHEN {_CLOSED} AND a.extensions > 0 THEN 1 ELSE 0 END)",
    "timeouts": f"SUM(CASE WHEN {_CLOSED} AND a.end_reason = 'timeout' THEN 1 ELSE 0 END)",
    "overruns": f"SUM(CASE WHEN {_CLOSED} AND a.overrun THEN 1 ELSE 0 END)",
    "too_short": f"SUM(CASE WHEN {_CLOSED} AND a.too_short THEN 1 ELSE 0 END)",
}
assert tuple(_RAW_SUMS) == MEASURES


def _table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _db(moment: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(moment)


def _execute(sql: str, params: Sequence[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _calendar(bounds: Sequence[tuple[datetime, datetime]]) -> tuple[str, list[Any]]:
    """A derived table ``c(b_start, b_end)`` of buckets (site days or months): their ends are
    not a fixed length in UTC, so they come from Python, not from SQL arithmetic."""
    selects = " UNION ALL ".join(["SELECT %s AS b_start, %s AS b_end"] * len(bounds))
    return f"({selects}) c", [_db(moment) for pair in bounds for moment in pair]


def _insert_quarters(start: datetime, end: datetime) -> int:
    """Both agent tables' 15-minute rows of the interactions that ended in [start, end)."""
    interaction, acw = _table(Interaction), _table(AcwSession)
    bucket = _sql("quarter", "i.ended_at")
    keys = f"{bucket}, i.agent_id, i.team_id, i.channel"
    code = "COALESCE(a.wrap_up_code, '')"
    measures = ", ".join(_RAW_SUMS.values())
    now = _db(timezone.now())
    rows = _execute(
        f"INSERT INTO {_table(KpiRollup)} (grain, bucket_start, agent_id, team_id, channel, "
        f"wrap_up_code, {', '.join(MEASURES)}, bucket_end, computed_at) "
        f"SELECT %s, {keys}, {code}, {measures}, {_sql('plus_quarter', bucket)}, %s "
        f"FROM {interaction} i LEFT JOIN {acw} a ON a.interaction_id = i.id "
        "WHERE i.ended_at >= %s AND i.ended_at < %s "
        f"GROUP BY {keys}, {code}",
        [Grain.QUARTER, now, _db(start), _db(end)],
    )
    seconds = _sql("whole_seconds", "a.duration_seconds")
    _execute(
        f"INSERT INTO {_table(AcwDurationRollup)} (grain, bucket_start, agent_id, team_id, "
        f"channel, seconds, count, bucket_end) "
        f"SELECT %s, {keys}, {seconds}, COUNT(*), {_sql('plus_quarter', bucket)} "
        f"FROM {interaction} i JOIN {acw} a ON a.interaction_id = i.id "
        "WHERE i.ended_at >= %s AND i.ended_at < %s "
        "AND a.ended_at IS NOT NULL AND a.duration_seconds IS NOT NULL "
        f"GROUP BY {keys}, {seconds}",
        [Grain.QUARTER, _db(start), _db(end)],
    )
    return rows


def _insert_sums(
    source: str, target: str, bounds: Sequence[tuple[datetime, datetime]], *, agents: bool = True
) -> None:
    """The ``target`` grain rows of ``bounds`` (buckets), as sums of the ``source`` grain rows
    inside them: of both agent tables, or (``agents=False``) of the team day/month table."""
    if not bounds:
        return
    calendar, calendar_params = _calendar(bounds)
    where = "k.grain = %s AND k.bucket_start >= %s AND k.bucket_start < %s"
    params = [*calendar_params, source, _db(bounds[0][0]), _db(bounds[-1][1])]
    join = calendar + " JOIN {} k ON k.bucket_start >= c.b_start AND k.bucket_start < c.b_end"
    sums = ", ".join(f"SUM(k.{name})" for name in MEASURES)
    now = _db(timezone.now())
    who = "k.agent_id, k.team_id" if agents else "k.team_id"
    out = _table(KpiRollup if agents else TeamKpiRollup)
    _execute(
        f"INSERT INTO {out} (grain, bucket_start, bucket_end, {who.replace('k.', '')}, channel, "
        f"wrap_up_code, {', '.join(MEASURES)}, computed_at) "
        f"SELECT %s, c.b_start, c.b_end, {who}, k.channel, k.wrap_up_code, {sums}, %s "
        f"FROM {join.format(_table(KpiRollup))} WHERE {where} "
        f"GROUP BY c.b_start, c.b_end, {who}, k.channel, k.wrap_up_code",
        [target, now, *params],
    )
    if agents:
        _execute(
            f"INSERT INTO {_table(AcwDurationRollup)} (grain, bucket_start, bucket_end, "
            "agent_id, team_id, channel, seconds, count) "
            "SELECT %s, c.b_start, c.b_end, k.agent_id, k.team_id, k.channel, k.seconds, "
            f"SUM(k.count) FROM {join.format(_table(AcwDurationRollup))} WHERE {where} "
            "GROUP BY c.b_start, c.b_end, k.agent_id, k.team_id, k.channel, k.seconds",
            [target, *params],
        )


def _insert_team_intervals(where: str, params: Sequence[Any]) -> None:
    sums = ", ".join(f"SUM(k.{name})" for name in MEASURES)
    _execute(
        f"INSERT INTO {_table(TeamIntervalRollup)} (bucket_start, team_id, channel, "
        f"{', '.join(MEASURES)}, computed_at) "
        f"SELECT k.bucket_start, k.team_id, k.channel, {sums}, %s FROM {_table(KpiRollup)} k "
        f"WHERE k.grain = %s AND {where} GROUP BY k.bucket_start, k.team_id, k.channel",
        [_db(timezone.now()), Grain.QUARTER, *params],
    )


def _day_bounds(first: date, last: date) -> list[tuple[datetime, datetime]]:
    return [
        site_day_bounds(first + timedelta(days=n), first + timedelta(days=n))
        for n in range((last - first).days + 1)
    ]


def _month_bounds(first: date, last: date) -> list[tuple[datetime, datetime]]:
    out = [site_month_bounds(first)]
    while out[-1][1] < site_day_bounds(last, last)[1]:
        out.append(site_month_bounds(site_day(out[-1][1])))
    return out


def rebuild_range(first: date, last: date, *, months: bool = True) -> int:
    """Recompute every rollup of the site days ``first`` to ``last`` from the raw rows, and
    (``months``) the month rows of the months they touch (sums of their day rows); returns the
    15-minute rows written. Set-based: a few statements whatever the length of the range.

    Reads without agent locks: an event ingested meanwhile leaves its dirty mark (nothing here
    deletes marks), so the next ``compute_rollups()`` corrects whatever this wrote too early.
    Callers keep it from overlapping ``compute_rollups()`` (the ``rollups`` lock).
    """
    start, end = site_day_bounds(first, last)
    days = _day_bounds(first, last)
    in_range = Q(bucket_start__gte=start, bucket_start__lt=end)
    with transaction.atomic():
        for model in (KpiRollup, AcwDurationRollup):
            model._default_manager.filter(in_range, grain__in=[Grain.QUARTER, Grain.DAY]).delete()
        rows = _insert_quarters(start, end)
        _insert_sums(Grain.QUARTER, Grain.DAY, days)
        month_bounds = _month_bounds(first, last) if months else []
        if month_bounds:
            in_months = Q(
                bucket_start__gte=month_bounds[0][0], bucket_start__lt=month_bounds[-1][1]
            )
            for model in (KpiRollup, AcwDurationRollup):
                model._default_manager.filter(in_months, grain=Grain.MONTH).delete()
            _insert_sums(Grain.DAY, Grain.MONTH, month_bounds)
        _rebuild_team_rows(start, end, days, month_bounds)
    return rows


def _rebuild_team_rows(
    start: datetime,
    end: datetime,
    days: Sequence[tuple[datetime, datetime]],
    months: Sequence[tuple[datetime, datetime]],
) -> None:
    in_range = Q(bucket_start__gte=start, bucket_start__lt=end)
    TeamIntervalRollup.objects.filter(in_range).delete()
    _insert_team_intervals("k.bucket_start >= %s AND k.bucket_start < %s", [_db(start), _db(end)])
    TeamKpiRollup.objects.filter(in_range, grain=Grain.DAY).delete()
    _insert_sums(Grain.DAY, Grain.DAY, days, agents=False)
    stale = StaleTeamBucket.objects.filter(in_range, grain__in=[Grain.QUARTER, Grain.DAY])
    if months:
        in_months = Q(bucket_start__gte=months[0][0], bucket_start__lt=months[-1][1])
        TeamKpiRollup.objects.filter(in_months, grain=Grain.MONTH).delete()
        _insert_sums(Grain.MONTH, Grain.MONTH, months, agents=False)
        stale |= StaleTeamBucket.objects.filter(in_months, grain=Grain.MONTH)
    stale.delete()


def refresh_team_buckets() -> int:
    """Rewrite the team rows of every bucket in ``StaleTeamBucket`` from the agent rows;
    returns how many buckets. Callers hold the ``rollups`` lock (or are ``compute_rollups``)."""
    with transaction.atomic():
        stale = list(StaleTeamBucket.objects.values_list("pk", "grain", "bucket_start"))
        if not stale:
            return 0
        quarters = [start for _, grain, start in stale if grain == Grain.QUARTER]
        if quarters:
            TeamIntervalRollup.objects.filter(bucket_start__in=quarters).delete()
            holes = ", ".join(["%s"] * len(quarters))
            _insert_team_intervals(f"k.bucket_start IN ({holes})", [_db(q) for q in quarters])
        for grain in (Grain.DAY, Grain.MONTH):
            starts = sorted(start for _, g, start in stale if g == grain)
            if starts:
                TeamKpiRollup.objects.filter(grain=grain, bucket_start__in=starts).delete()
                bounds = [(s, bucket_end(grain, s)) for s in starts]
                _insert_sums(grain, grain, bounds, agents=False)
        StaleTeamBucket.objects.filter(pk__in=[pk for pk, *_ in stale]).delete()
    return len(stale)


def rebuild_day(day: date, *, month: bool = True) -> int:
    """``rebuild_range`` of one site day."""
    return rebuild_range(day, day, months=month)


def analyze() -> None:
    """Fresh planner statistics for the raw and rollup tables (PostgreSQL), after a rebuild or
    a bulk load: with stale ones the planner picks plans made for nearly empty tables."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for model in (
            Event,
            Interaction,
            HoldPeriod,
            AcwSession,
            KpiRollup,
            AcwDurationRollup,
            TeamKpiRollup,
            TeamIntervalRollup,
        ):
            cursor.execute(f"ANALYZE {_table(model)}")


def close_day(day: date | None = None) -> int:
    """The daily close: recompute yesterday (site time zone) from the raw rows, as a safety net
    behind the dirty marks (e.g. after rows were repaired by hand)."""
    return rebuild_day(day or site_today() - timedelta(days=1))


def first_activity_day() -> date | None:
    """The site day of the first ended interaction (where a full rebuild starts)."""
    first = Interaction.objects.filter(ended_at__isnull=False).order_by("ended_at").first()
    return site_day(first.ended_at) if first and first.ended_at else None
