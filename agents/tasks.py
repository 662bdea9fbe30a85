"""Celery tasks of the agents app: thin wrappers around ``agents.services``."""

from celery import shared_task
from django.db import OperationalError

from acw_site import locks

from . import retention, services

# Sent by name from the ingestion's timeout thread (agents.services).
EXPIRE_ACW_TASK = "agents.tasks.expire_acw_task"


# Retried on OperationalError: a database restart or failover is transient; the row lock makes
# a retry (or a duplicate run with the sweep) harmless.
@shared_task(
    name=EXPIRE_ACW_TASK, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5
)
def expire_acw_task(agent_id: int) -> bool:
    """Close one agent's ACW at its deadline (scheduled with ``eta`` when the ACW starts)."""
    return services.expire_acw(agent_id)


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def expire_due_acws_task() -> int:
    """Safety-net sweep (beat): close every ACW whose deadline has passed."""
    return services.expire_due_acws()


# Longer time limits than the site's default: the first purge after retention is switched on
# may delete millions of rows; the hard limit matches the lock's TTL.
@shared_task(
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=3300,
    time_limit=3600,
)
def purge_expired_data_task() -> int | None:
    """Nightly (beat): apply ACW_RETENTION_DAYS; returns the events deleted (None: off, or
    another run still holds the lock)."""
    with locks.exclusive("retention", ttl=3600) as held:
        if not held:
            return None
        report = retention.purge_expired()
        return report.events if report is not None else None
