"""The traffic model behind ``seed_demo`` (history) and ``simulate`` (live traffic).

``timeline()`` turns a list of agents — each with a persona and a starting state — and a
``random.Random`` into telephony events as the event API takes them (docs/api.md, section 3), in
``occurred_at`` order, for a time range. It never touches the database and is deterministic for a
given seed, so ``seed_demo`` writes days of history and ``simulate`` paces the same stream in real
time. ``load_agents()`` is the one reader that builds the model's agents from the database.

The model, per agent (durations as contact centers report them: talk of a few minutes, ACW
of 20–60 s with a long tail):

- contacts arrive as a Poisson process while the agent is available (exponential idle time);
- talk time is lognormal per channel (phone ~5 min, chat ~9 min, e-mail ~4 min); a minority
  of phone calls is put on hold;
- after the contact the agent does ACW for a lognormal time around the wrap-up code's norm
  (long right tail), scaled by the agent's persona; what happens then depends on the ACW
  policy: the agent ends it (``acw.ended`` with a code and ticked checklist items), extends it
  when the work outlasts the timer, or forgets and lets the server time it out; under
  ``timed_strict`` nobody ends early;
- breaks, lunch and the odd meeting (``agent.not_ready`` with a reason), sometimes straight
  out of ACW.

``rate`` compresses the traffic (idle time, talk, hold, breaks) but never ACW: ACW timers,
minimums and alert thresholds are real seconds on the server, so a compressed ACW would look
"too short" against every policy. At ``rate`` > 1 the ACW share of handle time grows
accordingly.
"""

from __future__ import annotations

import heapq
import math
import random
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from .states import ACW, NOT_READY, OFFLINE, ON_INTERACTION, PolicySpec

PolicyFor = Callable[[int, str], PolicySpec]
"""(team id, channel) → the ACW policy that applies, as ``agents.policies.Policies.spec`` resolves it."""

SimEvent = dict[str, Any]


# --- The catalogue: personas, channels, wrap-up codes, teams --------------------------------


@dataclass(frozen=True)
class Persona:
    """How one agent behaves. Probabilities are per contact."""

    kind: str
    acw_factor: float = 1.0  # multiplies the wrap-up code's ACW norm
    extend_prob: float = 0.15  # extends when the work outlasts the timer (and policy allows)
    forget_prob: float = 0.05  # never ends the ACW: the server times it out
    wrap_up_prob: float = 0.95  # picks a wrap-up code when ending the ACW
    talk_factor: float = 1.0
    hold_factor: float = 1.0


PERSONAS: dict[str, Persona] = {
    "steady": Persona("steady"),
    # Takes two to three times the norm: the agent supervisors look for on the wall.
    "long_acw": Persona("long_acw", acw_factor=2.6, extend_prob=0.5, forget_prob=0.1),
    "extender": Persona("extender", acw_factor=1.5, extend_prob=0.9, forget_prob=0.02),
    "forgetful": Persona("forgetful", forget_prob=0.45, extend_prob=0.05),
    # Rushes through ACW (and skips the code now and then): "too short" flags.
    "quick": Persona("quick", acw_factor=0.35, forget_prob=0.02, wrap_up_prob=0.7),
}


def persona_for(external_id: str) -> Persona:
    """The persona of an agent: the demo roster's, else a stable pick from its external id."""
    kind = DEMO_PERSONAS.get(external_id)
    if kind is None:
        # Half steady, the rest spread over the habits; crc32 is stable across runs.
        bucket = zlib.crc32(external_id.encode()) % 20
        kind = (
            "long_acw"
            if bucket < 2
            else "extender"
            if bucket < 5
            else "forgetful"
            if bucket < 8
            else "quick"
            if bucket < 10
            else "steady"
        )
    return PERSONAS[kind]


@dataclass(frozen=True)
class ChannelProfile:
    talk_mean: float  # seconds, lognormal mean
    talk_sigma: float
    idle_mean: float  # mean wait for the next contact of this channel, seconds
    hold_prob: float = 0.0
    hold_mean: float = 45.0
    acw_factor: float = 1.0  # e-mail wrap-up is mostly done while handling


CHANNELS: dict[str, ChannelProfile] = {
    "phone": ChannelProfile(talk_mean=300, talk_sigma=0.55, idle_mean=75, hold_prob=0.25),
    "chat": ChannelProfile(talk_mean=540, talk_sigma=0.5, idle_mean=90, acw_factor=1.2),
    "email": ChannelProfile(talk_mean=240, talk_sigma=0.6, idle_mean=45, acw_factor=1.3),
    "other": ChannelProfile(talk_mean=120, talk_sigma=0.6, idle_mean=60),
}


@dataclass(frozen=True)
class WrapUp:
    code: str
    label: str
    expected_acw_seconds: int  # the norm (stored on WrapUpCode by seed_demo)
    weight: float  # how often it is chosen


WRAP_UP_CODES: tuple[WrapUp, ...] = (
    WrapUp("resolved", "Resolved at first contact", 20, 40),
    WrapUp("info_provided", "Information provided", 15, 15),
    WrapUp("callback_scheduled", "Callback scheduled", 45, 12),
    WrapUp("sale", "Sale closed", 50, 10),
    WrapUp("escalated", "Escalated to second line", 60, 8),
    WrapUp("complaint", "Complaint recorded", 90, 7),
    WrapUp("transferred", "Transferred", 10, 5),
    WrapUp("follow_up_email", "Follow-up e-mail needed", 75, 3),
)


@dataclass(frozen=True)
class TeamProfile:
    channels: tuple[tuple[str, float], ...]  # (channel, weight)
    queues: dict[str, tuple[str, ...]]
    outbound_share: float = 0.0  # phone only: callbacks


DEFAULT_TEAM_PROFILE = TeamProfile(channels=(("phone", 1.0),), queues={"phone": ("general",)})
TEAM_PROFILES: dict[str, TeamProfile] = {
    "North": TeamProfile(
        channels=(("phone", 1.0),),
        queues={"phone": ("north-general", "north-billing")},
        outbound_share=0.15,
    ),
    "South": TeamProfile(
        channels=(("phone", 0.8), ("email", 0.2)),
        queues={"phone": ("south-sales", "south-support"), "email": ("south-mail",)},
        outbound_share=0.1,
    ),
    "Digital": TeamProfile(
        channels=(("chat", 0.62), ("email", 0.32), ("other", 0.06)),
        queues={"chat": ("web-chat",), "email": ("support-mail",), "other": ("social",)},
    ),
}


@dataclass(frozen=True)
class RosterEntry:
    external_id: str
    name: str
    team: str
    persona: str


# The demo roster: eight agents per team, each team with every habit a supervisor should see.
DEMO_ROSTER: tuple[RosterEntry, ...] = tuple(
    RosterEntry(external_id, name, team, persona)
    for team, rows in (
        (
            "North",
            (
                ("alice", "Alice Martin", "steady"),
                ("a-1001", "Jonas Becker", "long_acw"),
                ("a-1002", "Priya Raman", "steady"),
                ("a-1003", "Tomás Oliveira", "forgetful"),
                ("a-1004", "Hannah Kowalski", "quick"),
                ("a-1005", "Samuel Okafor", "steady"),
                ("a-1006", "Lea Fischer", "extender"),
                ("a-1007", "Mateo Rossi", "steady"),
            ),
        ),
        (
            "South",
            (
                ("a-2001", "Chloé Lambert", "extender"),
                ("a-2002", "David Nguyen", "steady"),
                ("a-2003", "Fatima El Amrani", "long_acw"),
                ("a-2004", "Lukas Novak", "steady"),
                ("a-2005", "Grace O'Brien", "forgetful"),
                ("a-2006", "Ivan Petrov", "steady"),
                ("a-2007", "Sofia Andersson", "extender"),
                ("a-2008", "Noah Schmidt", "quick"),
            ),
        ),
        (
            "Digital",
            (
                ("a-3001", "Mei Tanaka", "steady"),
                ("a-3002", "Oliver Brown", "forgetful"),
                ("a-3003", "Amara Diallo", "steady"),
                ("a-3004", "Lucas Moreau", "long_acw"),
                ("a-3005", "Emma Janssen", "extender"),
                ("a-3006", "Yusuf Demir", "steady"),
                ("a-3007", "Nora Lindqvist", "quick"),
                ("a-3008", "Rafael Costa", "steady"),
            ),
        ),
    )
    for external_id, name, persona in rows
)
DEMO_PERSONAS: dict[str, str] = {entry.external_id: entry.persona for entry in DEMO_ROSTER}

# Names for rosters larger than the demo's eight per team.
FIRST_NAMES = (
    "Ada", "Ben", "Clara", "Dario", "Elif", "Felix", "Greta", "Hugo", "Ines", "Jakob", "Kiara",
    "Liam", "Maya", "Nils", "Olga", "Paulo", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wim",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Bauer", "Costa", "Dubois", "Eriksen", "Ferreira", "Garcia", "Horvat", "Ito",
    "Jansen", "Keller", "Laine", "Meyer", "Nowak", "Ortiz", "Peeters", "Quinn", "Rinaldi",
)  # fmt: skip


def roster(per_team: int) -> list[RosterEntry]:
    """``per_team`` agents for each demo team: the demo roster first, then generated names."""
    entries: list[RosterEntry] = []
    for number, team in enumerate(TEAM_PROFILES, start=1):
        own = [entry for entry in DEMO_ROSTER if entry.team == team]
        entries.extend(own[:per_team])
        for index in range(len(own), per_team):
            external_id = f"a-{number}{index + 1:03d}"
            name = (
                f"{FIRST_NAMES[(index * 7 + number) % len(FIRST_NAMES)]} "
                f"{LAST_NAMES[(index * 5 + number * 3) % len(LAST_NAMES)]}"
            )
            entries.append(RosterEntry(external_id, name, team, persona_for(external_id).kind))
    return entries


# --- The model's agents ---------------------------------------------------------------------


@dataclass(frozen=True)
class StartState:
    """Where an agent stands when the timeline begins (the server's live state)."""

    state: str = OFFLINE
    interaction_id: str = ""
    channel: str = ""
    acw_started_at: datetime | None = None
    acw_deadline: datetime | None = None
    last_event_at: datetime | None = None


@dataclass(frozen=True)
class SimAgent:
    external_id: str
    team_id: int
    team_name: str
    persona: Persona
    checklist_ids: tuple[int, ...] = ()
    start: StartState = field(default_factory=StartState)

    @property
    def profile(self) -> TeamProfile:
        return TEAM_PROFILES.get(self.team_name, DEFAULT_TEAM_PROFILE)


# Breaks in a working cycle of eight hours: (offset, reason, duration), in seconds.
BREAK_PLAN: tuple[tuple[float, str, float], ...] = (
    (2 * 3600, "break", 15 * 60),
    (4 * 3600, "lunch", 30 * 60),
    (6 * 3600, "break", 15 * 60),
)
CYCLE_SECONDS = 8 * 3600
AD_HOC_REASONS = (("meeting", 20 * 60), ("training", 30 * 60), ("coaching", 15 * 60))


def timeline(
    agents: list[SimAgent],
    rng: random.Random,
    *,
    start: datetime,
    end: datetime | None,
    policy_for: PolicyFor,
    id_prefix: str,
    rate: float = 1.0,
    log_out_at_end: bool = False,
    stagger_breaks: bool = False,
    login_within: float = 900.0,
) -> Iterator[tuple[datetime, SimEvent]]:
    """Events of ``agents`` from ``start``, merged in ``occurred_at`` order.

    Yields ``(occurred_at, event)``; ``event`` is an event dict as the API takes it, whose
    ``event_id`` is ``id_prefix`` + agent + a counter (so ``id_prefix`` must be unique per run).
    Each agent starts from its ``start`` state (an offline agent logs in first). ``end=None`` runs
    forever. With ``log_out_at_end`` agents stop taking contacts at ``end``, finish what they are
    doing and log out; otherwise nothing at or after ``end`` is yielded. ``stagger_breaks`` spreads
    the agents' break cycles (live mode), instead of aligning them with the start (a shift). Offline
    agents log in within ``login_within`` seconds of ``start`` (not compressed). Deterministic for
    the state of ``rng``.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    streams = [
        _AgentModel(
            agent,
            random.Random(rng.getrandbits(64)),
            policy_for=policy_for,
            id_prefix=f"{id_prefix}-{_id_part(agent.external_id, index)}",
            start=start,
            end=None if end is None else (end - start).total_seconds(),
            rate=rate,
            log_out_at_end=log_out_at_end,
            stagger_breaks=stagger_breaks,
            login_within=login_within,
        ).run()
        for index, agent in enumerate(agents)
    ]
    for offset, event in heapq.merge(*streams, key=lambda pair: pair[0]):
        yield start + timedelta(seconds=offset), event


def generate(agents: list[SimAgent], rng: random.Random, **kwargs: Any) -> Iterator[SimEvent]:
    """``timeline()`` without the timestamps: just the events."""
    for _, event in timeline(agents, rng, **kwargs):
        yield event


def _id_part(external_id: str, index: int) -> str:
    # Event ids are at most 100 characters; a long external id is replaced by its position.
    return external_id if len(external_id) <= 40 else f"n{index}"


class _StopTimeline(Exception):
    """The agent reached the end of a bounded timeline."""


class _AgentModel:
    """One agent's day as a generator of ``(seconds since start, event)``, strictly increasing."""

    def __init__(
        self,
        agent: SimAgent,
        rng: random.Random,
        *,
        policy_for: PolicyFor,
        id_prefix: str,
        start: datetime,
        end: float | None,
        rate: float,
        log_out_at_end: bool,
        stagger_breaks: bool,
        login_within: float,
    ) -> None:
        self.agent = agent
        self.persona = agent.persona
        self.rng = rng
        self.policy_for = policy_for
        self.id_prefix = id_prefix
        self.start = start
        self.end = end
        self.rate = rate
        self.log_out_at_end = log_out_at_end
        self.login_within = login_within
        self.t = 0.0  # the agent's clock, seconds since start
        self.not_before = 0.0  # no event before this (e.g. just after a server timeout)
        self.count = 0
        self.contacts = 0
        self.phase = rng.uniform(0, CYCLE_SECONDS) if stagger_breaks else 0.0
        self.breaks: list[tuple[float, str, float]] = []
        self.cycle = 0
        self._plan_cycle()

    # Output ------------------------------------------------------------------------------

    def _event(self, at: float, type_: str, **fields: Any) -> tuple[float, SimEvent]:
        at = max(at, self.t + 0.001, self.not_before)
        if self.end is not None and at >= self.end and not self.log_out_at_end:
            raise _StopTimeline
        self.t = at
        self.count += 1
        occurred_at = self.start + timedelta(seconds=at)
        return at, {
            "event_id": f"{self.id_prefix}-{self.count}",
            "type": type_,
            "agent": self.agent.external_id,
            "occurred_at": occurred_at.isoformat(),
            **fields,
        }

    def _closing(self) -> bool:
        """Past the end of a shift that ends with a logout: take no more contacts."""
        return self.end is not None and self.log_out_at_end and self.t >= self.end

    # Random helpers ----------------------------------------------------------------------

    def _lognormal(self, mean: float, sigma: float) -> float:
        return self.rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)

    def _scaled(self, seconds: float) -> float:
        return seconds / self.rate

    # Breaks --------------------------------------------------------------------------------

    def _plan_cycle(self) -> None:
        """Plan the next eight-hour cycle's breaks (times on the agent's compressed clock)."""
        base = self.cycle * CYCLE_SECONDS - self.phase
        planned = [
            (base + offset + self.rng.uniform(-600, 600), reason, duration)
            for offset, reason, duration in BREAK_PLAN
        ]
        if self.rng.random() < 0.5:
            reason, duration = self.rng.choice(AD_HOC_REASONS)
            planned.append((base + self.rng.uniform(1800, 7 * 3600), reason, duration))
        if self.rng.random() < 0.4:
            planned.append((base + self.rng.uniform(1800, 7 * 3600), "personal", 300))
        self.breaks.extend(
            (self._scaled(at), reason, self._scaled(duration * self.rng.uniform(0.8, 1.25)))
            for at, reason, duration in sorted(planned)
            if at > 0
        )
        self.cycle += 1

    def _next_break(self) -> tuple[float, str, float]:
        while not self.breaks:
            self._plan_cycle()
        return self.breaks[0]

    def _break_due(self, at: float) -> bool:
        return self._next_break()[0] <= at

    def _take_break(self) -> Iterator[tuple[float, SimEvent]]:
        """Already not ready (or about to be): stay away, then come back available."""
        _, _, duration = self.breaks.pop(0)
        yield self._event(self.t + duration, "agent.available")

    # The agent's day -----------------------------------------------------------------------

    def run(self) -> Iterator[tuple[float, SimEvent]]:
        try:
            yield from self._resume()
            while True:
                due, reason, _ = self._next_break()
                wait = self.rng.expovariate(1.0) * self._scaled(self._channel_idle_mean())
                if self.t + wait >= due and not self._closing():
                    yield self._event(max(due, self.t), "agent.not_ready", reason=reason)
                    yield from self._take_break()
                    continue
                arrival = self.t + wait
                if self.end is not None and self.log_out_at_end and arrival >= self.end:
                    logout = max(self.end, self.t) + self.rng.uniform(0, 120)
                    yield self._event(logout, "agent.logged_out")
                    return
                yield from self._contact(arrival)
        except _StopTimeline:
            return

    def _channel_idle_mean(self) -> float:
        channels = self.agent.profile.channels
        return sum(CHANNELS[c].idle_mean * w for c, w in channels) / sum(w for _, w in channels)

    def _resume(self) -> Iterator[tuple[float, SimEvent]]:
        """Continue from the agent's starting state."""
        start = self.agent.start
        if start.state == OFFLINE:
            yield self._event(self.rng.uniform(0, self.login_within), "agent.logged_in")
        elif start.state == ON_INTERACTION and start.interaction_id:
            talk_left = self.rng.expovariate(1.0) * self._scaled(90)
            yield from self._finish_contact(
                start.interaction_id, start.channel or "phone", talk_left, may_hold=False
            )
        elif start.state == ACW:
            yield from self._finish_open_acw(start)
        elif start.state == NOT_READY:
            yield self._event(self.rng.uniform(10, self._scaled(300)), "agent.available")

    def _finish_open_acw(self, start: StartState) -> Iterator[tuple[float, SimEvent]]:
        """An ACW already running on the server: end it soon, or let its timer run out."""
        policy = self.policy_for(self.agent.team_id, start.channel or "phone")
        if start.acw_deadline is not None:
            deadline = (start.acw_deadline - self.start).total_seconds()
            if deadline > 5 and policy.mode != "timed_strict" and self.rng.random() < 0.6:
                yield self._event(self.rng.uniform(1, deadline - 2), "acw.ended")
            else:
                self.not_before = max(deadline, 0.0) + 1.0
        else:
            yield self._event(self.rng.uniform(3, 30), "acw.ended")

    def _contact(self, at: float) -> Iterator[tuple[float, SimEvent]]:
        profile = self.agent.profile
        channel = self.rng.choices(
            [c for c, _ in profile.channels], weights=[w for _, w in profile.channels]
        )[0]
        self.contacts += 1
        interaction_id = f"{self.id_prefix}-c{self.contacts}"
        fields: dict[str, Any] = {"interaction_id": interaction_id, "channel": channel}
        if channel == "phone":
            outbound = self.rng.random() < profile.outbound_share
            fields["direction"] = "outbound" if outbound else "inbound"
        queues = profile.queues.get(channel)
        if queues:
            fields["queue"] = self.rng.choice(queues)
        yield self._event(at, "interaction.started", **fields)
        ch = CHANNELS[channel]
        talk = self._scaled(self._lognormal(ch.talk_mean * self.persona.talk_factor, ch.talk_sigma))
        yield from self._finish_contact(interaction_id, channel, max(talk, 5 / self.rate))

    def _finish_contact(
        self, interaction_id: str, channel: str, talk: float, *, may_hold: bool = True
    ) -> Iterator[tuple[float, SimEvent]]:
        ch = CHANNELS.get(channel, CHANNELS["other"])
        begun = self.t
        hold = 0.0
        if may_hold and self.rng.random() < ch.hold_prob * self.persona.hold_factor:
            hold = self._scaled(self._lognormal(ch.hold_mean, 0.6))
            held_at = begun + talk * self.rng.uniform(0.2, 0.7)
            yield self._event(held_at, "interaction.held", interaction_id=interaction_id)
            yield self._event(held_at + hold, "interaction.resumed", interaction_id=interaction_id)
        yield self._event(begun + talk + hold, "interaction.ended", interaction_id=interaction_id)
        yield from self._wrap_up(channel)

    def _wrap_up(self, channel: str) -> Iterator[tuple[float, SimEvent]]:
        """ACW after a contact, in real seconds (see the module docstring), by policy."""
        policy = self.policy_for(self.agent.team_id, channel)
        if not policy.has_acw:
            return
        begun = self.t
        code = self.rng.choices(WRAP_UP_CODES, weights=[c.weight for c in WRAP_UP_CODES])[0]
        norm = code.expected_acw_seconds * self.persona.acw_factor
        norm *= CHANNELS.get(channel, CHANNELS["other"]).acw_factor
        work = min(max(self._lognormal(norm, 0.6), 2.0), 1800.0)
        forgets = self.rng.random() < self.persona.forget_prob
        to_break = self._break_due(begun + work) and not self._closing()

        if policy.mode == "manual":
            # Nobody times a manual ACW out: a forgetful agent ends it minutes late.
            late = self._lognormal(150, 0.5) if forgets else 0.0
            yield from self._end_acw(begun + work + late, code, to_break)
            return

        deadline = begun + policy.seconds
        latest = begun + max(policy.max_seconds, policy.seconds)
        extends = policy.allow_extension and self.rng.random() < self.persona.extend_prob
        if work > policy.seconds and extends:
            while begun + work > deadline and deadline < latest:
                # Asked for a few seconds before the timer runs out, as people do.
                at = max(deadline - self.rng.uniform(3, 10), self.t + 0.5)
                seconds = None if self.rng.random() < 0.8 else 60
                step = seconds or policy.extension_step_seconds
                if at >= deadline - 0.2 or step <= 0:
                    break
                extra = {"seconds": seconds} if seconds else {}
                yield self._event(at, "acw.extended", **extra)
                deadline = min(deadline + step, latest)
        strict = policy.mode == "timed_strict"
        if not (forgets or strict) and begun + work >= deadline and self.rng.random() < 0.6:
            # Out of time and no extension: most people hurry to close it before the timer.
            work = max(deadline - self.rng.uniform(1, 5), self.t + 0.5) - begun
        if forgets or strict or begun + work >= deadline:
            # The server closes the ACW at its deadline; the agent's next event comes after.
            self.t = max(self.t, deadline)
            self.not_before = deadline + 1.0
            if policy.timeout_action == "not_ready":
                yield self._event(self.t + self.rng.uniform(10, 60), "agent.available")
            return
        yield from self._end_acw(begun + work, code, to_break)

    def _end_acw(self, at: float, code: WrapUp, to_break: bool) -> Iterator[tuple[float, SimEvent]]:
        if to_break:
            # Straight from ACW into the break: the server closes the ACW as "not_ready".
            yield self._event(at, "agent.not_ready", reason=self._next_break()[1])
            yield from self._take_break()
            return
        fields: dict[str, Any] = {}
        if self.rng.random() < self.persona.wrap_up_prob:
            fields["wrap_up_code"] = code.code
        ids = self.agent.checklist_ids
        if ids:
            ticked = [i for i in ids if self.rng.random() < 0.6]
            if ticked:
                fields["checklist"] = ticked
        if code.code in ("complaint", "escalated") and self.rng.random() < 0.5:
            fields["note"] = f"{code.label}; details in the CRM record."
        yield self._event(at, "acw.ended", **fields)


def shift_agents(agents: list[SimAgent]) -> list[SimAgent]:
    """The same agents, logged out (the state between two shifts of a history)."""
    return [replace(agent, start=StartState()) for agent in agents]


# --- From the database ----------------------------------------------------------------------


def load_agents(limit: int | None = None) -> list[SimAgent]:
    """The model's agents for every agent in the database (by team, then name), with their
    live state, persona and their team's checklist items."""
    from .models import Agent, ChecklistItem

    agents = Agent.objects.select_related("team", "live").order_by("team__name", "name", "pk")
    if limit is not None:
        agents = agents[:limit]
    items = list(ChecklistItem.objects.filter(active=True).values_list("pk", "team_id"))
    result = []
    for agent in agents:
        live = getattr(agent, "live", None)
        start = StartState()
        if live is not None:
            start = StartState(
                state=live.state,
                interaction_id=live.interaction_id,
                channel=live.channel,
                acw_started_at=live.acw_started_at,
                acw_deadline=live.acw_deadline,
                last_event_at=live.last_event_at,
            )
        checklist = tuple(pk for pk, team_id in items if team_id in (None, agent.team_id))
        result.append(
            SimAgent(
                external_id=agent.external_id,
                team_id=agent.team_id,
                team_name=agent.team.name,
                persona=persona_for(agent.external_id),
                checklist_ids=checklist,
                start=start,
            )
        )
    return result
