"""``manage.py create_user USERNAME --role supervisor|manager|agent`` (contract §2)."""

import getpass
import os
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from agents.access import MANAGERS, SUPERVISORS
from agents.models import Agent, Team


class Command(BaseCommand):
    help = (
        "Create or update a user in a role. The password comes from ACW_PASSWORD or the prompt. "
        "Supervisors are linked to --teams (created if new); agents to --agent (must exist)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=["supervisor", "manager", "agent"])
        parser.add_argument("--teams", default="", help='Comma-separated, e.g. "Team A,Team B".')
        parser.add_argument("--agent", default="", help="The agent's external id (role agent).")

    def handle(self, *args: Any, **options: Any) -> None:
        role = options["role"]
        teams = [name.strip() for name in options["teams"].split(",") if name.strip()]
        if role == "supervisor" and not teams:
            raise CommandError("--teams is required for a supervisor")
        if role != "supervisor" and teams:
            raise CommandError("--teams only applies to supervisors")
        if role == "agent" and not options["agent"]:
            raise CommandError("--agent is required for an agent user")
        if role != "agent" and options["agent"]:
            raise CommandError("--agent only applies to agent users")
        agent = None
        if role == "agent":
            agent = Agent.objects.filter(external_id=options["agent"]).first()
            if agent is None:
                raise CommandError(f"no agent with external id {options['agent']!r}")
        password = os.environ.get("ACW_PASSWORD") or self._ask_password()

        User = get_user_model()
        with transaction.atomic():
            user, created = User.objects.get_or_create(username=options["username"])
            user.set_password(password)
            user.is_active = True
            user.save()
            supervisors, _ = Group.objects.get_or_create(name=SUPERVISORS)
            managers, _ = Group.objects.get_or_create(name=MANAGERS)
            user.groups.remove(supervisors, managers)
            user.supervised_teams.clear()
            if role == "supervisor":
                user.groups.add(supervisors)
                for name in teams:
                    team, _ = Team.objects.get_or_create(name=name)
                    team.supervisors.add(user)
            elif role == "manager":
                user.groups.add(managers)
            elif agent is not None:
                Agent.objects.filter(user=user).exclude(pk=agent.pk).update(user=None)
                agent.user = user
                agent.save(update_fields=["user"])
        verb = "Created" if created else "Updated"
        detail = (
            f" for teams {', '.join(teams)}"
            if teams
            else (f" linked to agent {agent.external_id}" if agent else "")
        )
        self.stdout.write(self.style.SUCCESS(f"{verb} {role} {user.username}{detail}."))

    def _ask_password(self) -> str:
        if not os.isatty(0):
            raise CommandError("set ACW_PASSWORD or run interactively to enter a password")
        first = getpass.getpass("Password: ")
        if not first:
            raise CommandError("the password must not be empty")
        if getpass.getpass("Password (again): ") != first:
            raise CommandError("the passwords do not match")
        return first
