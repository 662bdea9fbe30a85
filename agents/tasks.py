"""Celery tasks of the agents app: thin wrappers around ``agents.services``."""

from celery import shared_task
from django.db import OperationalError

from . import services


# Retried on OperationalError: a database restart or failover is transient; the row lock makes
# a retry (or a duplicate run with the sweep) harmless.
@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def expire_acw_task(agent_id: int) -> bool:
    """Close one agent's ACW at its deadline (scheduled with ``eta`` when the ACW starts)."""
    return services.expire_acw(agent_id)


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def expire_due_acws_task() -> int:
    """Safety-net sweep (beat): close every ACW whose deadline has passed."""
    return services.expire_due_acws()
