"""The managers' KPI pages and the wall's alert acknowledgement."""

from __future__ import annotations

from datetime import date, timedelta

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from agents import access

from . import alerts, selectors
from .models import AlertStatus
from .queries import GroupBy, KpiRow, kpi_rows, site_day_bounds, site_today

MAX_DAYS = 366


def _day(raw: str | None, default: date) -> date | None:
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


@login_required
def kpi_overview(request: HttpRequest) -> HttpResponse:
    """KPIs per agent or team for a range of site days (the same figures as ``/api/v1/kpis``)."""
    if not access.can_watch(request.user):
        raise PermissionDenied
    today = site_today()
    first = _day(request.GET.get("from"), today)
    last = _day(request.GET.get("to"), first or today)
    group_by: GroupBy = "team" if request.GET.get("group_by") == "team" else "agent"
    teams = access.visible_teams(request.user)
    team_name = request.GET.get("team", "")
    error = ""
    if first is None or last is None:
        error = "Dates must be written YYYY-MM-DD."
    elif first > last:
        error = "The first day must not be after the last."
    elif (last - first).days >= MAX_DAYS:
        error = f"Choose at most {MAX_DAYS} days."
    rows = []
    if not error:
        assert first is not None and last is not None
        shown = teams.filter(name=team_name) if team_name else teams
        start, end = site_day_bounds(first, last)
        rows = kpi_rows(
            team_ids=shown.values_list("pk", flat=True), group_by=group_by, start=start, end=end
        )
    context = {
        "rows": rows,
        "totals": KpiRow.total(rows),
        "group_by": group_by,
        "first": first or today,
        "last": last or today,
        "today": today,
        "yesterday": today - timedelta(days=1),
        "week_start": today - timedelta(days=6),
        "teams": teams,
        "team_name": team_name,
        "error": error,
    }
    return render(request, "reporting/kpis.html", context, status=400 if error else 200)


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
