"""What the managers' KPI pages show: the scope a request asks for, headline cards, chart series.

The figures come from the same query functions as ``/api/v1/kpis`` (``reporting.queries``),
which read the rollups, so a page costs a bounded number of queries on any period. The only raw
rows a page reads are an agent's bounded list of recent interactions.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, reduce
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

from django.core.paginator import Page, Paginator
from django.db.models import (
    Case,
    Count,
    ExpressionWrapper,
    FloatField,
    Func,
    IntegerField,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.functions import (
    Coalesce,
    ExtractHour,
    ExtractMonth,
    ExtractYear,
    TruncDate,
)
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework.exceptions import ValidationError

from agents import access
from agents.models import AcwSession, Agent, ChecklistItem, Interaction, PolicyViolation, Team
from agents.policies import Policies
from agents.states import PolicySpec

from . import coaching, queries
from .models import Alert, Grain, KpiRollup
from .params import parse_kpi_query
from .periods import PRESETS, Period, PeriodError, resolve_period
from .queries import KpiFilter, KpiRow, site_day_bounds, site_today, site_tz
from .templatetags.kpi_format import (
    format_count,
    format_duration,
    format_index,
    format_percent,
    signed_number,
)

TABLE_GROUPS: dict[str, StrOrPromise] = {
    "agent": gettext_lazy("Agent"),
    "team": gettext_lazy("Team"),
    "department": gettext_lazy("Department"),
}
# The KPI table's heading, per grouping ("Per agent").
TABLE_HEADINGS: dict[str, StrOrPromise] = {
    "agent": gettext_lazy("Per agent"),
    "team": gettext_lazy("Per team"),
    "department": gettext_lazy("Per department"),
}
if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

RECENT_INTERACTIONS = 50
RECENT_ALERTS = 20

# --- The scope of a page: period and filters ------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Which interactions a page counts: a period, and the filters on top of the visible teams."""

    period: Period
    where: KpiFilter
    team: str = ""
    department: str = ""
    channel: str = ""
    agent: Agent | None = None
    group_by: str = "agent"

    @property
    def team_ids(self) -> tuple[int, ...]:
        """The teams counted: those the user may see, narrowed by a team filter."""
        return self.where.team_ids

    @cached_property
    def norms(self) -> coaching.Norms:
        """The wrap-up code norms for the period (read once per page)."""
        return coaching.site_norms(self.period.last)

    def bounds(self, period: Period | None = None) -> tuple[datetime, datetime]:
        period = period or self.period
        return site_day_bounds(period.first, period.last)

    def query(self, **changes: Any) -> dict[str, str]:
        """The page's query string, with ``changes`` applied (``None`` drops a key)."""
        params: dict[str, str] = {}
        if self.period.preset != "custom":
            params["period"] = self.period.preset
        else:
            params["from"] = self.period.first.isoformat()
            params["to"] = self.period.last.isoformat()
        for name in ("team", "department", "channel"):
            if getattr(self, name):
                params[name] = getattr(self, name)
        if self.group_by != "agent":
            params["group_by"] = self.group_by
        for name, value in changes.items():
            if value is None:
                params.pop(name, None)
            else:
                params[name] = value
        return params

    def api_query(self, group_by: str, **extra: str) -> str:
        """The ``/api/v1/kpis`` query string for the same figures (e.g. for its CSV)."""
        params = {
            "group_by": group_by,
            "from": self.period.first.isoformat(),
            "to": self.period.last.isoformat(),
        }
        for name in ("team", "department", "channel"):
            if getattr(self, name):
                params[name] = getattr(self, name)
        if self.agent is not None:
            params["agent"] = self.agent.external_id
        params.update(extra)
        return urlencode(params)


class ScopeError(ValueError):
    """A filter the page cannot apply; the message names the parameter."""


def parse_scope(
    user: Any, params: Mapping[str, str], *, team: Team | None = None, agent: Agent | None = None
) -> Scope:
    """The scope a page's query string asks for, within what ``user`` may see.

    The period comes from a preset or from/to; the filters go through the API's own parser
    (``reporting.params``), so a page reads exactly the interactions its API call reads, and a
    team, department or channel that does not exist or that the user may not see is an error
    naming the parameter, as in the API. A team page fixes its team, an agent page its agent.
    """
    try:
        period = resolve_period(
            site_today(), params.get("period"), params.get("from"), params.get("to")
        )
    except PeriodError as error:
        raise ScopeError(str(error)) from None
    group_by = params.get("group_by") or "agent"
    if group_by not in TABLE_GROUPS:
        raise ScopeError(f"group_by: choose one of {', '.join(TABLE_GROUPS)}.")
    data = {"from": period.first.isoformat(), "to": period.last.isoformat()}
    names = ["channel"] if team or agent else ["team", "department", "channel"]
    data.update({name: params[name] for name in names if params.get(name)})
    if team is not None:
        data["team"] = team.name
    if agent is not None:
        data["agent"] = agent.external_id
    try:
        query = parse_kpi_query(user, data)
    except ValidationError as error:
        detail = error.detail if isinstance(error.detail, dict) else {"query": error.detail}
        name, messages = next(iter(detail.items()))
        message = messages[0] if isinstance(messages, list) else messages
        raise ScopeError(f"{name}: {message}.") from None
    return Scope(
        period=period,
        where=query.where,
        team=data.get("team", ""),
        department=data.get("department", ""),
        channel=data.get("channel", ""),
        agent=agent,
        group_by=group_by,
    )


def default_scope(user: Any, *, team: Team | None = None, agent: Agent | None = None) -> Scope:
    """Today over what the user may see (of the team or agent): an error page's form."""
    visible = access.visible_teams(user)
    if team is not None:
        visible = visible.filter(pk=team.pk)
    today = site_today()
    return Scope(
        Period(today, today, "today"),
        KpiFilter.of(
            visible.values_list("pk", flat=True),
            [agent.pk] if agent else None,
            every_team=team is None and access.sees_all_teams(user),
        ),
        team=team.name if team else "",
        agent=agent,
    )


def preset_links(scope: Scope) -> list[dict[str, Any]]:
    """One link per preset that keeps the other filters."""
    return [
        {
            "preset": preset,
            "label": label,
            "query": urlencode(scope.query(period=preset, **{"from": None, "to": None})),
            "current": scope.period.preset == preset,
        }
        for preset, label in PRESETS.items()
        if preset != "custom"
    ]


# --- Figures --------------------------------------------------------------------------------


def kpi(
    scope: Scope, group_by: str, period: Period | None = None, *, index: bool = False
) -> list[KpiRow]:
    """The API's rows for ``scope`` (same function, same figures); ``index``: with each row's
    expected ACW and ACW index against the norms of the scope's period, as the API has them."""
    start, end = scope.bounds(period)
    if index:
        return coaching.indexed_rows(
            group_by=group_by,  # type: ignore[arg-type]
            start=start,
            end=end,
            where=scope.where,
            norms=scope.norms,
        )
    return queries.kpi_rows(
        group_by=group_by,  # type: ignore[arg-type]
        start=start,
        end=end,
        **scope.where.arguments(),
    )


@dataclass(frozen=True)
class Card:
    label: str
    value: str
    change: str
    previous: str
    # "up"/"down": the direction of the change; "better"/"worse" by the card's own sense.
    direction: Literal["up", "down", "flat", "none"]
    tone: Literal["better", "worse", "neutral"]
    detail: str = ""
    key: str = ""


def _card(
    key: str,
    label: str,
    now: float | None,
    before: float | None,
    kind: Literal["count", "duration", "share", "index"],
    lower_is_better: bool | None,
    detail: str = "",
) -> Card:
    text: Callable[[float | None], str] = {
        "count": lambda v: format_count(None if v is None else round(v)),
        "duration": format_duration,
        "share": format_percent,
        "index": format_index,
    }[kind]
    if now is None or before is None:
        change, direction = (_("no previous figure") if now is not None else ""), "none"
    else:
        diff = now - before
        if kind == "share":
            points = round(diff * 100, 1)
            change = _("%s pp") % signed_number(points, 1)
            moved = points != 0
        elif before:
            pct = round(diff / before * 100)
            change = _("%s %%") % signed_number(pct, 0)
            moved = pct != 0
        else:
            change, moved = _("new"), now != 0
        direction = ("up" if diff > 0 else "down") if moved else "flat"
    tone: Literal["better", "worse", "neutral"] = "neutral"
    if lower_is_better is not None and direction in ("up", "down"):
        tone = "better" if (direction == "down") == lower_is_better else "worse"
    return Card(label, text(now), change, text(before), direction, tone, detail, key)  # type: ignore[arg-type]


def headline_cards(now: KpiRow, before: KpiRow) -> list[Card]:
    """The overview's headline figures, each with its change against the previous period.

    Timeouts, extended and too-short are shares of the ACW sessions (``acw_count``);
    the changes of shares are in percentage points.
    """

    def figures(row: KpiRow) -> dict[str, float | None]:
        has = row.interactions > 0
        return {
            "interactions": row.interactions,
            "avg_acw": row.avg_acw_seconds if has else None,
            "acw": row.acw_seconds,
            "aht": row.aht_seconds if has else None,
            "share": row.acw_share if has else None,
            "timeouts": row.timeout_share if row.acw_count else None,
            "extended": row.extended_share if row.acw_count else None,
            "too_short": row.too_short_share if row.acw_count else None,
            "index": row.acw_index,
        }

    a, b = figures(now), figures(before)
    split = (
        _("talk %(talk)s · hold %(hold)s · ACW %(acw)s")
        % {
            "talk": format_duration(now.avg_talk_seconds),
            "hold": format_duration(now.avg_hold_seconds),
            "acw": format_duration(now.avg_acw_seconds),
        }
        if now.interactions
        else ""
    )
    of_acws = _("of ACWs")
    return [
        _card(
            "interactions", _("Interactions"), a["interactions"], b["interactions"], "count", None
        ),
        _card("avg_acw", _("Average ACW"), a["avg_acw"], b["avg_acw"], "duration", True),
        _card(
            "acw_index",
            _("ACW index"),
            a["index"],
            b["index"],
            "index",
            True,
            _("expected %(seconds)s for the codes handled")
            % {"seconds": format_duration(now.expected_acw_seconds)}
            if now.expected_acw_seconds is not None
            else "",
        ),
        _card("acw", _("Total ACW"), a["acw"], b["acw"], "duration", None),
        _card("aht", _("AHT"), a["aht"], b["aht"], "duration", True, split),
        _card("share", _("ACW share of handle time"), a["share"], b["share"], "share", True),
        _card("timeouts", _("Timeouts"), a["timeouts"], b["timeouts"], "share", True, of_acws),
        _card("extended", _("Extended"), a["extended"], b["extended"], "share", True, of_acws),
        _card("too_short", _("Too short"), a["too_short"], b["too_short"], "share", True, of_acws),
    ]


# --- Chart series ---------------------------------------------------------------------------


@dataclass
class Trend:
    """A trend's buckets: labels, average ACW and the AHT split per bucket (None: empty)."""

    group_by: str
    labels: list[str] = field(default_factory=list)
    avg_acw: list[float | None] = field(default_factory=list)
    parts: list[tuple[float, float, float] | None] = field(default_factory=list)
    rows: list[KpiRow] = field(default_factory=list)


def day_quarters(day: date) -> list[datetime]:
    """The starts of a site day's 15-minute intervals: 96, or 92 / 100 on a DST change day.

    Stepped in UTC: adding 15 minutes to a zoned datetime adds wall-clock time, which would skip
    the repeated hour of an autumn change and invent the missing one of a spring change.
    """
    start, end = site_day_bounds(day, day)
    moment, end = start.astimezone(UTC), end.astimezone(UTC)
    out = []
    while moment < end:
        out.append(moment)
        moment += timedelta(minutes=15)
    return out


def trend(scope: Scope) -> Trend:
    """ACW and AHT per 15 minutes (one day) or per day (a range), from the API's rows."""
    one_day = scope.period.is_one_day
    group_by = "interval" if one_day else "day"
    rows = kpi(scope, group_by)
    by_key = {row.key: row for row in rows}
    result = Trend(group_by, rows=rows)
    tz = site_tz()
    if one_day:
        keys = day_quarters(scope.period.first)
        index = {datetime.fromisoformat(key): key for key in by_key}
        if index:
            # Show the hours with activity, not a day that is mostly night.
            first = min(index).replace(minute=0)
            last = max(index)
            keys = [k for k in keys if first <= k <= last]
        for moment in keys:
            row = by_key.get(index.get(moment, ""))
            result.labels.append(f"{moment.astimezone(tz):%H:%M}")
            _add_bucket(result, row)
    else:
        # "d M" as ``date_format`` writes it, with each month's name looked up once: a year of
        # labels through ``date_format`` took longer than reading the year's rows.
        months = {month: date_format(date(2000, month, 1), "M") for month in range(1, 13)}
        for i in range(scope.period.days):
            day = scope.period.first + timedelta(days=i)
            result.labels.append(f"{day.day:02d} {months[day.month]}")
            _add_bucket(result, by_key.get(day.isoformat()))
    return result


def _add_bucket(result: Trend, row: KpiRow | None) -> None:
    if row is None or not row.interactions:
        result.avg_acw.append(None)
        result.parts.append(None)
        return
    n = row.interactions
    result.avg_acw.append(row.avg_acw_seconds)
    result.parts.append((row.acw_seconds / n, row.hold_seconds / n, row.talk_seconds / n))


def heat_cells(rows: Iterable[KpiRow]) -> dict[tuple[int, int], tuple[float, int]]:
    """``weekday_hour`` rows ("D-HH") as {(ISO weekday, hour): (average ACW, interactions)}."""
    cells = {}
    for row in rows:
        if row.interactions:
            day, hour = row.key.split("-")
            cells[(int(day), int(hour))] = (row.avg_acw_seconds, row.interactions)
    return cells


def band_policy(scope: Scope) -> PolicySpec:
    """The policy whose minimum and deadline draw the histogram's bands.

    With one team chosen (or an agent's page) it is that team's policy for the chosen channel;
    otherwise the site default, which the chart says, since teams may differ.
    """
    team_id = scope.agent.team_id if scope.agent else None
    if team_id is None and len(scope.team_ids) == 1:
        team_id = scope.team_ids[0]
    # No team: the site's policy for the channel, else the site default (as edited in admin).
    return (
        Policies.load([team_id] if team_id is not None else [])
        .resolve(team_id, scope.channel)
        .as_spec()
    )


def distribution(scope: Scope) -> dict[str, Any]:
    """The API's ACW distribution for ``scope``."""
    start, end = scope.bounds()
    return queries.acw_distribution(start=start, end=end, **scope.where.arguments())


# --- Raw rows: an agent's recent interactions, alerts ---------------------------------------

ACW_END_WORDS = {
    "agent_ready": gettext_lazy("agent"),
    "timeout": gettext_lazy("timeout"),
    "supervisor": gettext_lazy("supervisor"),
    "interaction": gettext_lazy("next contact"),
    "not_ready": gettext_lazy("agent (not ready)"),
    "logout": gettext_lazy("logout"),
    "running": gettext_lazy("running"),
    "none": gettext_lazy("no ACW"),
}


@dataclass(frozen=True)
class RecentInteraction:
    interaction_id: str
    channel: str
    ended_at: datetime
    talk_seconds: float
    hold_seconds: float
    acw_seconds: float | None
    acw_end: str
    extensions: int
    wrap_up_code: str
    note: str
    checklist: list[str]
    acw_open: bool = False
    # How the ACW ended, as a word-free key for styling: a reason of ACW_END_WORDS.
    acw_end_kind: str = ""
    # What the ACW did against its policy: ``PolicyViolation`` values, comma-separated.
    policy_violation: str = ""

    @property
    def flags(self) -> list[tuple[str, str]]:
        """The policy violations as (value, label), e.g. a timeout without its required code."""
        labels = dict(PolicyViolation.choices)
        return [(v, str(labels.get(v, v))) for v in self.policy_violation.split(",") if v]


def recent_interactions(
    scope: Scope, limit: int = RECENT_INTERACTIONS, now: datetime | None = None
) -> list[RecentInteraction]:
    """The agent's last ``limit`` interactions that ended in the period, newest first.

    The only raw read of the pages: bounded by ``limit`` and served by the (agent, ended_at)
    index. Two queries: the interactions with their ACW, and the checklist labels.
    """
    assert scope.agent is not None
    now = now or timezone.now()
    start, end = scope.bounds()
    rows = list(
        Interaction.objects.filter(
            agent=scope.agent,
            team_id__in=scope.team_ids,
            ended_at__gte=start,
            ended_at__lt=end,
            **({"channel": scope.channel} if scope.channel else {}),
        )
        .select_related("acw")
        .order_by("-ended_at", "-pk")[:limit]
    )
    acws: dict[int, AcwSession | None] = {row.pk: getattr(row, "acw", None) for row in rows}
    item_ids = {i for acw in acws.values() if acw for i in acw.checklist if isinstance(i, int)}
    labels = dict(
        ChecklistItem.objects.filter(pk__in=item_ids).values_list("pk", "label") if item_ids else []
    )
    out = []
    for row in rows:
        acw = acws[row.pk]
        seconds: float | None = None
        if acw is not None:
            seconds = (
                acw.duration_seconds
                if acw.ended_at is not None
                else queries.open_acw_elapsed(acw.started_at, acw.deadline, now)
            )
        assert row.ended_at is not None
        end_kind = (
            "none" if acw is None else ("running" if acw.ended_at is None else acw.end_reason)
        )
        out.append(
            RecentInteraction(
                interaction_id=row.interaction_id,
                channel=row.get_channel_display(),
                ended_at=row.ended_at,
                talk_seconds=row.talk_seconds,
                hold_seconds=row.hold_seconds,
                acw_seconds=seconds,
                acw_end=str(ACW_END_WORDS.get(end_kind, end_kind)),
                acw_end_kind=end_kind,
                extensions=acw.extensions if acw else 0,
                wrap_up_code=acw.wrap_up_code if acw else "",
                note=acw.note if acw else "",
                checklist=[labels.get(i, f"#{i}") for i in (acw.checklist if acw else [])],
                acw_open=bool(acw and acw.ended_at is None),
                policy_violation=acw.policy_violation if acw else "",
            )
        )
    return out


def recent_alerts(
    team_ids: Iterable[int], agent: Agent | None = None, limit: int = RECENT_ALERTS
) -> list[Alert]:
    """The latest alerts of these teams (or of one agent), newest first, in one query."""
    alerts = Alert.objects.filter(team_id__in=list(team_ids))
    if agent is not None:
        alerts = alerts.filter(agent=agent)
    return list(
        alerts.select_related("team", "agent", "acknowledged_by").order_by("-opened_at", "-pk")[
            :limit
        ]
    )


# --- Team page: agents side by side ---------------------------------------------------------

SORTS: dict[str, tuple[StrOrPromise, Callable[[KpiRow], Any]]] = {
    "name": (gettext_lazy("Agent"), lambda r: r.name.casefold()),
    "interactions": (gettext_lazy("Interactions"), lambda r: r.interactions),
    "avg_acw": (gettext_lazy("Avg ACW"), lambda r: r.avg_acw_seconds),
    "index": (
        gettext_lazy("ACW index"),
        lambda r: -1.0 if r.acw_index is None else r.acw_index,
    ),
    "acw": (gettext_lazy("ACW"), lambda r: r.acw_seconds),
    "aht": (gettext_lazy("AHT"), lambda r: r.aht_seconds),
    "share": (gettext_lazy("ACW share"), lambda r: r.acw_share),
    "timeouts": (gettext_lazy("Timeouts"), lambda r: r.timeouts),
    "extended": (gettext_lazy("Extended"), lambda r: r.extended),
    "too_short": (gettext_lazy("Too short"), lambda r: r.too_short_share),
}


# The overview's table sorts by these too (it shows talk, hold and the expected ACW).
TABLE_SORTS: dict[str, tuple[StrOrPromise, Callable[[KpiRow], Any]]] = {
    "name": SORTS["name"],
    "interactions": SORTS["interactions"],
    "talk": (gettext_lazy("Talk"), lambda r: r.talk_seconds),
    "hold": (gettext_lazy("Hold"), lambda r: r.hold_seconds),
    "acw": SORTS["acw"],
    "avg_acw": SORTS["avg_acw"],
    "expected": (
        gettext_lazy("Expected"),
        lambda r: -1.0 if r.expected_acw_seconds is None else r.expected_acw_seconds,
    ),
    "index": SORTS["index"],
    "aht": SORTS["aht"],
    "share": SORTS["share"],
    "timeouts": SORTS["timeouts"],
    "extended": SORTS["extended"],
    "too_short": SORTS["too_short"],
}
# The header tooltips of the overview's table, per column.
COLUMN_TITLES: dict[str, StrOrPromise] = {
    "expected": gettext_lazy("The ACW expected for the codes handled"),
    "index": gettext_lazy("Average ACW ÷ expected ACW for the codes handled"),
    "timeouts": gettext_lazy("ACWs the system closed at their deadline"),
    "extended": gettext_lazy("ACWs extended at least once"),
    "too_short": gettext_lazy("Share of the ACWs shorter than their policy's minimum (count)"),
}
# Rows per page of the overview's table: 2,000 agents are 40 pages, not one 1 MB page.
TABLE_PAGE_SIZE = 50


def sort_rows(
    rows: list[KpiRow],
    sort: str,
    columns: Mapping[str, tuple[Any, Callable[[KpiRow], Any]]] = SORTS,
) -> tuple[list[KpiRow], str]:
    """Rows ordered by a column (``-avg_acw``: descending); an unknown column sorts by name.

    The sort is stable and the rows come in key order, so equal values keep that order: a
    row never moves from one page of the table to another between two requests.
    """
    descending = sort.startswith("-")
    column = sort.lstrip("-")
    if column not in columns:
        column, descending = "name", False
    ordered = sorted(rows, key=columns[column][1], reverse=descending)
    return ordered, ("-" if descending else "") + column


def table_page(rows: list[KpiRow], sort: str, number: str | None) -> tuple[Page, str]:
    """The overview table's page ``number`` (1 when missing or out of range) of ``rows``
    sorted by ``sort`` over all pages (``TABLE_SORTS``; none: the API's key order), and the
    sort applied ("" for the key order)."""
    if sort:
        rows, sort = sort_rows(rows, sort, TABLE_SORTS)
    return Paginator(rows, TABLE_PAGE_SIZE).get_page(number), sort


def coaching_page(entries: list[coaching.Entry], number: str | None) -> Page:
    """The coaching page's ``number`` (1 when missing or out of range) of ``TABLE_PAGE_SIZE``
    entries, the agents who meet the most rules first (in the list's order among equals): a
    large site has a thousand entries, which the API and the CSV give in full."""
    worst_first = sorted(entries, key=lambda entry: -len(entry.reasons))
    return Paginator(worst_first, TABLE_PAGE_SIZE).get_page(number)


# Beyond this many days a sparkline has a point per week: 70 days are 10 points, not 70.
WEEKLY_SPARKLINE_DAYS = 62
# Beyond this many, a point per calendar month: a year is 12 or 13 points (the first and last
# months possibly partial) read from the month rows, instead of 53 weeks summed from day rows.
MONTHLY_SPARKLINE_DAYS = 183


def sparkline_step(period: Period) -> Literal["hour", "day", "week", "month"]:
    """What one point of the team page's sparklines covers for ``period``."""
    if period.is_one_day:
        return "hour"
    if period.days > MONTHLY_SPARKLINE_DAYS:
        return "month"
    return "week" if period.days > WEEKLY_SPARKLINE_DAYS else "day"


def _month_number(day: date) -> int:
    return day.year * 12 + day.month


class DaysSince(Func):
    """Whole days from the date ``first`` (the second expression) to the date of the first:
    PostgreSQL subtracts dates into days; SQLite has no date type, so through Julian days."""

    arg_joiner = " - "
    template = "(%(expressions)s)"
    output_field = IntegerField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="CAST(julianday(%(expressions)s) AS INTEGER)",
            arg_joiner=") - julianday(",
            **extra,
        )


def agent_sparklines(scope: Scope) -> dict[str, list[float | None]]:
    """Average ACW per agent per hour (one day), day, week or month (``sparkline_step``):
    weeks counted from the period's first day, the last one possibly shorter; calendar months
    of the site, read from the month rows where a whole month has them.

    One query on the rollups, as of their last run (a minute old at most): a sparkline shows a
    shape, and the exact figures sit next to it in the table. The database sums each agent's
    points, so a year of day rows never reaches Python. Hours come from the day's raw rows
    (there are no agent rows per 15 minutes).
    """
    start, end = scope.bounds()
    step = sparkline_step(scope.period)
    tz = site_tz()
    if step == "hour":
        return _hourly_sparklines(scope, start, end)
    if step == "month":
        in_period = reduce(
            operator.or_,
            (
                Q(grain=grain, bucket_start__gte=s, bucket_start__lt=e)
                for grain, (s, e) in queries.rollup_segments(start, end)
            ),
        )
    else:
        in_period = Q(grain=Grain.DAY, bucket_start__gte=start, bucket_start__lt=end)
    rollups = KpiRollup.objects.filter(in_period, team_id__in=scope.team_ids)
    if scope.channel:
        rollups = rollups.filter(channel=scope.channel)
    point: Any
    if step == "month":
        first, last = scope.period.first, scope.period.last
        size = _month_number(last) - _month_number(first) + 1
        point = (
            ExtractYear("bucket_start", tzinfo=tz) * 12
            + ExtractMonth("bucket_start", tzinfo=tz)
            - _month_number(first)
        )
    else:
        days = DaysSince(TruncDate("bucket_start", tzinfo=tz), Value(scope.period.first))
        per = 7 if step == "week" else 1
        size = -(-scope.period.days // per)
        point = ExpressionWrapper(days / per, output_field=IntegerField())
    points = (
        rollups.annotate(point=point)
        .values_list("agent__external_id", "point")
        .annotate(n=Sum("interactions"), acw=Sum("acw_seconds"))
        .order_by()
    )
    return _sparklines(points, size)


def _hourly_sparklines(
    scope: Scope, start: datetime, end: datetime
) -> dict[str, list[float | None]]:
    """``agent_sparklines`` per hour of one day, from its raw rows: the closed ACWs' seconds
    per interaction, as the rollups count them."""
    ended = Interaction.objects.filter(
        team_id__in=scope.team_ids, ended_at__gte=start, ended_at__lt=end
    )
    if scope.channel:
        ended = ended.filter(channel=scope.channel)
    closed = Case(
        When(acw__ended_at__isnull=False, then=Coalesce("acw__duration_seconds", Value(0.0))),
        default=Value(0.0),
        output_field=FloatField(),
    )
    points = (
        ended.annotate(point=ExtractHour("ended_at", tzinfo=site_tz()))
        .values_list("agent__external_id", "point")
        .annotate(n=Count("pk"), closed_seconds=Sum(closed))
        .order_by()
    )
    return _sparklines(points, 24)


def _sparklines(
    points: Iterable[tuple[str, int, int, float]], size: int
) -> dict[str, list[float | None]]:
    """Average ACW per agent and point from (agent, point, interactions, ACW seconds)."""
    sums: dict[str, list[list[float]]] = {}
    for key, slot, n, acw in points:
        cells = sums.setdefault(key, [[0, 0.0] for _ in range(size)])
        if 0 <= slot < size:
            cells[slot][0] += n
            cells[slot][1] += acw
    return {key: [acw / n if n else None for n, acw in cells] for key, cells in sums.items()}
