"""``interaction.started`` through the events API: one interaction at a time unless the event
carries ``concurrent: true`` (docs/api.md, "Concurrent contacts"). The flag is part of the stored
event, so a late event's replay decides the same way."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import AcwSession, Agent, AgentState, Event, Interaction
from agents.tests import factories

URL = "/api/v1/events"
# Near now, so that no ACW reaches its deadline (the site default: 30 s) while a test runs:
# set again when each test starts (a whole suite takes minutes after this module is imported).
BASE = timezone.now().replace(microsecond=0)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def base_near_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(globals(), "BASE", timezone.now().replace(microsecond=0))


def event(type_: str, offset: float, agent: str = "alice", **fields: Any) -> dict[str, Any]:
    return factories.event(agent, type_, BASE + timedelta(seconds=offset), **fields)


def chat(contact: str, offset: float, agent: str = "alice", **flag: Any) -> dict[str, Any]:
    return event(
        "interaction.started", offset, agent, interaction_id=contact, channel="chat", **flag
    )


def post(api: APIClient, *events: dict[str, Any]) -> Any:
    response = api.post(URL, json.dumps({"events": list(events)}), content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def interaction(contact: str, agent: str = "alice") -> Interaction:
    return Interaction.objects.get(agent__external_id=agent, interaction_id=contact)


def acw_of(contact: str, agent: str = "alice") -> AcwSession | None:
    return AcwSession.objects.filter(
        agent__external_id=agent, interaction__interaction_id=contact
    ).first()


def live(agent: str = "alice") -> AgentState:
    return AgentState.objects.get(agent__external_id=agent)


def test_without_the_flag_a_second_chat_ends_the_first_with_no_acw(
    api: APIClient, alice: Agent
) -> None:
    post(api, event("agent.logged_in", 0), chat("a", 1), chat("b", 20))
    a = interaction("a")
    assert (a.ended_at, a.end_reason, a.talk_seconds) == (
        BASE + timedelta(seconds=20),
        "replaced",
        19,
    )
    assert acw_of("a") is None
    assert (live().state, live().interaction_id, live().open_contacts) == ("on_interaction", "b", 1)


def test_without_the_flag_a_chat_closes_the_open_acw_with_reason_interaction(
    api: APIClient, alice: Agent
) -> None:
    post(
        api,
        event("agent.logged_in", 0),
        chat("a", 1),
        event("interaction.ended", 10, interaction_id="a"),
        chat("b", 15, concurrent=False),
    )
    acw = acw_of("a")
    assert acw is not None
    assert (acw.ended_at, acw.end_reason) == (BASE + timedelta(seconds=15), "interaction")
    assert (live().state, live().open_contacts) == ("on_interaction", 1)


def test_with_the_flag_the_other_chat_and_its_acw_go_on(api: APIClient, alice: Agent) -> None:
    post(
        api,
        event("agent.logged_in", 0),
        chat("a", 1),
        chat("b", 5, concurrent=True),
        event("interaction.ended", 10, interaction_id="a"),
        chat("c", 15, concurrent=True),
    )
    assert interaction("a").end_reason == "ended"
    assert interaction("b").ended_at is None
    acw = acw_of("a")
    assert acw is not None and acw.ended_at is None
    assert (live().state, live().interaction_id, live().open_contacts) == ("on_interaction", "b", 3)


def test_a_phone_call_is_alone_even_with_the_flag(api: APIClient, alice: Agent) -> None:
    post(
        api,
        event("agent.logged_in", 0),
        chat("a", 1),
        event("interaction.started", 5, interaction_id="call", channel="phone", concurrent=True),
    )
    assert interaction("a").end_reason == "replaced"
    assert (live().interaction_id, live().open_contacts) == ("call", 1)


def test_the_flag_is_stored_only_when_true(api: APIClient, alice: Agent) -> None:
    given_false = chat("a", 1, concurrent=False)
    given_true = chat("b", 2, concurrent=True)
    post(api, event("agent.logged_in", 0), given_false, given_true)
    stored = dict(Event.objects.filter(type="interaction.started").values_list("event_id", "data"))
    assert stored[given_false["event_id"]] == {"interaction_id": "a", "channel": "chat"}
    assert stored[given_true["event_id"]]["concurrent"] is True
    # false and an omitted flag are the same content: the resend is a duplicate.
    without = {key: value for key, value in given_false.items() if key != "concurrent"}
    assert post(api, without)["results"] == [
        {"event_id": given_false["event_id"], "status": "duplicate"}
    ]
    conflict = api.post(
        URL, json.dumps({**without, "concurrent": True}), content_type="application/json"
    )
    assert (conflict.status_code, conflict.json()["status"]) == (409, "conflict")


@pytest.mark.parametrize("value", ["true", 1, "yes", [], {}])
def test_concurrent_must_be_true_or_false(api: APIClient, value: Any) -> None:
    response = api.post(
        URL, json.dumps(chat("a", 1, concurrent=value)), content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("concurrent: ")


@pytest.mark.parametrize("flag", [True, False])
def test_a_late_event_replays_with_the_stored_flag(
    api: APIClient, alice: Agent, bob: Agent, flag: bool
) -> None:
    """Alice's A starts before B but arrives last: the replay of B reads B's stored flag and
    gives what Bob, whose same events arrive in order, gets."""

    def shift(agent: str) -> list[dict[str, Any]]:
        return [
            event("agent.logged_in", 0, agent),
            chat("a", 1, agent),
            chat("b", 5, agent, concurrent=flag),
            event("interaction.ended", 10, agent, interaction_id="a"),
        ]

    late = shift("alice")
    post(api, late[0], *late[2:])
    post(api, late[1])
    post(api, *shift("bob"))

    def outcome(agent: str) -> tuple[str, bool, int]:
        return (
            interaction("a", agent).end_reason,
            acw_of("a", agent) is not None,
            live(agent).open_contacts,
        )

    assert outcome("alice") == outcome("bob")
    assert outcome("bob") == (("ended", True, 2) if flag else ("replaced", False, 1))
