"""``manage.py rebuild_rollups [--from DATE]``: recompute the KPI rollups from the raw rows."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from acw_site import locks
from reporting import rollups
from reporting.queries import site_today


class Command(BaseCommand):
    help = (
        "Recompute the KPI rollups (15-minute, daily and monthly) day by day from the raw interactions "
        "and ACWs, from --from (default: the first day with activity) to today."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from",
            dest="first",
            type=date.fromisoformat,
            help="First site day to rebuild, YYYY-MM-DD (default: the first day with activity).",
        )

    def handle(self, *args: Any, first: date | None = None, **options: Any) -> None:
        first = first or rollups.first_activity_day()
        today = site_today()
        if first is None:
            self.stdout.write("No interactions yet: nothing to rebuild.")
            return
        if first > today:
            raise CommandError("--from: must not be after today")
        days = [first + timedelta(days=n) for n in range((today - first).days + 1)]
        rows = 0
        progress = tqdm(days, unit="day", disable=options["verbosity"] == 0, file=self.stderr)
        for day in progress:
            progress.set_postfix_str(day.isoformat())
            # One day at a time under the rollup lock: the minute run waits at most a day's work.
            with locks.exclusive("rollups", ttl=600, wait=120) as held:
                if not held:
                    raise CommandError("another rollup run has held the lock for 2 minutes")
                # A month's rows are sums of its days: rebuilt once its last day is done.
                last_of_month = day == days[-1] or (day + timedelta(days=1)).day == 1
                rows += rollups.rebuild_day(day, month=last_of_month)
        self.stdout.write(
            self.style.SUCCESS(f"Rebuilt {len(days)} day(s): {rows} 15-minute rollup rows.")
        )
