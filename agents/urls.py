"""API routes of the agents app (docs/api.md, sections 3–4)."""

from django.urls import path

from . import api

urlpatterns = [
    path("events", api.EventsView.as_view(), name="api-events"),
    path("agents/state", api.AgentStatesView.as_view(), name="api-agent-states"),
    path("agents/<path:external_id>", api.AgentProvisionView.as_view(), name="api-agent-provision"),
]
