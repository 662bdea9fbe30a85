"""A chat agent with two concurrent Amazon Connect contacts, end to end: Firehose requests through
the real endpoint into the agent state API, the wall's snapshot and the KPI API. Each contact is
its own interaction with its own talk and ACW; out-of-order and duplicated delivery give the same
KPIs as in-order delivery."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from agents import selectors, services
from agents.models import AcwSession, Agent, Interaction

from .test_amazon_connect import kpis, post, states
from .vendor import contact, firehose, record, snapshot

CLEO = "cleo@example.com"
BASE = timezone.now().replace(microsecond=0) - timedelta(hours=2)

pytestmark = pytest.mark.django_db


def at(seconds: float) -> Any:
    return BASE + timedelta(seconds=seconds)


def step(t: float, prev: list, cur: list) -> dict:
    return record(
        "STATE_CHANGE",
        at(t),
        snapshot(CLEO, "Available", at(0), cur),
        snapshot(CLEO, "Available", at(0), prev),
    )


def two_chats() -> list[dict[str, Any]]:
    """Chat A 0→100, then its after-contact work until it leaves the snapshot at 160 (past the
    default policy's 30 s: the server times it out at 130). Chat B arrives at 30, while A is
    connected: 30→200, then after-contact work until it leaves at 215."""
    a = contact("chat-a", "CONNECTED", at(0), at(0), channel="CHAT", queue="Chat")
    b = contact("chat-b", "CONNECTED", at(30), at(30), channel="CHAT", queue="Chat")
    a_ended = contact("chat-a", "ENDED", at(100), at(0), channel="CHAT", queue="Chat")
    b_ended = contact("chat-b", "ENDED", at(200), at(30), channel="CHAT", queue="Chat")
    return [
        record("LOGIN", at(-10), snapshot(CLEO, "Available", at(-10))),
        step(0, [], [a]),
        step(30, [a], [a, b]),
        step(100, [a, b], [a_ended, b]),
        step(160, [a_ended, b], [b]),
        step(200, [b], [b_ended]),
        step(215, [b_ended], []),
    ]


# Hand-computed per contact: talk = connected → ENDED; ACW = ENDED → gone, or to the policy's
# deadline (30 s, the site default) when the contact stays longer.
PER_CONTACT = {
    "chat-a": {"talk": 100.0, "acw": 30.0, "acw_end": "timeout"},
    "chat-b": {"talk": 170.0, "acw": 15.0, "acw_end": "agent_ready"},
}
KPIS = {
    "interactions": 2,
    "talk_seconds": 270,
    "hold_seconds": 0,
    "acw_seconds": 45,
    "avg_acw_seconds": 22.5,
    "aht_seconds": 157.5,
}


def per_contact() -> dict[str, dict[str, Any]]:
    acws = {acw.interaction_id: acw for acw in AcwSession.objects.filter(agent__external_id=CLEO)}
    return {
        row.interaction_id: {
            "talk": row.talk_seconds,
            "acw": acws[row.pk].duration_seconds,
            "acw_end": acws[row.pk].end_reason,
        }
        for row in Interaction.objects.filter(agent__external_id=CLEO)
    }


def deliver(records: list[dict[str, Any]], api_token: str) -> None:
    response = post(Client(), firehose(records), api_token)
    assert response.status_code == 200


def wall_tile() -> dict[str, Any]:
    team_id = Agent.objects.get(external_id=CLEO).team_id
    snapshot_ = selectors.wall_snapshot({team_id})
    return next(a for a in snapshot_["agents"] if a["agent"] == CLEO)


def shown(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["state"], row["open_contacts"], row["interaction_id"], row["since"])


def test_two_concurrent_chats_show_live_and_count_as_two_interactions(
    api: APIClient, api_token: str
) -> None:
    records = two_chats()
    with time_machine.travel(at(35), tick=False):
        deliver(records[:3], api_token)
        both = ("on_interaction", 2, "chat-a", at(0).isoformat())
        assert shown(states(api)[CLEO]) == both
        assert shown(wall_tile()) == both
    with time_machine.travel(at(120), tick=False):
        deliver(records[3:4], api_token)
        # A wraps up while B is connected: still on an interaction, two contacts held.
        a_in_acw = ("on_interaction", 2, "chat-b", at(0).isoformat())
        assert shown(states(api)[CLEO]) == a_in_acw
        assert shown(wall_tile()) == a_in_acw
    with time_machine.travel(at(140), tick=False):
        # A's ACW passed its deadline (130): shown closed before the worker writes it...
        assert shown(states(api)[CLEO])[:2] == ("on_interaction", 1)
        # ...and the timeout sweep writes it, at the deadline.
        assert services.expire_due_acws() == 1
        assert AcwSession.objects.get(interaction__interaction_id="chat-a").ended_at == at(130)
        assert shown(wall_tile())[:2] == ("on_interaction", 1)
    with time_machine.travel(at(205), tick=False):
        deliver(records[4:6], api_token)  # A leaves (its ACW is already over), B ends
        row = states(api)[CLEO]
        assert shown(row) == ("acw", 1, None, at(200).isoformat())
        assert row["acw_deadline"] == at(230).isoformat()
        assert row["channel"] == "chat"
    deliver(records[6:], api_token)
    assert shown(states(api)[CLEO]) == ("available", 0, None, at(215).isoformat())
    assert per_contact() == PER_CONTACT
    row = kpis(api)[CLEO]
    assert {key: row[key] for key in KPIS} == KPIS


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shuffled_and_duplicated_delivery_gives_the_same_kpis_as_in_order(
    api: APIClient, api_token: str, seed: int
) -> None:
    records = two_chats()
    # Firehose retries whole requests and may interleave them: every record twice, in a
    # random order, over several requests.
    mixed = records + random.Random(seed).sample(records, len(records))
    random.Random(seed + 100).shuffle(mixed)
    for start in range(0, len(mixed), 4):
        deliver(mixed[start : start + 4], api_token)
    assert per_contact() == PER_CONTACT
    row = kpis(api)[CLEO]
    assert {key: row[key] for key in KPIS} == KPIS
    assert shown(states(api)[CLEO]) == ("available", 0, None, at(215).isoformat())
