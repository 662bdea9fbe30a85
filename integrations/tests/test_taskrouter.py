"""The Twilio TaskRouter adapter as a pure translation. No database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from integrations.common import RecordRefused
from integrations.taskrouter import activity_change, translate

from .vendor import ACTIVITIES, task_fields, taskrouter, worker_fields

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
WORKER = "WK" + "7" * 32
TASK = "WT" + "8" * 32


def ev(kind: str, n: int = 1, activity: str = "Available", **fields: str) -> dict[str, str]:
    return taskrouter(
        kind,
        f"EV{n:032d}",
        T0 + timedelta(seconds=n),
        **worker_fields(WORKER, "Wes", activity),
        **fields,
    )


AVAILABILITY = {sid: available for sid, available in ACTIVITIES.values()}


def one(params: dict[str, str], availability: dict[str, bool] | None = None) -> dict[str, Any]:
    out = translate(params, AVAILABILITY if availability is None else availability)
    assert len(out.events) == 1
    return out.events[0]


def test_reservation_lifecycle_maps_to_interaction_and_acw() -> None:
    started = one(ev("reservation.accepted", 1, **task_fields(TASK, "voice")))
    assert started == {
        "event_id": "twilio:EV" + "0" * 31 + "1",
        "type": "interaction.started",
        "agent": WORKER,
        "occurred_at": (T0 + timedelta(seconds=1)).isoformat(),
        "interaction_id": TASK,
        "channel": "phone",
        "queue": "Support",
        "direction": "inbound",
    }
    assert one(ev("reservation.wrapup", 2, **task_fields(TASK)))["type"] == "interaction.ended"
    completed = one(ev("reservation.completed", 3, **task_fields(TASK)))
    assert (completed["type"], completed["interaction_id"], completed.get("wrap_up_code")) == (
        "acw.ended",
        TASK,
        None,
    )


@pytest.mark.parametrize(
    ("channel", "ours"),
    [("voice", "phone"), ("chat", "chat"), ("email", "email"), ("sms", "other")],
)
def test_the_task_channel_maps_to_ours(channel: str, ours: str) -> None:
    assert one(ev("reservation.accepted", **task_fields(TASK, channel)))["channel"] == ours


def test_a_task_accepted_while_the_worker_holds_another_is_concurrent() -> None:
    asked: list[tuple[str, datetime]] = []

    def held(worker: str, at: datetime) -> list[str]:
        asked.append((worker, at))
        return ["WT" + "1" * 32]

    chat = ev("reservation.accepted", 4, **task_fields(TASK, "chat"))
    assert translate(chat, AVAILABILITY, held).events[0]["concurrent"] is True
    assert asked == [(WORKER, T0 + timedelta(seconds=4))]
    # Only another task counts; a voice task is handled alone; by default none is held.
    assert "concurrent" not in translate(chat, AVAILABILITY, lambda w, at: [TASK]).events[0]
    call = ev("reservation.accepted", 5, **task_fields(TASK, "voice"))
    assert "concurrent" not in translate(call, AVAILABILITY, held).events[0]
    assert "concurrent" not in one(chat)


@pytest.mark.parametrize(
    ("attributes", "reason", "code"),
    [
        ({"wrap_up_code": "sale"}, "", "sale"),
        ({"conversations": {"outcome": "Resolved"}}, "", "Resolved"),
        ({"disposition": "callback"}, "done", "callback"),
        ({}, "Resolved by agent", "Resolved by agent"),
    ],
)
def test_the_wrap_up_code_comes_from_attributes_or_the_completed_reason(
    attributes: dict, reason: str, code: str
) -> None:
    fields = task_fields(TASK, **attributes)
    if reason:
        fields["TaskCompletedReason"] = reason
    assert one(ev("reservation.completed", **fields))["wrap_up_code"] == code


@pytest.mark.parametrize(
    ("activity", "availability", "type_", "reason"),
    [
        ("Available", None, "agent.available", None),
        ("Break", None, "agent.not_ready", "Break"),
        ("Offline", None, "agent.logged_out", None),
        # The cache decides: a custom activity marked available takes tasks.
        ("Lunch", {ACTIVITIES["Lunch"][0]: True}, "agent.available", None),
        # Not cached yet: by convention only "Available" / "Idle" are available.
        ("Break", {}, "agent.not_ready", "Break"),
    ],
)
def test_worker_activity_updates_use_the_activity_availability(
    activity: str, availability: dict | None, type_: str, reason: str | None
) -> None:
    got = one(ev("worker.activity.update", activity=activity), availability)
    assert (got["type"], got.get("reason")) == (type_, reason)


def test_other_event_types_change_nothing() -> None:
    for kind in ("reservation.created", "task.created", "workflow.timeout", "task.completed"):
        assert translate(ev(kind, **task_fields(TASK)), AVAILABILITY).events == []


def test_the_worker_name_names_the_agent_and_timestamp_ms_wins() -> None:
    params = ev("reservation.wrapup", **task_fields(TASK))
    params["TimestampMs"] = str(int(T0.timestamp() * 1000) + 1500)
    out = translate(params, AVAILABILITY)
    assert out.names == {WORKER: "Wes"}
    assert out.events[0]["occurred_at"] == (T0 + timedelta(seconds=1.5)).isoformat()


def test_activity_events_update_the_cache() -> None:
    params = {
        "EventType": "activity.updated",
        "ActivitySid": "WA" + "9" * 32,
        "ActivityName": "Coaching",
        "ActivityAvailable": "false",
    }
    assert activity_change(params) == ("WA" + "9" * 32, "Coaching", False)
    assert activity_change(ev("worker.activity.update")) is None


@pytest.mark.parametrize(
    ("drop", "replace", "message"),
    [
        ("WorkerSid", {}, "WorkerSid: is required"),
        ("TaskSid", {}, "TaskSid: is required"),
        ("Sid", {}, "Sid: is required"),
        (None, {"TimestampMs": "", "Timestamp": "soon"}, "Timestamp: not a number"),
    ],
)
def test_a_malformed_callback_is_refused_naming_the_field(
    drop: str | None, replace: dict[str, str], message: str
) -> None:
    params = ev("reservation.accepted", **task_fields(TASK))
    if drop:
        params.pop(drop)
    params.update(replace)
    with pytest.raises(RecordRefused, match=message):
        translate(params, AVAILABILITY)
