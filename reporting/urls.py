"""KPI page routes, and the alert acknowledgement the wall posts to."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.kpi_overview, name="kpis"),
    path("alerts/<int:alert_id>/ack", views.acknowledge_alert, name="alert-ack"),
]
