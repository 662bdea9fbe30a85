"""KPI definitions (contract §4), each written once and used by the API, pages, alerts and exports.

An interaction counts in the period in which it ended, for the team its agent belonged to
when it ended (``Interaction.team``). ``acw_seconds`` is the time from the interaction's end to
the close of the ACW that followed it (``AcwSession.interaction``); an ACW still open counts the
time elapsed so far (at most to its deadline, where the system closes it).

``kpi_rows()`` reads the rollups (``reporting.models.KpiRollup``): day rows for whole site days in
the range, 15-minute rows for the rest, the raw rows for whatever the rollups cannot answer
exactly (intervals marked dirty since their last rollup, and range edges that are not on a
15-minute boundary), plus the open ACWs. ``kpi_rows_raw()`` computes the same figures from the
raw rows alone; it is the reference the rollups are tested against.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce
from typing import Any, Literal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from agents.models import AcwSession, Interaction

from .models import DirtyInterval, Grain, KpiRollup

GroupBy = Literal["agent", "team"]

QUARTER = timedelta(minutes=15)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Beyond this many raw ranges (a long backlog of dirty intervals, e.g. after the worker was
# down), one raw query over the whole period is cheaper than a huge OR of small ranges.
MAX_RAW_RANGES = 200


@dataclass
class KpiRow:
    key: str
    name: str
    interactions: int
    talk_seconds: float
    hold_seconds: float
    acw_seconds: float

    @property
    def handle_seconds(self) -> float:
        return self.talk_seconds + self.hold_seconds + self.acw_seconds

    @property
    def avg_acw_seconds(self) -> float:
        """Average ACW per interaction = acw_seconds / interactions (all handled interactions)."""
        return self.acw_seconds / self.interactions if self.interactions else 0.0

    @property
    def aht_seconds(self) -> float:
        """AHT = (talk + hold + ACW) / interactions."""
        return self.handle_seconds / self.interactions if self.interactions else 0.0

    @property
    def acw_share(self) -> float:
        """ACW share of handle time = ACW / (talk + hold + ACW)."""
        return self.acw_seconds / self.handle_seconds if self.handle_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "talk_seconds": round(self.talk_seconds, 3),
            "hold_seconds": round(self.hold_seconds, 3),
            "acw_seconds": round(self.acw_seconds, 3),
            "avg_acw_seconds": round(self.avg_acw_seconds, 3),
            "aht_seconds": round(self.aht_seconds, 3),
            "acw_share": round(self.acw_share, 4),
        }


# --- Intervals ------------------------------------------------------------------------------


def site_tz() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def site_day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[start of ``first``, start of the day after ``last``) in the site time zone."""
    tz = site_tz()
    start = datetime.combine(first, time.min, tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz)
    return start, end


def site_today(now: datetime | None = None) -> date:
    return timezone.localdate(now or timezone.now(), site_tz())


def site_day(moment: datetime) -> date:
    """The site-time-zone date of an instant."""
    return timezone.localdate(moment, site_tz())


def quarter_start(moment: datetime) -> datetime:
    """The start (UTC) of the 15-minute interval holding ``moment``.

    Every real time-zone offset is a multiple of 15 minutes, so these intervals also tile each
    site day exactly, and day rollups are sums of 15-minute ones.
    """
    seconds = (moment - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=seconds - seconds % QUARTER.total_seconds())


def quarter_ceil(moment: datetime) -> datetime:
    start = quarter_start(moment)
    return start if start == moment else start + QUARTER


def _first_midnight_at_or_after(moment: datetime) -> datetime:
    day = site_day(moment)
    midnight, next_midnight = site_day_bounds(day, day)
    return midnight if midnight == moment else next_midnight


def _last_midnight_at_or_before(moment: datetime) -> datetime:
    day = site_day(moment)
    return site_day_bounds(day, day)[0]


def open_acw_elapsed(started_at: datetime, deadline: datetime | None, now: datetime) -> float:
    """Seconds an ACW still open has lasted at ``now`` (the system closes it at its deadline)."""
    end = min(now, deadline) if deadline is not None else now
    return max(0.0, (end - started_at).total_seconds())


# --- KPI rows -------------------------------------------------------------------------------


def _keys(group_by: GroupBy, prefix: str = "") -> dict[str, F]:
    if group_by == "agent":
        return {"key": F(f"{prefix}agent__external_id"), "label": F(f"{prefix}agent__name")}
    return {"key": F(f"{prefix}team__name"), "label": F(f"{prefix}team__name")}


def _add(rows: dict[str, KpiRow], values: Iterable[dict[str, Any]]) -> None:
    for r in values:
        row = rows.get(r["key"])
        if row is None:
            row = rows[r["key"]] = KpiRow(r["key"], r["label"], 0, 0.0, 0.0, 0.0)
        row.interactions += r["n"] or 0
        row.talk_seconds += r["talk"] or 0.0
        row.hold_seconds += r["hold"] or 0.0
        row.acw_seconds += r["closed_acw"] or 0.0


def _raw_sums(interactions: QuerySet[Interaction], group_by: GroupBy) -> Iterable[dict[str, Any]]:
    """Interactions, talk, hold and closed-ACW seconds of ``interactions``, per key."""
    return (
        interactions.values(**_keys(group_by))
        .annotate(
            n=Count("id"),
            talk=Sum("talk_seconds"),
            hold=Sum("hold_seconds"),
            # duration_seconds is NULL while the ACW is open: open ACWs are added separately.
            closed_acw=Sum("acw__duration_seconds"),
        )
        .order_by()
    )


def _add_open_acws(
    rows: dict[str, KpiRow], interactions: QuerySet[Interaction], group_by: GroupBy, now: datetime
) -> None:
    key = "interaction__agent__external_id" if group_by == "agent" else "interaction__team__name"
    still_open = AcwSession.objects.filter(
        interaction__in=interactions, ended_at__isnull=True
    ).values_list(key, "started_at", "deadline")
    for row_key, started_at, deadline in still_open:
        # A row is missing only if its interaction ended after the rows were read.
        if row_key in rows:
            rows[row_key].acw_seconds += open_acw_elapsed(started_at, deadline, now)


def kpi_rows_raw(
    *,
    team_ids: Iterable[int],
    group_by: GroupBy,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> list[KpiRow]:
    """KPIs per agent or team for interactions that ended in [start, end), from raw rows only."""
    now = now or timezone.now()
    ended = Interaction.objects.filter(
        ended_at__gte=start, ended_at__lt=end, team_id__in=list(team_ids)
    )
    rows: dict[str, KpiRow] = {}
    _add(rows, _raw_sums(ended, group_by))
    _add_open_acws(rows, ended, group_by, now)
    return sorted(rows.values(), key=lambda row: row.key)


@contextmanager
def _consistent_read() -> Iterator[None]:
    """One snapshot for the several reads of a KPI query (PostgreSQL, outside a transaction).

    Without it a rollup run committing between two reads could make an interval count twice
    or not at all; inside a caller's transaction the caller decides.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


@dataclass(frozen=True)
class _Plan:
    """How a period is read: rollup segments per grain, and raw ranges for every agent."""

    day: tuple[datetime, datetime] | None
    quarters: list[tuple[datetime, datetime]]
    raw_edges: list[tuple[datetime, datetime]]


def _plan(start: datetime, end: datetime) -> _Plan:
    first, last = quarter_ceil(start), quarter_start(end)
    if first >= last:
        return _Plan(None, [], [(start, end)])
    edges = [r for r in ((start, first), (last, end)) if r[0] < r[1]]
    day_start, day_end = _first_midnight_at_or_after(first), _last_midnight_at_or_before(last)
    if day_start >= day_end:
        return _Plan(None, [(first, last)], edges)
    quarters = [r for r in ((first, day_start), (day_end, last)) if r[0] < r[1]]
    return _Plan((day_start, day_end), quarters, edges)


def _rollup_sums(
    grain: str, segment: tuple[datetime, datetime], team_ids: list[int], group_by: GroupBy
) -> Iterable[dict[str, Any]]:
    # A rollup row is used only if none of its agent's 15-minute intervals inside it is dirty.
    dirty = DirtyInterval.objects.filter(
        agent_id=OuterRef("agent_id"),
        bucket_start__gte=OuterRef("bucket_start"),
        bucket_start__lt=OuterRef("bucket_end"),
    )
    return (
        KpiRollup.objects.filter(
            grain=grain,
            bucket_start__gte=segment[0],
            bucket_start__lt=segment[1],
            team_id__in=team_ids,
        )
        .exclude(Exists(dirty))
        .values(**_keys(group_by))
        .annotate(
            n=Sum("interactions"),
            talk=Sum("talk_seconds"),
            hold=Sum("hold_seconds"),
            closed_acw=Sum("acw_seconds"),
        )
        .order_by()
    )


def _dirty_ranges(
    plan: _Plan, start: datetime, end: datetime
) -> list[tuple[int, datetime, datetime]]:
    """(agent, start, end) ranges the rollups cannot answer: dirty intervals, or their whole day
    where the day rollup would have been used."""
    ranges: set[tuple[int, datetime, datetime]] = set()
    dirty = DirtyInterval.objects.filter(
        bucket_start__gte=quarter_start(start), bucket_start__lt=end
    ).values_list("agent_id", "bucket_start")
    for agent_id, bucket in dirty:
        if plan.day and plan.day[0] <= bucket < plan.day[1]:
            day = site_day(bucket)
            ranges.add((agent_id, *site_day_bounds(day, day)))
        elif any(s <= bucket < e for s, e in plan.quarters):
            ranges.add((agent_id, bucket, bucket + QUARTER))
    return sorted(ranges)


def kpi_rows(
    *,
    team_ids: Iterable[int],
    group_by: GroupBy,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> list[KpiRow]:
    """KPIs per agent or team for interactions that ended in [start, end), exact up to ``now``.

    Same figures as ``kpi_rows_raw``, read mostly from the rollups (see the module docstring).
    """
    now = now or timezone.now()
    team_ids = list(team_ids)
    plan = _plan(start, end)
    rows: dict[str, KpiRow] = {}
    with _consistent_read():
        dirty = _dirty_ranges(plan, start, end)
        if len(dirty) > MAX_RAW_RANGES:
            return kpi_rows_raw(team_ids=team_ids, group_by=group_by, start=start, end=end, now=now)
        if plan.day:
            _add(rows, _rollup_sums(Grain.DAY, plan.day, team_ids, group_by))
        for segment in plan.quarters:
            _add(rows, _rollup_sums(Grain.QUARTER, segment, team_ids, group_by))
        raw = [Q(ended_at__gte=s, ended_at__lt=e) for s, e in plan.raw_edges] + [
            Q(agent_id=agent_id, ended_at__gte=s, ended_at__lt=e) for agent_id, s, e in dirty
        ]
        team_filter = Interaction.objects.filter(team_id__in=team_ids)
        if raw:
            _add(rows, _raw_sums(team_filter.filter(reduce(operator.or_, raw)), group_by))
        in_period = team_filter.filter(ended_at__gte=start, ended_at__lt=end)
        _add_open_acws(rows, in_period, group_by, now)
    return sorted(rows.values(), key=lambda row: row.key)
