"""``manage.py create_user USERNAME --role supervisor|manager|agent`` (docs/api.md, section 2)."""

from __future__ import annotations

import getpass
import os
import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from agents import events
from agents.access import MANAGERS, SUPERVISORS
from agents.models import Agent, Team
from audit import log as audit
from audit.models import Action

TEAM_NAME_MAX = Team._meta.get_field("name").max_length or 100


def _audit_snapshot(user: Any) -> dict[str, Any]:
    """The user's fields, roles and teams, and the agent linked to the login."""
    agent = Agent.objects.filter(user=user).first()
    return {**(audit.snapshot(user) or {}), "agent": str(agent) if agent is not None else None}


class Command(BaseCommand):
    help = (
        "Create or update a user in a role. The password comes from ACW_PASSWORD or the prompt. "
        "Supervisors are linked to --teams (created if new); agents to --agent (must exist). "
        "Re-running with another role replaces the old one."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=["supervisor", "manager", "agent"])
        parser.add_argument("--teams", default="", help='Comma-separated, e.g. "Team A,Team B".')
        parser.add_argument("--agent", default="", help="The agent's external id (role agent).")

    def handle(self, *args: Any, **options: Any) -> None:
        role: str = options["role"]
        username: str = options["username"]
        teams = [name.strip() for name in options["teams"].split(",") if name.strip()]
        agent = self._check(role, username, teams, options["agent"])
        password = os.environ.get("ACW_PASSWORD") or self._ask_password()

        with transaction.atomic():
            user, created = get_user_model().objects.get_or_create(username=username)
            before = None if created else _audit_snapshot(user)
            user.set_password(password)
            user.is_active = True
            user.save()
            # A re-run states the whole role: whatever the user was before is cleared first.
            supervisors, _ = Group.objects.get_or_create(name=SUPERVISORS)
            managers, _ = Group.objects.get_or_create(name=MANAGERS)
            user.groups.remove(supervisors, managers)
            user.supervised_teams.clear()
            others = Agent.objects.filter(user=user)
            if agent is not None:
                others = others.exclude(pk=agent.pk)
            others.update(user=None)
            if role == "supervisor":
                user.groups.add(supervisors)
                for name in teams:
                    team, _ = Team.objects.get_or_create(name=name)
                    team.supervisors.add(user)
            elif role == "manager":
                user.groups.add(managers)
            elif agent is not None:
                agent.user = user
                agent.save(update_fields=["user"])
            audit.record(
                Action.CREATE if created else Action.CHANGE,
                user,
                actor_label=audit.command_actor("create_user"),
                before=before,
                after=_audit_snapshot(user),
            )
            # A re-run may take teams or the wall away: the user's open walls re-check at once.
            events.recheck_rights_on_commit([user.pk])

        verb = "Created" if created else "Updated"
        if teams:
            detail = f" for teams {', '.join(teams)}"
        elif agent is not None:
            detail = f" linked to agent {agent.external_id}"
        else:
            detail = ""
        self.stdout.write(self.style.SUCCESS(f"{verb} {role} {user.username}{detail}."))

    def _check(self, role: str, username: str, teams: list[str], external_id: str) -> Agent | None:
        """Refuse inconsistent options before anything is written; return the agent to link."""
        try:
            get_user_model().username_validator(username)
        except ValidationError as exc:
            raise CommandError(f"username: {' '.join(exc.messages)}") from exc
        if role == "supervisor" and not teams:
            raise CommandError("--teams is required for a supervisor")
        if role != "supervisor" and teams:
            raise CommandError("--teams only applies to supervisors")
        too_long = [name for name in teams if len(name) > TEAM_NAME_MAX]
        if too_long:
            raise CommandError(
                f"--teams: {too_long[0]!r} is longer than {TEAM_NAME_MAX} characters"
            )
        if role == "agent" and not external_id:
            raise CommandError("--agent is required for an agent user")
        if role != "agent" and external_id:
            raise CommandError("--agent only applies to agent users")
        if role != "agent":
            return None
        agent = Agent.objects.filter(external_id=external_id).first()
        if agent is None:
            raise CommandError(f"no agent with external id {external_id!r}")
        return agent

    def _ask_password(self) -> str:
        if not sys.stdin.isatty():
            raise CommandError("set ACW_PASSWORD or run interactively to enter a password")
        first = getpass.getpass("Password: ")
        if not first:
            raise CommandError("the password must not be empty")
        if getpass.getpass("Password (again): ") != first:
            raise CommandError("the passwords do not match")
        return first
