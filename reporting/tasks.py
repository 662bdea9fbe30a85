"""Celery tasks of reporting: thin wrappers around ``reporting.rollups`` and ``reporting.alerts``, run by beat.

Each periodic body runs under a Redis lock (``acw_site.locks``), so a run that takes longer
than its interval is skipped rather than overlapped. The schedules live in django-celery-beat's
tables (defaults from migration ``0002_default_schedules``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import redis
from celery import shared_task
from django.db import InterfaceError, OperationalError

from acw_site import locks

from . import alerts, rollups

# Transient: a database restart or failover (OperationalError, InterfaceError on a dropped
# connection) and a Redis restart (ConnectionError, TimeoutError on the lock). Every body is
# idempotent, so a retry after a partial run is harmless.
TRANSIENT = (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError)


@shared_task(autoretry_for=TRANSIENT, retry_backoff=True, max_retries=3)
def compute_rollups_task() -> int | None:
    """Every minute: recompute the dirty rollup intervals (None: the previous run still runs)."""
    with locks.exclusive("rollups", ttl=600) as held:
        return rollups.compute_rollups() if held else None


@shared_task(bind=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=10)
def close_day_task(self: Any, day: str | None = None) -> int:
    """After midnight: recompute yesterday's rollups (``day``: YYYY-MM-DD, default yesterday)."""
    with locks.exclusive("rollups", ttl=600) as held:
        if not held:
            # A minute rollup is running: unlike it, the daily close must not be skipped.
            raise self.retry(countdown=30)
        return rollups.close_day(date.fromisoformat(day) if day else None)


@shared_task(autoretry_for=TRANSIENT, retry_backoff=True, max_retries=2)
def evaluate_alerts_task() -> int | None:
    """Every 10 s: open, update and resolve alerts; returns how many changed."""
    with locks.exclusive("alerts", ttl=120) as held:
        if not held:
            return None
        changes = alerts.evaluate_alerts()
        return len(changes.opened) + len(changes.updated) + len(changes.resolved)
