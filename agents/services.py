"""The write side. Every event — API, simulator, agent page, supervisor action, tests — enters
through ``ingest_event()``; timeouts go through ``expire_acw()``; agents are created through
``provision_agent()``.

``ingest_event`` in one transaction: validate, lock the agent's live-state row (serialises
concurrent events of one agent), de-duplicate on ``event_id``, store the event, run the pure state
machine (``agents.states``) from the last event before it — normally the agent's newest event,
so only the new event is applied; for a late event, every event after it is re-applied — write
the rows it implies, update the live state, and after commit publish to the walls and schedule
the ACW timeout.

Every raw row written here also marks its rollup intervals dirty (``reporting.rollups``), in the
same transaction and under the same lock. ``reporting`` builds on this app, so that module is
imported inside the functions that call it: agents never imports reporting at module level
(docs/design.md, "Modules and their dependencies").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from django.db import IntegrityError, transaction
from django.utils import timezone

from . import events
from .models import (
    UNASSIGNED_TEAM,
    AcwPolicy,
    AcwSession,
    Agent,
    AgentState,
    Event,
    HoldPeriod,
    Interaction,
    Team,
)
from .states import (
    SITE_DEFAULT_POLICY,
    AgentProjection,
    EventIn,
    PolicyLookup,
    PolicySpec,
    Rows,
    advance,
    project,
)
from .validation import EventRejected, ParsedEvent, parse_event

logger = logging.getLogger(__name__)

Status = Literal["accepted", "duplicate", "conflict", "rejected"]


@dataclass(frozen=True)
class IngestResult:
    event_id: str | None
    status: Status
    error: str | None = None


# --- Policies -------------------------------------------------------------------------------

POLICY_FIELDS = tuple(PolicySpec.__dataclass_fields__)


def policy_lookup() -> PolicyLookup:
    """Resolve ACW policies: team × channel → team default → site channel → site default."""
    by_scope: dict[tuple[int | None, str], PolicySpec] = {
        (row["team_id"], row["channel"]): PolicySpec(**{f: row[f] for f in POLICY_FIELDS})
        for row in AcwPolicy.objects.values("team_id", "channel", *POLICY_FIELDS)
    }

    def lookup(team_id: int, channel: str) -> PolicySpec:
        for scope in ((team_id, channel), (team_id, ""), (None, channel), (None, "")):
            if scope in by_scope:
                return by_scope[scope]
        return SITE_DEFAULT_POLICY

    return lookup


# --- Agents ---------------------------------------------------------------------------------


def _unassigned_team() -> Team:
    team, _ = Team.objects.get_or_create(name=UNASSIGNED_TEAM)
    return team


def get_or_create_agent(external_id: str) -> Agent:
    """The agent with this external id; an unknown id is created in team Unassigned."""
    agent = Agent.objects.select_related("team").filter(external_id=external_id).first()
    if agent is not None:
        return agent
    try:
        with transaction.atomic():
            agent = Agent.objects.create(
                external_id=external_id, name=external_id, team=_unassigned_team()
            )
            AgentState.objects.create(agent=agent)
            return agent
    except IntegrityError:
        # Created concurrently by another request: use theirs.
        return Agent.objects.select_related("team").get(external_id=external_id)


def provision_agent(external_id: str, *, name: str, team_name: str) -> tuple[Agent, bool]:
    """Create or update an agent (the team is created if new); walls of both teams are told."""
    with transaction.atomic():
        team, _ = Team.objects.get_or_create(name=team_name)
        agent = Agent.objects.select_for_update().filter(external_id=external_id).first()
        created = agent is None
        if agent is None:
            agent = Agent.objects.create(external_id=external_id, name=name, team=team)
            AgentState.objects.create(agent=agent)
            old_team_id = None
        else:
            old_team_id = agent.team_id
            agent.name = name
            agent.team = team
            agent.save(update_fields=["name", "team"])
        live = AgentState.objects.select_related("agent__team").get(agent=agent)
        messages = [events.agent_changed(live)]
        if old_team_id is not None and old_team_id != team.pk:
            messages.append(events.agent_removed(old_team_id, agent.external_id))
        events.broadcast_on_commit(messages)
    return agent, created


# --- Ingestion ------------------------------------------------------------------------------


def ingest_events(
    raw_events: Iterable[Any], *, source: str = "api", actor_id: int | None = None
) -> list[IngestResult]:
    """Ingest several events in input order; each is accepted or refused on its own."""
    policies = policy_lookup()
    return [
        ingest_event(raw, source=source, actor_id=actor_id, policies=policies) for raw in raw_events
    ]


def ingest_event(
    raw: Any,
    *,
    source: str = "api",
    actor_id: int | None = None,
    policies: PolicyLookup | None = None,
) -> IngestResult:
    """Validate, de-duplicate, store and apply one telephony event (docs/api.md, section 3).

    Returns ``accepted`` (stored and applied), ``duplicate`` (same id and content: nothing
    changes), ``conflict`` (same id, other content) or ``rejected`` (invalid; ``error`` names
    the field). Idempotent on ``event_id``, also under concurrent posts.
    """
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    try:
        parsed = parse_event(raw)
    except EventRejected as exc:
        return IngestResult(event_id if isinstance(event_id, str) else None, "rejected", str(exc))
    lookup = policies or policy_lookup()
    try:
        return _store_and_apply(parsed, source, actor_id, lookup)
    except IntegrityError:
        # The same event_id was stored at the same moment for another agent (so under another
        # row lock): the unique index refused ours. Same-agent races never get here: the lock
        # makes the second one see the first one's event.
        existing = _existing_event(parsed.event_id)
        if existing is None:
            raise
        return _duplicate_or_conflict(parsed, existing)


def _store_and_apply(
    parsed: ParsedEvent, source: str, actor_id: int | None, policies: PolicyLookup
) -> IngestResult:
    with transaction.atomic():
        live = _locked_live_state(parsed.agent)
        if live is None:
            # An unknown agent is created only for an event that will be stored: a duplicate
            # or a conflict must not make a phantom agent appear on the walls.
            existing = _existing_event(parsed.event_id)
            if existing is not None:
                return _duplicate_or_conflict(parsed, existing)
            get_or_create_agent(parsed.agent)
            live = _locked_live_state(parsed.agent)
            assert live is not None
        existing = _existing_event(parsed.event_id)
        if existing is not None:
            return _duplicate_or_conflict(parsed, existing)
        event = Event.objects.create(
            event_id=parsed.event_id,
            agent_id=live.agent_id,
            team_id=live.agent.team_id,
            type=parsed.type,
            occurred_at=parsed.occurred_at,
            data=parsed.data,
            source=source,
            actor_id=actor_id,
        )
        _apply(live, event, policies)
    return IngestResult(parsed.event_id, "accepted")


def _locked_live_state(external_id: str) -> AgentState | None:
    """The agent's live-state row, locked for this transaction (agent and team loaded).

    The row lock serialises every write for one agent: events, timeouts, replays.
    """
    return (
        AgentState.objects.select_for_update(of=("self",))
        .select_related("agent__team")
        .filter(agent__external_id=external_id)
        .first()
    )


def _existing_event(event_id: str) -> tuple[str, str, datetime, dict] | None:
    return (
        Event.objects.filter(event_id=event_id)
        .values_list("type", "agent__external_id", "occurred_at", "data")
        .first()
    )


def _duplicate_or_conflict(
    parsed: ParsedEvent, existing: tuple[str, str, datetime, dict]
) -> IngestResult:
    if parsed.same_content(*existing):
        return IngestResult(parsed.event_id, "duplicate")
    return IngestResult(
        parsed.event_id, "conflict", "event_id: already used by an event with different content"
    )


def _event_in(event: Event) -> EventIn:
    return EventIn(
        key=event.pk,
        type=event.type,
        occurred_at=event.occurred_at,
        team_id=event.team_id,
        data=event.data,
        actor_id=event.actor_id,
    )


def _apply(live: AgentState, event: Event, policies: PolicyLookup) -> None:
    """Apply a stored event to the agent, replaying later events if it arrived late."""
    in_order = live.last_event_at is None or event.occurred_at >= live.last_event_at
    if in_order:
        start = AgentProjection.from_json(live.projection)
        replay = [event]
    else:
        # Replay from the last event before this one (order: occurred_at, then arrival).
        previous = (
            Event.objects.filter(agent_id=live.agent_id, occurred_at__lte=event.occurred_at)
            .exclude(pk=event.pk)
            .order_by("-occurred_at", "-id")
            .only("occurred_at", "state_after")
            .first()
        )
        start = AgentProjection.from_json(previous.state_after if previous else None)
        later = Event.objects.filter(agent_id=live.agent_id).order_by("occurred_at", "id")
        if previous is not None:
            later = later.filter(occurred_at__gte=previous.occurred_at)
        replay = [
            e
            for e in later
            if previous is None or (e.occurred_at, e.pk) > (previous.occurred_at, previous.pk)
        ]
    _replay(live, start, replay, policies)


def _replay(
    live: AgentState, start: AgentProjection, replay: list[Event], policies: PolicyLookup
) -> None:
    """Run ``replay`` (ordered) from ``start``; rewrite the rows and projections it implies."""
    result = project(start, (_event_in(e) for e in replay), policies)
    replayed_keys = [key for key, _ in result.after_each]
    after = {key: projection.to_json() for key, projection in result.after_each}
    if len(replay) == 1:
        Event.objects.filter(pk=replay[0].pk).update(state_after=after[replay[0].pk])
    else:
        for e in replay:
            e.state_after = after[e.pk]
        Event.objects.bulk_update(replay, ["state_after"], batch_size=500)
        _delete_rows_opened_by(replayed_keys)
    if replay:
        newest = replay[-1]
        if live.last_event_at is None or (newest.occurred_at, newest.pk) >= (
            live.last_event_at,
            live.last_event_seq,
        ):
            live.last_event_at, live.last_event_seq = newest.occurred_at, newest.pk
    _write_rows(live.agent_id, result.rows, set(replayed_keys))
    _store_live(live, result.final)


def replay_agent(agent_id: int, policies: PolicyLookup | None = None) -> int:
    """Rebuild one agent's rows and live state from its whole event log; returns the count.

    The same state machine as live ingestion, from an empty start: after a fix to the state
    machine, or a policy change meant to apply to history, this makes the past consistent.
    """
    with transaction.atomic():
        live = AgentState.objects.select_for_update().get(agent_id=agent_id)
        live.agent = Agent.objects.select_related("team").get(pk=agent_id)
        events = list(Event.objects.filter(agent_id=agent_id).order_by("occurred_at", "id"))
        if events:
            from reporting import rollups  # at call time: reporting builds on agents

            # The rollup intervals the old rows counted in must be recomputed too.
            rollups.mark_dirty_before_replay([events[0].pk])
        AcwSession.objects.filter(agent_id=agent_id).delete()
        HoldPeriod.objects.filter(interaction__agent_id=agent_id).delete()
        Interaction.objects.filter(agent_id=agent_id).delete()
        live.last_event_at, live.last_event_seq = None, 0
        _replay(live, AgentProjection(), events, policies or policy_lookup())
        return len(events)


def _delete_rows_opened_by(keys: list[int]) -> None:
    """Rows opened by replayed events are recreated by the replay."""
    from reporting import rollups  # at call time: reporting builds on agents

    rollups.mark_dirty_before_replay(keys)
    AcwSession.objects.filter(start_event_id__in=keys).delete()
    HoldPeriod.objects.filter(start_event_id__in=keys).delete()
    Interaction.objects.filter(start_event_id__in=keys).delete()


def _write_rows(agent_id: int, rows: Rows, new_keys: set[int]) -> None:
    """Upsert the rows a projection touched, keyed by the event that opened them."""
    from reporting import rollups  # at call time: reporting builds on agents

    rollups.mark_dirty_rows(agent_id, rows)
    interaction_pks: dict[int, int] = {}  # filled for rows created here; others looked up
    for row in rows.interactions.values():
        fields = {
            "team_id": row.team_id,
            "interaction_id": row.interaction_id,
            "channel": row.channel,
            "direction": row.direction,
            "queue": row.queue,
            "started_at": row.started_at,
            "ended_at": row.ended_at,
            "end_reason": row.end_reason,
            "talk_seconds": row.talk_seconds,
            "hold_seconds": row.hold_seconds,
        }
        created_pk = _upsert(Interaction, agent_id, row.key, fields, new_keys)
        if created_pk is not None:
            interaction_pks[row.key] = created_pk
    referenced = [h.interaction_key for h in rows.holds.values()] + [
        a.interaction_key for a in rows.acws.values()
    ]
    needed = {key for key in referenced if key is not None and key not in interaction_pks}
    if needed:
        interaction_pks.update(
            Interaction.objects.filter(start_event_id__in=needed).values_list(
                "start_event_id", "pk"
            )
        )
    for hold in rows.holds.values():
        fields = {
            "interaction_id": interaction_pks[hold.interaction_key],
            "started_at": hold.started_at,
            "ended_at": hold.ended_at,
        }
        _upsert(HoldPeriod, None, hold.key, fields, new_keys)
    for acw in rows.acws.values():
        data = asdict(acw)
        fields = {
            name: data[name]
            for name in (
                "team_id",
                "channel",
                "mode",
                "started_at",
                "deadline",
                "ended_at",
                "end_reason",
                "extensions",
                "extended_seconds",
                "wrap_up_code",
                "note",
                "checklist",
                "ended_by_id",
                "too_short",
                "overrun",
                "policy_violation",
            )
        }
        fields["duration_seconds"] = acw.duration_seconds
        fields["interaction_id"] = (
            interaction_pks.get(acw.interaction_key) if acw.interaction_key else None
        )
        _upsert(AcwSession, agent_id, acw.key, fields, new_keys)


def _upsert(
    model: type[Interaction] | type[HoldPeriod] | type[AcwSession],
    agent_id: int | None,
    key: int,
    fields: Mapping[str, Any],
    new_keys: set[int],
) -> int | None:
    """Update the row opened by event ``key``, or create it; returns the pk if created."""
    owner = {"agent_id": agent_id} if agent_id is not None else {}
    if key not in new_keys and model.objects.filter(start_event_id=key).update(**fields):
        return None
    return model.objects.create(start_event_id=key, **owner, **fields).pk


LIVE_FIELDS = (
    "state",
    "reason",
    "since",
    "interaction_id",
    "channel",
    "acw_started_at",
    "acw_deadline",
    "acw_extensions",
)


def _store_live(live: AgentState, projection: AgentProjection, now: datetime | None = None) -> None:
    """Store the projection after the newest event, and the live state it implies now.

    Walls are told only when what they show changed, and a timeout task is scheduled only
    when the deadline moved (an ignored event during ACW neither pushes nor re-schedules).
    """
    before = tuple(getattr(live, name) for name in LIVE_FIELDS)
    live.projection = projection.to_json()
    current, timeout_rows = advance(projection, now or timezone.now())
    if timeout_rows.acws:
        _write_rows(live.agent_id, timeout_rows, set())
    live.set_live_fields(current)
    changed = tuple(getattr(live, name) for name in LIVE_FIELDS) != before
    if changed:
        # Under the row lock, so versions of one agent are strictly increasing: two web
        # processes may publish in the other order than they committed.
        live.version += 1
    live.save(
        update_fields=[
            *LIVE_FIELDS,
            "version",
            "last_event_at",
            "last_event_seq",
            "projection",
            "updated_at",
        ]
    )
    if not changed:
        return
    events.broadcast_on_commit([events.agent_changed(_with_team(live))])
    if live.state == "acw" and live.acw_deadline is not None:
        _schedule_timeout_on_commit(live.agent_id, live.acw_deadline)


def _with_team(live: AgentState) -> AgentState:
    if "team" not in live.agent._state.fields_cache:
        live.agent = Agent.objects.select_related("team").get(pk=live.agent_id)
    return live


def _schedule_timeout_on_commit(agent_id: int, deadline: datetime) -> None:
    def schedule() -> None:
        from .tasks import expire_acw_task

        try:
            expire_acw_task.apply_async(args=[agent_id], eta=deadline, expires=3600)
        except Exception:
            # The periodic sweep closes the ACW anyway; a broker outage must not fail an event.
            logger.warning("could not schedule ACW timeout for agent %s", agent_id, exc_info=True)

    transaction.on_commit(schedule)


# --- Timeouts -------------------------------------------------------------------------------


def expire_acw(agent_id: int, now: datetime | None = None) -> bool:
    """Close the agent's ACW at its deadline if that has passed; True if it did.

    Safe to call any number of times, early or late: it re-reads the current deadline under
    the row lock, so an extension that arrived meanwhile simply wins.
    """
    now = now or timezone.now()
    with transaction.atomic():
        live = (
            AgentState.objects.select_for_update()
            .filter(agent_id=agent_id, state="acw", acw_deadline__lte=now)
            .first()
        )
        if live is None:
            return False
        live.agent = Agent.objects.select_related("team").get(pk=agent_id)
        _store_live(live, AgentProjection.from_json(live.projection), now)
        return True


def expire_due_acws(now: datetime | None = None) -> int:
    """The safety net behind the per-ACW timers: close every ACW whose deadline has passed."""
    now = now or timezone.now()
    due = AgentState.objects.filter(state="acw", acw_deadline__lte=now).values_list(
        "agent_id", flat=True
    )
    return sum(expire_acw(agent_id, now) for agent_id in list(due))
