"""KPI rollups: the write side of the rollup tables.

``agents.services`` calls ``mark_dirty_rows()`` / ``mark_dirty_before_replay()`` in the
transaction that writes an agent's interactions and ACWs, under that agent's live-state row
lock, so every change to the raw rows leaves a ``DirtyInterval`` (agent × 15 minutes) behind.
``compute_rollups()`` (every minute) takes the same lock per agent, claims its marks and
recomputes exactly those intervals and their days; ``rebuild_day()`` recomputes a whole day from
the raw rows (the daily close, and ``manage.py rebuild_rollups``). Both are idempotent upserts.
"""

from __future__ import annotations

import logging
import operator
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from functools import reduce
from typing import Any

from django.db import transaction
from django.db.models import Min, Q, QuerySet

from agents.models import AgentState, Event, Interaction
from agents.states import Rows

from .models import DirtyInterval, Grain, KpiRollup
from .queries import (
    QUARTER,
    quarter_start,
    site_day,
    site_day_bounds,
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

_RAW_FIELDS = (
    "agent_id",
    "team_id",
    "channel",
    "ended_at",
    "talk_seconds",
    "hold_seconds",
    "acw__ended_at",
    "acw__duration_seconds",
    "acw__wrap_up_code",
    "acw__extensions",
    "acw__end_reason",
    "acw__overrun",
    "acw__too_short",
)


@dataclass
class Measures:
    """What a rollup row adds up. ACW measures count closed ACWs only (see ``KpiRollup``)."""

    interactions: int = 0
    talk_seconds: float = 0.0
    hold_seconds: float = 0.0
    acw_seconds: float = 0.0
    acw_count: int = 0
    extensions: int = 0
    timeouts: int = 0
    overruns: int = 0
    too_short: int = 0

    def add_interaction(self, row: dict[str, Any]) -> None:
        self.interactions += 1
        self.talk_seconds += row["talk_seconds"]
        self.hold_seconds += row["hold_seconds"]
        if row["acw__ended_at"] is not None:
            self.acw_seconds += row["acw__duration_seconds"] or 0.0
            self.acw_count += 1
            self.extensions += row["acw__extensions"] or 0
            self.timeouts += row["acw__end_reason"] == "timeout"
            self.overruns += bool(row["acw__overrun"])
            self.too_short += bool(row["acw__too_short"])

    def add(self, other: Measures | dict[str, Any]) -> None:
        for name in MEASURES:
            value = getattr(other, name) if isinstance(other, Measures) else other[name]
            setattr(self, name, getattr(self, name) + value)


MEASURES = tuple(f.name for f in fields(Measures))


def _aggregate(interactions: QuerySet[Interaction]) -> dict[RollupKey, Measures]:
    """15-minute measures of ended ``interactions``, per agent, team, channel and code."""
    out: dict[RollupKey, Measures] = defaultdict(Measures)
    for row in interactions.filter(ended_at__isnull=False).values(*_RAW_FIELDS).iterator():
        key = (
            quarter_start(row["ended_at"]),
            row["agent_id"],
            row["team_id"],
            row["channel"],
            row["acw__wrap_up_code"] or "",
        )
        out[key].add_interaction(row)
    return out


def _day_start(moment: datetime) -> datetime:
    day = site_day(moment)
    return site_day_bounds(day, day)[0]


def _sum_days(quarters: Iterable[tuple[RollupKey, Measures | dict[str, Any]]]) -> dict:
    days: dict[RollupKey, Measures] = defaultdict(Measures)
    for (bucket, *rest), measures in quarters:
        days[(_day_start(bucket), *rest)].add(measures)  # type: ignore[index]
    return days


def _bucket_end(grain: str, start: datetime) -> datetime:
    if grain == Grain.QUARTER:
        return start + QUARTER
    day = site_day(start)
    return site_day_bounds(day, day)[1]


def _replace_rollups(grain: str, scope: Q, fresh: dict[RollupKey, Measures]) -> None:
    """Make the ``grain`` rows inside ``scope`` exactly ``fresh``: upsert, delete the rest."""
    existing = KpiRollup.objects.filter(scope, grain=grain).values_list(
        "pk", "bucket_start", "agent_id", "team_id", "channel", "wrap_up_code"
    )
    stale = [pk for pk, *key in existing if tuple(key) not in fresh]
    if stale:
        KpiRollup.objects.filter(pk__in=stale).delete()
    KpiRollup.objects.bulk_create(
        [
            KpiRollup(
                grain=grain,
                bucket_start=bucket,
                bucket_end=_bucket_end(grain, bucket),
                agent_id=agent_id,
                team_id=team_id,
                channel=channel,
                wrap_up_code=code,
                **{name: getattr(measures, name) for name in MEASURES},
            )
            for (bucket, agent_id, team_id, channel, code), measures in fresh.items()
        ],
        batch_size=500,
        update_conflicts=True,
        unique_fields=["grain", "bucket_start", "agent", "team", "channel", "wrap_up_code"],
        update_fields=[*MEASURES, "bucket_end", "computed_at"],
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
    _replace_rollups(Grain.QUARTER, Q(agent_id=agent_id, bucket_start__in=buckets), _aggregate(raw))
    day_starts = sorted({_day_start(bucket) for bucket in buckets})
    in_days = reduce(
        operator.or_,
        [Q(bucket_start__gte=s, bucket_start__lt=_bucket_end(Grain.DAY, s)) for s in day_starts],
    )
    quarters = KpiRollup.objects.filter(in_days, grain=Grain.QUARTER, agent_id=agent_id).values(
        "bucket_start", "agent_id", "team_id", "channel", "wrap_up_code", *MEASURES
    )
    days = _sum_days(
        ((r["bucket_start"], r["agent_id"], r["team_id"], r["channel"], r["wrap_up_code"]), r)
        for r in quarters
    )
    _replace_rollups(Grain.DAY, Q(agent_id=agent_id, bucket_start__in=day_starts), days)


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


def rebuild_day(day: date) -> int:
    """Recompute every rollup of one site day from the raw rows; returns the 15-minute rows.

    Reads without agent locks: an event ingested meanwhile leaves its dirty mark (nothing here
    deletes marks), so the next ``compute_rollups()`` corrects whatever this wrote too early.
    Callers keep it from overlapping ``compute_rollups()`` (the ``rollups`` lock).
    """
    start, end = site_day_bounds(day, day)
    fresh = _aggregate(Interaction.objects.filter(ended_at__gte=start, ended_at__lt=end))
    with transaction.atomic():
        _replace_rollups(Grain.QUARTER, Q(bucket_start__gte=start, bucket_start__lt=end), fresh)
        _replace_rollups(Grain.DAY, Q(bucket_start=start), _sum_days(fresh.items()))
    return len(fresh)


def close_day(day: date | None = None) -> int:
    """The daily close: recompute yesterday (site time zone) from the raw rows, as a safety net
    behind the dirty marks (e.g. after rows were repaired by hand)."""
    return rebuild_day(day or site_today() - timedelta(days=1))


def first_activity_day() -> date | None:
    """The site day of the first ended interaction (where a full rebuild starts)."""
    first = Interaction.objects.filter(ended_at__isnull=False).order_by("ended_at").first()
    return site_day(first.ended_at) if first and first.ended_at else None
