"""KPI rollups: the write side of the rollup tables.

``agents.services`` calls ``mark_dirty_rows()`` / ``mark_dirty_before_replay()`` in the
transaction that writes an agent's interactions and ACWs, under that agent's live-state row
lock, so every change to the raw rows leaves a ``DirtyInterval`` (agent × 15 minutes) behind.
``compute_rollups()`` (every minute) takes the same lock per agent, claims its marks and
recomputes exactly those intervals, their days and their months; ``rebuild_day()`` recomputes a
whole day (and its month) from the raw rows (the daily close, and ``manage.py rebuild_rollups``).
All are idempotent upserts. Two tables share the keys and grains: ``KpiRollup`` (the KPI sums)
and ``AcwDurationRollup`` (how many ACWs lasted each whole number of seconds).
"""

from __future__ import annotations

import logging
import operator
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache, reduce

from django.conf import settings
from django.db import transaction
from django.db.models import Min, Q, QuerySet, Sum

from agents.models import AgentState, Event, Interaction
from agents.states import Rows

from .models import AcwDurationRollup, DirtyInterval, Grain, KpiRollup
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
    """Mark the agent's 15-minute intervals holding ``moments`` for the next rollup run."""
    _mark_dirty_many((agent_id, moment) for moment in moments)


def _mark_dirty_many(marks: Iterable[tuple[int, datetime | None]]) -> None:
    """Called on every raw write, so it is one ``INSERT ... ON CONFLICT DO NOTHING`` at most
    (for any number of agents), and no query when nothing ended."""
    buckets = {
        (agent_id, quarter_start(moment)) for agent_id, moment in marks if moment is not None
    }
    if buckets:
        DirtyInterval.objects.bulk_create(
            [
                DirtyInterval(agent_id=agent_id, bucket_start=bucket)
                for agent_id, bucket in sorted(buckets)
            ],
            ignore_conflicts=True,
        )


def mark_dirty_rows(agent_id: int, rows: Rows) -> None:
    """The intervals of the interactions that ended and the ACWs a projection wrote."""
    mark_dirty_rows_of([(agent_id, rows)])


def mark_dirty_rows_of(touched: Iterable[tuple[int, Rows]]) -> None:
    """``mark_dirty_rows`` for several agents' rows in one statement (a batch of events).

    An interaction counts in the interval it ended in, and its ACW (which starts at that end)
    counts there too.
    """
    _mark_dirty_many(
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
    ones whose end it moves; the rewritten rows are marked by ``mark_dirty_rows``. A replay that
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


def _replace_rollups(grain: str, scope: Q, fresh: Fresh) -> None:
    """Make the ``grain`` rows of both tables inside ``scope`` exactly ``fresh``: upsert, delete
    the rest."""
    existing = KpiRollup.objects.filter(scope, grain=grain).values_list(
        "pk", *_KEY_FIELDS, "wrap_up_code"
    )
    stale = [pk for pk, *key in existing if tuple(key) not in fresh.measures]
    if stale:
        KpiRollup.objects.filter(pk__in=stale).delete()
    KpiRollup.objects.bulk_create(
        [
            KpiRollup(
                grain=grain,
                bucket_start=bucket,
                bucket_end=bucket_end(grain, bucket),
                agent_id=agent_id,
                team_id=team_id,
                channel=channel,
                wrap_up_code=code,
                **{name: getattr(measures, name) for name in MEASURES},
            )
            for (bucket, agent_id, team_id, channel, code), measures in fresh.measures.items()
        ],
        batch_size=500,
        update_conflicts=True,
        unique_fields=["grain", "bucket_start", "agent", "team", "channel", "wrap_up_code"],
        update_fields=[*MEASURES, "bucket_end", "computed_at"],
    )
    existing_durations = AcwDurationRollup.objects.filter(scope, grain=grain).values_list(
        "pk", *_KEY_FIELDS, "seconds"
    )
    stale = [pk for pk, *key in existing_durations if tuple(key) not in fresh.durations]
    if stale:
        AcwDurationRollup.objects.filter(pk__in=stale).delete()
    AcwDurationRollup.objects.bulk_create(
        [
            AcwDurationRollup(
                grain=grain,
                bucket_start=bucket,
                bucket_end=bucket_end(grain, bucket),
                agent_id=agent_id,
                team_id=team_id,
                channel=channel,
                seconds=seconds,
                count=count,
            )
            for (bucket, agent_id, team_id, channel, seconds), count in fresh.durations.items()
        ],
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["grain", "bucket_start", "agent", "team", "channel", "seconds"],
        update_fields=["count", "bucket_end"],
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
    for month in sorted({site_month_bounds(site_day(s))[0] for s in day_starts}):
        rebuild_month(site_day(month), agent_id)


def compute_rollups() -> int:
    """Recompute every dirty interval (and its day); returns how many intervals it recomputed.

    One transaction per agent, holding the agent's live-state row lock: every raw write of that
    agent holds the same lock and marks its intervals in its own transaction, so no change can
    slip in between claiming the marks and reading the raw rows.
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
    return done


def rebuild_day(day: date, *, month: bool = True) -> int:
    """Recompute every rollup of one site day from the raw rows, and (``month``) its month's
    rows; returns the 15-minute rows.

    Reads without agent locks: an event ingested meanwhile leaves its dirty mark (nothing here
    deletes marks), so the next ``compute_rollups()`` corrects whatever this wrote too early.
    Callers keep it from overlapping ``compute_rollups()`` (the ``rollups`` lock).
    """
    start, end = site_day_bounds(day, day)
    fresh = aggregate(Interaction.objects.filter(ended_at__gte=start, ended_at__lt=end))
    with transaction.atomic():
        _replace_rollups(Grain.QUARTER, Q(bucket_start__gte=start, bucket_start__lt=end), fresh)
        _replace_rollups(Grain.DAY, Q(bucket_start=start), sum_days(fresh))
        if month:
            rebuild_month(day)
    return len(fresh.measures)


def close_day(day: date | None = None) -> int:
    """The daily close: recompute yesterday (site time zone) from the raw rows, as a safety net
    behind the dirty marks (e.g. after rows were repaired by hand)."""
    return rebuild_day(day or site_today() - timedelta(days=1))


def first_activity_day() -> date | None:
    """The site day of the first ended interaction (where a full rebuild starts)."""
    first = Interaction.objects.filter(ended_at__isnull=False).order_by("ended_at").first()
    return site_day(first.ended_at) if first and first.ended_at else None
