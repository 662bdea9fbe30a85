"""The read side of the agents app: what the wall, the API and the pages show."""

from __future__ import annotations

from typing import Any

from . import access
from .events import agent_payload
from .models import AgentState


def agent_states(user: Any, team_ids: set[int] | None = None):  # type: ignore[no-untyped-def]
    """Live-state rows of the agents ``user`` may see (optionally only these teams)."""
    visible = access.visible_team_ids(user)
    if team_ids is not None:
        visible &= team_ids
    return (
        AgentState.objects.filter(agent__team_id__in=visible)
        .select_related("agent__team")
        .order_by("agent__name", "agent__external_id")
    )


def agent_state_rows(user: Any) -> list[dict[str, Any]]:
    """``GET /api/v1/agents/state``: every visible agent, as the wall sees it."""
    return [agent_payload(live) for live in agent_states(user)]
