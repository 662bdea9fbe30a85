"""The agent state machine as a pure function of an agent's ordered events.

No ORM here. ``project()`` takes where an agent stood (an ``AgentProjection``), the agent's
next events in ``occurred_at`` order and a way to look up ACW policies, and returns where the
agent stands after each event plus every interaction, hold and ACW row those events imply —
system timeouts included. ``agents.services`` feeds it from the event log and writes its output;
the same function rebuilds everything on replay.

Timeouts are lazy and provisional: ``advance(projection, t)`` closes an open ACW whose deadline has
passed *at its deadline*. It runs before every event (docs/api.md, Timeouts: an event at time t
first times out every ACW whose deadline is before t) and, for the live state, up to "now". The
stored per-event projection never contains a timeout that happened after the event, so an event that
arrives late but occurred before a deadline is applied to the ACW still open, and the timeout is
recomputed.

One interaction at a time by default: an ``interaction.started`` closes the open ACW (reason
``interaction``) and ends the interaction still open, with no ACW. Several contacts at once
(docs/api.md, "Concurrent contacts") only on request: an ``interaction.started`` with
``concurrent: true`` (sent by the adapters whose platform says the agent holds several contacts)
leaves the other open contacts and their ACWs running, unless it or one of them is a phone call.
Each contact is then its own interaction with its own talk, hold and ACW. The projection keeps
every open interaction and every open ACW; the agent's state is the busiest of them
(``on_interaction`` while any interaction is connected, else ``acw`` while any ACW is open).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from .choices import AcwEndReason, AcwMode, Channel, PolicyViolation, State, TimeoutAction

# The states as plain strings (they are stored in JSON projections), from the model choices.
OFFLINE, AVAILABLE, ON_INTERACTION, ACW, NOT_READY = (
    State.OFFLINE.value,
    State.AVAILABLE.value,
    State.ON_INTERACTION.value,
    State.ACW.value,
    State.NOT_READY.value,
)
STATES = tuple(State.values)

EVENT_TYPES = (
    "agent.logged_in",
    "agent.logged_out",
    "agent.available",
    "agent.not_ready",
    "interaction.started",
    "interaction.held",
    "interaction.resumed",
    "interaction.ended",
    "acw.started",
    "acw.extended",
    "acw.updated",
    "acw.ended",
)

# What an event does in each state. Missing pairs mean "accepted, stored, changes nothing"
# (docs/api.md, "Events that do not fit": e.g. acw.ended with no open ACW, agent.available
# while on an interaction).
# Guards that depend on more than the state (matching interaction id, being on hold, the ACW
# policy) are checked by the action itself.
IGNORE = "ignore"
TRANSITIONS: dict[str, dict[str, str]] = {
    "agent.logged_in": {
        OFFLINE: "become_available",
        AVAILABLE: "become_available",
        NOT_READY: "become_available",
        ACW: "become_available",
    },
    "agent.available": {
        OFFLINE: "become_available",
        AVAILABLE: "become_available",
        NOT_READY: "become_available",
        ACW: "become_available",
    },
    "agent.not_ready": {
        OFFLINE: "become_not_ready",
        AVAILABLE: "become_not_ready",
        NOT_READY: "become_not_ready",
        ACW: "become_not_ready",
    },
    "agent.logged_out": {state: "log_out" for state in STATES},
    "interaction.started": {state: "start_interaction" for state in STATES},
    "interaction.held": {ON_INTERACTION: "hold"},
    "interaction.resumed": {ON_INTERACTION: "resume"},
    "interaction.ended": {ON_INTERACTION: "end_interaction"},
    # A platform that says "the agent is in after-call work" without an interaction.ended
    # (agent phones, some ACD states). On an interaction it ends that interaction first, as
    # interaction.ended does; an ACW already open stays as it is (same timer, no restart).
    "acw.started": {
        OFFLINE: "start_acw",
        AVAILABLE: "start_acw",
        NOT_READY: "start_acw",
        ON_INTERACTION: "start_acw",
    },
    # On an interaction, another contact's ACW may still be open (concurrent contacts).
    "acw.extended": {ACW: "extend_acw", ON_INTERACTION: "extend_acw"},
    # The wrap-up as the agent fills it in (checklist ticks, code, note), kept with the open ACW
    # so that a timeout records what was done (docs/api.md, acw.updated).
    "acw.updated": {ACW: "update_acw", ON_INTERACTION: "update_acw"},
    "acw.ended": {ACW: "end_acw", ON_INTERACTION: "end_acw"},
}


def next_action(state: str, event_type: str) -> str:
    """The action the table names for this event in this state (``IGNORE`` if none)."""
    return TRANSITIONS.get(event_type, {}).get(state, IGNORE)


# --- Inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicySpec:
    """The ACW policy values the state machine needs (a snapshot of an ``AcwPolicy``)."""

    mode: str = "timed"
    seconds: int = 30
    allow_extension: bool = True
    extension_step_seconds: int = 30
    max_seconds: int = 300
    min_seconds: int = 0
    timeout_action: str = "available"
    timeout_reason: str = "acw_timeout"
    wrap_up_required: bool = False

    @property
    def has_acw(self) -> bool:
        return self.mode != AcwMode.NONE

    @property
    def is_timed(self) -> bool:
        return self.mode in (AcwMode.TIMED, AcwMode.TIMED_STRICT)


PolicyLookup = Callable[[int, str], PolicySpec]
"""(team id, channel) → the policy that applies."""


@dataclass(frozen=True)
class EventIn:
    """One stored event, as the state machine sees it. ``key`` is the event's row id."""

    key: int
    type: str
    occurred_at: datetime
    team_id: int
    data: dict[str, Any] = field(default_factory=dict)
    actor_id: int | None = None


# --- The projection -------------------------------------------------------------------------


@dataclass
class OpenInteraction:
    key: int
    interaction_id: str
    channel: str
    direction: str
    queue: str
    started_at: datetime
    hold_seconds: float = 0.0
    hold_key: int | None = None
    hold_started_at: datetime | None = None


@dataclass
class OpenAcw:
    key: int
    interaction_key: int | None
    team_id: int
    channel: str
    started_at: datetime
    deadline: datetime | None
    policy: PolicySpec
    extensions: int = 0
    extended_seconds: float = 0.0
    # The contact it wraps up: the ended interaction's id, or the one acw.started named.
    interaction_id: str = ""
    # The wrap-up so far (acw.updated); acw.ended's own fields, when given, replace it.
    checklist: list[int] = field(default_factory=list)
    wrap_up_code: str = ""
    note: str = ""


def _acw_order(acw: OpenAcw) -> tuple[bool, datetime, int]:
    """The next ACW to time out comes first; untimed ones last, oldest first."""
    return (acw.deadline is None, acw.deadline or acw.started_at, acw.key)


@dataclass
class AgentProjection:
    state: str = OFFLINE
    reason: str = ""
    since: datetime | None = None
    # Every interaction still connected, and every ACW still open, in the order they began.
    interactions: list[OpenInteraction] = field(default_factory=list)
    acws: list[OpenAcw] = field(default_factory=list)

    @property
    def interaction(self) -> OpenInteraction | None:
        """The interaction the live state shows: the oldest one still connected."""
        return self.interactions[0] if self.interactions else None

    @property
    def acw(self) -> OpenAcw | None:
        """The ACW the live state shows: the next one to time out (untimed ones last).

        Its deadline is the next moment time alone changes the agent, which is what the
        timeout timer waits for.
        """
        return min(self.acws, key=_acw_order) if self.acws else None

    @property
    def open_contacts(self) -> int:
        """Contacts the agent holds: interactions connected plus ACWs open (an interaction and
        the ACW after it are never open together)."""
        return len(self.interactions) + len(self.acws)

    def to_json(self) -> dict[str, Any]:
        # The same as _to_json(dataclasses.asdict(self)), about 20 times faster: asdict
        # deep-copies every value, and this runs for every stored event.
        return _json_of(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> AgentProjection:
        if not raw:
            return cls()
        interactions = _raw_list(raw, "interactions", "interaction")
        acws = raw_open_acws(raw)
        return cls(
            state=raw["state"],
            reason=raw.get("reason", ""),
            since=_dt(raw.get("since")),
            interactions=[
                OpenInteraction(
                    **{
                        **it,
                        "started_at": _dt(it["started_at"]),
                        "hold_started_at": _dt(it.get("hold_started_at")),
                    }
                )
                for it in interactions
            ],
            acws=[
                OpenAcw(
                    **{
                        **acw,
                        "started_at": _dt(acw["started_at"]),
                        "deadline": _dt(acw.get("deadline")),
                        "policy": PolicySpec(**acw["policy"]),
                    }
                )
                for acw in acws
            ],
        )


# --- Outputs: rows keyed by the event that opened them --------------------------------------


@dataclass
class InteractionRow:
    key: int
    team_id: int | None
    interaction_id: str
    channel: str
    direction: str
    queue: str
    started_at: datetime
    ended_at: datetime | None = None
    end_reason: str = ""
    hold_seconds: float = 0.0

    @property
    def talk_seconds(self) -> float:
        """Talk = start to end minus hold (docs/api.md, section 5); 0 while still open."""
        if self.ended_at is None:
            return 0.0
        return max(0.0, (self.ended_at - self.started_at).total_seconds() - self.hold_seconds)


@dataclass
class HoldRow:
    key: int
    interaction_key: int
    started_at: datetime
    ended_at: datetime | None = None


@dataclass
class AcwRow:
    key: int
    interaction_key: int | None
    team_id: int
    channel: str
    mode: str
    started_at: datetime
    deadline: datetime | None
    ended_at: datetime | None = None
    end_reason: str = ""
    extensions: int = 0
    extended_seconds: float = 0.0
    wrap_up_code: str = ""
    note: str = ""
    checklist: list[int] = field(default_factory=list)
    ended_by_id: int | None = None
    too_short: bool = False
    overrun: bool = False
    policy_violation: str = ""

    @property
    def duration_seconds(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


@dataclass
class Rows:
    """Every row a replay touched, latest version, keyed by the event that opened it."""

    interactions: dict[int, InteractionRow] = field(default_factory=dict)
    holds: dict[int, HoldRow] = field(default_factory=dict)
    acws: dict[int, AcwRow] = field(default_factory=dict)

    def merge(self, other: Rows) -> None:
        self.interactions.update(other.interactions)
        self.holds.update(other.holds)
        self.acws.update(other.acws)


@dataclass
class ProjectionResult:
    final: AgentProjection
    after_each: list[tuple[int, AgentProjection]]
    rows: Rows
    # The last event applied; with ``converged``, the one the run stopped at (``stopped``).
    last: EventIn | None = None
    stopped: bool = False


# --- The machine ----------------------------------------------------------------------------


class _Machine:
    """Applies events to one agent's projection, recording the rows it touches."""

    def __init__(self, start: AgentProjection, policy_for: PolicyLookup) -> None:
        self.p = _copy(start)
        self.policy_for = policy_for
        self.rows = Rows()
        # Rows open at the start are re-emitted whatever happens: a late replay may leave open
        # a row that an earlier, now superseded, replay had closed.
        for it in self.p.interactions:
            self._touch_interaction(it)
        for acw in self.p.acws:
            self._touch_acw(acw)

    # Row bookkeeping ---------------------------------------------------------------------

    def _touch_interaction(self, it: OpenInteraction) -> InteractionRow:
        row = self.rows.interactions.get(it.key)
        if row is None:
            row = InteractionRow(
                key=it.key,
                team_id=None,
                interaction_id=it.interaction_id,
                channel=it.channel,
                direction=it.direction,
                queue=it.queue,
                started_at=it.started_at,
                hold_seconds=it.hold_seconds,
            )
            self.rows.interactions[it.key] = row
        if it.hold_key is not None and it.hold_key not in self.rows.holds:
            assert it.hold_started_at is not None
            self.rows.holds[it.hold_key] = HoldRow(it.hold_key, it.key, it.hold_started_at)
        return row

    def _touch_acw(self, acw: OpenAcw) -> AcwRow:
        row = self.rows.acws.get(acw.key)
        if row is None:
            row = AcwRow(
                key=acw.key,
                interaction_key=acw.interaction_key,
                team_id=acw.team_id,
                channel=acw.channel,
                mode=acw.policy.mode,
                started_at=acw.started_at,
                deadline=acw.deadline,
            )
            self.rows.acws[acw.key] = row
        row.deadline = acw.deadline
        row.extensions = acw.extensions
        row.extended_seconds = acw.extended_seconds
        row.checklist = list(acw.checklist)
        row.wrap_up_code = acw.wrap_up_code
        row.note = acw.note
        return row

    def leave_out_open_rows(self) -> None:
        """Forget the rows of what is open now (``project()``: a replay that converged)."""
        for it in self.p.interactions:
            self.rows.interactions.pop(it.key, None)
            if it.hold_key is not None:
                self.rows.holds.pop(it.hold_key, None)
        for acw in self.p.acws:
            self.rows.acws.pop(acw.key, None)

    def _set_state(self, state: str, at: datetime, reason: str = "") -> None:
        if state != self.p.state or reason != self.p.reason or self.p.since is None:
            self.p.since = at
        self.p.state = state
        self.p.reason = reason

    def _settle(self, at: datetime, idle: str = AVAILABLE, idle_reason: str = "") -> None:
        """The busiest state: ``on_interaction`` while any interaction is connected, else
        ``acw`` while any ACW is open, else ``idle`` (what closing the last one leads to)."""
        if self.p.interactions:
            self._set_state(ON_INTERACTION, at)
        elif self.p.acws:
            self._set_state(ACW, at)
        else:
            self._set_state(idle, at, idle_reason)

    # Finding what an event is about -------------------------------------------------------

    def _open_interaction(self, event: EventIn) -> OpenInteraction | None:
        """The connected interaction the event names, if any."""
        wanted = event.data.get("interaction_id")
        if wanted is None:
            return None
        return next((it for it in self.p.interactions if it.interaction_id == str(wanted)), None)

    def _acws_meant(self, event: EventIn) -> list[OpenAcw]:
        """The open ACWs an ``acw.*`` event is about: the named contact's, else all of them."""
        wanted = event.data.get("interaction_id")
        if wanted is None:
            return list(self.p.acws)
        return [acw for acw in self.p.acws if acw.interaction_id == str(wanted)]

    # Closing things ----------------------------------------------------------------------

    def _end_hold(self, it: OpenInteraction, at: datetime) -> None:
        if it.hold_key is None:
            return
        assert it.hold_started_at is not None
        self._touch_interaction(it)
        it.hold_seconds += max(0.0, (at - it.hold_started_at).total_seconds())
        self.rows.holds[it.hold_key].ended_at = at
        it.hold_key = None
        it.hold_started_at = None

    def _end_interaction(
        self, it: OpenInteraction, at: datetime, reason: str, team_id: int
    ) -> OpenInteraction:
        self._end_hold(it, at)
        row = self._touch_interaction(it)
        row.ended_at = at
        row.end_reason = reason
        row.hold_seconds = it.hold_seconds
        row.team_id = team_id
        self.p.interactions.remove(it)
        return it

    def _end_all_interactions(self, at: datetime, reason: str, team_id: int) -> None:
        for it in list(self.p.interactions):
            self._end_interaction(it, at, reason, team_id)

    def _close_acw(
        self,
        acw: OpenAcw,
        at: datetime,
        reason: str,
        *,
        event: EventIn | None = None,
    ) -> None:
        row = self._touch_acw(acw)
        row.ended_at = at
        row.end_reason = reason
        duration = (at - acw.started_at).total_seconds()
        policy = acw.policy
        row.too_short = policy.min_seconds > 0 and duration < policy.min_seconds
        row.overrun = duration > policy.seconds if policy.seconds else False
        violations = []
        if event is not None and event.type == "acw.ended":
            _fill_wrap_up(row, event.data)
            row.ended_by_id = event.actor_id
            early = acw.deadline is not None and at < acw.deadline
            if policy.mode == "timed_strict" and reason == "agent_ready" and early:
                violations.append(PolicyViolation.EARLY_EXIT.value)
            if policy.wrap_up_required and not row.wrap_up_code:
                violations.append(PolicyViolation.MISSING_WRAP_UP.value)
        elif reason == AcwEndReason.TIMEOUT and policy.wrap_up_required and not row.wrap_up_code:
            # The deadline passed before the agent gave the code the policy requires.
            violations.append(PolicyViolation.MISSING_WRAP_UP.value)
        row.policy_violation = ",".join(violations)
        self.p.acws.remove(acw)

    def _close_all_acws(self, at: datetime, reason: str) -> None:
        for acw in list(self.p.acws):
            self._close_acw(acw, at, reason)

    # Time ---------------------------------------------------------------------------------

    def advance(self, until: datetime, *, inclusive: bool) -> None:
        """Time out every open ACW whose deadline is before ``until`` (or at it, if inclusive),
        each at its own deadline, in deadline order."""
        while True:
            acw = self.p.acw
            if acw is None or acw.deadline is None:
                return
            due = acw.deadline <= until if inclusive else acw.deadline < until
            if not due:
                return
            deadline = acw.deadline
            policy = acw.policy
            self._close_acw(acw, deadline, "timeout")
            # The policy's timeout action applies when the last contact's ACW times out.
            if policy.timeout_action == TimeoutAction.NOT_READY:
                self._settle(deadline, NOT_READY, policy.timeout_reason or "acw_timeout")
            else:
                self._settle(deadline)

    # Events -------------------------------------------------------------------------------

    def apply(self, event: EventIn) -> None:
        self.advance(event.occurred_at, inclusive=False)
        action = next_action(self.p.state, event.type)
        if action != IGNORE:
            getattr(self, action)(event)

    def become_available(self, event: EventIn) -> None:
        self._close_all_acws(event.occurred_at, "agent_ready")
        self._set_state(AVAILABLE, event.occurred_at)

    def become_not_ready(self, event: EventIn) -> None:
        self._close_all_acws(event.occurred_at, "not_ready")
        self._set_state(NOT_READY, event.occurred_at, str(event.data.get("reason") or ""))

    def log_out(self, event: EventIn) -> None:
        self._close_all_acws(event.occurred_at, "logout")
        self._end_all_interactions(event.occurred_at, "logout", event.team_id)
        self._set_state(OFFLINE, event.occurred_at)

    def start_interaction(self, event: EventIn) -> None:
        at = event.occurred_at
        it = OpenInteraction(
            key=event.key,
            interaction_id=str(event.data["interaction_id"]),
            channel=str(event.data.get("channel") or Channel.OTHER.value),
            direction=str(event.data.get("direction") or ""),
            queue=str(event.data.get("queue") or ""),
            started_at=at,
        )
        same = self._open_interaction(event)
        if same is not None:
            # The same contact started again: the open one ends here, with no ACW.
            self._end_interaction(same, at, "replaced", event.team_id)
        if not self._runs_alongside(it, concurrent=event.data.get("concurrent") is True):
            # One interaction at a time: whatever is open ends here, with no ACW.
            self._close_all_acws(at, "interaction")
            self._end_all_interactions(at, "replaced", event.team_id)
            # A new interaction is a new state even when the agent was already on one.
            self.p.state = ""
        self.p.interactions.append(it)
        self._touch_interaction(it)
        self._set_state(ON_INTERACTION, at)

    def _runs_alongside(self, new: OpenInteraction, *, concurrent: bool) -> bool:
        """Whether ``new`` leaves the open interactions and ACWs as they are (docs/api.md,
        "Concurrent contacts"): only when the event asks for it (``concurrent``), and only
        contacts that are no phone call run concurrently; an ACW without an interaction
        (``acw.started``) is the agent's, not a contact's."""
        return (
            concurrent
            and new.channel != Channel.PHONE
            and all(it.channel != Channel.PHONE for it in self.p.interactions)
            and all(
                acw.channel != Channel.PHONE and acw.interaction_key is not None
                for acw in self.p.acws
            )
        )

    def hold(self, event: EventIn) -> None:
        it = self._open_interaction(event)
        if it is None or it.hold_key is not None:
            return
        it.hold_key = event.key
        it.hold_started_at = event.occurred_at
        self._touch_interaction(it)

    def resume(self, event: EventIn) -> None:
        it = self._open_interaction(event)
        if it is None or it.hold_key is None:
            return
        self._end_hold(it, event.occurred_at)

    def end_interaction(self, event: EventIn) -> None:
        it = self._open_interaction(event)
        if it is None:
            return
        self._end_interaction(it, event.occurred_at, "ended", event.team_id)
        self._open_acw(event, it)

    def start_acw(self, event: EventIn) -> None:
        """``acw.started``: after-call work the platform announces itself.

        The ACW follows the same policy as one after ``interaction.ended``: the channel is the
        open interaction's (which ends here), else the event's ``channel``, else ``other``.
        With several interactions connected, the named one ends, or all of them if the event
        names none of them, each followed by its own ACW.
        """
        if self.p.interactions:
            named = self._open_interaction(event)
            for it in [named] if named is not None else list(self.p.interactions):
                self._end_interaction(it, event.occurred_at, "ended", event.team_id)
                self._open_acw(event, it)
            return
        self._open_acw(event, None)

    def _open_acw(self, event: EventIn, it: OpenInteraction | None) -> None:
        at = event.occurred_at
        channel = it.channel if it else str(event.data.get("channel") or Channel.OTHER.value)
        policy = self.policy_for(event.team_id, channel)
        if policy.has_acw:
            acw = OpenAcw(
                key=event.key,
                interaction_key=it.key if it else None,
                team_id=event.team_id,
                channel=channel,
                started_at=at,
                deadline=at + timedelta(seconds=policy.seconds) if policy.is_timed else None,
                policy=policy,
                interaction_id=it.interaction_id
                if it
                else str(event.data.get("interaction_id") or ""),
            )
            self.p.acws.append(acw)
            self._touch_acw(acw)
        self._settle(at)

    def extend_acw(self, event: EventIn) -> None:
        for acw in self._acws_meant(event):
            if not can_extend(acw):
                continue
            assert acw.deadline is not None
            seconds = event.data.get("seconds") or acw.policy.extension_step_seconds
            new_deadline = min(
                acw.deadline + timedelta(seconds=float(seconds)), latest_deadline(acw)
            )
            acw.extended_seconds += (new_deadline - acw.deadline).total_seconds()
            acw.deadline = new_deadline
            acw.extensions += 1
            self._touch_acw(acw)

    def update_acw(self, event: EventIn) -> None:
        """``acw.updated``: the wrap-up so far; each field given replaces the one kept (the named
        contact's ACW, else every open one)."""
        data = event.data
        for acw in self._acws_meant(event):
            if data.get("checklist") is not None:
                acw.checklist = [int(i) for i in data["checklist"]]
            if data.get("wrap_up_code") is not None:
                acw.wrap_up_code = str(data["wrap_up_code"])
            if data.get("note") is not None:
                acw.note = str(data["note"])
            self._touch_acw(acw)

    def end_acw(self, event: EventIn) -> None:
        meant = self._acws_meant(event)
        if not meant:
            return
        reason = str(event.data.get("reason") or "agent_ready")
        for acw in meant:
            self._close_acw(acw, event.occurred_at, reason, event=event)
        self._settle(event.occurred_at)


def _fill_wrap_up(row: AcwRow, data: dict[str, Any]) -> None:
    """``acw.ended``'s wrap-up fields over what ``acw.updated`` kept: a field the event leaves
    out keeps the saved value."""
    if data.get("wrap_up_code") is not None:
        row.wrap_up_code = str(data["wrap_up_code"])
    if data.get("note") is not None:
        row.note = str(data["note"])
    if data.get("checklist") is not None:
        row.checklist = list(data["checklist"])


# --- Extension ------------------------------------------------------------------------------


def extension_allowed(acw: OpenAcw) -> bool:
    """Whether this ACW's policy lets it be extended at all (only a timed ACW has a deadline)."""
    return acw.policy.allow_extension and acw.deadline is not None


def longest_acw_seconds(policy: PolicySpec) -> int:
    """The longest an ACW may last, extensions included: the policy's maximum, never less than
    its timer (docs/api.md, section 3: capped so that the ACW lasts at most the maximum from its start)."""
    return max(policy.max_seconds, policy.seconds)


def latest_deadline(acw: OpenAcw) -> datetime:
    """The furthest an extension may move this ACW's deadline."""
    return acw.started_at + timedelta(seconds=longest_acw_seconds(acw.policy))


def can_extend(acw: OpenAcw) -> bool:
    """Whether an ``acw.extended`` now would move the deadline (allowed and not yet capped)."""
    return (
        extension_allowed(acw) and acw.deadline is not None and acw.deadline < latest_deadline(acw)
    )


def project(
    start: AgentProjection,
    events: Iterable[EventIn],
    policy_for: PolicyLookup,
    converged: Callable[[EventIn, AgentProjection], bool] | None = None,
) -> ProjectionResult:
    """Apply ``events`` (already in ``occurred_at``/arrival order) to ``start``.

    Returns the projection after each event (without later timeouts), the final one, and every
    row touched — the rows open in ``start`` included.

    A replay after a late event passes ``converged``: the run stops after the first event for
    which it is true (the projection equals the one stored after that event, so every later
    event and every row opened after it stay as stored). That event is then ``last``, left out
    of ``after_each`` (its stored projection is right), and ``final`` is the projection there.
    The rule for the rows when it stops: a row still open at that point (an interaction, its
    hold, an ACW) is left out of ``rows``, as the stored row already holds what the later
    events made of it (its closing values): the open item is equal in both projections, its
    accumulated values (hold seconds, extensions, wrap-up so far) included, and so are the
    later events. Every other row touched — closed up to that point, or opened by an event
    before it and not open any more — is in ``rows``, in its final form.
    """
    machine = _Machine(start, policy_for)
    after_each: list[tuple[int, AgentProjection]] = []
    last = None
    for event in events:
        machine.apply(event)
        last = event
        if converged is not None and converged(event, machine.p):
            machine.leave_out_open_rows()
            return ProjectionResult(machine.p, after_each, machine.rows, last, stopped=True)
        after_each.append((event.key, _copy(machine.p)))
    return ProjectionResult(final=machine.p, after_each=after_each, rows=machine.rows, last=last)


def advance(projection: AgentProjection, now: datetime) -> tuple[AgentProjection, Rows]:
    """The projection at ``now``: an ACW whose deadline has passed is closed at its deadline."""
    machine = _Machine(projection, _no_new_acw)
    machine.rows = Rows()  # only what the timeout itself changes
    machine.advance(now, inclusive=True)
    return machine.p, machine.rows


def _no_new_acw(team_id: int, channel: str) -> PolicySpec:
    # Time alone never opens an ACW: a timeout follows the open ACW's own policy.
    raise AssertionError("advance() never resolves a policy")


def raw_open_acws(raw: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The open ACWs of a stored projection (JSON), without building the projection."""
    return _raw_list(raw or {}, "acws", "acw")


def _raw_list(raw: dict[str, Any], many: str, one: str) -> list[dict[str, Any]]:
    # Projections stored before concurrent contacts hold one "interaction" and one "acw".
    items = raw.get(many)
    if items is None:
        return [raw[one]] if raw.get(one) else []
    return list(items)


# --- helpers --------------------------------------------------------------------------------


def _copy(p: AgentProjection) -> AgentProjection:
    return replace(
        p,
        interactions=[replace(it) for it in p.interactions],
        acws=[replace(acw) for acw in p.acws],
    )


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _json_of(p: AgentProjection) -> dict[str, Any]:
    """The projection as JSON-ready values (datetimes as ISO 8601 strings)."""
    acws = [_flat_json(acw) for acw in p.acws]
    for acw in acws:
        acw["policy"] = dict(vars(acw["policy"]))
    return {
        "state": p.state,
        "reason": p.reason,
        "since": p.since.isoformat() if p.since is not None else None,
        "interactions": [_flat_json(it) for it in p.interactions],
        "acws": acws,
    }


def _flat_json(row: OpenInteraction | OpenAcw) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in vars(row).items()}


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return value
