"""What the agents app renders: the live state of an agent, and the API's answers.

These serializers are the ones the API views and the walls render with, and the ones the OpenAPI
schema (``/api/schema/``, ``/api/docs/``) is generated from, so the published schema cannot
drift from the responses (``agents/tests/test_api_schema.py`` checks it against real answers).
Incoming events are validated by the serializers of ``agents.validation``. docs/api.md and
docs/wall.md describe the fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .choices import State
from .models import AgentState
from .policies import Policies, acw_colour_points
from .states import ACW, NOT_READY, ON_INTERACTION


class IsoDateTimeField(serializers.DateTimeField):
    """An aware datetime as ISO 8601 with its offset, exactly as stored.

    DRF's own rendering would convert it to the current time zone and write UTC as ``Z``; the
    API has always answered ``+00:00``, and clients may compare strings.
    """

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


class AcwTimeoutSerializer(serializers.Serializer):
    state = serializers.CharField()
    reason = serializers.CharField(allow_null=True)


# The fields that only mean something in some states: null in every other state.
ONLY_IN_STATES: dict[str, tuple[str, ...]] = {
    "reason": (NOT_READY,),
    "interaction_id": (ON_INTERACTION,),
    "channel": (ON_INTERACTION, ACW),
    "acw_deadline": (ACW,),
    "acw_started_at": (ACW,),
}


class AgentStateSerializer(serializers.Serializer):
    """One agent as in ``GET /api/v1/agents/state`` and in the wall's frames.

    Renders an ``AgentState`` whose ``agent`` and ``agent.team`` are loaded (``select_related``).
    """

    agent = serializers.CharField(source="agent.external_id", help_text="External id.")
    name = serializers.CharField(source="agent.name")
    team = serializers.CharField(source="agent.team.name")
    state = serializers.ChoiceField(choices=State.values)
    reason = serializers.CharField(allow_null=True, help_text="Only for not_ready.")
    since = IsoDateTimeField(allow_null=True, help_text="When the current state began.")
    interaction_id = serializers.CharField(allow_null=True, help_text="Only while on_interaction.")
    channel = serializers.CharField(
        allow_null=True, help_text="The interaction's channel, on_interaction and acw only."
    )
    acw_deadline = IsoDateTimeField(
        allow_null=True, help_text="Only in acw; null for an untimed ACW."
    )
    acw_started_at = IsoDateTimeField(allow_null=True, help_text="Only in acw.")
    acw_extensions = serializers.IntegerField(
        help_text="How many times the open ACW was extended; 0 outside acw."
    )
    open_contacts = serializers.IntegerField(
        help_text="Contacts the agent holds: interactions connected plus ACWs open (a chat "
        "agent may hold several); 0 when none."
    )
    acw_timeout = serializers.SerializerMethodField(
        help_text="Only in a timed acw: what the agent becomes at the deadline (state, reason); "
        "null when another contact's ACW is still open then."
    )
    version = serializers.IntegerField(
        help_text="Grows with every change of this agent's live state; a wall ignores a state "
        "older than one it already shows."
    )
    # What a tile needs to colour itself without knowing policies (agents.policies).
    acw_amber_at = IsoDateTimeField(
        allow_null=True, required=False, help_text="Only in acw: when the tile turns amber."
    )
    acw_red_at = IsoDateTimeField(
        allow_null=True, required=False, help_text="Only in acw: when the tile turns red."
    )
    acw_overrun = serializers.BooleanField(
        required=False, help_text="The ACW was extended past its policy's timer."
    )

    @extend_schema_field(AcwTimeoutSerializer(allow_null=True))
    def get_acw_timeout(self, live: AgentState) -> dict[str, Any] | None:
        return acw_timeout(live)

    def to_representation(self, instance: AgentState) -> dict[str, Any]:
        data = super().to_representation(instance)
        for name, states in ONLY_IN_STATES.items():
            if instance.state not in states:
                data[name] = None
        if instance.state != ACW:
            data["acw_extensions"] = 0
        return data


def acw_timeout(live: AgentState) -> dict[str, Any] | None:
    """What a timed ACW becomes at its deadline, else None.

    Computed by the state machine, so a wall can show the timeout the moment the deadline
    passes without knowing the rule (policy timeout action) and without waiting for the
    worker to persist it.
    """
    if live.state != ACW or live.acw_deadline is None:
        return None
    after = live.as_of(live.acw_deadline)
    if after.state == ACW:
        # Another contact's ACW is still open then: the wall waits for the server's push.
        return None
    return {"state": after.state, "reason": after.reason if after.state == NOT_READY else None}


_STATES = {str(value): value for value in State.values}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _whole(value: Any) -> int | None:
    return None if value is None else int(value)


def agent_fields(live: AgentState) -> dict[str, Any]:
    """What ``AgentStateSerializer`` renders of ``live``, field for field, without its field
    objects: every change of an agent's live state is rendered for the walls, and the
    serializer's fields (an attribute look-up and a conversion each, through DRF's generic
    paths) cost several times the rendering itself. ``test_serializers`` holds the two equal
    over every state."""
    agent = live.agent
    state = live.state
    data: dict[str, Any] = {
        "agent": _text(agent.external_id),
        "name": _text(agent.name),
        "team": _text(agent.team.name),
        "state": state if state in ("", None) else _STATES.get(str(state), state),
        "reason": _text(live.reason),
        "since": _instant(live.since),
        "interaction_id": _text(live.interaction_id),
        "channel": _text(live.channel),
        "acw_deadline": _instant(live.acw_deadline),
        "acw_started_at": _instant(live.acw_started_at),
        "acw_extensions": _whole(live.acw_extensions) if state == ACW else 0,
        "open_contacts": _whole(live.open_contacts),
        "acw_timeout": acw_timeout(live),
        "version": _whole(live.version),
        # Not attributes of the live state: null as the serializer renders them (allow_null);
        # ``agent_payload`` fills them in, and adds ``acw_overrun``.
        "acw_amber_at": None,
        "acw_red_at": None,
    }
    for name, states in ONLY_IN_STATES.items():
        if state not in states:
            data[name] = None
    return data


def agent_payload(live: AgentState, policies: Policies | None = None) -> dict[str, Any]:
    """One agent as the API and the walls show it (``AgentStateSerializer``), with its ACW
    colour points (``policies.acw_colour_points``; pass ``policies`` for many agents)."""
    return {**agent_fields(live), **acw_colour_points(live, policies)}


class AgentStatesSerializer(serializers.Serializer):
    agents = AgentStateSerializer(many=True)


class ErrorSerializer(serializers.Serializer):
    """The error envelope of every API error (``agents.api_errors`` and the event results)."""

    error = serializers.CharField(help_text='"<field>: <message>"')


class EventResultSerializer(serializers.Serializer):
    """What became of one posted event; ``error`` only when it was not stored."""

    event_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(["accepted", "duplicate", "conflict", "rejected"])
    error = serializers.CharField(required=False, help_text="Names the field, when refused.")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        if data.get("error") is None:
            data.pop("error", None)
        return data


def event_result(event_id: str | None, status: str, error: str | None) -> dict[str, Any]:
    """One event's result as ``EventResultSerializer`` renders it, built directly: every
    posted event is answered with one, and the serializer cost more than the rest of the
    answer."""
    result: dict[str, Any] = {"event_id": event_id, "status": status}
    if error is not None:
        result["error"] = error
    return result


class BatchResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField(help_text="Invalid events and reused ids alike.")
    results = EventResultSerializer(many=True, help_text="One per event, in input order.")


class AgentSerializer(serializers.Serializer):
    """An agent as ``PUT /api/v1/agents/<external_id>`` answers (``Agent`` with its team)."""

    agent = serializers.CharField(source="external_id", help_text="External id.")
    name = serializers.CharField()
    team = serializers.CharField(source="team.name")
