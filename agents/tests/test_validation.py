"""Event validation (docs/api.md, section 3) without a database: ``validation.parse_event``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from agents.states import EVENT_TYPES
from agents.tests.factories import event
from agents.validation import EventRejected, ParsedEvent, parse_event

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)

OWN_FIELDS: dict[str, dict[str, Any]] = {
    "agent.logged_in": {},
    "agent.logged_out": {},
    "agent.available": {},
    "agent.not_ready": {"reason": "break"},
    "interaction.started": {"interaction_id": "c1", "channel": "phone"},
    "interaction.held": {"interaction_id": "c1"},
    "interaction.resumed": {"interaction_id": "c1"},
    "interaction.ended": {"interaction_id": "c1"},
    "acw.started": {},
    "acw.extended": {},
    "acw.updated": {},
    "acw.ended": {},
}


@pytest.fixture(autouse=True)
def frozen() -> Any:
    with time_machine.travel(NOW, tick=False):
        yield


def raw(type_: str = "agent.logged_in", **fields: Any) -> dict[str, Any]:
    # ``fields`` may replace any field, the envelope's included, with a bad value.
    valid = event(
        "alice", type_, NOW - timedelta(hours=1), event_id="e-1", **OWN_FIELDS.get(type_, {})
    )
    return {**valid, **fields}


def rejected(event: Any) -> str:
    with pytest.raises(EventRejected) as caught:
        parse_event(event)
    return str(caught.value)


def test_every_contract_type_is_known() -> None:
    assert set(EVENT_TYPES) == set(OWN_FIELDS)


@pytest.mark.parametrize("type_", sorted(OWN_FIELDS))
def test_each_type_parses_with_its_own_fields(type_: str) -> None:
    parsed = parse_event(raw(type_))
    assert (parsed.event_id, parsed.type, parsed.agent) == ("e-1", type_, "alice")
    assert parsed.occurred_at == datetime(2026, 11, 2, 11, tzinfo=UTC)


def test_unknown_fields_are_ignored_and_not_kept() -> None:
    parsed = parse_event(raw("agent.not_ready", vendor={"x": 1}, shift="early"))
    assert parsed.data == {"reason": "break"}


def test_fields_of_another_type_are_not_kept() -> None:
    parsed = parse_event(raw("agent.logged_in", reason="break", channel="phone"))
    assert parsed.data == {}


def test_interaction_started_keeps_its_optional_fields() -> None:
    parsed = parse_event(raw("interaction.started", direction="outbound", queue="sales"))
    assert parsed.data == {
        "interaction_id": "c1",
        "channel": "phone",
        "direction": "outbound",
        "queue": "sales",
    }


@pytest.mark.parametrize("channel", ["phone", "chat", "email", "other"])
def test_every_documented_channel_is_accepted(channel: str) -> None:
    assert parse_event(raw("interaction.started", channel=channel)).data["channel"] == channel


def test_acw_started_takes_an_optional_interaction_id_and_channel() -> None:
    assert parse_event(raw("acw.started")).data == {}
    both = parse_event(raw("acw.started", interaction_id="c7", channel="chat", extra=1))
    assert both.data == {"interaction_id": "c7", "channel": "chat"}
    assert parse_event(raw("acw.started", interaction_id=None, channel=None)).data == {}
    assert rejected(raw("acw.started", channel="fax")).startswith("channel: ")
    assert rejected(raw("acw.started", interaction_id="")).startswith("interaction_id: ")


def test_optional_fields_given_as_null_are_not_given() -> None:
    started = parse_event(raw("interaction.started", direction=None, queue=None))
    assert started.data == {"interaction_id": "c1", "channel": "phone"}
    assert parse_event(raw("acw.extended", seconds=None)).data == {}
    ended = parse_event(raw("acw.ended", reason=None, wrap_up_code=None, note=None))
    assert ended.data == {"reason": "agent_ready"}


def test_acw_ended_reason_defaults_to_agent_ready() -> None:
    assert parse_event(raw("acw.ended")).data == {"reason": "agent_ready"}
    supervisor = parse_event(raw("acw.ended", reason="supervisor", wrap_up_code="SALE"))
    assert supervisor.data == {"reason": "supervisor", "wrap_up_code": "SALE"}


def test_acw_extended_seconds_is_a_positive_number() -> None:
    assert parse_event(raw("acw.extended", seconds=30)).data == {"seconds": 30.0}
    assert parse_event(raw("acw.extended", seconds=0.5)).data == {"seconds": 0.5}
    assert rejected(raw("acw.extended", seconds=0)).startswith("seconds:")
    assert rejected(raw("acw.extended", seconds=-1)).startswith("seconds:")
    assert rejected(raw("acw.extended", seconds="30")) == "seconds: must be a number"
    assert rejected(raw("acw.extended", seconds=False)) == "seconds: must be a number"
    assert rejected(raw("acw.extended", seconds=[30])) == "seconds: must be a number"


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-02T11:00:00Z",
        "2026-11-02T11:00:00z",
        "2026-11-02T12:00:00+01:00",
        "2026-11-02T06:00:00-05:00",
        "2026-11-02T11:00:00.000+00:00",
        "2026-11-02T16:30:00+05:30",
        "2026-11-03T06:12:00+19:12",
    ],
)
def test_occurred_at_spellings_of_one_instant_are_equal(stamp: str) -> None:
    assert parse_event(raw(occurred_at=stamp)).occurred_at == NOW - timedelta(hours=1)


def test_occurred_at_up_to_5_minutes_ahead_is_accepted() -> None:
    ahead = (NOW + timedelta(minutes=5)).isoformat()
    assert parse_event(raw(occurred_at=ahead)).occurred_at == NOW + timedelta(minutes=5)
    too_far = (NOW + timedelta(minutes=5, seconds=1)).isoformat()
    assert rejected(raw(occurred_at=too_far)) == "occurred_at: is more than 5 minutes in the future"


def test_occurred_at_must_carry_an_offset() -> None:
    assert rejected(raw(occurred_at="2026-11-02T11:00:00")).startswith("occurred_at: must include")


def test_occurred_at_is_read_as_its_instant_in_utc() -> None:
    parsed = parse_event(raw(occurred_at="2026-11-03T06:12:00+19:12")).occurred_at
    assert parsed.utcoffset() == timedelta(0)
    assert rejected(raw(occurred_at="9999-12-31T23:00:00-05:00")).startswith("occurred_at:")


def test_a_non_object_is_rejected_as_an_event() -> None:
    for value in (None, "x", 1, [raw()]):
        assert rejected(value).startswith("event:")


def test_the_first_bad_field_is_named_and_required_reads_naturally() -> None:
    assert rejected({}) == "event_id: is required"
    assert rejected(raw(event_id="")) == "event_id: This field may not be blank."
    assert rejected(raw(agent=7)) == "agent: must be a string"
    message = rejected(raw(type="agent.sleeping"))
    assert message.startswith('type: "agent.sleeping" is not a valid choice')


def test_ids_may_use_the_full_100_characters() -> None:
    parsed = parse_event(raw(event_id="e" * 100, agent="a" * 100))
    assert (len(parsed.event_id), len(parsed.agent)) == (100, 100)


def test_same_content_compares_the_instant_and_the_types_own_fields() -> None:
    first = parse_event(raw("acw.extended", seconds=30))
    again = parse_event(
        raw("acw.extended", seconds=30.0, occurred_at="2026-11-02T12:00:00+01:00", extra=1)
    )
    assert first.same_content(again.type, again.agent, again.occurred_at, again.data)
    other = parse_event(raw("acw.extended", seconds=60))
    assert not first.same_content(other.type, other.agent, other.occurred_at, other.data)


def test_an_explicit_default_reason_is_the_same_content_as_none() -> None:
    implicit = parse_event(raw("acw.ended"))
    explicit = parse_event(raw("acw.ended", reason="agent_ready"))
    assert implicit.data == explicit.data


def test_parsed_events_are_immutable() -> None:
    parsed = parse_event(raw())
    assert isinstance(parsed, ParsedEvent)
    with pytest.raises(AttributeError):
        parsed.agent = "bob"  # type: ignore[misc]
