"""What the Celery processes report about themselves: heartbeats for ``/healthz`` and task
metrics for ``/metrics``. Connected by ``acw_site.celery`` (every worker and beat process).

- Beat records a heartbeat when it starts and whenever it sends a task (the ACW-timeout sweep
  every 5 s, so a live beat is never more than a few seconds old).
- A worker records one when it is ready and every ``health.HEARTBEAT_SECONDS`` from a thread,
  and removes it when it stops cleanly.
- Every task's run time and failures go to ``acw_site.metrics``. Tasks run in the worker's pool
  processes: set ``PROMETHEUS_MULTIPROC_DIR`` for the worker too, so their samples are kept;
  ``WORKER_METRICS_PORT`` makes the worker serve them itself (docs/operations.md).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery import signals

from . import metrics

logger = logging.getLogger(__name__)

_started: dict[str, float] = {}  # task id -> perf_counter at its start (this pool process)
_in_beat = False


def _health() -> Any:
    # Imported when first used: this module loads with the Celery app, before Django is set up.
    from . import health

    return health


@signals.beat_init.connect
@signals.beat_embedded_init.connect
def _beat_started(**kwargs: Any) -> None:
    global _in_beat
    _in_beat = True
    _health().record_beat()


@signals.before_task_publish.connect
def _beat_sent_a_task(**kwargs: Any) -> None:
    if _in_beat:
        _health().record_beat()


@signals.worker_ready.connect
def _worker_ready(sender: Any = None, **kwargs: Any) -> None:
    hostname = getattr(sender, "hostname", None) or f"worker-{os.getpid()}"
    _health().start_worker_heartbeat(hostname)
    port = os.environ.get("WORKER_METRICS_PORT", "").strip()
    if port:
        from prometheus_client import start_http_server

        start_http_server(int(port), registry=metrics.registry())
        logger.info("serving the worker's metrics on port %s", port)


@signals.worker_shutdown.connect
def _worker_stopped(sender: Any = None, **kwargs: Any) -> None:
    hostname = getattr(sender, "hostname", None)
    if hostname:
        _health().forget_worker(hostname)


@signals.task_prerun.connect
def _task_started(task_id: str | None = None, **kwargs: Any) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_finished(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    started = _started.pop(task_id, None) if task_id else None
    if started is not None and task is not None:
        metrics.TASK_SECONDS.labels(task.name).observe(time.perf_counter() - started)


@signals.task_failure.connect
def _task_failed(sender: Any = None, **kwargs: Any) -> None:
    metrics.TASK_FAILURES.labels(getattr(sender, "name", "unknown")).inc()
