"""``manage.py seed_demo``: a demo contact center with a few days of realistic history.

Creates teams North, South and Digital with their agents, one login per role, ACW policies in
every mode, wrap-up codes with their ACW norms, checklists and an API token, then writes the
history the traffic model (``agents.simulation``) produces for the last ``--days`` shifts —
through ``services.ingest_events``, like any other event. Running it again refreshes the set-up
and adds history only for agents that have none; ``--if-empty`` does nothing once North exists.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from acw_site.progress import progress
from agents import events as events_module
from agents import services, simulation
from agents.models import (
    AcwMode,
    AcwPolicy,
    AcwSession,
    ApiToken,
    ChecklistItem,
    Event,
    Interaction,
    Team,
    WrapUpCode,
)
from agents.policies import Policies

DEMO_PASSWORD = "acw-demo"
SHIFT = timedelta(hours=8)
# Events per transaction: one commit per event is what makes SQLite slow (a sync each); a
# batch commits once and keeps the write lock short enough for other writers to queue.
BATCH_SIZE = 250


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str  # "admin" or a create_user role
    teams: str = ""
    agent: str = ""
    description: str = ""


DEMO_USERS = (
    DemoUser("admin", "admin", description="admin (Django admin, every team)"),
    DemoUser("sam", "supervisor", teams="North", description="supervisor of North"),
    DemoUser(
        "sue", "supervisor", teams="South,Digital", description="supervisor of South, Digital"
    ),
    DemoUser("maria", "manager", description="manager (KPIs and wall, every team)"),
    DemoUser("alice", "agent", agent="alice", description="agent Alice Martin (wrap-up page)"),
)

# (team, channel) → policy fields; channel "" is the team's default. One team per mode family
# so the wall and the KPI pages show what each mode does.
DEMO_POLICIES: dict[tuple[str, str], dict[str, Any]] = {
    # North: short timer, no extension, a minimum (rushed ACWs are flagged), code required.
    ("North", "phone"): {
        "mode": AcwMode.TIMED,
        "seconds": 30,
        "min_seconds": 10,
        "allow_extension": False,
        "wrap_up_required": True,
        "target_avg_seconds": 30,
        "alert_acw_seconds": 90,
    },
    # South: a longer timer the agent may extend; e-mail ACW runs until the agent ends it.
    ("South", ""): {
        "mode": AcwMode.TIMED,
        "seconds": 45,
        "allow_extension": True,
        "extension_step_seconds": 30,
        "max_seconds": 180,
        "target_avg_seconds": 45,
    },
    ("South", "email"): {
        "mode": AcwMode.MANUAL,
        "seconds": 0,
        "allow_extension": False,
        "target_avg_seconds": 60,
        "alert_acw_seconds": 180,
    },
    # Digital: chat timed, e-mail time-boxed with no early exit, social posts without ACW.
    ("Digital", "chat"): {
        "mode": AcwMode.TIMED,
        "seconds": 60,
        "allow_extension": True,
        "extension_step_seconds": 30,
        "max_seconds": 240,
        "target_avg_seconds": 50,
    },
    ("Digital", "email"): {
        "mode": AcwMode.TIMED_STRICT,
        "seconds": 120,
        "allow_extension": True,
        "extension_step_seconds": 60,
        "max_seconds": 300,
        "target_avg_seconds": 120,
        "alert_acw_seconds": 240,
    },
    ("Digital", "other"): {"mode": AcwMode.NONE, "seconds": 0, "allow_extension": False},
}

CHECKLISTS: dict[str, tuple[str, ...]] = {
    "North": ("Update the CRM record", "Document the call", "Schedule an appointment"),
    "South": ("Update the CRM record", "Enter order data", "Send a follow-up e-mail"),
    "Digital": ("Document the conversation", "Send a follow-up e-mail", "Prepare a report"),
}


class Command(BaseCommand):
    help = (
        "Create the demo contact center (teams, agents, a user per role, ACW policies, wrap-up "
        f"codes, checklists, an API token; password {DEMO_PASSWORD!r}) and --days of history."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help='Do nothing if the demo data is present (team "North" exists).',
        )
        parser.add_argument(
            "--days", type=int, default=2, help="Shifts of history, the last ending now (2)."
        )
        parser.add_argument(
            "--shift-hours", type=float, default=8.0, help="Length of each shift in hours (8)."
        )
        parser.add_argument("--agents", type=int, default=8, help="Agents per team (8).")
        parser.add_argument("--seed", type=int, default=42, help="Random seed of the history.")

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity: int = options["verbosity"]
        if options["days"] < 0:
            raise CommandError("--days must be 0 or more")
        if options["agents"] < 1:
            raise CommandError("--agents must be at least 1")
        if not 0 < options["shift_hours"] <= 16:
            raise CommandError("--shift-hours must be more than 0 and at most 16")
        if options["if_empty"] and Team.objects.filter(name="North").exists():
            self.stdout.write("Demo data already present")
            return
        started = time.monotonic()
        roster = simulation.roster(options["agents"])
        shift = timedelta(hours=options["shift_hours"])
        with _quiet_publishing(self.stdout):
            with transaction.atomic():
                self._create_setup(roster)
            token = self._create_token()
            events = self._write_history(roster, options["days"], shift, options["seed"])
        self._summary(roster, events, token, time.monotonic() - started)

    # --- Set-up ------------------------------------------------------------------------------

    def _create_setup(self, roster: list[simulation.RosterEntry]) -> None:
        for entry in roster:
            services.provision_agent(entry.external_id, name=entry.name, team_name=entry.team)
        teams = {team.name: team for team in Team.objects.filter(name__in=simulation.TEAM_PROFILES)}
        for (team_name, channel), fields in DEMO_POLICIES.items():
            AcwPolicy.objects.update_or_create(
                team=teams[team_name], channel=channel, defaults=fields
            )
        for code in simulation.WRAP_UP_CODES:
            WrapUpCode.objects.update_or_create(
                code=code.code,
                defaults={
                    "label": code.label,
                    "expected_acw_seconds": code.expected_acw_seconds,
                    "active": True,
                },
            )
        for team_name, labels in CHECKLISTS.items():
            for position, label in enumerate(labels, start=1):
                ChecklistItem.objects.update_or_create(
                    team=teams[team_name], label=label, defaults={"position": position}
                )
        for user in DEMO_USERS:
            self._create_user(user)

    def _create_user(self, user: DemoUser) -> None:
        if user.role == "admin":
            User = get_user_model()
            admin = User.objects.filter(username=user.username).first()
            if admin is None:
                User.objects.create_superuser(user.username, "", DEMO_PASSWORD)
            else:
                admin.is_superuser = admin.is_staff = admin.is_active = True
                admin.set_password(DEMO_PASSWORD)
                admin.save()
            return
        # The same code path as an operator's `manage.py create_user`.
        options: dict[str, str] = {"role": user.role}
        if user.teams:
            options["teams"] = user.teams
        if user.agent:
            options["agent"] = user.agent
        with _environment(ACW_PASSWORD=DEMO_PASSWORD):
            call_command("create_user", user.username, stdout=self.stdout, **options)

    def _create_token(self) -> str:
        _, token = ApiToken.issue("demo")
        return token

    # --- History -----------------------------------------------------------------------------

    def _write_history(
        self, roster: list[simulation.RosterEntry], days: int, shift: timedelta, seed: int
    ) -> list[dict[str, Any]]:
        """Generate and ingest ``days`` shifts for the roster's agents that have no events yet."""
        external_ids = {entry.external_id for entry in roster}
        with_events = set(
            Event.objects.filter(agent__external_id__in=external_ids)
            .values_list("agent__external_id", flat=True)
            .distinct()
        )
        agents = [
            agent
            for agent in simulation.load_agents()
            if agent.external_id in external_ids and agent.external_id not in with_events
        ]
        if with_events:
            self.stdout.write(
                f"History kept for {len(with_events)} agents that already have events."
            )
        if not agents or days == 0:
            return []
        events = history_events(agents, days=days, shift=shift, seed=seed, now=timezone.now())
        self._ingest(events)
        return events

    def _ingest(self, events: list[dict[str, Any]]) -> None:
        rejected: list[services.IngestResult] = []
        with progress(self, self.verbosity, total=len(events), unit="event", desc="History") as bar:
            for index in range(0, len(events), BATCH_SIZE):
                batch = events[index : index + BATCH_SIZE]
                with transaction.atomic():
                    results = services.ingest_events(batch, source="seed")
                rejected.extend(r for r in results if r.status != "accepted")
                bar.update(len(batch))
        if rejected:
            first = rejected[0]
            raise CommandError(
                f"{len(rejected)} history events were not accepted; first: {first.event_id} "
                f"{first.status} {first.error or ''}"
            )

    # --- Output ------------------------------------------------------------------------------

    def _summary(
        self,
        roster: list[simulation.RosterEntry],
        events: list[dict[str, Any]],
        token: str,
        elapsed: float,
    ) -> None:
        teams = sorted({entry.team for entry in roster})
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data: {len(teams)} teams ({', '.join(teams)}), {len(roster)} agents, "
                f"{len(events)} history events, {Interaction.objects.count()} interactions, "
                f"{AcwSession.objects.count()} ACW sessions, in {elapsed:.1f} s."
            )
        )
        self.stdout.write(f"Logins (password {DEMO_PASSWORD!r}):")
        for user in DEMO_USERS:
            self.stdout.write(f"  {user.username:<6} {user.description}")
        self.stdout.write(f"API token 'demo' (shown once): {token}")


def history_events(
    agents: list[simulation.SimAgent],
    *,
    days: int,
    seed: int,
    now: datetime,
    shift: timedelta = SHIFT,
) -> list[dict[str, Any]]:
    """``days`` shifts per agent, the last one ending at ``now`` with everyone still logged in;
    earlier shifts end a day apart, each with a logout. Ordered by ``occurred_at``."""
    rng = random.Random(seed)
    policies = Policies.load().spec
    prefix = f"seed-{now:%Y%m%d%H%M%S}"
    events: list[dict[str, Any]] = []
    for day in range(days - 1, -1, -1):
        end = now - timedelta(days=day)
        events.extend(
            event
            for _, event in simulation.timeline(
                simulation.shift_agents(agents),
                rng,
                start=end - shift,
                end=end,
                policy_for=policies,
                id_prefix=f"{prefix}-d{day}",
                log_out_at_end=day > 0,
            )
        )
    return events


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _quiet_publishing(stdout: Any) -> Iterator[None]:
    """No wall is open while the demo is seeded: if Redis is down, say so once, not per event."""
    publisher = logging.getLogger("agents.events")
    level = publisher.level
    failures = events_module.publish_failures()
    publisher.setLevel(logging.ERROR)
    try:
        yield
    finally:
        publisher.setLevel(level)
        failed = events_module.publish_failures() - failures
        if failed:
            stdout.write(f"{failed} wall updates were not published (is Redis up?); walls resync.")
