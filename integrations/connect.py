"""Amazon Connect's agent event stream → our events. Pure: no ORM, no clock.

Each record carries the agent's previous and current snapshot, so the translation needs no
stored state: statuses and contacts are diffed inside the record. Per ``ContactId`` (a chat
agent may hold several contacts at once; each is its own interaction):

- a contact that reaches ``CONNECTED`` (or is first seen on hold or ended after reaching the
  agent) → ``interaction.started`` at ``ConnectedToAgentTimestamp``, with ``concurrent: true``
  when it is no voice contact and the previous or current snapshot holds another contact that
  is none either (the agent holds both: the new one leaves the other and its ACW running);
- ``CONNECTED`` ↔ ``CONNECTED_ONHOLD`` → ``interaction.held`` / ``interaction.resumed`` at the
  new state's ``StateStartTimestamp``;
- ``ENDED`` → ``interaction.ended`` at its ``StateStartTimestamp``: Connect has no ACW state,
  ``ENDED`` is the start of after-contact work;
- a contact ``ENDED`` in the previous snapshot and gone from the current one → ``acw.ended`` of
  that contact (``interaction_id``) at the record's ``EventTimestamp``.

Event ids: agent-level events take the record's ``EventId``; contact events take the
``ContactId`` and the transition, so a redelivered record — or the same transition seen in two
records — is a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .common import RecordRefused, Translated, derive_id, event, parse_iso, text

PREFIX = "connect"
EVENT_TYPES = ("LOGIN", "LOGOUT", "STATE_CHANGE", "HEART_BEAT")
# Connect's default routable status. Other statuses (custom ones, "Offline") are not ready,
# with the status name as the reason.
ROUTABLE_STATUSES = frozenset({"Available"})
CHANNELS = {"VOICE": "phone", "CHAT": "chat", "TASKS": "other", "EMAIL": "email"}
DIRECTIONS = {"INBOUND": "inbound", "OUTBOUND": "outbound"}
# PAUSED: a task the agent set aside; it is still theirs, like a call on hold.
TALKING = frozenset({"CONNECTED", "CONNECTED_ONHOLD", "PAUSED"})
ENDED = "ENDED"


@dataclass(frozen=True)
class Contact:
    contact_id: str
    state: str
    state_start: datetime
    connected_at: datetime | None
    channel: str
    direction: str | None
    queue: str | None


def translate(record: Any) -> Translated:
    """The events one agent event record implies (``RecordRefused`` if it is malformed)."""
    if not isinstance(record, dict):
        raise RecordRefused("record: must be a JSON object")
    kind = record.get("EventType")
    if kind not in EVENT_TYPES:
        raise RecordRefused(f"EventType: expected one of {', '.join(EVENT_TYPES)}, got {kind!r}")
    event_id = text(record.get("EventId"), "EventId")
    at = parse_iso(record.get("EventTimestamp"), "EventTimestamp")
    if kind == "HEART_BEAT":
        # Sent every 120 s while nothing else happens: nothing changed.
        return Translated()
    current = _snapshot(record, "CurrentAgentSnapshot", required=kind != "LOGOUT")
    previous = _snapshot(record, "PreviousAgentSnapshot", required=False)
    named = current or previous
    if named is None:
        raise RecordRefused("CurrentAgentSnapshot: is required")
    agent = text(_get(named, "Configuration", "Username"), "Configuration.Username")
    out = Translated()
    name = _display_name(named)
    if name:
        out.names[agent] = name

    def add(key: str, type_: str, occurred_at: datetime, *parts: str, **fields: Any) -> None:
        out.events.append(
            event(derive_id(PREFIX, key, *parts), type_, agent, occurred_at, **fields)
        )

    if kind == "LOGOUT":
        add(event_id, "agent.logged_out", at, "logout")
        return out
    assert current is not None
    status, status_start = _status(current, "CurrentAgentSnapshot")
    if kind == "LOGIN":
        add(event_id, "agent.logged_in", at, "login")
        if status not in ROUTABLE_STATUSES:
            # Logged in but in a status that takes no contacts (often "Offline").
            add(event_id, "agent.not_ready", at, "status", reason=status)
        return out

    # STATE_CHANGE: the status, then each contact.
    if previous is not None:
        before = _status(previous, "PreviousAgentSnapshot")
        if before != (status, status_start):
            when = status_start or at
            if status in ROUTABLE_STATUSES:
                add(event_id, "agent.available", when, "status")
            else:
                add(event_id, "agent.not_ready", when, "status", reason=status)
    was = _contacts(previous, "PreviousAgentSnapshot")
    now = _contacts(current, "CurrentAgentSnapshot")
    # Each contact's after-contact work is its own ACW: acw.ended names the contact, so one
    # contact leaving never closes the ACW another one is still in.
    for contact_id, gone in was.items():
        if contact_id in now:
            continue
        if gone.state in TALKING:
            # Removed without an ENDED snapshot: the conversation and its wrap-up are over.
            add(contact_id, "interaction.ended", at, "ended-unseen", interaction_id=contact_id)
            add(contact_id, "acw.ended", at, "gone", interaction_id=contact_id)
        elif gone.state == ENDED and gone.connected_at is not None:
            add(contact_id, "acw.ended", at, "gone", interaction_id=contact_id)
    for contact_id, contact in now.items():
        prior = was.get(contact_id)
        before_state = prior.state if prior else None
        reached_agent = contact.state in TALKING or (
            contact.state == ENDED and contact.connected_at is not None
        )
        if reached_agent and before_state not in TALKING and before_state != ENDED:
            add(
                contact_id,
                "interaction.started",
                contact.connected_at or contact.state_start,
                "connected",
                interaction_id=contact_id,
                channel=contact.channel,
                direction=contact.direction,
                queue=contact.queue,
                concurrent=_held_alongside(contact, was, now) or None,
            )
        stamp = contact.state_start.isoformat()
        if contact.state == "CONNECTED_ONHOLD" and before_state != "CONNECTED_ONHOLD":
            add(
                contact_id,
                "interaction.held",
                contact.state_start,
                "held",
                stamp,
                interaction_id=contact_id,
            )
        elif contact.state == "CONNECTED" and before_state == "CONNECTED_ONHOLD":
            add(
                contact_id,
                "interaction.resumed",
                contact.state_start,
                "resumed",
                stamp,
                interaction_id=contact_id,
            )
        elif contact.state == ENDED and before_state != ENDED and reached_agent:
            add(
                contact_id,
                "interaction.ended",
                contact.state_start,
                "ended",
                interaction_id=contact_id,
            )
    return out


def _held_alongside(contact: Contact, was: dict[str, Contact], now: dict[str, Contact]) -> bool:
    """Whether the agent holds ``contact`` alongside another one, as the snapshots show: both
    are no voice contact (a call is exclusive) and the other is in the previous or current
    snapshot."""
    if contact.channel == "phone":
        return False
    return any(
        other.channel != "phone"
        for contact_id, other in (*was.items(), *now.items())
        if contact_id != contact.contact_id
    )


# --- Parsing the snapshot -------------------------------------------------------------------


def _snapshot(record: dict[str, Any], name: str, *, required: bool) -> dict[str, Any] | None:
    value = record.get(name)
    if value is None:
        if required:
            raise RecordRefused(f"{name}: is required")
        return None
    if not isinstance(value, dict):
        raise RecordRefused(f"{name}: must be an object")
    return value


def _get(snapshot: dict[str, Any], *path: str) -> Any:
    value: Any = snapshot
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _display_name(snapshot: dict[str, Any]) -> str:
    parts = [_get(snapshot, "Configuration", key) for key in ("FirstName", "LastName")]
    return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())[:200]


def _status(snapshot: dict[str, Any], name: str) -> tuple[str, datetime | None]:
    status = _get(snapshot, "AgentStatus", "Name")
    start = _get(snapshot, "AgentStatus", "StartTimestamp")
    return (
        # Connect allows longer status names than a not-ready reason: keep the first 100.
        text(status, f"{name}.AgentStatus.Name", limit=1000)[:100],
        parse_iso(start, f"{name}.AgentStatus.StartTimestamp") if start else None,
    )


def _contacts(snapshot: dict[str, Any] | None, name: str) -> dict[str, Contact]:
    if snapshot is None:
        return {}
    raw = snapshot.get("Contacts") or []
    if not isinstance(raw, list):
        raise RecordRefused(f"{name}.Contacts: must be a list")
    contacts: dict[str, Contact] = {}
    for index, item in enumerate(raw):
        where = f"{name}.Contacts[{index}]"
        if not isinstance(item, dict):
            raise RecordRefused(f"{where}: must be an object")
        contact_id = text(item.get("ContactId"), f"{where}.ContactId")
        connected = item.get("ConnectedToAgentTimestamp")
        queue = _get(item, "Queue", "Name")
        contacts[contact_id] = Contact(
            contact_id=contact_id,
            state=text(item.get("State"), f"{where}.State"),
            state_start=parse_iso(item.get("StateStartTimestamp"), f"{where}.StateStartTimestamp"),
            connected_at=parse_iso(connected, f"{where}.ConnectedToAgentTimestamp")
            if connected
            else None,
            channel=CHANNELS.get(str(item.get("Channel")), "other"),
            direction=DIRECTIONS.get(str(item.get("InitiationMethod"))),
            queue=queue[:100] if isinstance(queue, str) and queue else None,
        )
    return contacts
