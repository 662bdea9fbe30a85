"""Twilio TaskRouter event callbacks → our events. Pure: no ORM, no clock.

A workspace posts one form-encoded event per callback. Agent = ``WorkerSid`` (named from
``WorkerName``), interaction = ``TaskSid``, event id from the event's ``Sid``:

- ``reservation.accepted`` → ``interaction.started`` (channel from ``TaskChannelUniqueName``),
  with ``concurrent: true`` when the worker still holds another task (accepted and not
  completed, as the callbacks stored so far show) and neither is a voice task (multitasking);
- ``reservation.wrapup`` → ``interaction.ended`` (the ACW then runs on the team's policy: the
  server closes it even when the agent's browser, which runs Flex's own wrap-up timer, is gone);
- ``reservation.completed`` → ``acw.ended`` of that task with the wrap-up code from the task's
  attributes or its completed reason;
- ``worker.activity.update`` → ``agent.available`` / ``agent.not_ready`` (reason = the
  activity's name) / ``agent.logged_out`` (``Offline``). Worker events carry no availability
  flag, so it comes from the activity cache (filled by ``activity.*`` events and admins).

Every other event type changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

from .common import RecordRefused, Translated, derive_id, event, parse_epoch, text

PREFIX = "twilio"
CHANNELS = {"voice": "phone", "chat": "chat", "email": "email"}
OFFLINE_ACTIVITY = "Offline"
# Used when an activity has not been seen yet: the default activities of a new workspace
# ("Available"; "Idle" in older ones) are the available ones.
AVAILABLE_BY_DEFAULT = frozenset({"Available", "Idle"})
# Where Flex and custom task routers commonly keep a disposition in the task's attributes.
WRAP_UP_KEYS = (
    ("wrap_up_code",),
    ("wrapup_code",),
    ("disposition",),
    ("disposition_code",),
    ("conversations", "outcome"),
)


def activity_change(params: Mapping[str, str]) -> tuple[str, str, bool] | None:
    """``(sid, name, available)`` from an ``activity.created``/``activity.updated`` event."""
    if params.get("EventType") not in ("activity.created", "activity.updated"):
        return None
    sid = text(params.get("ActivitySid") or params.get("ResourceSid"), "ActivitySid", limit=64)
    name = text(params.get("ActivityName"), "ActivityName")
    flag = str(params.get("ActivityAvailable", "")).lower()
    if flag not in ("true", "false"):
        raise RecordRefused(f"ActivityAvailable: expected true or false, got {flag[:20]!r}")
    return sid, name, flag == "true"


# (worker, instant) → the tasks other than voice ones the worker held just before that instant.
HeldTasks = Callable[[str, datetime], Collection[str]]


def _none_held(worker: str, at: datetime) -> Collection[str]:
    return ()


def translate(
    params: Mapping[str, str],
    availability: Mapping[str, bool],
    held: HeldTasks = _none_held,
) -> Translated:
    """The events one callback implies; ``availability`` maps activity sids to available,
    ``held`` tells which tasks the worker already holds (multitasking)."""
    kind = text(params.get("EventType"), "EventType")
    handler = HANDLERS.get(kind)
    if handler is None:
        return Translated()
    sid = text(params.get("Sid"), "Sid", limit=64)
    agent = text(params.get("WorkerSid"), "WorkerSid")
    at = _timestamp(params)
    out = Translated()
    name = params.get("WorkerName")
    if isinstance(name, str) and name.strip():
        out.names[agent] = name.strip()[:200]
    body = handler(params, availability)
    if body is not None:
        type_, fields = body
        if type_ == "interaction.started" and _alongside(fields, held, agent, at):
            fields["concurrent"] = True
        out.events.append(event(derive_id(PREFIX, sid), type_, agent, at, **fields))
    return out


Handled = tuple[str, dict[str, Any]] | None


def _accepted(params: Mapping[str, str], availability: Mapping[str, bool]) -> Handled:
    channel = str(params.get("TaskChannelUniqueName") or "").lower()
    direction = _attributes(params).get("direction")
    return "interaction.started", {
        "interaction_id": _task(params),
        "channel": CHANNELS.get(channel, "other"),
        "queue": text(params.get("TaskQueueName"), "TaskQueueName", required=False) or None,
        "direction": direction if direction in ("inbound", "outbound") else None,
    }


def _wrapup(params: Mapping[str, str], availability: Mapping[str, bool]) -> Handled:
    return "interaction.ended", {"interaction_id": _task(params)}


def _completed(params: Mapping[str, str], availability: Mapping[str, bool]) -> Handled:
    code = _wrap_up_code(params)
    # Named: with multitasking (Flex) each task's wrap-up is its own ACW.
    return "acw.ended", {"interaction_id": _task(params), "wrap_up_code": code or None}


def _activity(params: Mapping[str, str], availability: Mapping[str, bool]) -> Handled:
    name = text(params.get("WorkerActivityName"), "WorkerActivityName", limit=1000)[:100]
    if name == OFFLINE_ACTIVITY:
        return "agent.logged_out", {}
    sid = params.get("WorkerActivitySid") or ""
    available = availability.get(sid)
    if available is None:
        available = name in AVAILABLE_BY_DEFAULT
    if available:
        return "agent.available", {}
    return "agent.not_ready", {"reason": name}


HANDLERS = {
    "reservation.accepted": _accepted,
    "reservation.wrapup": _wrapup,
    "reservation.completed": _completed,
    "worker.activity.update": _activity,
}


def _alongside(started: dict[str, Any], held: HeldTasks, worker: str, at: datetime) -> bool:
    """Whether a task accepted joins others the worker holds (a voice task is handled alone)."""
    if started["channel"] == "phone":
        return False
    return any(task != started["interaction_id"] for task in held(worker, at))


def _task(params: Mapping[str, str]) -> str:
    return text(params.get("TaskSid"), "TaskSid")


def _timestamp(params: Mapping[str, str]) -> datetime:
    if params.get("TimestampMs"):
        return parse_epoch(params["TimestampMs"], "TimestampMs", millis=True)
    return parse_epoch(params.get("Timestamp"), "Timestamp")


def _attributes(params: Mapping[str, str]) -> dict[str, Any]:
    """The task's attributes; unreadable ones count as none (they are optional to us)."""
    raw = params.get("TaskAttributes")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _wrap_up_code(params: Mapping[str, str]) -> str:
    attributes = _attributes(params)
    for path in WRAP_UP_KEYS:
        value: Any = attributes
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()[:100]
    reason = params.get("TaskCompletedReason")
    return reason.strip()[:100] if isinstance(reason, str) else ""
