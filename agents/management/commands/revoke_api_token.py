"""``manage.py revoke_api_token PREFIX``: deactivate an integration token (audited)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from agents.models import ApiToken
from audit import log as audit
from audit.models import Action


class Command(BaseCommand):
    help = (
        "Revoke an integration token, named by its prefix (the first 8 characters, shown in "
        "admin) or by its name when only one active token has that name."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("token", help="The token's prefix (e.g. 'acw_Xy12') or its name.")

    def handle(self, *args: Any, **options: Any) -> None:
        key: str = options["token"]
        with transaction.atomic():
            matches = list(
                ApiToken.objects.select_for_update().filter(active=True, prefix=key)
            ) or list(ApiToken.objects.select_for_update().filter(active=True, name=key))
            if not matches:
                raise CommandError(f"no active token with prefix or name {key!r}")
            if len(matches) > 1:
                prefixes = ", ".join(sorted(row.prefix for row in matches))
                raise CommandError(f"{key!r} names {len(matches)} tokens; use a prefix: {prefixes}")
            row = matches[0]
            before = audit.snapshot(row)
            row.active = False
            row.save(update_fields=["active"])
            audit.record(
                Action.REVOKE_TOKEN,
                row,
                actor_label=audit.command_actor("revoke_api_token"),
                before=before,
                after=audit.snapshot(row),
            )
        self.stdout.write(self.style.SUCCESS(f"Revoked token {row.name!r} ({row.prefix}…)."))
