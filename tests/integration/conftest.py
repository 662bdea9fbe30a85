"""A real Celery worker on the real broker, against the pytest test database.

The worker is a subprocess (``celery -A acw_site worker``) with the test run's environment, its
DATABASE_URL pointed at the test database. Tests using it must be
``django_db(transaction=True)`` (the worker cannot see a test's uncommitted rows) and send to
the broker instead of running tasks inline (``broker_tasks``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)

needs_postgresql = pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="a worker process can reach the test database only on PostgreSQL",
)


def _test_database_url() -> str:
    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def _fresh_broker_connections() -> None:
    """Drop pooled broker connections and producers another test may have left pointing at
    a different broker (``app.close()`` alone keeps the producer pool of the old one)."""
    from acw_site.celery import app

    app.close()
    app.amqp._producer_pool = None


@contextlib.contextmanager
def worker_process(
    log: Path, redis_url: str, *, name: str = "pytest"
) -> Iterator[subprocess.Popen]:
    """A Celery worker subprocess on ``redis_url`` and the test database, stopped on exit."""
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": redis_url,
        "DEBUG": "1",
    }
    with log.open("w") as out:
        worker = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "acw_site", "worker",
                "--pool=threads", "--concurrency=4", "--loglevel=INFO",
                "--without-gossip", "--without-mingle", "-n", f"{name}-{os.getpid()}@%h",
            ],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


@pytest.fixture(scope="module")
def celery_worker(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """Start one worker for the module's tests; yields its log file."""
    from acw_site.celery import app

    log = tmp_path_factory.mktemp("celery") / "worker.log"
    # Tasks left on the broker by an earlier, interrupted run must not run against this one.
    _fresh_broker_connections()
    app.control.purge()
    with worker_process(log, settings.REDIS_URL) as worker:
        give_up = time.monotonic() + 30
        while not app.control.ping(timeout=0.5):
            if worker.poll() is not None or time.monotonic() > give_up:
                raise RuntimeError(f"the Celery worker did not start:\n{log.read_text()}")
        yield log


@pytest.fixture
def broker_tasks(settings: Any, celery_worker: Path) -> Path:
    """Send tasks to the worker instead of running them inline (the suite's default)."""
    from acw_site.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    _fresh_broker_connections()
    return celery_worker


def wait_for(condition: Any, timeout: float, interval: float = 0.1) -> float:
    """Poll until ``condition()`` is truthy; returns the seconds waited (fails on timeout)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - started
