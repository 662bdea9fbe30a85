"""Shared set-up for benchmarks: Django on a throw-away database (never the site's own)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "acw_site.settings")
os.environ.setdefault("DEBUG", "1")

# ``make bench SHORT=1`` (BENCH_SHORT=1): every benchmark runs a small size, for a quick check.
SHORT = os.environ.get("BENCH_SHORT") == "1"


def size(full: int, short: int) -> int:
    """A default size knob: ``full``, or ``short`` under BENCH_SHORT=1."""
    return short if SHORT else full


def with_bench_database(run: Callable[[], Any]) -> Any:
    """Create a fresh test database (``test_<name>``), run, and drop it again."""
    import django

    django.setup()
    import logging

    # The benchmarks log their users in by the hundred: not one INFO line per login.
    logging.getLogger("axes").setLevel(logging.WARNING)
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    from acw_site.celery import app

    # Timeout tasks would go to a broker nobody consumes here; run them inline instead.
    app.conf.task_always_eager = True
    setup_test_environment()
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        return run()
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)
        teardown_test_environment()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
