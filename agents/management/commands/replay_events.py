"""``manage.py replay_events [--agent EXTERNAL_ID]``: rebuild projections from the event log."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from acw_site.progress import progress
from agents import services
from agents.models import Agent
from agents.policies import Policies


class Command(BaseCommand):
    help = (
        "Rebuild interactions, holds, ACW sessions and live states from the stored events, "
        "with the current state machine and ACW policies."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--agent", help="Only this agent (external id).")

    def handle(self, *args: Any, **options: Any) -> None:
        agents = Agent.objects.order_by("pk")
        if options["agent"]:
            agents = agents.filter(external_id=options["agent"])
            if not agents.exists():
                raise CommandError(f"no agent with external id {options['agent']!r}")
        policies = Policies.load()
        total = 0
        agent_ids = list(agents.values_list("pk", flat=True))
        verbosity = options["verbosity"]
        with progress(self, verbosity, total=len(agent_ids), unit="agent", desc="Replay") as bar:
            for agent_id in agent_ids:
                total += services.replay_agent(agent_id, policies)
                bar.update(1)
        if verbosity:
            self.stdout.write(self.style.SUCCESS(f"Replayed {total} events."))
