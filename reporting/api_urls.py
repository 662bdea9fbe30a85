"""Reporting's API routes, mounted under ``/api/v1/``."""

from django.urls import path

from . import api

urlpatterns = [
    path("kpis", api.KpisView.as_view(), name="api-kpis"),
    path("kpis/distribution", api.DistributionView.as_view(), name="api-kpis-distribution"),
    path("coaching", api.CoachingView.as_view(), name="api-coaching"),
    path("staffing", api.StaffingView.as_view(), name="api-staffing"),
]
