"""Prometheus metrics: every metric of the site is defined here, and served by ``GET /metrics``.

The rest of the code records with one-line calls (``metrics.WALL_FRAMES.labels(...).inc()``,
``@metrics.observe_ingest``). Several server processes (uvicorn ``--workers``) and Celery's pool
processes each count in their own memory; with ``PROMETHEUS_MULTIPROC_DIR`` set (before the
process starts) they write their samples to files in that directory instead, and ``/metrics``
adds up every process's files (prometheus-client's multiprocess mode, docs/operations.md).
Gauges that describe the database (open alerts, rollup lag) are read when scraped.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger(__name__)

# --- Ingestion ------------------------------------------------------------------------------

EVENTS = Counter(
    "acw_events",
    "Events offered for ingestion, by source (api, connect, twilio, asterisk, wall, agent_page, "
    "simulator, seed) and result (accepted, duplicate, conflict, rejected).",
    ["source", "status"],
)
INGEST_SECONDS = Histogram(
    "acw_ingest_seconds",
    "Time to validate, store and apply one call of ingest_event / ingest_events (a batch of "
    "up to 1000 events is one observation), by source.",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REPLAYED_EVENTS = Counter(
    "acw_replayed_events",
    "Stored events re-applied because a late event arrived before them (a replay stops where "
    "the re-applied history equals the stored one).",
)

# --- The wall -------------------------------------------------------------------------------

WALL_CONNECTIONS = Gauge(
    "acw_wall_connections",
    "Open wall WebSockets (all web processes).",
    multiprocess_mode="livesum",
)
WALL_FRAMES = Counter(
    "acw_wall_frames",
    "Frames sent to walls, by frame type (snapshot, agent, agents, alert, ...).",
    ["type"],
)
WALL_RESYNCS = Counter(
    "acw_wall_resyncs",
    "Fresh snapshots sent to an open wall (after a lost message or a change of rights).",
)
PUBLISH_FAILURES = Counter(
    "acw_publish_failures",
    "Wall updates that could not be published (Redis down); the walls resync.",
)

# --- Celery ---------------------------------------------------------------------------------

TASK_SECONDS = Histogram(
    "acw_celery_task_seconds",
    "Run time of Celery tasks, by task name.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
)
TASK_FAILURES = Counter(
    "acw_celery_task_failures",
    "Celery tasks that failed for good (after their retries; at the soft time limit too), "
    "by task name.",
    ["task"],
)


def observe_ingest(function: F) -> F:
    """Count the results of an ingestion function by source and status, and time the call.

    ``function`` takes a keyword-only ``source`` argument and returns an ``IngestResult`` or a
    list of them. Keyword-only, so that the call's keywords name it: binding the call to the
    signature cost more than the rest of the wrapper on every event.
    """
    parameter = inspect.signature(function).parameters["source"]
    if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
        raise TypeError(f"{function.__qualname__}: source must be a keyword-only argument")
    default = parameter.default

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        source = str(kwargs.get("source", default))
        started = time.perf_counter()
        outcome = function(*args, **kwargs)
        INGEST_SECONDS.labels(source).observe(time.perf_counter() - started)
        for result in outcome if isinstance(outcome, list) else [outcome]:
            EVENTS.labels(source, result.status).inc()
        return outcome

    return wrapper  # type: ignore[return-value]


# --- Read when scraped ----------------------------------------------------------------------


class DatabaseCollector(Collector):
    """Open alerts and rollup lag, read from the database at each scrape.

    Lag: seconds since the oldest dirty interval still waiting for ``compute_rollups`` was
    marked (0 when none waits). A healthy worker keeps it under about a minute.
    """

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db import InterfaceError, OperationalError

        try:
            yield from self._read()
        except (OperationalError, InterfaceError):
            # The database is down: the processes' own metrics are still served (that is when
            # they matter most); /healthz names the outage.
            logger.warning("metrics: database gauges skipped, the database is unreachable")

    def _read(self) -> Iterator[GaugeMetricFamily]:
        from django.db.models import Count, Min
        from django.utils import timezone

        from reporting.models import Alert, AlertStatus, DirtyInterval

        alerts = GaugeMetricFamily(
            "acw_alerts_open", "Alerts not resolved yet, by status.", labels=["status"]
        )
        counts = dict(
            Alert.objects.exclude(status=AlertStatus.RESOLVED)
            .values_list("status")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for status in (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED):
            alerts.add_metric([status.value], counts.get(status.value, 0))
        yield alerts
        oldest: datetime | None = DirtyInterval.objects.aggregate(oldest=Min("marked_at"))["oldest"]
        lag = (timezone.now() - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "acw_rollup_lag_seconds",
            "Age of the oldest change not yet rolled up into the KPI rollups.",
            value=max(lag, 0.0),
        )


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def registry(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """What to expose: every process's samples in multiprocess mode, else this process's."""
    if multiprocess_dir():
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
    else:
        merged = CollectorRegistry()
        merged.register(_Proxy(REGISTRY))
    for collector in extra:
        merged.register(collector)
    return merged


class _Proxy(Collector):
    """Exposes the default registry's metrics inside another registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Any]:
        return iter(self.source.collect())


def exposition(extra: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """The Prometheus text exposition and its content type."""
    return generate_latest(registry(extra)), CONTENT_TYPE_LATEST
