"""Retention: delete raw events, ACW notes and contact ids older than ``ACW_RETENTION_DAYS``.

What is kept: every interaction, hold and ACW row (their timings, channels, teams, wrap-up
codes), so every KPI of a purged period — from the rollups or from those rows — comes out as
before. What goes:

- events that occurred before the horizon (``now - ACW_RETENTION_DAYS``), except, per agent,
  the *anchor* — the newest event before the horizon — and the events that opened rows still
  open in the anchor's projection. The anchor's projection is where a replay of the retained
  events starts (``services.replay_agent``, a late event's replay), and the rows it names must
  keep their key. The personal fields of those kept events are erased.
- notes of ACWs that ended before the horizon;
- the telephony's contact ids (``interaction_id``: they lead to the customer's record and
  recording) of interactions that ended before the horizon.

Idempotent and safe to interrupt: each step is a short transaction over at most ``batch_size``
rows (per agent for events, under the agent's row lock like every write of that agent), and a
run only repeats what is left. With retention on, ingestion refuses events older than the
horizon (``services.ingest_event``): their history is gone, so they could not be applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from .models import AcwSession, AgentState, Event, HoldPeriod, Interaction
from .states import AgentProjection

# Event fields that may carry personal data (free text, the customer's contact id).
PERSONAL_EVENT_FIELDS = ("note", "interaction_id")
BATCH_SIZE = 2000

Progress = Callable[[str, int], None]
"""Called as ``progress(step, rows_done_in_this_call)``; the command draws bars with it."""


@dataclass
class PurgeReport:
    horizon: datetime
    events: int = 0
    notes: int = 0
    contact_ids: int = 0
    agents: int = 0


def retention_days() -> int:
    return int(settings.ACW_RETENTION_DAYS or 0)


def horizon(now: datetime | None = None) -> datetime | None:
    """Events, notes and contact ids older than this are purged; None while retention is off."""
    days = retention_days()
    if days <= 0:
        return None
    return (now or timezone.now()) - timedelta(days=days)


def _projection_keys(state_after: dict[str, Any] | None) -> set[int]:
    """The ids of the events that opened the rows still open in a stored projection."""
    keys: set[int] = set()
    projection = AgentProjection.from_json(state_after)
    for it in projection.interactions:
        keys.add(it.key)
        if it.hold_key is not None:
            keys.add(it.hold_key)
    for acw in projection.acws:
        keys.add(acw.key)
        if acw.interaction_key is not None:
            keys.add(acw.interaction_key)
    return keys


def _old_events(agent_id: int, cutoff: datetime) -> QuerySet[Event]:
    return Event.objects.filter(agent_id=agent_id, occurred_at__lt=cutoff)


def _erase_personal_fields(events: Iterable[Event]) -> None:
    changed = []
    for event in events:
        if any(name in event.data for name in PERSONAL_EVENT_FIELDS):
            event.data = {k: v for k, v in event.data.items() if k not in PERSONAL_EVENT_FIELDS}
            changed.append(event)
    Event.objects.bulk_update(changed, ["data"])


def _purge_agent(
    agent_id: int, cutoff: datetime, dry_run: bool, batch_size: int, progress: Progress
) -> int:
    """Delete one agent's events before ``cutoff`` but its anchor; returns how many."""
    with transaction.atomic():
        # The agent's row lock serialises this with the agent's ingestion and replays.
        AgentState.objects.select_for_update().filter(agent_id=agent_id).first()
        anchor = _old_events(agent_id, cutoff).order_by("-occurred_at", "-id").first()
        if anchor is None:
            return 0
        keep = {anchor.pk} | _projection_keys(anchor.state_after)
        if dry_run:
            return _old_events(agent_id, cutoff).exclude(pk__in=keep).count()
        # One anchor per agent: a previous run's anchor is now an ordinary old event.
        Event.objects.filter(agent_id=agent_id, history_anchor=True).exclude(pk=anchor.pk).update(
            history_anchor=False
        )
        _erase_personal_fields(Event.objects.filter(pk__in=keep))
        Event.objects.filter(pk=anchor.pk).update(history_anchor=True)
    deleted = 0
    while True:
        with transaction.atomic():
            AgentState.objects.select_for_update().filter(agent_id=agent_id).first()
            ids = list(
                _old_events(agent_id, cutoff)
                .exclude(pk__in=keep)
                .order_by("occurred_at", "id")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                return deleted
            # The rows these events opened stay: only their link to the event goes.
            for model in (Interaction, HoldPeriod, AcwSession):
                model.objects.filter(start_event_id__in=ids).update(start_event=None)
            Event.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
        progress("events", len(ids))


def _clear_in_batches(
    queryset: QuerySet[Any], field: str, dry_run: bool, batch_size: int, progress: Progress
) -> int:
    """Set ``field`` to "" on every row of ``queryset``, ``batch_size`` rows per transaction."""
    todo = queryset.exclude(**{field: ""})
    if dry_run:
        return todo.count()
    done = 0
    while True:
        ids = list(todo.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return done
        model: type[Model] = queryset.model
        model._default_manager.filter(pk__in=ids).update(**{field: ""})
        done += len(ids)
        progress(field, len(ids))


def agents_with_old_events(cutoff: datetime) -> list[int]:
    return list(
        Event.objects.filter(occurred_at__lt=cutoff, history_anchor=False)
        .order_by("agent_id")
        .values_list("agent_id", flat=True)
        .distinct()
    )


def purge_expired(
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
    on_agents: Callable[[int], None] | None = None,
) -> PurgeReport | None:
    """Apply the retention period; returns what was (or, with ``dry_run``, would be) purged,
    or None while retention is off. ``on_agents`` is told how many agents will be visited."""
    cutoff = horizon(now)
    if cutoff is None:
        return None
    report = PurgeReport(horizon=cutoff)
    step = progress or (lambda _step, _n: None)
    agent_ids = agents_with_old_events(cutoff)
    if on_agents is not None:
        on_agents(len(agent_ids))
    for agent_id in agent_ids:
        report.events += _purge_agent(agent_id, cutoff, dry_run, batch_size, step)
        report.agents += 1
        step("agents", 1)
    report.notes = _clear_in_batches(
        AcwSession.objects.filter(ended_at__lt=cutoff), "note", dry_run, batch_size, step
    )
    report.contact_ids = _clear_in_batches(
        Interaction.objects.filter(ended_at__lt=cutoff),
        "interaction_id",
        dry_run,
        batch_size,
        step,
    )
    return report
