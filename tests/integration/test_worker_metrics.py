"""A real Celery worker with ``WORKER_METRICS_PORT`` serves its task metrics itself."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bench.faults.stack import free_port, wait_for_port

from .conftest import _fresh_broker_connections, needs_postgresql, wait_for, worker_process

pytestmark = [
    needs_postgresql,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_a_worker_serves_the_run_times_of_its_tasks_on_its_metrics_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from acw_site.celery import app
    from reporting.tasks import compute_rollups_task

    port = free_port()
    samples = tmp_path / "metrics"
    samples.mkdir()
    # The worker subprocess inherits these (worker_process copies this environment).
    monkeypatch.setenv("WORKER_METRICS_PORT", str(port))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(samples))
    with worker_process(tmp_path / "worker.log", settings.REDIS_URL, name="metrics"):
        wait_for_port(port, 60)
        settings.CELERY_TASK_ALWAYS_EAGER = False
        app.conf.task_always_eager = False
        _fresh_broker_connections()
        compute_rollups_task.delay()
        line = 'acw_celery_task_seconds_count{task="reporting.tasks.compute_rollups_task"} 1.0'

        def served() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                return line in r.read().decode()

        wait_for(served, timeout=60, interval=0.5)
