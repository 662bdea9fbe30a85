"""The managers' KPI pages."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from agents import access


@login_required
def kpi_overview(request: HttpRequest) -> HttpResponse:
    if not access.can_watch(request.user):
        raise PermissionDenied
    return render(request, "reporting/kpis.html", {})
