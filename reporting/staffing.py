"""The staffing what-if: agents needed for a service level, now and with a changed average ACW.

``what_if()`` answers ``GET /api/v1/staffing`` and feeds ``/kpis/staffing/``; ``measured_load()``
reads a team's volume and AHT for one site hour from the same KPI queries as ``/api/v1/kpis``
(so from the rollups). The maths is ``reporting.erlang``; docs/staffing.md has the formulas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.utils.translation import gettext

from . import erlang
from .erlang import Staffing, StaffingError
from .queries import KpiRow, kpi_rows, site_tz
from .templatetags.kpi_format import format_duration

# The table around the answer: a few agents fewer and more, as a planner weighs them.
TABLE_SPAN = 3


@dataclass(frozen=True)
class Scenario:
    """One handle time and the staffing it needs."""

    aht_seconds: float
    needed: Staffing


@dataclass(frozen=True)
class WhatIf:
    """The inputs, the answer at the current AHT and, with an ACW change, at AHT + change."""

    volume: int
    interval_seconds: int
    target_service_level: float
    target_answer_seconds: float
    current: Scenario
    acw_change_seconds: float | None = None
    changed: Scenario | None = None

    def as_dict(self) -> dict[str, Any]:
        """The API's answer (docs/api.md, ``GET /api/v1/staffing``)."""
        body = self.current.needed.as_dict()
        if self.changed is not None:
            body["with_acw_change"] = self.changed.needed.as_dict()
        return body

    @property
    def agents_saved(self) -> int | None:
        """Agents the ACW change saves (negative: it costs agents)."""
        if self.changed is None:
            return None
        return self.current.needed.agents - self.changed.needed.agents

    def table(self) -> list[dict[str, Any]]:
        """Each scenario's figures for the agents around its answer (the page's table, CSV)."""
        scenarios = [("current", self.current)]
        if self.changed is not None:
            scenarios.append(("with_acw_change", self.changed))
        low = min(s.needed.agents for _, s in scenarios) - TABLE_SPAN
        high = max(s.needed.agents for _, s in scenarios) + TABLE_SPAN
        rows = []
        for name, scenario in scenarios:
            traffic = scenario.needed.traffic_erlangs
            for figures in erlang.staffing_table(
                traffic, scenario.aht_seconds, self.target_answer_seconds, range(low, high + 1)
            ):
                rows.append(
                    {
                        "scenario": name,
                        "aht_seconds": round(scenario.aht_seconds, 3),
                        "agents": figures.agents,
                        "traffic_erlangs": round(traffic, 4),
                        "service_level": round(figures.service_level, 4),
                        "waiting_probability": round(figures.waiting_probability, 4),
                        "occupancy": round(figures.occupancy, 4),
                        "asa_seconds": round(figures.asa_seconds, 2),
                        "meets_target": figures.service_level >= self.target_service_level,
                        "needed": figures.agents == scenario.needed.agents,
                    }
                )
        return rows


TABLE_FIELDS = [
    "scenario",
    "aht_seconds",
    "agents",
    "traffic_erlangs",
    "service_level",
    "waiting_probability",
    "occupancy",
    "asa_seconds",
    "meets_target",
]


def _scenario(
    volume: int,
    interval_seconds: int,
    aht_seconds: float,
    target_service_level: float,
    target_answer_seconds: float,
) -> Scenario:
    traffic = erlang.traffic_erlangs(volume, interval_seconds, aht_seconds)
    needed = erlang.agents_needed(traffic, aht_seconds, target_service_level, target_answer_seconds)
    return Scenario(aht_seconds, needed)


def what_if(
    *,
    volume: int,
    interval_seconds: int,
    aht_seconds: float,
    target_service_level: float = 0.8,
    target_answer_seconds: float = 20,
    acw_change_seconds: float | None = None,
    acw_seconds: float | None = None,
) -> WhatIf:
    """Agents needed by Erlang C (no shrinkage) for the load and target, and with the average
    ACW changed by ``acw_change_seconds`` (AHT + change). Raises ``StaffingError`` naming the
    parameter when there is no answer.

    ``acw_seconds``, when known (a measured hour), is the average ACW inside that AHT: a cut
    cannot remove more ACW than there is.
    """
    if (
        acw_change_seconds is not None
        and acw_seconds is not None
        and acw_change_seconds < -acw_seconds
    ):
        raise StaffingError(
            "acw_change_seconds",
            gettext("the measured average ACW is only %(acw)s")
            % {"acw": format_duration(acw_seconds)},
        )
    current = _scenario(
        volume, interval_seconds, aht_seconds, target_service_level, target_answer_seconds
    )
    changed = None
    if acw_change_seconds is not None:
        try:
            changed = _scenario(
                volume,
                interval_seconds,
                aht_seconds + acw_change_seconds,
                target_service_level,
                target_answer_seconds,
            )
        except StaffingError as error:
            raise StaffingError("acw_change_seconds", error.message) from error
    return WhatIf(
        volume=volume,
        interval_seconds=interval_seconds,
        target_service_level=target_service_level,
        target_answer_seconds=target_answer_seconds,
        current=current,
        acw_change_seconds=acw_change_seconds,
        changed=changed,
    )


def hour_bounds(day: date, hour: int) -> tuple[datetime, datetime]:
    """[start, end) of one hour of a site day (the wall-clock hour, in the site time zone)."""
    start = datetime.combine(day, time(hour), tzinfo=site_tz())
    return start, start + timedelta(hours=1)


def measured_load(team_id: int, day: date, hour: int, now: datetime | None = None) -> KpiRow:
    """The team's KPIs for the interactions that ended in that site hour: ``interactions`` is
    the volume, ``aht_seconds`` and ``avg_acw_seconds`` the handle and ACW times (contract §4)."""
    start, end = hour_bounds(day, hour)
    rows = kpi_rows(team_ids=[team_id], group_by="team", start=start, end=end, now=now)
    return KpiRow.total(rows)
