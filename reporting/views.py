"""The managers' KPI pages and the wall's alert acknowledgement.

Each page parses its scope (period, filters) within the teams the user may see, reads the same
query functions as ``/api/v1/kpis`` through ``reporting.pages``, and renders. What the user may
not see answers 404, as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from agents import access
from agents.api_errors import error_text
from agents.models import Agent, Channel, Department, Team

from . import alerts, charts, coaching, pages, queries, selectors, staffing
from .api import coaching_csv_response, csv_response
from .erlang import StaffingError
from .models import AlertStatus
from .pages import Scope, ScopeError
from .params import StaffingPageSerializer
from .queries import KpiRow, site_tz
from .templatetags.kpi_format import format_duration, format_percent


def _watcher(request: HttpRequest) -> None:
    if not access.can_watch(request.user):
        raise PermissionDenied


def _error_page(
    request: HttpRequest, template: str, error: str, context: dict[str, Any]
) -> HttpResponse:
    """The page's form with the error, and no figures (a 400, never a 500)."""
    return render(request, template, {**context, "error": error}, status=400)


def _scope_or_error_page(
    request: HttpRequest,
    template: str,
    base: dict[str, Any] | None = None,
    *,
    team: Team | None = None,
    agent: Agent | None = None,
) -> Scope | HttpResponse:
    """The scope the page's query string asks for (of ``team`` or ``agent``), or the page's
    form with the error over today's default scope (a 400)."""
    try:
        return pages.parse_scope(request.user, request.GET, team=team, agent=agent)
    except ScopeError as error:
        scope = pages.default_scope(request.user, team=team, agent=agent)
        return _error_page(
            request, template, str(error), {**(base or {}), **_filter_options(request, scope)}
        )


def _filter_options(request: HttpRequest, scope: Scope) -> dict[str, Any]:
    teams = access.visible_teams(request.user).order_by("name")
    departments = Department.objects.filter(teams__in=teams).distinct().order_by("name")
    return {
        "department_options": list(departments.values_list("name", flat=True)),
        "scope": scope,
        "presets": pages.preset_links(scope),
        "team_options": list(teams.values_list("name", flat=True)),
        "channel_options": Channel.choices,
        "group_options": pages.TABLE_GROUPS.items(),
    }


def _charts(scope: Scope, title: str) -> dict[str, Any]:
    """The charts every page shows for its scope: trend, AHT split, distribution."""
    trend = pages.trend(scope)
    per = _("15 minutes") if trend.group_by == "interval" else _("day")
    dist = pages.distribution(scope)
    policy = pages.band_policy(scope)
    deadline = float(policy.seconds) if policy.is_timed else None
    return {
        "trend_per": per,
        "trend_chart": charts.line_chart(
            trend.labels,
            trend.avg_acw,
            label=_("Average ACW per %(per)s, %(title)s") % {"per": per, "title": title},
        ),
        "aht_chart": charts.stacked_bars(
            trend.labels,
            trend.parts,
            label=_("AHT per %(per)s: ACW, hold and talk, %(title)s")
            % {"per": per, "title": title},
        ),
        "trend_query": scope.api_query(trend.group_by, format="csv"),
        "distribution": dist,
        "histogram": charts.histogram(
            dist["bins"],
            label=_("ACW durations, %s") % title,
            too_short_below=float(policy.min_seconds) or None,
            deadline=deadline,
        ),
        "band_policy": policy,
        "band_deadline": deadline,
    }


def _by_channel_and_code(scope: Scope, title: str) -> dict[str, Any]:
    channel_rows = pages.kpi(scope, "channel")
    code_rows = pages.kpi(scope, "wrap_up_code", index=True)
    by_avg = sorted(channel_rows, key=lambda r: -r.avg_acw_seconds)
    # The chart shows the codes with the most interactions; the table lists every one.
    busiest = sorted(code_rows, key=lambda r: -r.interactions)[:12]
    busiest.sort(key=lambda r: -r.avg_acw_seconds)
    return {
        "channel_rows": channel_rows,
        "channel_chart": charts.bar_list(
            [(r.name, r.avg_acw_seconds, _("%s int.") % r.interactions) for r in by_avg],
            label=_("Average ACW per channel, %s") % title,
        ),
        "channel_query": scope.api_query("channel", format="csv"),
        "code_rows": code_rows,
        "code_chart": charts.bar_list(
            [(r.name, r.avg_acw_seconds, _("%s int.") % r.interactions) for r in busiest],
            norms=[r.norm_acw_seconds for r in busiest],
            label=_("Average ACW per wrap-up code, %s") % title,
        ),
        "code_query": scope.api_query("wrap_up_code", format="csv"),
    }


def _links(rows: Iterable[Any], group_by: str, scope: Scope) -> dict[str, str]:
    """Each row's drill-down page, keeping the period and channel."""
    keep = urlencode(scope.query(team=None, department=None, group_by=None))
    if group_by == "agent":
        return {
            r.key: reverse("kpi-agent", args=[r.key]) + (f"?{keep}" if keep else "") for r in rows
        }
    if group_by == "team":
        ids = dict(Team.objects.filter(pk__in=scope.team_ids).values_list("name", "pk"))
        return {
            r.key: reverse("kpi-team", args=[ids[r.key]]) + f"?{keep}" for r in rows if r.key in ids
        }
    return {
        r.key: "?" + urlencode(scope.query(department=r.key, group_by="team"))
        for r in rows
        if r.key
    }


def _overview_title(scope: Scope) -> str:
    parts = [scope.team or scope.department or _("all teams")]
    if scope.channel:
        parts.append(dict(Channel.choices)[scope.channel].lower())
    return f"{', '.join(parts)}, {scope.period.label}"


@login_required
@require_GET
def kpi_overview(request: HttpRequest) -> HttpResponse:
    """``/kpis/``: headline cards against the previous period, charts, and the KPI table."""
    _watcher(request)
    scope = _scope_or_error_page(request, "reporting/kpis.html")
    if isinstance(scope, HttpResponse):
        return scope
    with queries.shared_reads():
        context = _overview(request, scope)
    return render(request, "reporting/kpis.html", context)


def _overview(request: HttpRequest, scope: Scope) -> dict[str, Any]:
    """What ``/kpis/`` shows for ``scope``: every figure read in one snapshot."""
    rows = pages.kpi(scope, scope.group_by, index=True)
    total = KpiRow.total(rows)
    table, sort = pages.table_page(rows, request.GET.get("sort", ""), request.GET.get("page"))
    before = KpiRow.total(pages.kpi(scope, "team", scope.period.previous(), index=True))
    title = _overview_title(scope)
    return {
        **_filter_options(request, scope),
        "title": title,
        "rows": table.object_list,
        "total": total,
        "table": table,
        "sort": sort,
        "sorts": _sort_links(scope, sort, pages.TABLE_SORTS),
        "pager": _page_links(scope, table, sort),
        "links": _links(table.object_list, scope.group_by, scope),
        "table_query": scope.api_query(scope.group_by, format="csv"),
        "group_label": pages.TABLE_HEADINGS.get(scope.group_by, scope.group_by),
        "group_key_label": pages.TABLE_GROUPS.get(scope.group_by, scope.group_by),
        "coaching_query": urlencode(scope.query(group_by=None)),
        "cards": pages.headline_cards(total, before),
        "previous": scope.period.previous(),
        "heat_query": scope.api_query("weekday_hour", format="csv"),
        "heat_map": charts.heat_map(
            pages.heat_cells(pages.kpi(scope, "weekday_hour")),
            label=_("Average ACW per weekday and hour, %s") % title,
        ),
        **_charts(scope, title),
        **_by_channel_and_code(scope, title),
    }


def _agent_or_404(request: HttpRequest, external_id: str) -> Agent:
    teams = access.visible_teams(request.user)
    agent = Agent.objects.filter(external_id=external_id, team__in=teams).select_related("team")
    found = agent.first()
    if found is None:
        raise Http404
    return found


@login_required
@require_GET
def kpi_agent(request: HttpRequest, external_id: str) -> HttpResponse:
    """``/kpis/agents/<external id>/``: one agent's figures, trend, recent interactions, alerts."""
    _watcher(request)
    agent = _agent_or_404(request, external_id)
    base = {"agent": agent}
    scope = _scope_or_error_page(request, "reporting/kpi_agent.html", base, agent=agent)
    if isinstance(scope, HttpResponse):
        return scope
    export = request.GET.get("csv")
    if export == "interactions":
        return _interactions_csv(agent, pages.recent_interactions(scope))
    if export == "alerts":
        return _alerts_csv(
            f"alerts-{agent.external_id}", pages.recent_alerts(scope.team_ids, agent)
        )
    with queries.shared_reads():
        context = _agent_page(request, agent, scope)
    return render(request, "reporting/kpi_agent.html", context)


def _agent_page(request: HttpRequest, agent: Agent, scope: Scope) -> dict[str, Any]:
    """What ``/kpis/agents/<external id>/`` shows for ``scope``: every figure read in one
    snapshot."""
    total = KpiRow.total(pages.kpi(scope, "channel", index=True))
    before = KpiRow.total(pages.kpi(scope, "channel", scope.period.previous(), index=True))
    title = f"{agent.name}, {scope.period.label}"
    return {
        "agent": agent,
        **_filter_options(request, scope),
        "title": title,
        "cards": pages.headline_cards(total, before),
        "previous": scope.period.previous(),
        "interactions": pages.recent_interactions(scope),
        "recent_limit": pages.RECENT_INTERACTIONS,
        "alerts": pages.recent_alerts(scope.team_ids, agent),
        "crumbs": [
            {
                "label": agent.team.name,
                "url": reverse("kpi-team", args=[agent.team_id])
                + "?"
                + urlencode(scope.query(team=None, group_by=None)),
            },
            {"label": agent.name},
        ],
        "csv_query": urlencode(scope.query()),
        **_charts(scope, title),
        **_by_channel_and_code(scope, title),
    }


@login_required
@require_GET
def kpi_team(request: HttpRequest, team_id: int) -> HttpResponse:
    """``/kpis/teams/<id>/``: the team's agents side by side (sortable), its trend and alerts."""
    _watcher(request)
    team = access.visible_teams(request.user).filter(pk=team_id).first()
    if team is None:
        raise Http404
    base = {"team": team}
    scope = _scope_or_error_page(request, "reporting/kpi_team.html", base, team=team)
    if isinstance(scope, HttpResponse):
        return scope
    if request.GET.get("csv") == "alerts":
        return _alerts_csv(f"alerts-team-{team.pk}", pages.recent_alerts(scope.team_ids))
    with queries.shared_reads():
        context = _team_page(request, team, scope)
    return render(request, "reporting/kpi_team.html", context)


def _team_page(request: HttpRequest, team: Team, scope: Scope) -> dict[str, Any]:
    """What ``/kpis/teams/<id>/`` shows for ``scope``: every figure read in one snapshot."""
    rows, sort = pages.sort_rows(
        pages.kpi(scope, "agent", index=True), request.GET.get("sort", "name")
    )
    total = KpiRow.total(rows)
    # The previous period's total only: from the team rows, not every agent's.
    before = KpiRow.total(pages.kpi(scope, "team", scope.period.previous(), index=True))
    title = f"team {team.name}, {scope.period.label}"
    sparklines = pages.agent_sparklines(scope)
    keep = urlencode(scope.query(team=None, group_by=None))
    return {
        "team": team,
        **_filter_options(request, scope),
        "crumbs": [{"label": team.name}],
        "title": title,
        "rows": [
            {
                "row": row,
                "link": reverse("kpi-agent", args=[row.key]) + f"?{keep}",
                "spark": charts.sparkline(
                    sparklines.get(row.key, []), label=_("Average ACW of %s") % row.name
                ),
            }
            for row in rows
        ],
        "total": total,
        "sort": sort,
        "sorts": _sort_links(scope, sort, team=None),
        "spark_per": {"hour": _("hour"), "day": _("day"), "week": _("week"), "month": _("month")}[
            pages.sparkline_step(scope.period)
        ],
        "cards": pages.headline_cards(total, before),
        "previous": scope.period.previous(),
        "alerts": pages.recent_alerts(scope.team_ids),
        "table_query": scope.api_query("agent", format="csv"),
        "csv_query": urlencode(scope.query(team=None)),
        **_charts(scope, title),
    }


@login_required
@require_GET
def kpi_coaching(request: HttpRequest) -> HttpResponse:
    """``/kpis/coaching/``: who needs coaching in the visible teams, and why (with the numbers);
    the checklist analysis; both as CSV (``?csv=coaching`` / ``?csv=checklist``)."""
    _watcher(request)
    scope = _scope_or_error_page(request, "reporting/coaching.html")
    if isinstance(scope, HttpResponse):
        return scope
    export = request.GET.get("csv")
    if export == "checklist":
        analysis = coaching.checklist(scope.where, scope.period.first, scope.period.last)
        return csv_response(
            f"acw-checklist-{scope.period.first}-to-{scope.period.last}.csv",
            coaching.CHECKLIST_FIELDS,
            coaching.checklist_rows(analysis),
        )
    if export and export != "coaching":
        return _error_page(
            request,
            "reporting/coaching.html",
            "csv: choose coaching or checklist.",
            _filter_options(request, scope),
        )
    result = coaching.coaching(scope.where, scope.period.first, scope.period.last)
    if export == "coaching":
        return coaching_csv_response(result, scope.period.first, scope.period.last)
    # Per agent for one team only: every agent's steps would make the page grow with the site
    # (thousands of rows); the CSV has them all.
    per_agent = len(scope.team_ids) == 1
    checklist = coaching.checklist_rows(result, per_agent=per_agent)
    keep = urlencode(scope.query(team=None, department=None, group_by=None))
    table = pages.coaching_page(result.entries, request.GET.get("page"))
    context = {
        **_filter_options(request, scope),
        "crumbs": [{"label": _("Coaching")}],
        "title": f"{_overview_title(scope)}",
        "entries": [
            {
                "entry": e,
                "link": reverse("kpi-agent", args=[e.agent]) + (f"?{keep}" if keep else ""),
            }
            for e in table.object_list
        ],
        "table": table,
        "pager": _page_links(scope, table, ""),
        "checklist_teams": [row for row in checklist if not row["agent"]],
        "checklist_agents": [row for row in checklist if row["agent"]] if per_agent else None,
        "recent": result.recent,
        "rules": coaching,
        "csv_query": urlencode(scope.query(group_by=None)),
    }
    return render(request, "reporting/coaching.html", context)


def _sort_links(
    scope: Scope,
    current: str,
    columns: dict[str, tuple[Any, Any]] = pages.SORTS,
    **changes: str | None,
) -> dict[str, dict[str, str]]:
    """Per column: the query that sorts by it (descending first, except names), back on the
    first page, and its state; ``changes`` to the page's query (e.g. ``team=None``)."""
    out = {}
    for column, (label, _key) in columns.items():
        if current == column:
            target, state = f"-{column}", "ascending"
        elif current == f"-{column}":
            target, state = column, "descending"
        else:
            target, state = (column if column == "name" else f"-{column}"), "none"
        out[column] = {
            "label": str(label),
            "query": urlencode(scope.query(**changes, sort=target)),
            "state": state,
            "title": str(pages.COLUMN_TITLES.get(column, "")),
        }
    return out


def _page_links(scope: Scope, table: Page, sort: str) -> dict[str, Any]:
    """The table's page links (first, last and the pages around the current one), each
    keeping the period, the filters, the grouping and the sort."""

    def query(number: int) -> str:
        return urlencode(scope.query(sort=sort or None, page=str(number) if number > 1 else None))

    around = table.paginator.get_elided_page_range(table.number, on_each_side=2, on_ends=1)
    return {
        "pages": [
            {"number": n, "query": "" if n == Paginator.ELLIPSIS else query(int(n))} for n in around
        ],
        "previous": query(table.previous_page_number()) if table.has_previous() else "",
        "next": query(table.next_page_number()) if table.has_next() else "",
    }


# --- Page-level CSV (tables the API does not serve) ----------------------------------------


INTERACTION_FIELDS = [
    "interaction_id",
    "channel",
    "ended_at",
    "talk_seconds",
    "hold_seconds",
    "acw_seconds",
    "acw_ended_by",
    "extensions",
    "wrap_up_code",
    "note",
    "checklist",
    "policy_violation",
]
ALERT_FIELDS = [
    "id",
    "kind",
    "status",
    "team",
    "agent",
    "message",
    "value",
    "threshold",
    "opened_at",
    "acknowledged_by",
    "acknowledged_at",
    "resolved_at",
]


def _interactions_csv(agent: Agent, rows: list[pages.RecentInteraction]) -> HttpResponse:
    tz = site_tz()
    lines = (
        {
            "interaction_id": r.interaction_id,
            "channel": r.channel,
            "ended_at": r.ended_at.astimezone(tz).isoformat(),
            "talk_seconds": round(r.talk_seconds, 3),
            "hold_seconds": round(r.hold_seconds, 3),
            "acw_seconds": None if r.acw_seconds is None else round(r.acw_seconds, 3),
            "acw_ended_by": r.acw_end,
            "extensions": r.extensions,
            "wrap_up_code": r.wrap_up_code,
            "note": r.note,
            "checklist": "; ".join(r.checklist),
            "policy_violation": r.policy_violation,
        }
        for r in rows
    )
    return csv_response(f"interactions-{agent.external_id}.csv", INTERACTION_FIELDS, lines)


def _alerts_csv(filename: str, rows: list[Any]) -> HttpResponse:
    payloads = (selectors.alert_payload(alert) for alert in rows)
    return csv_response(f"{filename}.csv", ALERT_FIELDS, payloads)


@login_required
@require_POST
def acknowledge_alert(request: HttpRequest, alert_id: int) -> JsonResponse:
    """``POST /kpis/alerts/<id>/ack`` (session + CSRF): acknowledge an alert of a visible team.

    200 with the alert (also when it was acknowledged already), 404 for an alert the user may
    not see, 409 once it has resolved.
    """
    alert = selectors.access_alert(request.user, alert_id)
    if alert is None:
        raise Http404
    if alert.status == AlertStatus.RESOLVED:
        return JsonResponse({"error": "status: the alert is already resolved"}, status=409)
    alert = alerts.acknowledge_alert(alert.pk, request.user)
    if alert.status == AlertStatus.RESOLVED:
        return JsonResponse({"error": "status: the alert is already resolved"}, status=409)
    return JsonResponse({"alert": selectors.alert_payload(alert)})


# --- The staffing what-if -------------------------------------------------------------------


def _hour_label(hour: int) -> str:
    return f"{hour:02d}–{(hour + 1) % 24:02d} h"


def _acw_sentence(answer: staffing.WhatIf, measured_acw: float | None, hour: str) -> str:
    """The what-if in one sentence, e.g. "Cutting ACW from 45 s to 30 s needs 3 fewer agents
    for 80/20 at 10–11 h"."""
    change = answer.acw_change_seconds or 0.0
    saved = answer.agents_saved or 0
    target = (
        f"{format_percent(answer.target_service_level, 0).replace(' %', '')}"
        f"/{answer.target_answer_seconds:g}"
    )
    if measured_acw is not None:
        what = (
            _("Cutting ACW from %(old)s to %(new)s")
            if change < 0
            else _("Raising ACW from %(old)s to %(new)s")
        ) % {
            "old": format_duration(measured_acw),
            "new": format_duration(max(0.0, measured_acw + change)),
        }
    else:
        what = (
            _("Cutting average ACW by %(by)s") if change < 0 else _("Raising average ACW by %(by)s")
        ) % {"by": format_duration(abs(change))}
    if saved > 0:
        effect = ngettext("needs %(n)d fewer agent", "needs %(n)d fewer agents", saved) % {
            "n": saved
        }
    elif saved < 0:
        effect = ngettext("needs %(n)d more agent", "needs %(n)d more agents", -saved) % {
            "n": -saved
        }
    else:
        effect = _("needs the same number of agents")
    return _("%(what)s %(effect)s for %(target)s at %(hour)s.") % {
        "what": what,
        "effect": effect,
        "target": target,
        "hour": hour,
    }


@login_required
@require_GET
def kpi_staffing(request: HttpRequest) -> HttpResponse:
    """``/kpis/staffing/``: agents needed for a service level (Erlang C), fed by default with a
    visible team's measured volume and AHT for one site hour, and the effect of changing the
    average ACW; ``format=csv`` downloads the table."""
    _watcher(request)
    teams = list(access.visible_teams(request.user).order_by("name"))
    form = StaffingPageSerializer(data=request.GET)
    valid = form.is_valid()
    params = form.validated_data if valid else {}
    wanted = params.get("team")
    team = next((t for t in teams if wanted is None or t.pk == wanted), None)
    if wanted is not None and team is None:
        # A team the user may not see does not exist for them.
        raise Http404
    now = timezone.localtime(timezone.now(), site_tz())
    last_hour = now - timedelta(hours=1)
    day = params.get("day", last_hour.date())
    hour = params.get("hour", last_hour.hour)
    context: dict[str, Any] = {
        "team_options": teams,
        "team": team,
        "day": day,
        "hour": hour,
        "hours": [(h, _hour_label(h)) for h in range(24)],
        "hour_label": _hour_label(hour),
        "form": {k: request.GET.get(k, "") for k in ("volume", "aht_seconds")},
        "service_level_percent": params.get("service_level_percent", 80),
        "target_answer_seconds": params.get("target_answer_seconds", 20),
        "acw_change_seconds": params.get("acw_change_seconds", -15),
    }
    if not valid:
        return _error_page(request, "reporting/staffing.html", error_text(form.errors), context)
    measured = staffing.measured_load(team.pk, day, hour) if team else None
    context["measured"] = measured
    volume = params.get("volume") or (measured.interactions if measured else 0)
    aht = params.get("aht_seconds") or (measured.aht_seconds if measured else 0.0)
    context.update(volume=volume, aht_seconds=aht)
    if not volume or not aht:
        context["missing"] = True
        return render(request, "reporting/staffing.html", context)
    change = context["acw_change_seconds"]
    measured_acw = (
        measured.avg_acw_seconds
        if measured and measured.interactions and "aht_seconds" not in params
        else None
    )
    try:
        answer = staffing.what_if(
            volume=volume,
            interval_seconds=3600,
            aht_seconds=aht,
            target_service_level=context["service_level_percent"] / 100,
            target_answer_seconds=context["target_answer_seconds"],
            acw_change_seconds=change or None,
            acw_seconds=measured_acw,
        )
    except StaffingError as error:
        return _error_page(request, "reporting/staffing.html", str(error), context)
    if request.GET.get("format") == "csv":
        return csv_response(
            f"staffing-{day}-{hour:02d}h.csv", staffing.TABLE_FIELDS, answer.table()
        )
    context.update(
        answer=answer,
        table=answer.table(),
        sentence=_acw_sentence(answer, measured_acw, context["hour_label"])
        if answer.changed
        else "",
        csv_query=urlencode({**request.GET.dict(), "format": "csv"}),
    )
    return render(request, "reporting/staffing.html", context)
