"""The agent's payload (``agent_fields``) against ``AgentStateSerializer``, which the API's
schema is generated from: the same dict, in the same order, in every state."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents import services
from agents.choices import State
from agents.models import AcwPolicy, AgentState
from agents.serializers import AgentStateSerializer, agent_fields, agent_payload
from agents.tests.factories import event

pytestmark = pytest.mark.django_db


def _rendered_by_the_serializer(live: AgentState) -> dict[str, Any]:
    return AgentStateSerializer().to_representation(live)


def _assert_same(live: AgentState) -> dict[str, Any]:
    fields = agent_fields(live)
    expected = _rendered_by_the_serializer(live)
    assert fields == expected
    assert list(fields) == list(expected)
    assert [type(value) for value in fields.values()] == [
        type(value) for value in expected.values()
    ]
    return fields


def _live(agent: Any) -> AgentState:
    return AgentState.objects.select_related("agent__team").get(agent=agent)


def test_the_payload_is_the_serializers_through_a_day_of_events(alice: Any) -> None:
    AcwPolicy.objects.create(team=alice.team, channel="phone", seconds=40)
    AcwPolicy.objects.create(team=alice.team, channel="chat", mode="manual", seconds=60)
    day = [
        event("alice", "agent.logged_in", 900),
        event("alice", "agent.not_ready", 880, reason="lunch"),
        event("alice", "agent.available", 860),
        event("alice", "interaction.started", 850, interaction_id="c1", channel="phone"),
        event("alice", "interaction.held", 840, interaction_id="c1"),
        event("alice", "interaction.resumed", 830, interaction_id="c1"),
        event("alice", "interaction.ended", 820, interaction_id="c1"),
        event("alice", "acw.extended", 815, seconds=30),
        event("alice", "acw.ended", 810, wrap_up_code="sale"),
        event("alice", "interaction.started", 800, interaction_id="t1", channel="chat"),
        event(
            "alice",
            "interaction.started",
            790,
            interaction_id="t2",
            channel="chat",
            concurrent=True,
        ),
        event("alice", "interaction.ended", 780, interaction_id="t1"),
        event("alice", "interaction.ended", 770, interaction_id="t2"),
        event("alice", "acw.ended", 760),
        event("alice", "interaction.started", 30, interaction_id="c2", channel="phone"),
        event("alice", "interaction.ended", 20, interaction_id="c2"),  # a timed ACW, running
    ]
    seen = set()
    for raw in day:
        assert services.ingest_event(raw).status == "accepted"
        live = _live(alice)
        fields = _assert_same(live)
        seen.add((fields["state"], fields["acw_timeout"] is not None))
        # As the API shows it later (past the deadline, the timeout applied on the fly).
        _assert_same(live.as_of(datetime.now(UTC) + timedelta(hours=1)))
    assert seen >= {
        ("available", False),
        ("not_ready", False),
        ("on_interaction", False),
        ("acw", True),
        ("acw", False),
    }


def test_the_payload_is_the_serializers_for_fields_set_outside_their_states(alice: Any) -> None:
    live = _live(alice)
    since = datetime(2026, 11, 30, 9, 15, 0, 123456, tzinfo=UTC)
    variants: list[dict[str, Any]] = [
        {"state": "offline", "since": None},
        {"state": State.AVAILABLE, "reason": "break", "interaction_id": "c1", "channel": "phone"},
        {"state": State.NOT_READY, "reason": "", "since": since},
        {"state": "on_interaction", "interaction_id": "c9", "channel": "chat", "acw_extensions": 2},
        {
            "state": "acw",
            "channel": "",
            "acw_started_at": since,
            "acw_deadline": None,
            "acw_extensions": 3,
            "open_contacts": 2,
            "version": 12,
        },
        {"state": "not_a_state", "reason": "x", "version": 0},
    ]
    for changes in variants:
        shown = copy.copy(live)
        for name, value in changes.items():
            setattr(shown, name, value)
        _assert_same(shown)


def test_the_payload_adds_the_colour_points_after_the_serializers_fields(alice: Any) -> None:
    AcwPolicy.objects.create(team=alice.team, channel="phone", seconds=40)
    for raw in (
        event("alice", "interaction.started", 30, interaction_id="c1", channel="phone"),
        event("alice", "interaction.ended", 20, interaction_id="c1"),
    ):
        assert services.ingest_event(raw).status == "accepted"
    payload = agent_payload(_live(alice))
    assert list(payload)[-3:] == ["acw_amber_at", "acw_red_at", "acw_overrun"]
    assert payload["acw_timeout"] == {"state": "available", "reason": None}
    assert payload["acw_overrun"] is False
