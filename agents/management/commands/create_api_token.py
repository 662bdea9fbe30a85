"""``manage.py create_api_token NAME``: print a new integration token on the last line."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from agents.models import ApiToken
from audit import log as audit
from audit.models import Action


class Command(BaseCommand):
    help = "Create an integration token for the event API. Only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="What the token is for, e.g. 'telephony'.")

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            row, token = ApiToken.issue(options["name"])
            audit.record(
                Action.CREATE,
                row,
                actor_label=audit.command_actor("create_api_token"),
                after=audit.snapshot(row),
            )
        self.stderr.write(f"Token {row.name!r} created; it is shown only once:")
        self.stdout.write(token)
