"""``manage.py purge_expired_data [--dry-run]``: apply ACW_RETENTION_DAYS now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

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
        bars: dict[str, tqdm] = {}
        # The raw stream: Django's wrapper would end every redraw of a bar with a newline.
        stream = self.stderr._out

        def on_agents(total: int) -> None:
            bars["agents"] = tqdm(total=total, unit="agent", desc="agents", file=stream)

        def progress(step: str, done: int) -> None:
            if step not in bars:
                bars[step] = tqdm(unit="row", desc=step, file=stream)
            bars[step].update(done)

        try:
            report = retention.purge_expired(
                dry_run=dry_run,
                batch_size=options["batch_size"],
                progress=progress,
                on_agents=on_agents,
            )
        finally:
            for bar in bars.values():
                bar.close()
        assert report is not None
        verb = "Would purge" if dry_run else "Purged"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {report.events} events of {report.agents} agents, "
                f"{report.notes} notes and {report.contact_ids} contact ids "
                f"older than {report.horizon:%Y-%m-%d %H:%M} "
                f"({retention.retention_days()} days)."
            )
        )
