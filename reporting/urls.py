"""KPI page routes, and the alert acknowledgement the wall posts to."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.kpi_overview, name="kpis"),
    path("coaching/", views.kpi_coaching, name="kpi-coaching"),
    path("agents/<path:external_id>/", views.kpi_agent, name="kpi-agent"),
    path("teams/<int:team_id>/", views.kpi_team, name="kpi-team"),
    path("staffing/", views.kpi_staffing, name="kpi-staffing"),
    path("alerts/<int:alert_id>/ack", views.acknowledge_alert, name="alert-ack"),
]
