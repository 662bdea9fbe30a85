"""``manage.py ingest_queue_log PATH [--follow]``: Asterisk's queue_log into the ingestion.

Reads from where the last run stopped (the position is kept in the database), so it can run
from cron or as a service with ``--follow`` (tails the file, survives log rotation). Ctrl-C or
SIGTERM stops after the current chunk of lines, which is committed with its position.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.services import read_queue_log


class Command(BaseCommand):
    help = "Ingest Asterisk's queue_log from the stored position; --follow keeps tailing it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="The queue_log file, e.g. /var/log/asterisk/queue_log")
        parser.add_argument(
            "--follow", action="store_true", help="Keep reading new lines until interrupted."
        )
        parser.add_argument(
            "--poll", type=float, default=0.5, help="Seconds between checks with --follow (0.5)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["poll"] <= 0:
            raise CommandError("--poll must be positive")
        self.stop = threading.Event()
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            run = read_queue_log(
                options["path"],
                follow=options["follow"],
                poll_seconds=options["poll"],
                stop=self.stop,
            )
        except OSError as exc:
            # Unreadable (permissions, a directory): say so plainly; the position is kept.
            raise CommandError(f"{options['path']}: {exc.strerror or exc}") from exc
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        self.stdout.write(
            f"{options['path']}: {run.lines} lines, {run.accepted} events accepted, "
            f"{run.duplicates} duplicates, {run.refused} refused, {run.rotations} rotations"
        )

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()
