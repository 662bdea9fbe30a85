"""The write side. Every event — API, simulator, agent page, supervisor action, tests — enters
through ``ingest_event()``; timeouts go through ``expire_acw()``; agents are created through
``provision_agent()``.

``ingest_event`` in one transaction: validate, lock the agent's live-state row (serialises
concurrent events of one agent) and read whether its ``event_id`` is taken (a duplicate or a
conflict: nothing more is done), run the pure state machine (``agents.states``) from the last
event before it — normally the agent's newest event, so only the new event is applied; for a
late event, the events after it are re-applied until the history converges with the stored one
(``_Writes.replay``) — store the event with the projection after it, write the rows it implies,
update the live state, and after commit publish to the walls and schedule the ACW timeout.
``ingest_events`` does the same for a batch, chunk by chunk: each agent of a chunk is locked and
projected once, and every kind of row is written with one statement.

Every raw row written here also marks its rollup intervals dirty (``reporting.rollups``), in the
same transaction and under the same lock. ``reporting`` builds on this app, so that module is
imported inside the functions that call it: agents never imports reporting at module level
(docs/design.md, "Modules and their dependencies").
"""

from __future__ import annotations

import functools
import heapq
import json
import logging
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import Field, Max, Model, Q, QuerySet
from django.utils import timezone

from acw_site import metrics
from audit import log as audit
from audit.models import Action

from . import events, retention, sql_rows
from .models import (
    EVENT_ID_UNIQUE,
    UNASSIGNED_TEAM,
    AcwSession,
    Agent,
    AgentState,
    Event,
    HoldPeriod,
    Interaction,
    Team,
)
from .policies import Policies, all_policies_sql
from .states import AgentProjection, EventIn, Rows, advance, project
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

# A batch is written in chunks of this many consecutive events, one transaction each: what a web
# process killed mid-batch leaves behind is a prefix of the batch (docs/reliability.md).
CHUNK_SIZE = 200
# A late event's replay reads the stored events after it this many at first (most replays
# converge within a few events), then pages four times larger.
REPLAY_PAGE = 16
PURGED_HISTORY = (
    "occurred_at: before the start of this agent's history kept after a retention purge"
)


@metrics.observe_ingest
def ingest_events(
    raw_events: Iterable[Any], *, source: str = "api", actor_id: int | None = None
) -> list[IngestResult]:
    """Ingest several events; one result per event, in input order, each accepted or refused
    on its own.

    The whole batch is validated before the first event is written: whatever validation
    raises, it raises before anything is committed, so a retried batch never meets a half
    of itself stored by an attempt that failed. It is then written in chunks of
    ``CHUNK_SIZE`` consecutive events (``_ingest_chunk``).
    """
    checked = [_validated(raw) for raw in raw_events]
    results = list(checked)
    for start in range(0, len(checked), CHUNK_SIZE):
        positions = [
            index
            for index in range(start, min(start + CHUNK_SIZE, len(checked)))
            if isinstance(checked[index], ParsedEvent)
        ]
        if not positions:
            continue
        chunk = [cast(ParsedEvent, checked[index]) for index in positions]
        for index, result in zip(
            positions, _ingest_chunk(chunk, source, actor_id, None), strict=True
        ):
            results[index] = result
    return cast(list[IngestResult], results)


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
    return _ingest_chunk([checked], source, actor_id, policies)[0]


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


def _ingest_chunk(
    items: list[ParsedEvent], source: str, actor_id: int | None, policies: Policies | None
) -> list[IngestResult]:
    """Store and apply valid events in one transaction; their results in the same order.

    Every agent of the chunk is locked once (its live-state row, in agent order, so that two
    chunks never wait for each other in a circle), its new events projected once and stored
    with their projections. Without ``policies``, the ACW policies are read with the lock.

    An id is new if it was not stored when the agents were locked. Stored meanwhile by a
    request for another agent (a conflict, or a client posting one event twice under two
    agents), it makes the INSERT fail on the unique ``event_id``: the chunk is tried again,
    and then answers that id as a duplicate or a conflict.
    """
    while True:
        try:
            return _ingest_chunk_once(items, source, actor_id, policies)
        except IntegrityError as exc:
            if EVENT_ID_UNIQUE not in str(exc):
                raise


def _ingest_chunk_once(
    items: list[ParsedEvent], source: str, actor_id: int | None, policies: Policies | None
) -> list[IngestResult]:
    agents = {parsed.agent for parsed in items}
    event_ids = sorted({parsed.event_id for parsed in items})
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        locked = _lock_agents(agents, policies, event_ids)
        if locked.lives.keys() >= agents:
            return _store_and_apply(items, locked, source, actor_id, outermost)
    # New agents: created first, each on its own (never under other agents' locks), and only
    # for an event that will be stored: a duplicate or a conflict must not make a phantom
    # agent appear on the walls.
    unknown = agents - locked.lives.keys()
    new = {p.agent for p in items if p.event_id not in locked.stored} & unknown
    for external_id in sorted(new):
        get_or_create_agent(external_id)
    with transaction.atomic():
        locked = _lock_agents(agents, policies, event_ids)
        return _store_and_apply(items, locked, source, actor_id, outermost)


@dataclass(frozen=True)
class _Locked:
    """What the agents' lock reads in its round trip."""

    lives: dict[str, AgentState]  # by external id: every one of the agents that exists
    policies: Policies
    stored: dict[str, tuple[Any, ...]]  # event id -> (type, agent, occurred_at, data)
    keys: list[int]  # ids for the chunk's new events, ascending


def _lock_agents(
    external_ids: Iterable[str], policies: Policies | None, event_ids: list[str]
) -> _Locked:
    """The agents' live-state rows, locked for this transaction in agent order (agent and
    team loaded); ``policies``, else every ACW policy as of now; the events already stored
    among ``event_ids``; and an id of the events' table for each of the others.

    The row lock serialises every write for one agent: events, timeouts, replays. The
    statements are written once per process (``agents.sql_rows``): compiling their querysets
    on every event cost more than running them. On PostgreSQL everything is read in the
    lock's round trip, statements after it in the same query: the stored events as of when
    the lock was granted (each statement reads what was committed when it started), and for
    each new one an id from the table's sequence, so that the events are projected before
    their INSERT and stored with their projections.
    """
    wanted = sorted(external_ids)
    with connection.cursor() as cursor:
        if cursor.db.vendor == "postgresql":
            statements = [_lock_sql(len(wanted)), _events_sql(len(event_ids))]
            if policies is None:
                statements.append(all_policies_sql())
            cursor.execute("; ".join(statements), [*wanted, *event_ids])
            rows = cursor.fetchall()
            cursor.nextset()
            event_rows = cursor.fetchall()
            if policies is None:
                cursor.nextset()
                policies = Policies.from_rows(cursor.fetchall())
            keys = [row[0] for row in event_rows if row[0] is not None]
        else:
            cursor.execute(_lock_sql(len(wanted)), wanted)
            rows = cursor.fetchall()
            cursor.execute(_events_sql(len(event_ids)), event_ids)
            event_rows = cursor.fetchall()
            # One writer at a time: SQLite has no concurrent transactions to race with.
            cursor.execute(f"SELECT MAX(id) FROM {connection.ops.quote_name(Event._meta.db_table)}")
            (newest,) = cursor.fetchone()
            first = (newest or 0) + 1
            keys = list(range(first, first + len(event_ids)))
    if policies is None:
        policies = Policies.load()
    return _Locked(_lives(rows), policies, _stored(event_rows), sorted(keys))


def _lives(rows: list[tuple[Any, ...]]) -> dict[str, AgentState]:
    live_rows, agent_rows, team_rows = _lock_readers()
    lives = {}
    agent_end = live_rows.width + agent_rows.width
    for row in rows:
        live = live_rows.instance(row[: live_rows.width])
        agent = agent_rows.instance(row[live_rows.width : agent_end])
        agent.team = team_rows.instance(row[agent_end:])
        live.agent = agent
        lives[agent.external_id] = live
    return lives


def _stored(rows: list[tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    """What a duplicate or a conflict is compared with, from ``_events_sql``'s rows."""
    reader = sql_rows.row_reader(Event, "e")
    stored = {}
    for row in rows:
        if row[2] is None:
            continue  # a new event
        event = reader.instance(row[2 : 2 + reader.width])
        stored[event.event_id] = (event.type, row[1], event.occurred_at, event.data)
    return stored


def _lock_readers() -> tuple[sql_rows.RowReader, sql_rows.RowReader, sql_rows.RowReader]:
    return (
        sql_rows.row_reader(AgentState, "s"),
        sql_rows.row_reader(Agent, "a"),
        sql_rows.row_reader(Team, "t"),
    )


@functools.cache
def _lock_sql(count: int) -> str:
    """The lock of ``count`` agents' live states by external id (``_lock_agents``)."""
    live_rows, agent_rows, team_rows = _lock_readers()
    quote = connection.ops.quote_name
    lock = " FOR UPDATE OF s" if connection.features.has_select_for_update_of else ""
    return (
        f"SELECT {live_rows.columns}, {agent_rows.columns}, {team_rows.columns} "
        f"FROM {quote(AgentState._meta.db_table)} AS s "
        f"JOIN {quote(Agent._meta.db_table)} AS a ON a.id = s.agent_id "
        f"JOIN {quote(Team._meta.db_table)} AS t ON t.id = a.team_id "
        f"WHERE a.external_id IN ({', '.join(['%s'] * count)}) ORDER BY s.agent_id{lock}"
    )


@functools.cache
def _events_sql(count: int) -> str:
    """For each of ``count`` event ids: a new id of the events' table (PostgreSQL, taken from
    its sequence only for an id not stored), the stored event's agent (its external id) and
    the stored event (NULLs for an id not stored)."""
    quote = connection.ops.quote_name
    table = quote(Event._meta.db_table)
    if connection.vendor == "postgresql":
        new_key = (
            f"CASE WHEN e.id IS NULL THEN nextval(pg_get_serial_sequence('{table}', 'id')) END"
        )
        ids = f"(VALUES {', '.join(['(%s)'] * count)}) AS v (event_id)"
    else:  # no column names for VALUES in SQLite
        new_key = "NULL"
        ids = f"({' UNION ALL '.join(['SELECT %s AS event_id'] * count)}) AS v"
    return (
        f"SELECT {new_key}, a.{quote('external_id')}, {sql_rows.row_reader(Event, 'e').columns} "
        f"FROM {ids} "
        f"LEFT JOIN {table} AS e ON e.{quote('event_id')} = v.event_id "
        f"LEFT JOIN {quote(Agent._meta.db_table)} AS a ON a.id = e.agent_id"
    )


def _store_and_apply(
    items: list[ParsedEvent], locked: _Locked, source: str, actor_id: int | None, commit: bool
) -> list[IngestResult]:
    """Under the agents' locks: de-duplicate, then apply and store the new events per agent;
    with ``commit`` (the transaction is the outermost one), commit with the write."""
    lives = locked.lives
    results: list[IngestResult | None] = [None] * len(items)
    first_of: dict[str, int] = {}  # event_id -> its first position in the chunk
    anchors = _retention_anchors(items, lives)
    free_keys = iter(locked.keys)
    keys: dict[str, int] = {}  # event_id -> the id it is stored with
    for index, parsed in enumerate(items):
        if parsed.event_id in first_of:
            continue  # the same id again in the chunk: answered from the first one, below
        first_of[parsed.event_id] = index
        live = lives.get(parsed.agent)
        if live is None or parsed.event_id in locked.stored:
            continue  # a duplicate or a conflict (or the agent was removed): answered below
        anchor = anchors.get(live.agent_id)
        if anchor is not None and parsed.occurred_at <= anchor:
            results[index] = IngestResult(parsed.event_id, "rejected", PURGED_HISTORY)
        else:
            keys[parsed.event_id] = next(free_keys)  # ascending: in input order
            results[index] = IngestResult(parsed.event_id, "accepted")
    accepted = [first_of[event_id] for event_id in keys]
    _answer_the_others(items, results, first_of, set(accepted), locked.stored)

    writes = _Writes(locked.policies, source, actor_id)
    new_by_agent: dict[int, list[EventIn]] = defaultdict(list)
    by_agent_id = {live.agent_id: live for live in lives.values()}
    for index in accepted:
        parsed = items[index]
        live = lives[parsed.agent]
        key = keys[parsed.event_id]
        writes.new_events.append((key, parsed, live))
        new_by_agent[live.agent_id].append(
            EventIn(
                key=key,
                type=parsed.type,
                occurred_at=parsed.occurred_at,
                team_id=live.agent.team_id,
                data=parsed.data,
                actor_id=actor_id,
            )
        )
    for agent_id, new in new_by_agent.items():
        live = by_agent_id[agent_id]
        # Late events far apart (a shuffled batch) replay one stretch each: a replay that
        # converges before the next one leaves it to a replay of its own.
        while new:
            start, replay, stored_after = _replay_plan(live, new)
            ran = writes.replay(live, start, replay, stored_after, converge=True)
            new = [e for e in new if e.key not in ran]
    writes.flush(commit=commit)
    return cast(list[IngestResult], results)


def _retention_anchors(items: list[ParsedEvent], lives: dict[str, AgentState]) -> dict[int, Any]:
    """The newest retention anchor of each agent with a late event: an event at or before it
    cannot be applied, as the events it would be replayed with are gone (e.g. after
    ACW_RETENTION_DAYS was raised). In-order traffic, the common case, costs no query."""
    late = {
        live.agent_id
        for parsed in items
        if (live := lives.get(parsed.agent)) is not None
        and live.last_event_at is not None
        and parsed.occurred_at < live.last_event_at
    }
    if not late:
        return {}
    return dict(
        Event.objects.filter(agent_id__in=late, history_anchor=True)
        .values("agent_id")
        .annotate(newest=Max("occurred_at"))
        .order_by()
        .values_list("agent_id", "newest")
    )


def _insert_sql(
    rows: list[tuple[int, ParsedEvent, AgentState]],
    state_after: dict[int, dict[str, Any]],
    source: str,
    actor_id: int | None,
) -> tuple[str | None, list[Any]]:
    """One INSERT of the new events ``(id, event, agent's live state)``, each with the
    projection after it; ``None`` for none. No ``ON CONFLICT``: an id stored since the agents
    were locked fails it (``_ingest_chunk`` tries the chunk again)."""
    if not rows:
        return None, []
    names = ("id", "event_id", "agent", "team", "type", "occurred_at", "received_at", "data",
             "source", "actor", "state_after", "history_anchor")  # fmt: skip
    now = timezone.now()
    source_sql, params, columns = _derived_table(
        Event,
        names,
        [
            (
                key,
                parsed.event_id,
                live.agent_id,
                live.agent.team_id,
                parsed.type,
                parsed.occurred_at,
                now,
                parsed.data,
                source,
                actor_id,
                state_after[key],
                False,
            )
            for key, parsed, live in rows
        ],
    )
    return _insert_text(Event, source_sql, columns, ""), params


def _derived_table(
    model: type[Model], names: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> tuple[str, list[Any], tuple[str, ...]]:
    """``rows`` (values in the order of ``names``, model fields) as a derived table ``v`` for
    an INSERT or UPDATE: its SQL, parameters and quoted column names (the table's columns are
    named and ordered as ``names``), rows in input order.

    On PostgreSQL all the rows are one parameter, a JSON array of arrays, taken apart by
    ``json_array_elements``: psycopg's client-side binding (Django's default) quotes every
    element of an array parameter in Python, which was a fifth of a batch's time, where one
    JSON text is encoded and escaped once, in C. Elsewhere a VALUES list.
    """
    # The connection itself, not the proxy: every attribute read through the proxy is a
    # look-up of the thread's connection, several per value.
    db = connections[DEFAULT_DB_ALIAS]
    shape = _table_shape(model, names, db.vendor)
    if db.vendor != "postgresql":
        one_row = "(" + ", ".join(["%s"] * len(shape.fields)) + ")"
        params = [
            field.get_db_prep_save(value, db)
            for row in rows
            for field, value in zip(shape.fields, row, strict=True)
        ]
        all_rows = ", ".join([one_row] * len(rows))
        return f"(SELECT {shape.selected} FROM (VALUES {all_rows})) AS v", params, shape.columns
    encoded = json.dumps(
        [
            [
                value if is_json else field.get_db_prep_save(value, db)
                for field, is_json, value in zip(shape.fields, shape.json, row, strict=True)
            ]
            for row in rows
        ],
        default=_json_instant,
    )
    sql = (
        f"(SELECT {shape.selected} FROM json_array_elements(%s::json) WITH ORDINALITY "
        f"AS x (r, n) ORDER BY x.n) AS v"
    )
    return sql, [encoded], shape.columns


@dataclass(frozen=True)
class _TableShape:
    """What ``_derived_table`` needs of some fields of a model: the fields, their quoted
    columns, which are JSON, and the derived table's select list."""

    fields: list[Field]
    columns: tuple[str, ...]
    json: list[bool]
    selected: str


@functools.cache
def _table_shape(model: type[Model], names: tuple[str, ...], vendor: str) -> _TableShape:
    """Worked out once per process: reading the fields' column types through the connection
    was a third of a single event's time in ``_derived_table``."""
    fields = [cast(Field, model._meta.get_field(name)) for name in names]
    quote = connection.ops.quote_name
    columns = tuple(quote(field.column) for field in fields)
    json_fields = [field.get_internal_type() == "JSONField" for field in fields]
    if vendor != "postgresql":
        selected = ", ".join(f"column{n} AS {column}" for n, column in enumerate(columns, 1))
        return _TableShape(fields, columns, json_fields, selected)
    selected_columns = []
    for index, (field, column, is_json) in enumerate(
        zip(fields, columns, json_fields, strict=True)
    ):
        if is_json:
            selected_columns.append(f"(x.r -> {index})::jsonb AS {column}")
        else:
            db_type = field.cast_db_type(connection)  # type: ignore[attr-defined]
            selected_columns.append(f"(x.r ->> {index})::{db_type} AS {column}")
    return _TableShape(fields, columns, json_fields, ", ".join(selected_columns))


def _json_instant(value: Any) -> str:
    """Instants in the JSON of ``_derived_table``, to the microsecond, with their offset."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _answer_the_others(
    items: list[ParsedEvent],
    results: list[IngestResult | None],
    first_of: dict[str, int],
    accepted: set[int],
    stored: dict[str, tuple[Any, ...]],
) -> None:
    """Duplicates and conflicts: against the stored event, or the chunk's first of that id."""
    for index, parsed in enumerate(items):
        if results[index] is not None:
            continue
        first = first_of[parsed.event_id]
        if first in accepted:
            other = items[first]
            existing = (other.type, other.agent, other.occurred_at, other.data)
        elif parsed.event_id in stored:
            existing = stored[parsed.event_id]
        else:
            # Only when the first of this id was refused, or the agent was removed meanwhile.
            results[index] = (
                results[first]
                if first != index
                else IngestResult(
                    parsed.event_id, "rejected", "agent: removed while the event arrived"
                )
            )
            continue
        results[index] = _duplicate_or_conflict(parsed, existing)


def _duplicate_or_conflict(parsed: ParsedEvent, existing: tuple[Any, ...]) -> IngestResult:
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


def _order(event: EventIn) -> tuple[datetime, int]:
    """An agent's events run in this order: occurred_at, then arrival."""
    return (event.occurred_at, event.key)


def _replay_plan(
    live: AgentState, new: list[EventIn]
) -> tuple[AgentProjection, Iterable[EventIn], dict[int, dict[str, Any]]]:
    """Where to start an agent's projection for its new events, and what to run from there.

    Returns the start, the events to run (in ``_order``) and the projection stored after each
    stored event among them, filled in as they are read. Normally every new event is at or
    after the agent's newest one: only they run, from the live projection. A late one replays
    from the last event before it, the stored events read a page at a time, as far as the
    replay goes (it stops where the history converges: ``_Writes.replay``).
    """
    new = sorted(new, key=_order)
    first = new[0]
    if live.last_event_at is None or first.occurred_at >= live.last_event_at:
        return AgentProjection.from_json(live.projection), new, {}
    new_keys = [e.key for e in new]
    stored = Event.objects.filter(agent_id=live.agent_id).exclude(pk__in=new_keys)
    previous = (
        stored.filter(occurred_at__lte=first.occurred_at)
        .order_by("-occurred_at", "-id")
        .only("occurred_at", "state_after")
        .first()
    )
    start = AgentProjection.from_json(previous.state_after if previous else None)
    stored_after: dict[int, dict[str, Any]] = {}
    after = (previous.occurred_at, previous.pk) if previous is not None else None
    later = _stored_events_after(stored, after, stored_after)
    return start, heapq.merge(later, new, key=_order), stored_after


def _stored_events_after(
    stored: QuerySet[Event],
    after: tuple[datetime, int] | None,
    stored_after: dict[int, dict[str, Any]],
) -> Iterator[EventIn]:
    """The ``stored`` events after ``after`` (in ``_order``), read in pages that grow as the
    replay goes on; the projection stored after each one is put in ``stored_after``."""
    size = REPLAY_PAGE
    while True:
        page = stored.order_by("occurred_at", "id")
        if after is not None:
            moment, key = after
            page = page.filter(Q(occurred_at__gt=moment) | Q(occurred_at=moment, pk__gt=key))
        rows = list(page[:size])
        for event in rows:
            stored_after[event.pk] = event.state_after
            yield _event_in(event)
        if len(rows) < size:
            return
        after = (rows[-1].occurred_at, rows[-1].pk)
        size = min(size * 4, CHUNK_SIZE * 10)


def replay_agent(agent_id: int, policies: Policies | None = None) -> int:
    """Rebuild one agent's rows and live state from its whole event log; returns the count.

    The same state machine as live ingestion, from an empty start: after a fix to the state
    machine, or a policy change meant to apply to history, this makes the past consistent.
    """
    writes = _Writes(policies or Policies.load())
    with transaction.atomic():
        live = AgentState.objects.select_for_update().get(agent_id=agent_id)
        live.agent = Agent.objects.select_related("team").get(pk=agent_id)
        events = list(Event.objects.filter(agent_id=agent_id).order_by("occurred_at", "id"))
        anchor = next((e for e in reversed(events) if e.history_anchor), None)
        if anchor is not None:
            # The log before the anchor was purged (agents.retention): start from the
            # anchor's projection and rebuild only the rows the later events opened; the
            # rows of the purged period stay as they are.
            later = [_event_in(e) for e in events[events.index(anchor) + 1 :]]
            live.last_event_at, live.last_event_seq = anchor.occurred_at, anchor.pk
            start = AgentProjection.from_json(anchor.state_after)
            stored_after = {e.pk: e.state_after for e in events[events.index(anchor) + 1 :]}
            writes.replay(live, start, later, stored_after)
            writes.flush()
            return len(later)
        if events:
            from reporting import rollups  # at call time: reporting builds on agents

            # The rollup intervals the old rows counted in must be recomputed too.
            rollups.mark_dirty_before_replay([events[0].pk])
        AcwSession.objects.filter(agent_id=agent_id).delete()
        HoldPeriod.objects.filter(interaction__agent_id=agent_id).delete()
        Interaction.objects.filter(agent_id=agent_id).delete()
        live.last_event_at, live.last_event_seq = None, 0
        writes.replay(live, AgentProjection(), [_event_in(e) for e in events], {})
        writes.flush()
        return len(events)


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
SAVED_LIVE_FIELDS = [
    *LIVE_FIELDS,
    "version",
    "last_event_at",
    "last_event_seq",
    "projection",
    "updated_at",
]
ACW_FIELDS = ("team_id", "channel", "mode", "started_at", "deadline", "ended_at", "end_reason",
              "extensions", "extended_seconds", "wrap_up_code", "note", "checklist",
              "ended_by_id", "too_short", "overrun", "policy_violation")  # fmt: skip
ACW_ROW_FIELDS = ("start_event", "agent", *ACW_FIELDS, "duration_seconds", "interaction")


class _Writes:
    """What one transaction writes for the agents it projected, gathered and then written in
    a few statements (``flush``): the new events with their projections, the projections of
    replayed events, the rows opened by replayed events (deleted, then rewritten), the rows,
    their rollup marks and the live states; after commit, one publication to the walls and
    the ACW timeouts."""

    def __init__(self, policies: Policies, source: str = "api", actor_id: int | None = None):
        self.policies = policies
        self.source, self.actor_id = source, actor_id  # of the new events
        self.now = timezone.now()
        # (id, event, agent's live state): each one stored with the projection after it.
        self.new_events: list[tuple[int, ParsedEvent, AgentState]] = []
        self.state_after: dict[int, dict[str, Any]] = {}
        self.replayed: list[int] = []  # stored events re-applied
        self.rewritten: list[int] = []  # those whose rows are deleted and written again
        self.stops: dict[int, datetime] = {}  # agent id -> where its replay converged
        self.rows: list[tuple[int, Rows, set[int]]] = []
        self.lives: list[AgentState] = []
        self.messages: list[tuple[int, events.Message]] = []
        self.timeouts: dict[int, datetime] = {}

    def replay(
        self,
        live: AgentState,
        start: AgentProjection,
        replay: Iterable[EventIn],
        stored_after: dict[int, dict[str, Any]],
        *,
        converge: bool = False,
    ) -> set[int]:
        """Run ``replay`` (in ``_order``) from ``start``; returns the keys of the events run.
        ``stored_after``: the stored events among them (filled in by the time each one runs),
        with the projection stored after each; their rows are deleted and written again.

        With ``converge`` (a late event's replay), the run stops at the first stored event whose
        new projection equals its stored one: every later stored event and row is right as
        stored, and a new event after it is left to a replay of its own. What it writes then (``project()`` states the rule): the
        events re-applied before the stop, and the rows touched except those still open at the
        stop. The stored rows of those open ones are kept (neither deleted nor written), and
        so is the interaction an open ACW wraps up (a deleted interaction takes its ACW with
        it): it is updated in place.
        """
        converged = None
        if converge:

            def converged(event: EventIn, projection: AgentProjection) -> bool:
                stored = stored_after.get(event.key)
                # {}: not projected yet.
                return bool(stored) and AgentProjection.from_json(stored) == projection

        result = project(start, replay, self.policies.spec, converged)
        for key, projection in result.after_each:
            self.state_after[key] = projection.to_json()
        ran = {key for key, _ in result.after_each}
        kept: set[int] = set()
        if result.stopped:
            assert result.last is not None
            ran.add(result.last.key)
            self.stops[live.agent_id] = result.last.occurred_at  # stretches run in time order
            open_now = result.final
            kept = {it.key for it in open_now.interactions}
            kept |= {it.hold_key for it in open_now.interactions if it.hold_key is not None}
            kept |= {acw.key for acw in open_now.acws}
            kept |= {acw.interaction_key for acw in open_now.acws if acw.interaction_key}
        else:
            self.stops.pop(live.agent_id, None)
        replayed = [key for key in ran if key in stored_after]
        self.replayed.extend(replayed)
        self.rewritten.extend(key for key in replayed if key not in kept)
        if converge:
            metrics.REPLAYED_EVENTS.inc(len(replayed))
        newest = result.last  # when stopped, the agent's newest event is a later one
        if (
            newest is not None
            and not result.stopped
            and (
                live.last_event_at is None
                or _order(newest) >= (live.last_event_at, live.last_event_seq)
            )
        ):
            live.last_event_at, live.last_event_seq = newest.occurred_at, newest.key
        self.rows.append((live.agent_id, result.rows, ran - kept))
        # Stopped: the projection after the newest event is the stored one.
        final = AgentProjection.from_json(live.projection) if result.stopped else result.final
        self.live(live, final)
        return ran

    def live(self, live: AgentState, projection: AgentProjection) -> None:
        """Store the projection after the newest event, and the live state it implies now.

        Walls are told only when what they show changed, and a timeout task is scheduled only
        when the deadline moved (an ignored event during ACW neither pushes nor re-schedules).
        """
        before = tuple(getattr(live, name) for name in LIVE_FIELDS)
        live.projection = projection.to_json()
        current, timeout_rows = advance(projection, self.now)
        if timeout_rows.acws:
            self.rows.append((live.agent_id, timeout_rows, set()))
        live.set_live_fields(current)
        live.updated_at = self.now
        self.lives.append(live)
        if tuple(getattr(live, name) for name in LIVE_FIELDS) == before:
            return
        # Under the row lock, so versions of one agent are strictly increasing: two web
        # processes may publish in the other order than they committed.
        live.version += 1
        self.messages.append(events.agent_changed(_with_team(live), self.policies))
        if live.acw_deadline is not None:  # in acw, or on a contact while another one's ACW runs
            self.timeouts[live.agent_id] = live.acw_deadline

    def flush(self, *, commit: bool = False) -> None:
        """Write it all; with ``commit``, commit the transaction in the same round trip (it
        must be the connection's outermost one, ending with the caller's atomic block)."""
        if self.replayed:
            _delete_rows_opened_by(self.replayed, self.rewritten, self.stops)
        statements = _Statements()
        # Before the rows that name them: the INSERT of an event costs less than its UPDATE
        # after it, which wrote a new entry in every index of the table when it was not HOT.
        statements.add(*_insert_sql(self.new_events, self.state_after, self.source, self.actor_id))
        _write_rows(statements, self.rows)
        new_keys = {key for key, _, _ in self.new_events}
        statements.add(
            *_update_sql(
                Event,
                "id",
                {
                    key: {"state_after": after}
                    for key, after in self.state_after.items()
                    if key not in new_keys
                },
            )
        )
        statements.add(
            *_update_sql(
                AgentState,
                "agent",
                {
                    live.agent_id: {
                        name: getattr(live, cast(Field, AgentState._meta.get_field(name)).attname)
                        for name in SAVED_LIVE_FIELDS
                    }
                    for live in self.lives
                },
            )
        )
        statements.run(commit=commit)
        events.broadcast_on_commit(self.messages)
        if self.timeouts:
            timeouts = dict(self.timeouts)
            transaction.on_commit(lambda: _timeout_sender.send(timeouts))


class _Statements:
    """Writes whose results nobody reads, sent together at the end of a projection: on
    PostgreSQL as one multi-statement query, a single round trip to the database for the
    rollup marks, every kind of row, the event projections and the live states (psycopg's
    client-side binding, Django's default, sends several statements with their parameters in
    one ``execute``); elsewhere one statement after the other. They run in the order added,
    each one seeing what the ones before it wrote."""

    def __init__(self) -> None:
        self._sql: list[str] = []
        self._params: list[list[Any]] = []

    def add(self, sql: str | None, params: list[Any]) -> None:
        """Add one statement (``None``: nothing to write)."""
        if sql is not None:
            self._sql.append(sql)
            self._params.append(params)

    def run(self, *, commit: bool = False) -> None:
        """Run the statements; on PostgreSQL with ``commit``, the transaction's ``COMMIT`` as
        the last of them: a round trip fewer. The atomic block's own commit then finds nothing
        to commit (psycopg sends no ``COMMIT`` outside a transaction) and runs the on-commit
        callbacks as usual; a statement that fails leaves the transaction to be rolled back
        by the block, as before."""
        if not self._sql:
            return
        with connection.cursor() as cursor:
            if cursor.db.vendor == "postgresql":
                texts = [*self._sql, "COMMIT"] if commit else self._sql
                cursor.execute("; ".join(texts), [p for params in self._params for p in params])
                return
            for sql, params in zip(self._sql, self._params, strict=True):
                cursor.execute(sql, params)


def _delete_rows_opened_by(
    replayed: list[int], keys: list[int], stops: dict[int, datetime]
) -> None:
    """Rows opened by the replayed events ``keys`` are recreated by the replay; where the rows
    of the ``replayed`` events counted so far is marked dirty (up to ``stops``)."""
    from reporting import rollups  # at call time: reporting builds on agents

    rollups.mark_dirty_before_replay(replayed, until=stops)
    AcwSession.objects.filter(start_event_id__in=keys).delete()
    HoldPeriod.objects.filter(start_event_id__in=keys).delete()
    Interaction.objects.filter(start_event_id__in=keys).delete()


def _write_rows(statements: _Statements, touched: list[tuple[int, Rows, set[int]]]) -> None:
    """Write the rows projections touched, keyed by the event that opened them (``(agent id,
    rows, keys of the events that ran)``), and mark the rollup intervals they count in.

    Each row is upserted on its opening event: a new one (or one deleted for a replay) is
    created, any other one updated. Holds and ACWs name their interaction by its opening event
    too, which the statement resolves to the interaction's id (the interaction may be written
    by the statement just before, or by an earlier transaction).
    """
    from reporting import rollups  # at call time: reporting builds on agents

    statements.add(
        *_dirty_marks_sql(
            rollups.dirty_buckets_of_rows((agent_id, rows) for agent_id, rows, _ in touched)
        )
    )
    interactions: dict[int, tuple[Any, ...]] = {}
    holds: dict[int, tuple[Any, ...]] = {}
    acws: dict[int, tuple[Any, ...]] = {}
    for agent_id, rows, _ in touched:
        for row in rows.interactions.values():
            interactions[row.key] = (
                row.key, agent_id, row.team_id, row.interaction_id, row.channel, row.direction,
                row.queue, row.started_at, row.ended_at, row.end_reason, row.talk_seconds,
                row.hold_seconds,
            )  # fmt: skip
        for hold in rows.holds.values():
            holds[hold.key] = (hold.key, hold.interaction_key, hold.started_at, hold.ended_at)
        for acw in rows.acws.values():
            acws[acw.key] = (
                acw.key,
                agent_id,
                # Read field by field: dataclasses.asdict deep-copies the whole row first.
                *(getattr(acw, name) for name in ACW_FIELDS),
                acw.duration_seconds,
                acw.interaction_key,
            )
    statements.add(*_upsert_sql(Interaction, INTERACTION_FIELDS, list(interactions.values())))
    statements.add(*_upsert_sql(HoldPeriod, HOLD_FIELDS, list(holds.values())))
    statements.add(*_upsert_sql(AcwSession, ACW_ROW_FIELDS, list(acws.values())))


# The columns each kind of row is written with, its opening event first (``_upsert_sql``).
INTERACTION_FIELDS = ("start_event", "agent", "team", "interaction_id", "channel", "direction",
                      "queue", "started_at", "ended_at", "end_reason", "talk_seconds",
                      "hold_seconds")  # fmt: skip
HOLD_FIELDS = ("start_event", "interaction", "started_at", "ended_at")


def _upsert_sql(
    model: type[Interaction] | type[HoldPeriod] | type[AcwSession],
    names: tuple[str, ...],
    rows: list[tuple[Any, ...]],
) -> tuple[str | None, list[Any]]:
    """One ``INSERT ... ON CONFLICT (start_event) DO UPDATE`` of ``rows`` (values in the order
    of ``names``, the opening event's key first): each row is created, or updated in place;
    ``None`` for no rows.

    An ``interaction`` value is the key of the interaction's opening event, written as that
    interaction's id."""
    if not rows:
        return None, []
    source_sql, params, columns = _derived_table(model, names, rows)
    return _upsert_text(model, names, source_sql, columns), params


@functools.cache
def _upsert_text(
    model: type[Model], names: tuple[str, ...], source_sql: str, columns: tuple[str, ...]
) -> str:
    """``_upsert_sql``'s statement, written once per process and row source (one on
    PostgreSQL, whatever the number of rows)."""
    quote = connection.ops.quote_name
    interactions = quote(Interaction._meta.db_table)
    opened_by = quote(cast(Field, Interaction._meta.get_field("start_event")).column)
    values = [
        f"(SELECT i.id FROM {interactions} AS i WHERE i.{opened_by} = v.{column})"
        if name == "interaction"
        else f"v.{column}"
        for name, column in zip(names, columns, strict=True)
    ]
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM {source_sql} WHERE true "
        f"ON CONFLICT ({columns[0]}) DO UPDATE "
        f"SET {', '.join(f'{column} = EXCLUDED.{column}' for column in columns[1:])}"
    )


def _dirty_marks_sql(buckets: set[tuple[int, datetime]]) -> tuple[str | None, list[Any]]:
    """One ``INSERT ... ON CONFLICT DO NOTHING`` of the rollup marks ``(agent id, interval
    start)``; ``None`` for none."""
    from reporting import rollups  # at call time: reporting builds on agents

    if not buckets:
        return None, []
    now = timezone.now()
    source_sql, params, columns = _derived_table(
        rollups.DirtyInterval,
        ("agent", "bucket_start", "marked_at"),
        [(agent_id, start, now) for agent_id, start in sorted(buckets)],
    )
    return _insert_text(
        rollups.DirtyInterval, source_sql, columns, " ON CONFLICT DO NOTHING"
    ), params


@functools.cache
def _insert_text(model: type[Model], source_sql: str, columns: tuple[str, ...], tail: str) -> str:
    """An ``INSERT`` of a derived table's rows, written once per process and row source."""
    table = connection.ops.quote_name(model._meta.db_table)
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM {source_sql} WHERE true{tail}"


def _update_sql(
    model: type[Model], key: str, rows: dict[Any, dict[str, Any]]
) -> tuple[str | None, list[Any]]:
    """One ``UPDATE ... FROM (rows)`` setting each row whose ``key`` field has a key of ``rows``
    to its values (the same fields for all); ``None`` for no rows.

    Django's ``bulk_update`` builds a CASE per field and row: it was most of a batch's time.
    """
    if not rows:
        return None, []
    names = list(next(iter(rows.values())))
    source_sql, params, columns = _derived_table(
        model,
        (key, *names),
        [(row_key, *(values[name] for name in names)) for row_key, values in rows.items()],
    )
    return _update_text(model, source_sql, columns), params


@functools.cache
def _update_text(model: type[Model], source_sql: str, columns: tuple[str, ...]) -> str:
    """``_update_sql``'s statement, written once per process and row source."""
    return (
        f"UPDATE {connection.ops.quote_name(model._meta.db_table)} AS t "
        f"SET {', '.join(f'{column} = v.{column}' for column in columns[1:])} "
        f"FROM {source_sql} WHERE t.{columns[0]} = v.{columns[0]}"
    )


def _store_live(live: AgentState, projection: AgentProjection, now: datetime) -> None:
    """Store one agent's projection and the live state it implies at ``now`` (timeouts)."""
    writes = _Writes(Policies.current())
    writes.now = now
    writes.live(live, projection)
    writes.flush()


def _with_team(live: AgentState) -> AgentState:
    if "team" not in live.agent._state.fields_cache:
        live.agent = Agent.objects.select_related("team").get(pk=live.agent_id)
    return live


class _TimeoutSender:
    """Schedules ACW timeout tasks from one background thread of the process, off the request
    path: deadlines wait here until the thread sends them, and several for one agent send only
    the newest (``expire_acw`` re-reads the deadline anyway). Deadlines of a process that dies
    before sending them are closed by the beat sweep (``expire_due_acws``, every 5 s).

    With Celery's eager mode (the tests) the task runs at once, in the caller's thread.
    """

    def __init__(self) -> None:
        self._pending: dict[int, datetime] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def send(self, deadlines: dict[int, datetime]) -> None:
        from acw_site.celery import app

        if app.conf.task_always_eager:
            self._send(deadlines)
            return
        with self._wake:
            self._pending.update(deadlines)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="acw-timeouts", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
                pending, self._pending = self._pending, {}
            self._send(pending)

    @staticmethod
    def _send(deadlines: dict[int, datetime]) -> None:
        from acw_site.celery import app

        from .tasks import EXPIRE_ACW_TASK, expire_acw_task

        for agent_id, deadline in deadlines.items():
            options: dict[str, Any] = {"args": [agent_id], "eta": deadline, "expires": 3600}
            try:
                if app.conf.task_always_eager:
                    expire_acw_task.apply_async(**options)
                else:
                    # By name on the site's app: in this thread Celery's "current app" (which
                    # a task object resolves through) may be another one.
                    app.send_task(EXPIRE_ACW_TASK, **options)
            except Exception:
                # The periodic sweep closes the ACW anyway; a broker outage must not fail an
                # event.
                logger.warning(
                    "could not schedule ACW timeout for agent %s", agent_id, exc_info=True
                )


_timeout_sender = _TimeoutSender()


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
