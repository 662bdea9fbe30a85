"""The Amazon Connect adapter as a pure translation: records in, our events out. No database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from integrations.common import RecordRefused
from integrations.connect import translate

from .vendor import contact, record, snapshot

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
USER = "ana@example.com"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def kinds(rec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["type"], e["occurred_at"]) for e in translate(rec).events]


def change(prev: list[dict], cur: list[dict], t: float, status: str = "Available") -> dict:
    return record(
        "STATE_CHANGE",
        at(t),
        snapshot(USER, status, at(0), cur),
        snapshot(USER, "Available", at(0), prev),
    )


def test_login_logs_in_and_names_the_agent() -> None:
    out = translate(record("LOGIN", at(0), snapshot(USER, "Available", at(0))))
    assert [e["type"] for e in out.events] == ["agent.logged_in"]
    assert out.events[0]["agent"] == USER
    assert out.names == {USER: "Ana Connect"}


def test_login_in_a_status_that_takes_no_contacts_is_not_ready() -> None:
    out = translate(record("LOGIN", at(0), snapshot(USER, "Offline", at(-60))))
    assert [(e["type"], e.get("reason")) for e in out.events] == [
        ("agent.logged_in", None),
        ("agent.not_ready", "Offline"),
    ]


def test_heart_beat_changes_nothing() -> None:
    assert translate(record("HEART_BEAT", at(0), snapshot(USER, "Available", at(0)))).events == []


def test_a_status_change_maps_routable_to_available_and_others_to_not_ready() -> None:
    lunch = record(
        "STATE_CHANGE",
        at(10),
        snapshot(USER, "Lunch", at(10)),
        snapshot(USER, "Available", at(0)),
    )
    back = record(
        "STATE_CHANGE", at(20), snapshot(USER, "Available", at(20)), snapshot(USER, "Lunch", at(10))
    )
    assert [(e["type"], e.get("reason")) for e in translate(lunch).events] == [
        ("agent.not_ready", "Lunch")
    ]
    assert [e["type"] for e in translate(back).events] == ["agent.available"]


def test_a_long_status_name_is_kept_as_a_100_character_reason() -> None:
    name = "Coaching session with the team lead " * 4
    rec = record(
        "STATE_CHANGE", at(10), snapshot(USER, name, at(10)), snapshot(USER, "Available", at(0))
    )
    assert translate(rec).events[0]["reason"] == name[:100]


def test_a_full_contact_from_connected_through_hold_to_ended_and_gone() -> None:
    ringing = contact("c-1", "CONNECTING", at(1), None)
    talking = contact("c-1", "CONNECTED", at(5), at(5))
    held = contact("c-1", "CONNECTED_ONHOLD", at(30), at(5))
    back = contact("c-1", "CONNECTED", at(50), at(5))
    ended = contact("c-1", "ENDED", at(90), at(5))
    steps = [
        change([ringing], [talking], 5),
        change([talking], [held], 30),
        change([held], [back], 50),
        change([back], [ended], 90),
        change([ended], [], 120),
    ]
    got = [kinds(step) for step in steps]
    assert got == [
        [("interaction.started", at(5).isoformat())],
        [("interaction.held", at(30).isoformat())],
        [("interaction.resumed", at(50).isoformat())],
        [("interaction.ended", at(90).isoformat())],
        [("acw.ended", at(120).isoformat())],
    ]
    started = translate(steps[0]).events[0]
    assert (started["interaction_id"], started["channel"], started["queue"]) == (
        "c-1",
        "phone",
        "Support",
    )


def test_a_contact_first_seen_ended_is_started_and_ended() -> None:
    ended = contact("c-2", "ENDED", at(60), at(10), channel="CHAT")
    assert kinds(change([], [ended], 61)) == [
        ("interaction.started", at(10).isoformat()),
        ("interaction.ended", at(60).isoformat()),
    ]


def test_a_contact_that_never_reached_the_agent_is_no_interaction() -> None:
    missed = contact("c-3", "MISSED", at(20), None)
    assert kinds(change([contact("c-3", "CONNECTING", at(1), None)], [missed], 20)) == []
    assert kinds(change([missed], [], 30)) == []


def test_a_gone_contact_ends_its_own_acw_only() -> None:
    a_ended = contact("a", "ENDED", at(50), at(5), channel="CHAT")
    b_ended = contact("b", "ENDED", at(60), at(10), channel="CHAT")
    a_gone = translate(change([a_ended, b_ended], [b_ended], 70)).events
    assert [(e["type"], e["interaction_id"], e["occurred_at"]) for e in a_gone] == [
        ("acw.ended", "a", at(70).isoformat())
    ]
    b_gone = translate(change([b_ended], [], 80)).events
    assert [(e["type"], e["interaction_id"]) for e in b_gone] == [("acw.ended", "b")]


def test_two_concurrent_chats_are_two_interactions() -> None:
    a = contact("a", "CONNECTED", at(5), at(5), channel="CHAT")
    b = contact("b", "CONNECTED", at(10), at(10), channel="CHAT")
    both = translate(change([a], [a, b], 10)).events
    assert [(e["type"], e["interaction_id"], e["channel"], e.get("concurrent")) for e in both] == [
        ("interaction.started", "b", "chat", True)
    ]
    a_ended = contact("a", "ENDED", at(50), at(5), channel="CHAT")
    ended = translate(change([a, b], [a_ended, b], 50)).events
    assert [(e["type"], e["interaction_id"]) for e in ended] == [("interaction.ended", "a")]


def started(rec: dict[str, Any]) -> dict[str, bool | None]:
    """Per contact started by the record: its ``concurrent`` flag (None when not sent)."""
    return {
        e["interaction_id"]: e.get("concurrent")
        for e in translate(rec).events
        if e["type"] == "interaction.started"
    }


def test_a_contact_is_concurrent_only_when_another_non_voice_one_is_listed() -> None:
    a = contact("a", "CONNECTED", at(5), at(5), channel="CHAT")
    b = contact("b", "CONNECTED", at(10), at(10), channel="CHAT")
    call = contact("call", "CONNECTED", at(10), at(10), channel="VOICE")
    email = contact("m", "CONNECTED", at(10), at(10), channel="EMAIL")
    a_ended = contact("a", "ENDED", at(8), at(5), channel="CHAT")
    # Alone in the snapshot: the contract's one interaction at a time.
    assert started(change([], [a], 5)) == {"a": None}
    # Two listed at once: each joins the other.
    assert started(change([], [a, b], 10)) == {"a": True, "b": True}
    # The other one still in after-contact work (ENDED), or leaving in this very record.
    assert started(change([a_ended], [a_ended, email], 10)) == {"m": True}
    assert started(change([a_ended], [b], 10)) == {"b": True}
    # A voice contact is handled alone, and a call listed does not make a chat concurrent.
    assert started(change([a], [a, call], 10)) == {"call": None}
    assert started(change([call], [call, b], 10)) == {"b": None}


def test_ids_are_repeatable_and_contact_events_are_keyed_by_contact() -> None:
    rec = change([], [contact("c-9", "CONNECTED", at(5), at(5))], 5)
    again = dict(rec, EventId="another-delivery-of-the-same-transition")
    assert translate(rec).events == translate(rec).events
    assert translate(again).events[0]["event_id"] == translate(rec).events[0]["event_id"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.update(EventType="SOMETHING"), "EventType: expected one of"),
        (lambda r: r.pop("EventId"), "EventId: is required"),
        (lambda r: r.update(EventTimestamp="yesterday"), "EventTimestamp: not an ISO 8601"),
        (lambda r: r.update(EventTimestamp="2026-11-25T09:00:00"), "EventTimestamp: has no UTC"),
        (lambda r: r.pop("CurrentAgentSnapshot"), "CurrentAgentSnapshot: is required"),
        (
            lambda r: r["CurrentAgentSnapshot"]["Configuration"].pop("Username"),
            "Configuration.Username: is required",
        ),
        (
            lambda r: r["CurrentAgentSnapshot"].update(Contacts=[{"ContactId": "x"}]),
            "CurrentAgentSnapshot.Contacts[0].State: is required",
        ),
        (
            lambda r: r["CurrentAgentSnapshot"].update(Contacts="none"),
            "CurrentAgentSnapshot.Contacts: must be a list",
        ),
    ],
)
def test_a_malformed_record_is_refused_naming_the_field(mutate: Any, message: str) -> None:
    rec = change([], [], 5)
    mutate(rec)
    with pytest.raises(RecordRefused, match=message.replace("[", r"\[").replace("]", r"\]")):
        translate(rec)


def test_a_record_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(RecordRefused, match="record: must be a JSON object"):
        translate([1, 2])
