"""Asterisk's ``queue_log`` → our events. Pure: no ORM, no file access.

One line per queue event: ``epoch|callid|queue|agent|EVENT|data1|data2|...``. An agent is a
member of several queues and Asterisk writes membership and pause lines once per queue; the
``QueueLogState`` kept between lines collapses them into one agent state: logged in while a
member of any queue, not ready while paused in any queue (reason = the newest pause's).

- ``ADDMEMBER``/``AGENTLOGIN`` → ``agent.logged_in`` (first queue), ``REMOVEMEMBER``/
  ``AGENTLOGOFF`` → ``agent.logged_out`` (last queue);
- ``PAUSE`` (data1 = reason) / ``PAUSEALL`` → ``agent.not_ready``; ``UNPAUSE``/``UNPAUSEALL``
  → ``agent.available`` once no queue is paused;
- ``CONNECT`` → ``interaction.started`` (callid, channel phone, the queue);
- ``COMPLETEAGENT``/``COMPLETECALLER``/``TRANSFER``/``BLINDTRANSFER``/``ATTENDEDTRANSFER`` →
  ``interaction.ended``; the ACW then follows the team's policy, as Asterisk's ``wrapuptime``.

A line implies at most one event; its id is derived from the line itself, so a line read again
(after a restart, or from a rotated copy) is a duplicate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from .common import MAX_ID, RecordRefused, Translated, derive_id, event, parse_epoch

PREFIX = "asterisk"
LOGIN = frozenset({"ADDMEMBER", "AGENTLOGIN", "AGENTCALLBACKLOGIN"})
LOGOFF = frozenset({"REMOVEMEMBER", "AGENTLOGOFF", "AGENTCALLBACKLOGOFF"})
ENDS = frozenset(
    {"COMPLETEAGENT", "COMPLETECALLER", "TRANSFER", "BLINDTRANSFER", "ATTENDEDTRANSFER"}
)
HANDLED = LOGIN | LOGOFF | ENDS | {"PAUSE", "PAUSEALL", "UNPAUSE", "UNPAUSEALL", "CONNECT"}
DEFAULT_PAUSE_REASON = "paused"
ALL_QUEUES = "*"  # PAUSEALL without a known membership


@dataclass
class Member:
    queues: set[str] = field(default_factory=set)
    paused: dict[str, str] = field(default_factory=dict)  # queue → reason, in pause order


@dataclass
class QueueLogState:
    """Per agent: the queues they are a member of and where they are paused."""

    agents: dict[str, Member] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            agent: {"queues": sorted(m.queues), "paused": m.paused}
            for agent, m in self.agents.items()
            if m.queues or m.paused
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> QueueLogState:
        return cls(
            {
                agent: Member(set(value.get("queues", [])), dict(value.get("paused", {})))
                for agent, value in (raw or {}).items()
            }
        )


def translate(line: str, state: QueueLogState) -> Translated:
    """The event one line implies (if any); updates ``state``. ``RecordRefused`` if malformed."""
    fields = line.rstrip("\r\n").split("|")
    if len(fields) < 5:
        raise RecordRefused(f"line: expected epoch|callid|queue|agent|EVENT|..., got {line[:60]!r}")
    epoch, callid, queue, agent, verb, *data = fields
    at = parse_epoch(epoch, "epoch")
    if verb not in HANDLED:
        return Translated()
    if not agent or agent == "NONE":
        raise RecordRefused(f"agent: is required for {verb}")
    if len(agent) > MAX_ID:
        raise RecordRefused(f"agent: longer than {MAX_ID} characters")
    member = state.agents.setdefault(agent, Member())
    body = _apply(verb, callid, queue, data, member)
    if body is None:
        return Translated()
    type_, extra = body
    digest = hashlib.sha256(line.rstrip("\r\n").encode()).hexdigest()[:40]
    return Translated(events=[event(derive_id(PREFIX, epoch, digest), type_, agent, at, **extra)])


def _apply(
    verb: str, callid: str, queue: str, data: list[str], member: Member
) -> tuple[str, dict[str, Any]] | None:
    data1 = data[0].strip() if data else ""
    if verb in LOGIN:
        first = not member.queues
        member.queues.add(queue)
        return ("agent.logged_in", {}) if first else None
    if verb in LOGOFF:
        if verb == "REMOVEMEMBER":
            member.queues.discard(queue)
            member.paused.pop(queue, None)
        else:
            member.queues.clear()
        if member.queues:
            return None
        member.paused.clear()
        return "agent.logged_out", {}
    if verb in ("PAUSE", "PAUSEALL"):
        reason = data1[:100] or DEFAULT_PAUSE_REASON
        before = _reason(member)
        for paused_queue in (member.queues or {ALL_QUEUES}) if verb == "PAUSEALL" else {queue}:
            member.paused.pop(paused_queue, None)
            member.paused[paused_queue] = reason
        # Pausing in the next queue for the same reason is the same agent state.
        return None if before == reason else ("agent.not_ready", {"reason": reason})
    if verb in ("UNPAUSE", "UNPAUSEALL"):
        before = _reason(member)
        if verb == "UNPAUSE":
            member.paused.pop(queue, None)
            member.paused.pop(ALL_QUEUES, None)
        else:
            member.paused.clear()
        if member.paused:
            # Still paused elsewhere: the newest remaining pause gives the reason.
            after = _reason(member)
            return None if after == before else ("agent.not_ready", {"reason": after})
        return "agent.available", {}
    if verb == "CONNECT":
        if not callid or callid == "NONE":
            raise RecordRefused("callid: is required for CONNECT")
        return "interaction.started", {
            "interaction_id": callid[:100],
            "channel": "phone",
            "direction": "inbound",
            "queue": queue[:100] if queue and queue != "NONE" else None,
        }
    # The call ended: completed by either side or transferred away.
    if not callid or callid == "NONE":
        raise RecordRefused(f"callid: is required for {verb}")
    return "interaction.ended", {"interaction_id": callid[:100]}


def _reason(member: Member) -> str:
    return next(reversed(member.paused.values()), "") if member.paused else ""
