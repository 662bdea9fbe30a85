"""KPI definitions (contract §4), each written once and used by the API, pages and exports.

An interaction counts in the period in which it ended, for the team its agent belonged to
when it ended. ``acw_seconds`` is the time from the interaction's end to the close of the ACW
that followed it; an ACW still open counts the time elapsed so far (at most to its deadline,
where the system closes it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, F, Sum
from django.utils import timezone

from agents.models import AcwSession, Interaction

GroupBy = Literal["agent", "team"]


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


def site_day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[start of ``first``, start of the day after ``last``) in the site time zone."""
    tz = ZoneInfo(settings.TIME_ZONE)
    start = datetime.combine(first, time.min, tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz)
    return start, end


def site_today() -> date:
    return timezone.localdate(timezone.now(), ZoneInfo(settings.TIME_ZONE))


def open_acw_elapsed(started_at: datetime, deadline: datetime | None, now: datetime) -> float:
    """Seconds an ACW still open has lasted at ``now`` (the system closes it at its deadline)."""
    end = min(now, deadline) if deadline is not None else now
    return max(0.0, (end - started_at).total_seconds())


def kpi_rows(
    *,
    team_ids: Iterable[int],
    group_by: GroupBy,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> list[KpiRow]:
    """KPIs per agent or team for interactions that ended in [start, end), from raw rows."""
    now = now or timezone.now()
    keys = (
        {"key": F("agent__external_id"), "label": F("agent__name")}
        if group_by == "agent"
        else {"key": F("team__name"), "label": F("team__name")}
    )
    ended = Interaction.objects.filter(
        ended_at__gte=start, ended_at__lt=end, team_id__in=list(team_ids)
    )
    rows = {
        r["key"]: KpiRow(
            key=r["key"],
            name=r["label"],
            interactions=r["n"],
            talk_seconds=r["talk"] or 0.0,
            hold_seconds=r["hold"] or 0.0,
            acw_seconds=r["acw"] or 0.0,
        )
        for r in ended.values(**keys)
        .annotate(
            n=Count("id"),
            talk=Sum("talk_seconds"),
            hold=Sum("hold_seconds"),
            acw=Sum("acw__duration_seconds"),
        )
        .order_by()
    }
    open_key = (
        "interaction__agent__external_id" if group_by == "agent" else "interaction__team__name"
    )
    still_open = AcwSession.objects.filter(
        interaction__in=ended, ended_at__isnull=True
    ).values_list(open_key, "started_at", "deadline")
    for key, started_at, deadline in still_open:
        rows[key].acw_seconds += open_acw_elapsed(started_at, deadline, now)
    return sorted(rows.values(), key=lambda row: row.key)
