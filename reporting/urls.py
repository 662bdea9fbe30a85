"""KPI page routes."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.kpi_overview, name="kpis"),
]
