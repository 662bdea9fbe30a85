"""``manage.py purge_expired_data [--dry-run]``: apply ACW_RETENTION_DAYS now."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from acw_site.progress import progress
from agents import retention


class Command(BaseCommand):
    help = (
        "Delete raw events, ACW notes and contact ids older than ACW_RETENTION_DAYS days "
        "(interaction and ACW rows and the KPI rollups are kept). The nightly task does the "
        "same; this runs it now, with progress bars."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count what would be purged."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=retention.BATCH_SIZE,
            help="Rows per transaction (default %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if retention.horizon() is None:
            raise CommandError("retention is off: set ACW_RETENTION_DAYS to a number of days")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        dry_run: bool = options["dry_run"]
        verbosity = options["verbosity"]
        bars: dict[str, Any] = {}

        with ExitStack() as stack:

            def on_agents(total: int) -> None:
                bars["agents"] = stack.enter_context(
                    progress(self, verbosity, total=total, unit="agent", desc="agents")
                )

            def step_done(step: str, done: int) -> None:
                if step not in bars:
                    bars[step] = stack.enter_context(
                        progress(self, verbosity, unit="row", desc=step)
                    )
                bars[step].update(done)

            report = retention.purge_expired(
                dry_run=dry_run,
                batch_size=options["batch_size"],
                progress=step_done,
                on_agents=on_agents,
            )
        assert report is not None
        if not verbosity:
            return
        verb = "Would purge" if dry_run else "Purged"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {report.events} events of {report.agents} agents, "
                f"{report.notes} notes and {report.contact_ids} contact ids "
                f"older than {report.horizon:%Y-%m-%d %H:%M} "
                f"({retention.retention_days()} days)."
            )
        )
