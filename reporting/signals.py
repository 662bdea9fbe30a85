"""Reads of the coaching rollups (``CoachingRollup``, ``ChecklistRollup``) for the coaching list.

Exact up to ``now`` like ``queries.kpi_rows``: rollup rows where they are up to date, the SQL
that writes them (``rollups.coaching_day_sql`` / ``checklist_day_sql``) run on the raw rows of
the agent-days marked dirty, and the ACWs still open (period figures only: the recent-window
signals count closed ACWs). A bounded number of queries whatever the period or the number of
agents; the sums come back per agent × code × channel (period) or team × agent (recent window).
"""

from __future__ import annotations

import bisect
import json
import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import QuerySet, Sum

from agents.models import AcwSession, Interaction, Team

from . import queries, rollups
from .models import ChecklistRollup, CoachingRollup
from .queries import DirtyRange, KpiFilter, open_acw_elapsed, site_day, site_day_bounds

PERIOD_COLUMNS = (
    "interactions",
    "talk_seconds",
    "hold_seconds",
    "acw_seconds",
    "acw_count",
    "timeouts",
    "extended",
    "too_short",
    "durations",
    "duration_sum",
    "duration_squares",
)
"""What ``period_cells`` sums per cell, in this order."""
RECENT_COLUMNS = (
    "acw_count",
    "acw_seconds",
    "acw_squares",
    "long_count",
    "long_seconds",
    "long_squares",
    "late_count",
    "late_seconds",
    "late_squares",
)
"""What ``recent_sums`` sums per team and agent, in this order (closed ACWs only)."""

Cell = tuple[int, str, str]
"""(agent id, wrap-up code, channel)."""


@dataclass
class RecentSums:
    """The recent window's closed ACWs per (team, agent) (``RECENT_COLUMNS``) and the ticked
    checklist steps per (team, agent, step as stored) → (ticked, their ACW seconds)."""

    closed: dict[tuple[int, int], list[float]] = field(default_factory=dict)
    ticks: dict[tuple[int, int, str], list[float]] = field(default_factory=dict)


def period_cells(
    where: KpiFilter, first: date, last: date, now: datetime
) -> dict[Cell, list[float]]:
    """``PERIOD_COLUMNS`` per agent × wrap-up code × channel for the interactions that ended on
    the site days ``first`` to ``last``; an ACW still open counts as in ``kpi_rows``."""
    start, end = site_day_bounds(first, last)
    with queries.consistent_read():
        segments, dirty = queries.day_rollups(CoachingRollup, where, start, end, now)
        keys = ("agent_id", "wrap_up_code", "channel")
        cells: dict[Cell, list[float]] = {
            (agent, code, channel): values
            for agent, code, channel, *values in _summed(segments, keys, PERIOD_COLUMNS)
        }
        positions = [rollups.COACHING_MEASURES.index(name) for name in PERIOD_COLUMNS]
        for _, _team, agent, channel, code, measures in _raw_coaching(where, dirty):
            _add(cells, (agent, code, channel), [measures[i] for i in positions])
        _add_open_acws(cells, where, start, end, now)
    return cells


def recent_sums(where: KpiFilter, first: date, last: date, now: datetime) -> RecentSums:
    """``RECENT_COLUMNS`` per team × agent, and the ticked steps, for the closed ACWs of the
    interactions that ended on the site days ``first`` to ``last`` (day rows only)."""
    start, end = site_day_bounds(first, last)
    out = RecentSums()
    with queries.consistent_read():
        segments, dirty = queries.day_rollups(CoachingRollup, where, start, end, now, months=False)
        for team, agent, *values in _summed(segments, ("team_id", "agent_id"), RECENT_COLUMNS):
            out.closed[(team, agent)] = values
        positions = [rollups.COACHING_MEASURES.index(name) for name in RECENT_COLUMNS]
        for _, team, agent, _, _, measures in _raw_coaching(where, dirty):
            _add(out.closed, (team, agent), [measures[i] for i in positions])
        ticks = _up_to_date(ChecklistRollup.objects.filter(where.q()), start, end, dirty)
        for team, agent, step, *values in ticks.values_list("team_id", "agent_id", "step").annotate(
            Sum("ticked"), Sum("ticked_seconds")
        ):
            _add(out.ticks, (team, agent, step), values)
        for team, agent, step, values in _raw_checklist(where, dirty):
            _add(out.ticks, (team, agent, step), values)
    return out


def _summed(
    segments: list[QuerySet[Any]], keys: tuple[str, ...], columns: tuple[str, ...]
) -> list[tuple[Any, ...]]:
    """The ``columns`` of every segment's rows summed per ``keys``, in one statement, as the
    database driver returns them: tens of thousands of cells on a large site, where Django's
    per-value converters (none of which changes a sum of numbers) would cost more than the
    query."""
    if not segments:
        return []
    parts: list[str] = []
    params: list[Any] = []
    for rows in segments:
        sql, part_params = rows.values_list(*keys, *columns).query.sql_with_params()
        parts.append(sql)
        params += part_params
    sums = ", ".join(f"SUM(u.{name})" for name in columns)
    group = ", ".join(f"u.{key}" for key in keys)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {group}, {sums} FROM ({' UNION ALL '.join(parts)}) u GROUP BY {group}",
            params,
        )
        return cursor.fetchall()


def _add(into: dict[Any, list[float]], key: Any, values: Iterable[Any]) -> None:
    had = into.get(key)
    if had is None:
        into[key] = [v or 0 for v in values]
    else:
        into[key] = list(map(operator.add, had, (v or 0 for v in values)))


def _up_to_date(rows: Any, start: datetime, end: datetime, dirty: list[DirtyRange]) -> Any:
    """Day rows in [start, end) but those of the dirty agent-days."""
    rows = rows.filter(bucket_start__gte=start, bucket_start__lt=end)
    for (bucket, _), agents in queries.dirty_by_range(dirty).items():
        rows = rows.exclude(bucket_start=bucket, agent_id__in=agents)
    return rows.order_by()


def _dirty_days(dirty: list[DirtyRange]) -> list[tuple[datetime, datetime, int]]:
    """The site days of each dirty range (a day, or a month read as days), per agent."""
    out = []
    for agent, start, end in dirty:
        day = site_day(start)
        while (bounds := site_day_bounds(day, day))[0] < end:
            out.append((*bounds, agent))
            day += timedelta(days=1)
    return out


def _in_scope(where: KpiFilter) -> Any:
    """Whether a raw row's (team, agent, channel) matches ``where`` (its filters on the
    interaction's columns, and the department of its team)."""
    teams = set(where.team_ids)
    if where.department_ids is not None:
        teams &= set(
            Team.objects.filter(pk__in=teams, department_id__in=where.department_ids).values_list(
                "pk", flat=True
            )
        )
    agents = None if where.agent_ids is None else set(where.agent_ids)
    channels = None if where.channels is None else set(where.channels)

    def match(team: int, agent: int, channel: str) -> bool:
        return (
            team in teams
            and (agents is None or agent in agents)
            and (channels is None or channel in channels)
        )

    return match


def _raw_coaching(
    where: KpiFilter, dirty: list[DirtyRange]
) -> Iterator[tuple[datetime, int, int, str, str, tuple[Any, ...]]]:
    """(day start, team, agent, channel, code, ``COACHING_MEASURES``) of the dirty agent-days,
    computed from the raw rows by the SQL that writes the day rows (whole days: the splits
    depend on the agent's day), then narrowed to ``where``."""
    if not dirty:
        return
    match = _in_scope(where)
    sql, params = rollups.coaching_day_sql(_dirty_days(dirty))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for start, _, agent, team, channel, code, *measures in cursor.fetchall():
            if match(team, agent, channel):
                yield start, team, agent, channel, code, tuple(measures)


def _raw_checklist(
    where: KpiFilter, dirty: list[DirtyRange]
) -> Iterator[tuple[int, int, str, list[Any]]]:
    """(team, agent, step, [ticked, seconds]) of the dirty agent-days, from the raw rows."""
    if not dirty:
        return
    match = _in_scope(where)
    sql, params = rollups.checklist_day_sql(_dirty_days(dirty))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for _, _, agent, team, channel, step, ticked, seconds in cursor.fetchall():
            if match(team, agent, channel):
                yield team, agent, step, [ticked, seconds]


def _add_open_acws(
    cells: dict[Cell, list[float]], where: KpiFilter, start: datetime, end: datetime, now: datetime
) -> None:
    """An ACW still open counts in its interaction's cell with the time elapsed so far, as one
    ACW, extended if it was (``queries.kpi_rows`` does the same)."""
    still_open = AcwSession.objects.filter(
        where.q("interaction__"),
        ended_at__isnull=True,
        interaction__ended_at__gte=start,
        interaction__ended_at__lt=end,
    ).values_list(
        "interaction__agent_id",
        "wrap_up_code",
        "interaction__channel",
        "started_at",
        "deadline",
        "extensions",
    )
    acw = PERIOD_COLUMNS.index("acw_seconds")
    count = PERIOD_COLUMNS.index("acw_count")
    extended = PERIOD_COLUMNS.index("extended")
    for agent, code, channel, started_at, deadline, extensions in still_open:
        cell = cells.get((agent, code or "", channel))
        # A cell is missing only if its interaction ended after the rows were read.
        if cell is not None:
            cell[acw] += open_acw_elapsed(started_at, deadline, now)
            cell[count] += 1
            cell[extended] += bool(extensions)


# --- The reference: the same sums from the raw rows, in Python ------------------------------


def period_cells_raw(
    where: KpiFilter, first: date, last: date, now: datetime
) -> dict[Cell, list[float]]:
    """``period_cells`` from the raw rows alone (the reference the rollups are tested against)."""
    start, end = site_day_bounds(first, last)
    cells: dict[Cell, list[float]] = {}
    positions = [rollups.COACHING_MEASURES.index(name) for name in PERIOD_COLUMNS]
    for (_team, agent, channel, code), measures in _day_rows_raw(where, start, end).items():
        _add(cells, (agent, code, channel), [measures[i] for i in positions])
    _add_open_acws(cells, where, start, end, now)
    return cells


def recent_sums_raw(where: KpiFilter, first: date, last: date) -> RecentSums:
    """``recent_sums`` from the raw rows alone (the reference for the rollups)."""
    start, end = site_day_bounds(first, last)
    out = RecentSums()
    positions = [rollups.COACHING_MEASURES.index(name) for name in RECENT_COLUMNS]
    for (team, agent, _, _), measures in _day_rows_raw(where, start, end).items():
        _add(out.closed, (team, agent), [measures[i] for i in positions])
    match = _in_scope(where)
    closed = Interaction.objects.filter(
        ended_at__gte=start, ended_at__lt=end, acw__ended_at__isnull=False
    ).values_list("team_id", "agent_id", "channel", "acw__checklist", "acw__duration_seconds")
    for team, agent, channel, ticked, seconds in closed:
        if match(team, agent, channel) and isinstance(ticked, list):
            for step in ticked:
                text = step if isinstance(step, str) else json.dumps(step)
                _add(out.ticks, (team, agent, text), [1, seconds or 0.0])
    return out


def _day_rows_raw(
    where: KpiFilter, start: datetime, end: datetime
) -> dict[tuple[int, int, str, str], list[float]]:
    """``COACHING_MEASURES`` per (team, agent, channel, code) over [start, end) (whole site
    days), each interaction weighed as ``rollups.coaching_day_sql`` does: its KPI measures
    (``Measures.add_interaction``), and for a closed ACW its whole seconds, whether the call
    was long (talk + hold of percent rank above ``LONG_CALL_QUANTILE`` among the agent's closed
    ACWs of that site day) and whether it ended more than ``LATE_AFTER_HOURS`` after the first
    of them."""
    rows = list(
        Interaction.objects.filter(ended_at__gte=start, ended_at__lt=end).values(
            "id", *queries.RAW_FIELDS
        )
    )
    days: dict[tuple[int, date], list[dict[str, Any]]] = {}
    for row in rows:
        if row["acw__ended_at"] is not None:
            days.setdefault((row["agent_id"], site_day(row["ended_at"])), []).append(row)
    place: dict[int, tuple[bool, bool]] = {}
    for closed in days.values():
        lengths = sorted(r["talk_seconds"] + r["hold_seconds"] for r in closed)
        first_end = min(r["ended_at"] for r in closed)
        late_from = first_end + timedelta(hours=rollups.LATE_AFTER_HOURS)
        for r in closed:
            below = bisect.bisect_left(lengths, r["talk_seconds"] + r["hold_seconds"])
            rank = below / (len(closed) - 1) if len(closed) > 1 else 0.0
            place[r["id"]] = (rank > rollups.LONG_CALL_QUANTILE, r["ended_at"] > late_from)
    match = _in_scope(where)
    out: dict[tuple[int, int, str, str], list[float]] = {}
    for row in rows:
        if not match(row["team_id"], row["agent_id"], row["channel"]):
            continue
        key = (row["team_id"], row["agent_id"], row["channel"], row["acw__wrap_up_code"] or "")
        _add(out, key, _measures(row, place.get(row["id"])))
    return out


def _measures(row: dict[str, Any], place: tuple[bool, bool] | None) -> list[float]:
    """``COACHING_MEASURES`` of one ended interaction (``place``: long, late; closed ACWs)."""
    kpis = queries.Measures()
    kpis.add_interaction(row)
    out = [float(getattr(kpis, name)) for name in queries.MEASURES]
    seconds = row["acw__duration_seconds"] or 0.0 if place else 0.0
    whole = queries.acw_whole_seconds(row)
    is_long, is_late = place or (False, False)
    out += [
        float(whole is not None),
        float(whole or 0),
        float(whole or 0) ** 2,
        seconds * seconds,
        float(is_long),
        seconds if is_long else 0.0,
        seconds * seconds if is_long else 0.0,
        float(is_late),
        seconds if is_late else 0.0,
        seconds * seconds if is_late else 0.0,
    ]
    return out
