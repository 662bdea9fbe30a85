"""Reads of the coaching rollups (the coaching sums of ``KpiRollup``, ``ChecklistRollup``) for the
coaching list.

Exact up to ``now`` like ``queries.kpi_rows``: rollup rows where they are up to date, the SQL
that writes them (``rollups.coaching_day_sql`` / ``checklist_day_sql``) run on the raw rows of
the agent-days marked dirty, and the ACWs still open (period figures only: the recent-window
signals count closed ACWs). A bounded number of queries whatever the period or the number of
agents. The period's cells (agent × code × channel) are folded in the database into one row per
agent with what the coaching rules weigh (``agent_figures``); the recent window comes back per
team × agent.
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
from django.db.models import FloatField, QuerySet

from agents.models import AcwSession, Agent, Interaction, Team

from . import queries, rollups
from .models import ChecklistRollup, KpiRollup
from .queries import DirtyRange, KpiFilter, open_acw_elapsed, site_day, site_day_bounds

PERIOD_COLUMNS = (*queries.SUMMED, "durations", "duration_sum", "duration_squares")
"""What ``period_cells`` sums per cell, in this order."""
FIGURE_COLUMNS = tuple(
    name for name in PERIOD_COLUMNS if name not in ("talk_seconds", "hold_seconds")
)
"""What ``agent_figures`` sums of the period, in this order: the coaching list shows no talk or
hold time, and every column summed is work for each of the period's rows."""
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


CELL_KEYS = ("agent_id", "wrap_up_code", "channel")
"""The columns that name a cell in ``period_cells_sql``."""


def period_cells(
    where: KpiFilter, first: date, last: date, now: datetime
) -> dict[Cell, list[float]]:
    """``PERIOD_COLUMNS`` per agent × wrap-up code × channel for the interactions that ended on
    the site days ``first`` to ``last``; an ACW still open counts as in ``kpi_rows``."""
    with queries.consistent_read():
        sql, params = period_cells_sql(where, first, last, now)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {(agent, code, channel): values for agent, code, channel, *values in cursor}


def period_cells_sql(
    where: KpiFilter,
    first: date,
    last: date,
    now: datetime,
    summed: tuple[str, ...] = PERIOD_COLUMNS,
) -> tuple[str, list[Any]]:
    """SELECT of ``period_cells``: ``CELL_KEYS`` then ``summed`` (``PERIOD_COLUMNS`` or some of
    them, in that order), one row per cell, so that the coaching list can fold the cells in the
    database (``agent_figures``). The rollup rows that are up to date, the dirty agent-days'
    rows computed from the raw rows and the open ACWs are summed in one statement; call inside
    ``consistent_read()``."""
    start, end = site_day_bounds(first, last)
    segments, dirty = queries.day_rollups(KpiRollup, where, start, end, now)
    columns = ", ".join((*CELL_KEYS, *summed))
    # The first part names and types the columns.
    parts = [f"SELECT {columns} FROM {_table(KpiRollup)} WHERE 1 = 0"]
    params: list[Any] = []
    for rows in segments:
        sql, part_params = rows.values_list(*CELL_KEYS, *summed).query.sql_with_params()
        parts.append(f"SELECT {columns} FROM ({sql}) s")
        params += part_params
    if dirty:
        raw, raw_params = rollups.coaching_day_sql(_dirty_days(dirty))
        scope, scope_params = _scope_sql(where)
        parts.append(f"SELECT {columns} FROM ({raw}) r WHERE {scope}")
        params += [*raw_params, *scope_params]
    sums = ", ".join(f"{_sum_as_column(name)} AS {name}" for name in summed)
    keys = ", ".join(f"u.{key}" for key in CELL_KEYS)
    union = " UNION ALL ".join(parts)
    sql = f"SELECT {keys}, {sums} FROM ({union}) u GROUP BY {keys}"
    opened = _open_cells(where, start, end, now, summed)
    if not opened:
        return sql, params
    # An open ACW adds to its interaction's cell, never makes one (its interaction may have
    # ended after the rows were read). Joined rather than summed with a HAVING: PostgreSQL
    # estimates a HAVING at a few groups of tens of thousands, and plans the joins of the
    # coaching figures on that estimate as nested loops (seconds instead of milliseconds).
    marks = ", ".join(["%s"] * (len(CELL_KEYS) + len(summed)))
    values = ", ".join([f"({marks})"] * len(opened))
    added = ", ".join(
        f"{_as_column(name, f'c.{name} + COALESCE(o.{name}, 0)')} AS {name}" for name in summed
    )
    on = " AND ".join(f"o.{key} = c.{key}" for key in CELL_KEYS)
    sql = (
        f"SELECT {', '.join(f'c.{key}' for key in CELL_KEYS)}, {added} FROM ({sql}) c "
        f"LEFT JOIN (VALUES {values}) AS o({columns}) ON {on}"
    )
    return sql, [*params, *(v for key, sums in opened.items() for v in (*key, *sums))]


def _open_cells(
    where: KpiFilter, start: datetime, end: datetime, now: datetime, summed: tuple[str, ...]
) -> dict[Cell, list[float]]:
    """``summed`` of the open ACWs (``_open_acws``) per cell."""
    positions = [PERIOD_COLUMNS.index(name) for name in summed]
    cells: dict[Cell, list[float]] = {}
    for agent, code, channel, *values in _open_acws(where, start, end, now):
        _add(cells, (agent, code, channel), [values[i] for i in positions])
    return cells


def _sum_as_column(name: str) -> str:
    """``SUM(u.name)`` typed as the column: PostgreSQL sums integers into ``bigint`` and sums
    of those into ``numeric``, which the driver would return as ``Decimal``."""
    return _as_column(name, f"SUM(u.{name})")


def _as_column(name: str, value: str) -> str:
    """``value`` cast to the type of the column ``name``."""
    kind = "FLOAT" if isinstance(KpiRollup._meta.get_field(name), FloatField) else "INTEGER"
    return f"CAST({value} AS {kind})"


def agent_figures(
    where: KpiFilter,
    period: tuple[date, date],
    baseline: tuple[date, date],
    norms: dict[str, float],
    fallback: float | None,
    now: datetime,
) -> list[tuple[Any, ...]]:
    """What the coaching rules weigh, one row per agent with figures in ``period``: the agent
    id; the sums of ``FIGURE_COLUMNS``; the expected ACW of the agent's mix (Σ interactions ×
    the code's norm, and the interactions of codes with a norm: ``norms``, else ``fallback``);
    Σ interactions × the team's average ACW in the same code and channel (the team: the
    agent's team now); Σ interactions × the agent's own average in ``baseline`` in the same
    code and channel (else over all of the baseline; None without a baseline); the
    baseline's interactions and duration moments; and the agent's external id, name and team
    name. In external id order.

    The period's and the baseline's cells (``period_cells_sql``) are joined and summed in the
    database: a large site has tens of thousands of cells but a few thousand agents. The
    period's sums per agent are one grouping of the cells, the weights (expected, team, own)
    another, of the cells' few columns they read joined to the team's and the baseline's
    cells: the wide sums do not go through the joins. Every join is on estimates PostgreSQL can
    make (the cells are plain groupings, ``period_cells_sql``; the team cells are a LEFT JOIN,
    which keeps the estimate of the cells where an inner join on three keys was estimated at
    one row): on an estimate of a few rows it plans nested loops that read a grouping once per
    agent. The period sums only what the list shows, the baseline only what the rules read."""
    sums = ", ".join(f"SUM(p.{name})" for name in FIGURE_COLUMNS)
    moments = ("durations", "duration_sum", "duration_squares")
    # Each code's norm written into the statement: a join on a handful of codes was planned
    # as a nested loop over every cell.
    whens = " ".join(["WHEN %s THEN CAST(%s AS FLOAT)"] * len(norms))
    # With no code's norm known yet, every cell takes the fallback (a CASE needs one WHEN).
    norm = (
        f"CASE p.wrap_up_code {whens} ELSE CAST(%s AS FLOAT) END" if norms else "CAST(%s AS FLOAT)"
    )
    sql = (
        "WITH cells AS ({cells}), before AS ({before}), "
        f"placed AS (SELECT c.*, COALESCE(a.team_id, 0) AS team FROM cells c "
        f"LEFT JOIN {_table(Agent)} a ON a.id = c.agent_id), "
        "team_cells AS (SELECT team, wrap_up_code, channel, SUM(interactions) AS n, "
        "SUM(acw_seconds) AS acw FROM placed GROUP BY team, wrap_up_code, channel), "
        "own AS (SELECT agent_id, SUM(interactions) AS n, SUM(acw_seconds) AS acw, "
        + ", ".join(f"SUM({name}) AS {name}" for name in moments)
        + " FROM before GROUP BY agent_id), "
        f"sums AS (SELECT agent_id, {sums} FROM placed p GROUP BY agent_id), "
        "weights AS (SELECT p.agent_id, "
        f"COALESCE(SUM(p.interactions * {norm}), 0) AS expected, "
        f"SUM(CASE WHEN {norm} IS NULL THEN 0 ELSE p.interactions END) AS with_norm, "
        "SUM(p.interactions * CASE WHEN t.n > 0 THEN t.acw / t.n ELSE 0 END) AS team_total, "
        "CASE WHEN MAX(o.n) > 0 THEN SUM(p.interactions * CASE WHEN b.interactions > 0 "
        "THEN b.acw_seconds / b.interactions ELSE o.acw / o.n END) END AS own_total "
        "FROM placed p "
        "LEFT JOIN team_cells t ON t.team = p.team AND t.wrap_up_code = p.wrap_up_code "
        "AND t.channel = p.channel "
        "LEFT JOIN before b ON b.agent_id = p.agent_id AND b.wrap_up_code = p.wrap_up_code "
        "AND b.channel = p.channel "
        "LEFT JOIN own o ON o.agent_id = p.agent_id "
        "GROUP BY p.agent_id) "
        "SELECT s.*, w.expected, w.with_norm, w.team_total, w.own_total, o.n, "
        + ", ".join(f"o.{name}" for name in moments)
        + ", a.external_id, a.name, m.name FROM sums s "
        "JOIN weights w ON w.agent_id = s.agent_id "
        "LEFT JOIN own o ON o.agent_id = s.agent_id "
        f"JOIN {_table(Agent)} a ON a.id = s.agent_id "
        f"LEFT JOIN {_table(Team)} m ON m.id = a.team_id ORDER BY a.external_id"
    )
    norm_params: list[Any] = [v for code, expected in norms.items() for v in (code, expected)]
    norm_params.append(fallback)
    with queries.consistent_read():
        cells, cells_params = period_cells_sql(where, *period, now, FIGURE_COLUMNS)
        before, before_params = period_cells_sql(
            where, *baseline, now, ("interactions", "acw_seconds", *moments)
        )
        with connection.cursor() as cursor:
            cursor.execute(
                sql.format(cells=cells, before=before),
                [*cells_params, *before_params, *norm_params, *norm_params],
            )
            return cursor.fetchall()


def recent_sums(where: KpiFilter, first: date, last: date, now: datetime) -> RecentSums:
    """``RECENT_COLUMNS`` per team × agent, and the ticked steps, for the closed ACWs of the
    interactions that ended on the site days ``first`` to ``last`` (day rows only)."""
    start, end = site_day_bounds(first, last)
    out = RecentSums()
    with queries.consistent_read():
        segments, dirty = queries.day_rollups(KpiRollup, where, start, end, now, months=False)
        for team, agent, *values in _summed(segments, ("team_id", "agent_id"), RECENT_COLUMNS):
            out.closed[(team, agent)] = values
        positions = [rollups.COACHING_MEASURES.index(name) for name in RECENT_COLUMNS]
        for _, team, agent, _, _, measures in _raw_coaching(where, dirty):
            _add(out.closed, (team, agent), [measures[i] for i in positions])
        ticks = _up_to_date(ChecklistRollup.objects.filter(where.q()), start, end, dirty)
        for team, agent, step, *values in _summed(
            [ticks], ("team_id", "agent_id", "step"), ("ticked", "ticked_seconds")
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


def _table(model: type[Any]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


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


def _teams_in_scope(where: KpiFilter) -> set[int]:
    """The teams of ``where`` in its departments."""
    teams = set(where.team_ids)
    if where.department_ids is not None:
        teams &= set(
            Team.objects.filter(pk__in=teams, department_id__in=where.department_ids).values_list(
                "pk", flat=True
            )
        )
    return teams


def _in_scope(where: KpiFilter) -> Any:
    """Whether a raw row's (team, agent, channel) matches ``where`` (its filters on the
    interaction's columns, and the department of its team)."""
    teams = _teams_in_scope(where)
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


def _open_acws(where: KpiFilter, start: datetime, end: datetime, now: datetime) -> list[list[Any]]:
    """An ACW still open counts in its interaction's cell with the time elapsed so far, as one
    ACW, extended if it was (``queries.kpi_rows`` does the same): ``CELL_KEYS`` then
    ``PERIOD_COLUMNS`` of each open ACW of the interactions that ended in [start, end)."""
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
    out = []
    for agent, code, channel, started_at, deadline, extensions in still_open:
        values: dict[str, float] = dict.fromkeys(PERIOD_COLUMNS, 0)
        values.update(
            acw_seconds=open_acw_elapsed(started_at, deadline, now),
            acw_count=1,
            extended=int(bool(extensions)),
        )
        out.append([agent, code or "", channel, *values.values()])
    return out


def _add_open_acws(
    cells: dict[Cell, list[float]], where: KpiFilter, start: datetime, end: datetime, now: datetime
) -> None:
    """``_open_acws`` added to ``cells``."""
    for agent, code, channel, *values in _open_acws(where, start, end, now):
        # A cell is missing only if its interaction ended after the rows were read.
        if (agent, code, channel) in cells:
            _add(cells, (agent, code, channel), values)


def _scope_sql(where: KpiFilter) -> tuple[str, list[Any]]:
    """``_in_scope`` as SQL on the columns ``team_id``, ``agent_id`` and ``channel``."""
    conditions: list[str] = []
    params: list[Any] = []
    scopes: list[tuple[str, Iterable[Any] | None]] = [
        ("team_id", _teams_in_scope(where)),
        ("agent_id", where.agent_ids),
        ("channel", where.channels),
    ]
    for column, allowed in scopes:
        if allowed is not None:
            values = list(allowed)
            marks = ", ".join(["%s"] * len(values))
            conditions.append(f"{column} IN ({marks})" if values else "1 = 0")
            params += values
    return " AND ".join(conditions), params


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
