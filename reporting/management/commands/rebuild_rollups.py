"""``manage.py rebuild_rollups [--from DATE]``: recompute the KPI rollups from the raw rows."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from acw_site import locks
from reporting import rollups
from reporting.queries import site_month_bounds, site_today


def month_chunks(first: date, last: date) -> list[tuple[date, date]]:
    """The site days ``first`` to ``last`` cut at month ends (a month's rows are then summed
    once, from all its days)."""
    chunks = []
    day = first
    while day <= last:
        month_last = site_month_bounds(day)[1].date() - timedelta(days=1)
        chunks.append((day, min(last, month_last)))
        day = chunks[-1][1] + timedelta(days=1)
    return chunks


class Command(BaseCommand):
    help = (
        "Recompute the KPI rollups (15-minute, daily, weekly and monthly, per agent and per team) from "
        "the raw interactions and ACWs: all of them at once (into fresh tables, swapped in), or "
        "from --from to today a month at a time."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from",
            dest="first",
            type=date.fromisoformat,
            help="First site day to rebuild, YYYY-MM-DD (default: the first day with activity).",
        )

    def handle(self, *args: Any, first: date | None = None, **options: Any) -> None:
        start = rollups.first_activity_day()
        today = site_today()
        if start is None:
            self.stdout.write("No interactions yet: nothing to rebuild.")
            return
        if first is not None and first > today:
            raise CommandError("--from: must not be after today")
        began = time.perf_counter()
        if first is None or first <= start:
            rows = self._everything()
        else:
            rows = self._by_month(first, today, options["verbosity"])
        first = min(first or start, start)
        days = (today - first).days + 1
        self.stdout.write(
            self.style.SUCCESS(
                f"Rebuilt {days} day(s) from {first} to {today}: {rows} agent day rollup rows "
                f"in {time.perf_counter() - began:.1f} s."
            )
        )

    def _everything(self) -> int:
        """Every day with activity at once, into fresh tables filled on two database
        connections (``rollups.rebuild_all``): the minute run waits for it, as it would for the
        months one after the other (it must: what it wrote into the old tables meanwhile would
        be dropped with them)."""
        with locks.exclusive("rollups", ttl=3600, wait=120) as held:
            if not held:
                raise CommandError("another rollup run has held the lock for 2 minutes")
            return rollups.rebuild_all()

    def _by_month(self, first: date, today: date, verbosity: int) -> int:
        """Part of the history, rewritten in place a month at a time."""
        rows = 0
        chunks = month_chunks(first, today)
        # A bar on a terminal; nothing but the summary line in a pipe or a log.
        quiet = verbosity == 0 or not self.stderr.isatty()
        progress = tqdm(chunks, unit="month", disable=quiet, file=self.stderr)
        for chunk_first, chunk_last in progress:
            progress.set_postfix_str(f"{chunk_first:%Y-%m}")
            # A month at a time under the rollup lock: the minute run waits at most that long.
            with locks.exclusive("rollups", ttl=600, wait=120) as held:
                if not held:
                    raise CommandError("another rollup run has held the lock for 2 minutes")
                rows += rollups.rebuild_range(chunk_first, chunk_last)
        return rows
