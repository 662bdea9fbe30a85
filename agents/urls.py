"""API routes of the agents app (docs/api.md, sections 3–4)."""

from django.urls import path, register_converter

from . import api


class AnyText:
    """Like ``path``, but also across line breaks: an external id is any text (Django's own
    converters stop at a newline, and the 404 that followed was not the API's answer)."""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(AnyText, "anytext")

urlpatterns = [
    path("events", api.EventsView.as_view(), name="api-events"),
    path("agents/state", api.AgentStatesView.as_view(), name="api-agent-states"),
    path(
        "agents/<anytext:external_id>", api.AgentProvisionView.as_view(), name="api-agent-provision"
    ),
]
