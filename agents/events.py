"""The wall's WebSocket contract: group names, payload builders and the one place that publishes.

Snapshot and deltas use the same ``agent_payload()``, so a reconnecting wall shows exactly what
a live one shows. ``broadcast_on_commit()`` is the only function that sends to the channel
layer, and it sends only after the transaction commits: a push that is rolled back would show
supervisors a state that never existed. A failed publish (Redis down) is logged and counted,
never raised — the event is already stored, and walls catch up by resync.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from .models import AgentState

logger = logging.getLogger(__name__)

TEAM_SEQ_KEY = "acw:team-seq:{team_id}"
PUBLISH_FAILURES_KEY = "publish_failures"
_counters: dict[str, int] = {PUBLISH_FAILURES_KEY: 0}


def team_group(team_id: int) -> str:
    """The channel-layer group of one team's walls."""
    return f"wall.team.{team_id}"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def agent_payload(live: AgentState) -> dict[str, Any]:
    """One agent as in ``GET /api/v1/agents/state`` and the wall frames (contract §4–5).

    Expects ``live.agent`` and ``live.agent.team`` loaded (``select_related``).
    """
    agent = live.agent
    return {
        "agent": agent.external_id,
        "name": agent.name,
        "team": agent.team.name,
        "state": live.state,
        "reason": live.reason if live.state == "not_ready" else None,
        "since": _iso(live.since),
        "interaction_id": live.interaction_id if live.state == "on_interaction" else None,
        "channel": live.channel if live.state in ("on_interaction", "acw") else None,
        "acw_deadline": _iso(live.acw_deadline) if live.state == "acw" else None,
        "acw_started_at": _iso(live.acw_started_at) if live.state == "acw" else None,
        "acw_extensions": live.acw_extensions if live.state == "acw" else 0,
    }


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def publish_failures() -> int:
    """How many publishes failed in this process (exposed for health checks and tests)."""
    return _counters[PUBLISH_FAILURES_KEY]


def _publish(team_id: int, message: dict[str, Any]) -> None:
    try:
        # A per-team sequence number lets each wall notice a message the layer dropped.
        seq = _redis().incr(TEAM_SEQ_KEY.format(team_id=team_id))
        async_to_sync(get_channel_layer().group_send)(
            team_group(team_id), {**message, "team_id": team_id, "team_seq": seq}
        )
    except Exception:
        _counters[PUBLISH_FAILURES_KEY] += 1
        logger.warning("publish to team %s failed; walls will resync", team_id, exc_info=True)


def broadcast_on_commit(messages: Iterable[tuple[int, dict[str, Any]]]) -> None:
    """Send ``(team_id, message)`` pairs to the walls once the current transaction commits."""
    pending = list(messages)
    if not pending:
        return

    def send() -> None:
        for team_id, message in pending:
            _publish(team_id, message)

    transaction.on_commit(send)


def agent_changed(live: AgentState) -> tuple[int, dict[str, Any]]:
    """The message telling a team's walls that one agent's live state changed."""
    return live.agent.team_id, {"type": "wall.agent", "agent": agent_payload(live)}


def agent_removed(team_id: int, external_id: str) -> tuple[int, dict[str, Any]]:
    """The message telling a team's walls that an agent left the team."""
    return team_id, {"type": "wall.agent_removed", "agent": external_id}
