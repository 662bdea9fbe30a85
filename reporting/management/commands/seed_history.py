"""``manage.py seed_history --agents 200 --days 365``: a year of history, fast, for benchmarks.

Writes the event log of ``--agents`` agents (teams of ``--team-size`` in ``--departments``
departments) for the ``--days`` site days before today: a shift a day with calls, chats and
e-mails, holds, ACWs ended by the agent, extended or left to time out, with wrap-up codes and
the steps of a site-wide checklist ticked (``--checklist``; fewer when the ACW is hurried, saved
while the ACW is open where it then times out). The
rows those events imply (interactions, holds, ACW sessions, live state) come from the same pure
state machine as live ingestion (``agents.states.project``), so ``replay_events`` would rebuild
exactly what is written here; then every rollup is rebuilt at once by ``rollups.rebuild_all``
(set-based SQL into fresh tables).

Speed: rows go in with PostgreSQL's COPY (``bulk_create`` on SQLite), one transaction per
site day, ids reserved from the tables' sequences so the site may keep running. 200 agents ×
365 days ≈ 2 million interactions (docs/benchmarks.md has the time it takes).
"""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, connections, models, transaction
from django.utils import timezone

from acw_site import locks
from acw_site.progress import progress
from agents.models import (
    AcwSession,
    Agent,
    AgentState,
    ChecklistItem,
    Department,
    Event,
    HoldPeriod,
    Interaction,
    Team,
    WrapUpCode,
)
from agents.policies import Policies
from agents.states import AgentProjection, EventIn, PolicyLookup, Rows, project
from reporting import rollups
from reporting.queries import site_today, site_tz

SOURCE = "seed_history"
WORKER_CONNECTION_WAIT = 30.0
"""Seconds a worker process (``--jobs``) waits for a database connection."""
DEPARTMENT_NAMES = ("Sales", "Service", "Back office", "Digital", "Retention")
# (code, label, expected ACW seconds, share of interactions); "" = no code given.
CODES = (
    ("sale", "Sale", 45, 0.25),
    ("info", "Information given", 25, 0.30),
    ("complaint", "Complaint", 90, 0.10),
    ("callback", "Callback promised", 60, 0.15),
    ("", "", 30, 0.20),
)
# (channel, share, mean talk seconds)
CHANNELS = (("phone", 0.6, 300), ("chat", 0.25, 480), ("email", 0.15, 240))
# (step of every team's wrap-up checklist, how often an agent ticks it after an ACW of at least
# the code's norm; a hurried ACW ticks fewer steps)
CHECKLIST = (
    ("Disposition set in the CRM", 0.95),
    ("Case notes written", 0.8),
    ("Customer details verified", 0.6),
    ("Follow-up scheduled", 0.35),
)


Finals = dict[int, tuple[AgentProjection, int, datetime]]
"""Per agent: its projection after its last event of a day, that event's id and time."""


@dataclass
class _Agent:
    pk: int
    external_id: str
    team_id: int
    checklist: tuple[tuple[int, float], ...] = ()
    """The checklist items this agent sees, each with how often it is ticked."""


class _Ids:
    """Row ids reserved from a table's sequence (PostgreSQL) or after its largest id."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model

    def take(self, n: int) -> list[int]:
        if n == 0:
            return []
        table = self.model._meta.db_table
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                    [table, n],
                )
                return [row[0] for row in cursor.fetchall()]
            # SQLite has one writer at a time: the ids after the largest are free.
            cursor.execute(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"')
            first = cursor.fetchone()[0] + 1
            return list(range(first, first + n))


def _write(model: type[models.Model], columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (values for ``columns``, JSON already dumped) as fast as the database
    allows: COPY on PostgreSQL."""
    if not rows:
        return
    table = model._meta.db_table
    if connection.vendor == "postgresql":
        names = ", ".join(f'"{c}"' for c in columns)
        sql = f'COPY "{table}" ({names}) FROM STDIN'
        with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
        return
    by_column = {f.column: f.attname for f in model._meta.concrete_fields}
    json_columns = {
        f.column for f in model._meta.concrete_fields if isinstance(f, models.JSONField)
    }
    objects = []
    for row in rows:
        values = {
            by_column[c]: json.loads(v) if c in json_columns else v
            for c, v in zip(columns, row, strict=True)
        }
        objects.append(model(**values))
    model._default_manager.bulk_create(objects, batch_size=2000)


def _lognormal(rng: random.Random, mean: float, sigma: float = 0.6) -> float:
    """A right-skewed duration with the given mean (contact-center durations look like this)."""
    return rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)


def shift_events(
    rng: random.Random, agent: _Agent, day: date, calls: int, policy_for: PolicyLookup
) -> list[tuple[str, datetime, dict[str, Any]]]:
    """One agent's day: log in, ``calls`` interactions with their ACWs, a break, log out."""
    tz = site_tz()
    t = datetime.combine(day, time(7), tzinfo=tz) + timedelta(seconds=rng.randint(0, 3 * 3600))
    out: list[tuple[str, datetime, dict[str, Any]]] = [("agent.logged_in", t, {})]
    t += timedelta(seconds=rng.randint(10, 120))
    for n in range(calls):
        if n == calls // 2:
            out.append(("agent.not_ready", t, {"reason": "lunch"}))
            t += timedelta(seconds=rng.randint(1800, 3600))
            out.append(("agent.available", t, {}))
        channel, _, talk_mean = rng.choices(CHANNELS, weights=[c[1] for c in CHANNELS])[0]
        code, _, norm, _ = rng.choices(CODES, weights=[c[3] for c in CODES])[0]
        cid = {"interaction_id": f"{agent.external_id}-{day:%Y%m%d}-{n}"}
        out.append(("interaction.started", t, {**cid, "channel": channel, "direction": "inbound"}))
        talk = max(5.0, round(_lognormal(rng, talk_mean)))
        if channel == "phone" and rng.random() < 0.2:
            hold = round(rng.uniform(15, 120))
            out.append(("interaction.held", t + timedelta(seconds=talk // 2), cid))
            out.append(("interaction.resumed", t + timedelta(seconds=talk // 2 + hold), cid))
            talk += hold
        end = t + timedelta(seconds=talk)
        out.append(("interaction.ended", end, cid))
        policy = policy_for(agent.team_id, channel)
        acw = max(1.0, round(_lognormal(rng, norm, 0.7)))
        ended_by_agent = rng.random() < 0.85
        # The steps ticked (fewer when the ACW is hurried); where the ACW times out before the
        # agent would end it, they were saved as ticked (``acw.updated``) half-way through.
        hurry = min(1.0, acw / norm)
        ticked = [pk for pk, share in agent.checklist if rng.random() < share * hurry]
        may_time_out = not ended_by_agent or (policy.is_timed and acw > policy.seconds)
        if ticked and may_time_out:
            saved = min(acw, policy.seconds if policy.is_timed else acw) / 2
            out.append(("acw.updated", end + timedelta(seconds=saved), {"checklist": ticked}))
        if policy.is_timed and acw > policy.seconds and rng.random() < 0.5:
            # Asks for more time before the timer runs out (the policy caps the total).
            out.append(("acw.extended", end + timedelta(seconds=policy.seconds * 0.8), {}))
        if ended_by_agent:
            # The agent ends it; past a deadline it had already timed out (the event is stored
            # and changes nothing, as in real traffic).
            data: dict[str, Any] = {"wrap_up_code": code} if code else {}
            if ticked:
                data["checklist"] = ticked
            out.append(("acw.ended", end + timedelta(seconds=acw), data))
        t = end + timedelta(seconds=acw + rng.randint(2, 600))
    out.append(("agent.logged_out", t, {}))
    return out


class Command(BaseCommand):
    help = "Write a long history (e.g. a year for 200 agents) fast, for benchmarks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--agents", type=int, default=200)
        parser.add_argument("--days", type=int, default=365, help="Site days before today.")
        parser.add_argument("--team-size", type=int, default=20)
        parser.add_argument("--departments", type=int, default=3)
        parser.add_argument(
            "--calls", type=int, default=27, help="Mean interactions per agent and day."
        )
        parser.add_argument("--prefix", default="hist", help="Prefix of the agents' ids.")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--checklist",
            type=int,
            default=len(CHECKLIST),
            choices=range(len(CHECKLIST) + 1),
            help="Steps of the site-wide wrap-up checklist the agents tick (0: none).",
        )
        parser.add_argument(
            "--jobs",
            type=int,
            default=1,
            help="Worker processes, each writing whole site days (PostgreSQL only).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if min(options["agents"], options["days"], options["team_size"], options["jobs"]) < 1:
            raise CommandError("--agents, --days, --team-size and --jobs must be at least 1")
        prefix = options["prefix"]
        if Event.objects.filter(agent__external_id__startswith=f"{prefix}-").exists():
            raise CommandError(f"Agents {prefix}-* already have history: choose another --prefix")
        with transaction.atomic():  # one commit for the agents, not one per row
            agents = self._set_up(
                prefix, options["agents"], options["team_size"], options["departments"]
            )
            checklist = self._checklist(options["checklist"])
            agents = [replace(agent, checklist=checklist) for agent in agents]
        last = site_today() - timedelta(days=1)
        # Newest day first: an interrupted run leaves the most recent days complete.
        days = [last - timedelta(days=n) for n in range(options["days"])]
        plan = _History(agents, options["calls"], Policies.load().spec, options["seed"])
        totals = {"events": 0, "interactions": 0}
        finals: Finals = {}
        began = timezone.now()
        jobs = options["jobs"] if connection.vendor == "postgresql" else 1
        with progress(
            self, options["verbosity"], total=len(days), unit="day", desc="History"
        ) as bar:
            for day, counts, day_finals in _written_days(plan, days, jobs):
                if day == days[0]:
                    # The newest day's end is the live state.
                    finals = day_finals
                for name in totals:
                    totals[name] += counts[name]
                bar.update(1)
                bar.set_postfix_str(f"{totals['interactions']} interactions")
        self._store_live(finals)
        loaded = timezone.now()
        # Fresh planner statistics, then every rollup in a few set-based statements (those of
        # other agents and days are recomputed too: the same sums).
        rollups.analyze()
        with locks.exclusive("rollups", ttl=3600, wait=120) as held:
            if not held:
                raise CommandError("another rollup run has held the lock for 2 minutes")
            rollups.rebuild_all()  # (and fresh statistics of its tables)
        elapsed = (timezone.now() - began).total_seconds()
        if not options["verbosity"]:
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"History: {len(agents)} agents, {len(days)} days ({days[-1]} to {days[0]}), "
                f"{totals['events']} events, {totals['interactions']} interactions "
                f"in {elapsed:.0f} s with {jobs} job(s) (rollups: "
                f"{(timezone.now() - loaded).total_seconds():.0f} s)."
            )
        )

    # --- Set-up ------------------------------------------------------------------------------

    def _set_up(self, prefix: str, n: int, team_size: int, n_departments: int) -> list[_Agent]:
        departments = [
            Department.objects.get_or_create(name=DEPARTMENT_NAMES[i % len(DEPARTMENT_NAMES)])[0]
            for i in range(max(0, n_departments))
        ]
        for code, label, norm, _ in CODES:
            if code:
                WrapUpCode.objects.get_or_create(
                    code=code, defaults={"label": label, "expected_acw_seconds": norm}
                )
        agents = []
        for i in range(n):
            team_no = i // team_size
            team, _ = Team.objects.get_or_create(name=f"{prefix.title()} {team_no + 1:02d}")
            if departments and team.department_id is None:
                team.department = departments[team_no % len(departments)]
                team.save(update_fields=["department"])
            external_id = f"{prefix}-{i + 1:04d}"
            agent, _ = Agent.objects.get_or_create(
                external_id=external_id, defaults={"name": f"Agent {i + 1:04d}", "team": team}
            )
            AgentState.objects.get_or_create(agent=agent)
            agents.append(_Agent(agent.pk, external_id, agent.team_id))
        return agents

    def _checklist(self, steps: int) -> tuple[tuple[int, float], ...]:
        """The first ``steps`` of the site-wide checklist (created if missing), with how often
        each is ticked."""
        items = []
        for position, (label, share) in enumerate(CHECKLIST[:steps], start=1):
            item, _ = ChecklistItem.objects.get_or_create(
                team=None, label=label, defaults={"position": position}
            )
            items.append((item.pk, share))
        return tuple(items)

    def _store_live(self, finals: Finals) -> None:
        """Each agent's live state after its last seeded event (logged out), so that live
        events continue from it."""
        for agent_id, (projection, last_key, last_at) in finals.items():
            AgentState.objects.filter(agent_id=agent_id).update(
                state=projection.state,
                reason=projection.reason,
                since=projection.since,
                interaction_id="",
                channel="",
                acw_started_at=None,
                acw_deadline=None,
                acw_extensions=0,
                open_contacts=0,
                last_event_at=last_at,
                last_event_seq=last_key,
                projection=projection.to_json(),
            )


# --- Site days ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _History:
    """What every site day of a run is written from: its agents, the mean interactions per
    agent and day, the policies and the run's seed."""

    agents: list[_Agent]
    mean_calls: int
    policies: PolicyLookup
    seed: int

    def rng(self, day: date) -> random.Random:
        """The day's own random stream: a day comes out the same whichever process writes it,
        in whatever order."""
        return random.Random(f"{self.seed}:{day.isoformat()}")


def _written_days(
    plan: _History, days: list[date], jobs: int
) -> Iterator[tuple[date, dict[str, int], Finals]]:
    """Write ``days`` (one transaction each), in this process or in ``jobs`` worker processes
    that each take the next day left; yields each day as it is committed.

    Days are independent (every shift starts and ends logged out) and their row ids come from
    the tables' sequences, so workers never wait for each other: the state machine's CPU time,
    most of a day's cost, is spread over the cores.
    """
    if jobs == 1:
        for day in days:
            yield (day, *_commit_day(plan, day))
        return
    # Forked workers must not share the parent's connections or its pool: each opens its own,
    # and waits for it as long as a busy database takes to accept it (a web request's short
    # wait, DB_POOL_TIMEOUT, is for pushing back on clients; under load a worker's first
    # connection took over a second).
    connections.close_all()
    connection.close_pool()  # type: ignore[attr-defined]
    pool = connection.settings_dict["OPTIONS"].get("pool")
    if isinstance(pool, dict):
        pool["timeout"] = max(pool.get("timeout", 0), WORKER_CONNECTION_WAIT)
    context = multiprocessing.get_context("fork")
    # No initializer that connects: one that fails (the database slow to accept a connection,
    # or down) kills its worker before it takes a day, and the pool starts another for ever.
    # A day that fails raises here instead.
    with context.Pool(jobs) as pool:
        for day, result in zip(
            days, pool.imap(functools.partial(_commit_day, plan), days), strict=True
        ):
            yield (day, *result)


def _commit_day(plan: _History, day: date) -> tuple[dict[str, int], Finals]:
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # A bulk load: a crash may lose the last days (run it again with another
            # --prefix), so the commit does not wait for the day to reach the disk.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO off")
        return _write_day(plan, day)


def _write_day(plan: _History, day: date) -> tuple[dict[str, int], Finals]:
    """Write one site day of every agent in one transaction; its counts and finals."""
    rng = plan.rng(day)
    shifts = [
        (
            agent,
            shift_events(
                rng, agent, day, max(1, round(rng.gauss(plan.mean_calls, 3))), plan.policies
            ),
        )
        for agent in plan.agents
    ]
    event_ids = iter(_Ids(Event).take(sum(len(events) for _, events in shifts)))
    received = timezone.now()
    event_rows: list[tuple[Any, ...]] = []
    all_rows: list[tuple[_Agent, Rows]] = []
    finals: Finals = {}
    for agent, events in shifts:
        keyed = [
            EventIn(next(event_ids), type_, at, agent.team_id, data) for type_, at, data in events
        ]
        # Every shift starts logged out and ends with a logout: days are independent.
        result = project(AgentProjection(), keyed, plan.policies)
        after = dict(result.after_each)
        for e in keyed:
            event_rows.append(
                (
                    e.key,
                    f"{agent.external_id}-{e.key}",
                    agent.pk,
                    agent.team_id,
                    e.type,
                    e.occurred_at,
                    received,
                    json.dumps(e.data),
                    SOURCE,
                    json.dumps(after[e.key].to_json()),
                )
            )
        finals[agent.pk] = (result.final, keyed[-1].key, keyed[-1].occurred_at)
        all_rows.append((agent, result.rows))
    _write(
        Event,
        (
            "id",
            "event_id",
            "agent_id",
            "team_id",
            "type",
            "occurred_at",
            "received_at",
            "data",
            "source",
            "state_after",
        ),
        event_rows,
    )
    interactions = _write_rows(all_rows)
    return {"events": len(event_rows), "interactions": interactions}, finals


def _write_rows(all_rows: Iterable[tuple[_Agent, Rows]]) -> int:
    all_rows = list(all_rows)
    n_interactions = sum(len(rows.interactions) for _, rows in all_rows)
    interaction_ids = iter(_Ids(Interaction).take(n_interactions))
    pk_of: dict[int, int] = {}
    interactions, holds, acws = [], [], []
    for agent, rows in all_rows:
        for it in rows.interactions.values():
            pk_of[it.key] = next(interaction_ids)
            interactions.append(
                (
                    pk_of[it.key],
                    agent.pk,
                    it.team_id,
                    it.key,
                    it.interaction_id,
                    it.channel,
                    it.direction,
                    it.queue,
                    it.started_at,
                    it.ended_at,
                    it.end_reason,
                    it.talk_seconds,
                    it.hold_seconds,
                )
            )
        for hold in rows.holds.values():
            holds.append((pk_of[hold.interaction_key], hold.key, hold.started_at, hold.ended_at))
        for acw in rows.acws.values():
            acws.append(
                (
                    agent.pk,
                    acw.team_id,
                    pk_of.get(acw.interaction_key) if acw.interaction_key else None,
                    acw.key,
                    acw.channel,
                    acw.mode,
                    acw.started_at,
                    acw.deadline,
                    acw.ended_at,
                    acw.end_reason,
                    acw.extensions,
                    acw.extended_seconds,
                    acw.wrap_up_code,
                    acw.note,
                    json.dumps(acw.checklist),
                    acw.duration_seconds,
                    acw.too_short,
                    acw.overrun,
                    acw.policy_violation,
                )
            )
    _write(
        Interaction,
        (
            "id",
            "agent_id",
            "team_id",
            "start_event_id",
            "interaction_id",
            "channel",
            "direction",
            "queue",
            "started_at",
            "ended_at",
            "end_reason",
            "talk_seconds",
            "hold_seconds",
        ),
        interactions,
    )
    hold_ids = iter(_Ids(HoldPeriod).take(len(holds)))
    _write(
        HoldPeriod,
        ("id", "interaction_id", "start_event_id", "started_at", "ended_at"),
        [(next(hold_ids), *row) for row in holds],
    )
    acw_ids = iter(_Ids(AcwSession).take(len(acws)))
    _write(
        AcwSession,
        (
            "id",
            "agent_id",
            "team_id",
            "interaction_id",
            "start_event_id",
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
            "duration_seconds",
            "too_short",
            "overrun",
            "policy_violation",
        ),
        [(next(acw_ids), *row) for row in acws],
    )
    return len(interactions)
