"""The well-formed event's short way through validation (``validation._well_formed``): it
vouches only for what the serializers accept, and gives exactly what they give."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from agents.states import EVENT_TYPES
from agents.validation import _SERIALIZERS, _validated_by_serializer, _well_formed, parse_event

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen() -> Any:
    with time_machine.travel(NOW, tick=False):
        yield


def _same_as_the_serializer(raw: dict[str, Any]) -> dict[str, Any] | None:
    """``_well_formed(raw)``, checked against the serializer: None only where it is unsure,
    else the serializer's result, in its order and with its types."""
    fast = _well_formed(raw)
    try:
        slow = _validated_by_serializer(raw)
    except Exception as exc:  # EventRejected: the short way must not have vouched
        assert fast is None, f"{raw!r} is refused ({exc}) but was vouched for"
        return None
    if fast is not None:
        assert fast == slow
        assert list(fast) == list(slow)
        assert [type(v) for v in fast.values()] == [type(v) for v in slow.values()]
    return fast


ENVELOPE = {"event_id": "e-1", "agent": "alice", "occurred_at": "2026-11-02T12:59:00+01:00"}
COMMON = [
    {**ENVELOPE, "type": "agent.logged_in"},
    {**ENVELOPE, "type": "agent.not_ready", "reason": "lunch"},
    {**ENVELOPE, "type": "interaction.started", "interaction_id": "c1", "channel": "phone"},
    {
        **ENVELOPE,
        "type": "interaction.started",
        "interaction_id": "c1",
        "channel": "chat",
        "direction": "inbound",
        "queue": "sales",
        "concurrent": True,
    },
    {
        **ENVELOPE,
        "type": "interaction.started",
        "interaction_id": "c1",
        "channel": "email",
        "concurrent": False,
        "queue": None,
    },
    {**ENVELOPE, "type": "interaction.held", "interaction_id": "c1"},
    {**ENVELOPE, "type": "interaction.ended", "interaction_id": "c1", "ignored": [1, 2]},
    {**ENVELOPE, "type": "acw.started"},
    {**ENVELOPE, "type": "acw.updated", "checklist": [1, 3], "note": "called back"},
    {**ENVELOPE, "type": "acw.ended", "wrap_up_code": "sale", "reason": None},
    {**ENVELOPE, "type": "acw.ended", "reason": "supervisor", "checklist": []},
    {**ENVELOPE, "type": "acw.extended", "occurred_at": "2026-11-02T11:00:00Z"},
]


@pytest.mark.parametrize("raw", COMMON)
def test_a_well_formed_event_takes_the_short_way_with_the_serializers_result(
    raw: dict[str, Any],
) -> None:
    assert _same_as_the_serializer(raw) is not None


def test_the_defaults_and_normalisations_are_the_serializers() -> None:
    started = {**ENVELOPE, "type": "interaction.started", "interaction_id": "c1", "channel": "phone"}  # fmt: skip
    assert _well_formed({**started, "concurrent": False}) == {
        "event_id": "e-1",
        "type": "interaction.started",
        "agent": "alice",
        "occurred_at": datetime(2026, 11, 2, 11, 59, tzinfo=UTC),
        "interaction_id": "c1",
        "channel": "phone",
        "concurrent": None,
    }
    ended = _well_formed({**ENVELOPE, "type": "acw.ended"})
    assert ended is not None and ended["reason"] == "agent_ready"
    assert parse_event({**started, "concurrent": True}).data == {
        "interaction_id": "c1",
        "channel": "phone",
        "concurrent": True,
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"event_id": ""},
        {"event_id": "x" * 101},
        {"event_id": "caf\u00e9"},  # valid, but not plain ASCII: the serializer decides
        {"event_id": "a\x00b"},
        {"event_id": "\ud800"},
        {"event_id": 42},
        {"agent": None},
        {"occurred_at": "2026-11-02T12:00:00"},
        {"occurred_at": "2026-11-02T12:06:00+00:00"},
        {"occurred_at": "1999-12-31T23:59:59+00:00"},
        {"occurred_at": "9999-12-31T23:00-05:00"},
        {"type": "interaction.started", "interaction_id": "c1", "channel": "fax"},
        {"type": "interaction.started", "interaction_id": "c1", "channel": "phone", "queue": ""},
        {
            "type": "interaction.started",
            "interaction_id": "c1",
            "channel": "phone",
            "concurrent": 1,
        },
        {"type": "acw.updated", "checklist": [1, True]},
        {"type": "acw.updated", "checklist": ["2"]},
        {"type": "acw.updated", "checklist": [0]},
        {"type": "acw.extended", "seconds": 30},
        {"type": "acw.ended", "reason": "timeout"},
        {"type": ["agent.logged_in"]},
    ],
)
def test_anything_unusual_is_left_to_the_serializer(changes: dict[str, Any]) -> None:
    raw = {**ENVELOPE, "type": "agent.logged_in", **changes}
    assert _well_formed(raw) is None
    _same_as_the_serializer(raw)


def test_every_field_of_every_type_is_one_the_short_way_knows_or_leaves_alone() -> None:
    # A field type added to a serializer without a short way is simply never vouched for.
    known = (serializers.CharField, serializers.ChoiceField, serializers.ListField)
    for serializer in _SERIALIZERS.values():
        for field in serializer._writable_fields:
            assert isinstance(field, known) or type(field).__module__ == "agents.validation"


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 5),
    st.floats(allow_nan=True),
    st.text(max_size=6),
    st.sampled_from(["phone", "chat", "inbound", "supervisor", "agent_ready", "", " ", "c1"]),
    st.sampled_from(
        ["2026-11-02T12:00:00+00:00", "2026-11-02T12:00:00z", "2026-11-02", "2026-11-02T25:00Z"]
    ),
    st.lists(st.integers(-1, 3), max_size=3),
    st.lists(st.text(max_size=2), max_size=2),
)
FIELD_NAMES = sorted(
    {field.field_name for s in _SERIALIZERS.values() for field in s._writable_fields}
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    type_=st.sampled_from(EVENT_TYPES),
    changes=st.dictionaries(st.sampled_from(FIELD_NAMES), VALUES, max_size=4),
    dropped=st.sets(st.sampled_from(["event_id", "agent", "occurred_at"]), max_size=1),
)
def test_the_short_way_never_differs_from_the_serializer(
    type_: str, changes: dict[str, Any], dropped: set[str]
) -> None:
    raw = {**ENVELOPE, "type": type_, "interaction_id": "c1", "channel": "phone", **changes}
    for name in dropped:
        raw.pop(name, None)
    _same_as_the_serializer(raw)
