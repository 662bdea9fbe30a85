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
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from django.db import IntegrityError, transaction
from django.utils import timezone

from acw_site import metrics
from audit import log as audit
from audit.models import Action

from . import events, retention
from .models import (
    UNASSIGNED_TEAM,
    AcwSession,
    Agent,
    AgentState,
    Event,
    HoldPeriod,
    Interaction,
    Team,
)
from .policies import Policies
from .states import (
    AgentProjection,
    EventIn,
    Rows,
    advance,
    project,
)
from .validation import EventRejected, ParsedEvent, parse_event, printable

logger = logging.getLogger(__name__)

Status = Literal["accepted", "duplicate", "conflict", "rejected"]


@dataclass(frozen=True)
class IngestResult:
    event_id: str | None
    status: Status
    error: str | None = None


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


def provision_agent(
    external_id: str, *, name: str, team_name: str, actor: Any = None
) -> tuple[Agent, bool]:
    """Create or update an agent (the team is created if new); walls of both teams are told.

    With an ``actor`` (the admin or integration token behind an API call), a creation or a
    change of name or team is written to the audit log in the same transaction.
    """
    with transaction.atomic():
        team, _ = Team.objects.get_or_create(name=team_name)
        agent = Agent.objects.select_for_update().filter(external_id=external_id).first()
        created = agent is None
        before = audit.snapshot(agent)
        if agent is None:
            agent = Agent.objects.create(external_id=external_id, name=name, team=team)
            AgentState.objects.create(agent=agent)
            old_team_id = None
        else:
            old_team_id = agent.team_id
            agent.name = name
            agent.team = team
            agent.save(update_fields=["name", "team"])
        if actor is not None:
            audit.record(
                Action.CREATE if created else Action.CHANGE,
                agent,
                actor=actor,
                before=before,
                after=audit.snapshot(agent),
            )
        live = AgentState.objects.select_related("agent__team").get(agent=agent)
        messages = [events.agent_changed(live)]
        if old_team_id is not None and old_team_id != team.pk:
            messages.append(events.agent_removed(old_team_id, agent.external_id))
        events.broadcast_on_commit(messages)
    return agent, created


def remove_agent(agent: Agent) -> None:
    """Delete an agent without events (the event log protects the others); its team's walls
    drop the tile."""
    with transaction.atomic():
        team_id, external_id = agent.team_id, agent.external_id
        agent.delete()
        events.broadcast_on_commit([events.agent_removed(team_id, external_id)])


def refresh_team_walls(team_ids: Iterable[int] | None) -> None:
    """After commit, every wall showing these teams (None: all teams) re-checks what its user
    may see and starts again from a fresh snapshot.

    For changes made outside the events: a team renamed (every tile shows the name), its
    supervisors changed, or an ACW policy changed (the tiles' colour points come from it).
    """
    if team_ids is None:
        team_ids = Team.objects.values_list("pk", flat=True)
    events.broadcast_on_commit([events.team_changed(team_id) for team_id in team_ids])


# --- Supervisor actions ---------------------------------------------------------------------


def end_acw(agent: Agent, actor: Any, *, source: str = "wall") -> IngestResult:
    """A supervisor ends an agent's ACW: an ``acw.ended`` event with reason ``supervisor``, by
    them, like any event; and an audit entry with the ACW before and the state after.

    One transaction: the event and its audit entry are committed together or not at all.
    """
    live_fields = ("state", "since", "acw_started_at", "acw_deadline")
    with transaction.atomic():
        before = AgentState.objects.filter(agent=agent).values(*live_fields).first()
        event = {
            "event_id": f"acw.ended-{uuid.uuid4()}",
            "type": "acw.ended",
            "agent": agent.external_id,
            "occurred_at": timezone.now().isoformat(),
            "reason": "supervisor",
        }
        result = ingest_event(event, source=source, actor_id=actor.pk)
        if result.status == "accepted":
            after = AgentState.objects.filter(agent=agent).values(*live_fields).first()
            audit.record(Action.END_ACW, agent, actor=actor, before=before, after=after)
    return result


# --- Ingestion ------------------------------------------------------------------------------


@metrics.observe_ingest
def ingest_events(
    raw_events: Iterable[Any], *, source: str = "api", actor_id: int | None = None
) -> list[IngestResult]:
    """Ingest several events in input order; each is accepted or refused on its own.

    The whole batch is validated before the first event is written: whatever validation
    raises, it raises before anything is committed, so a retried batch never meets a half
    of itself stored by an attempt that failed.
    """
    checked = [_validated(raw) for raw in raw_events]
    policies = Policies.load()
    return [
        _ingest_parsed(item, source, actor_id, policies) if isinstance(item, ParsedEvent) else item
        for item in checked
    ]


@metrics.observe_ingest
def ingest_event(
    raw: Any,
    *,
    source: str = "api",
    actor_id: int | None = None,
    policies: Policies | None = None,
) -> IngestResult:
    """Validate, de-duplicate, store and apply one telephony event (docs/api.md, section 3).

    Returns ``accepted`` (stored and applied), ``duplicate`` (same id and content: nothing
    changes), ``conflict`` (same id, other content) or ``rejected`` (invalid; ``error`` names
    the field). Idempotent on ``event_id``, also under concurrent posts.
    """
    checked = _validated(raw)
    if not isinstance(checked, ParsedEvent):
        return checked
    # Read once for the event: the state machine and the walls' payload resolve from it.
    return _ingest_parsed(checked, source, actor_id, policies or Policies.load())


def _validated(raw: Any) -> ParsedEvent | IngestResult:
    """The parsed event, or its ``rejected`` result (the id echoed only if it is printable)."""
    try:
        parsed = parse_event(raw)
    except EventRejected as exc:
        event_id = raw.get("event_id") if isinstance(raw, dict) else None
        echoed = printable(event_id) if isinstance(event_id, str) else None
        return IngestResult(echoed, "rejected", str(exc))
    oldest = retention.horizon()
    if oldest is not None and parsed.occurred_at < oldest:
        # The history such an event would be applied to has been purged (docs/retention.md).
        return IngestResult(
            parsed.event_id,
            "rejected",
            f"occurred_at: older than the retention period of {retention.retention_days()} days",
        )
    return parsed


def _ingest_parsed(
    parsed: ParsedEvent, source: str, actor_id: int | None, policies: Policies
) -> IngestResult:
    try:
        return _store_and_apply(parsed, source, actor_id, policies)
    except IntegrityError:
        # The same event_id was stored at the same moment for another agent (so under another
        # row lock): the unique index refused ours. Same-agent races never get here: the lock
        # makes the second one see the first one's event.
        existing = _existing_event(parsed.event_id)
        if existing is None:
            raise
        return _duplicate_or_conflict(parsed, existing)


def _store_and_apply(
    parsed: ParsedEvent, source: str, actor_id: int | None, policies: Policies
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
        if _before_purged_history(live, parsed.occurred_at):
            return IngestResult(
                parsed.event_id,
                "rejected",
                "occurred_at: before the start of this agent's history kept after a retention purge",
            )
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


def _before_purged_history(live: AgentState, occurred_at: datetime) -> bool:
    """A late event at or before the agent's retention anchor: the events it would be replayed
    with are gone (e.g. after ACW_RETENTION_DAYS was raised), so it cannot be applied."""
    if live.last_event_at is None or occurred_at >= live.last_event_at:
        return False  # in order: the common case costs no query
    return Event.objects.filter(
        agent_id=live.agent_id, history_anchor=True, occurred_at__gte=occurred_at
    ).exists()


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


def _apply(live: AgentState, event: Event, policies: Policies) -> None:
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
    live: AgentState, start: AgentProjection, replay: list[Event], policies: Policies
) -> None:
    """Run ``replay`` (ordered) from ``start``; rewrite the rows and projections it implies."""
    result = project(start, (_event_in(e) for e in replay), policies.spec)
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
    _store_live(live, result.final, policies=policies)


def replay_agent(agent_id: int, policies: Policies | None = None) -> int:
    """Rebuild one agent's rows and live state from its whole event log; returns the count.

    The same state machine as live ingestion, from an empty start: after a fix to the state
    machine, or a policy change meant to apply to history, this makes the past consistent.
    """
    with transaction.atomic():
        live = AgentState.objects.select_for_update().get(agent_id=agent_id)
        live.agent = Agent.objects.select_related("team").get(pk=agent_id)
        events = list(Event.objects.filter(agent_id=agent_id).order_by("occurred_at", "id"))
        anchor = next((e for e in reversed(events) if e.history_anchor), None)
        if anchor is not None:
            # The log before the anchor was purged (agents.retention): start from the
            # anchor's projection and rebuild only the rows the later events opened; the
            # rows of the purged period stay as they are.
            later = events[events.index(anchor) + 1 :]
            live.last_event_at, live.last_event_seq = anchor.occurred_at, anchor.pk
            _delete_rows_opened_by([e.pk for e in later])
            _replay(
                live,
                AgentProjection.from_json(anchor.state_after),
                later,
                policies or Policies.load(),
            )
            return len(later)
        if events:
            from reporting import rollups  # at call time: reporting builds on agents

            # The rollup intervals the old rows counted in must be recomputed too.
            rollups.mark_dirty_before_replay([events[0].pk])
        AcwSession.objects.filter(agent_id=agent_id).delete()
        HoldPeriod.objects.filter(interaction__agent_id=agent_id).delete()
        Interaction.objects.filter(agent_id=agent_id).delete()
        live.last_event_at, live.last_event_seq = None, 0
        _replay(live, AgentProjection(), events, policies or Policies.load())
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
    "open_contacts",
)


def _store_live(
    live: AgentState,
    projection: AgentProjection,
    now: datetime | None = None,
    *,
    policies: Policies | None = None,
) -> None:
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
    events.broadcast_on_commit([events.agent_changed(_with_team(live), policies)])
    if live.acw_deadline is not None:  # in acw, or on a contact while another one's ACW runs
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
            .filter(agent_id=agent_id, acw_deadline__lte=now)
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
    due = AgentState.objects.filter(acw_deadline__lte=now).values_list("agent_id", flat=True)
    return sum(expire_acw(agent_id, now) for agent_id in list(due))
