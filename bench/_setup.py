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


def setup_bench_environment() -> None:
    """Django's test environment (the test client's host name, an in-memory mail outbox, DEBUG
    off as deployed) without its template instrumentation, which hands a copy of every rendered
    context to the test client: in a run of a few hundred page requests those copies were kept
    (2,200 rows of an overview page each), and every full garbage collection of the process
    walked them, up to 330 ms a collection by the end of a run, a tenth of the requests then
    taking twice as long. The pages are measured as a server renders them."""
    from django.template import Template
    from django.test.utils import _TestState, setup_test_environment

    setup_test_environment()
    Template._render = _TestState.saved_data.template_render  # type: ignore[method-assign]


def with_bench_database(run: Callable[[], Any]) -> Any:
    """Create a fresh test database (``test_<name>``), run, and drop it again."""
    import django

    django.setup()
    import logging

    # The benchmarks log their users in by the hundred: not one INFO line per login.
    logging.getLogger("axes").setLevel(logging.WARNING)
    from django.db import connection
    from django.test.utils import teardown_test_environment

    from acw_site.celery import app

    # Timeout tasks would go to a broker nobody consumes here; run them inline instead.
    app.conf.task_always_eager = True
    setup_bench_environment()
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        return run()
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)
        teardown_test_environment()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
