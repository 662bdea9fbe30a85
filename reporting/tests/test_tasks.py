"""Beat schedules installed by migration, and the thin tasks around the services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django_celery_beat.models import PeriodicTask

from acw_site import locks
from agents.models import Agent
from reporting import tasks
from reporting.models import Grain, KpiRollup, TeamIntervalRollup

from .factories import call, ingest

pytestmark = pytest.mark.django_db


def test_default_schedules_are_installed_each_with_an_expiry() -> None:
    rows = {
        t.task: (
            t.interval.every if t.interval else None,
            t.crontab_id is not None,
            t.expire_seconds,
        )
        for t in PeriodicTask.objects.select_related("interval")
    }
    assert rows == {
        "agents.tasks.expire_due_acws_task": (5, False, 5),
        "reporting.tasks.evaluate_alerts_task": (10, False, 10),
        "reporting.tasks.compute_rollups_task": (60, False, 60),
        "reporting.tasks.close_day_task": (None, True, 3600),
        "agents.tasks.purge_expired_data_task": (None, True, 3600),
    }
    close = PeriodicTask.objects.get(task="reporting.tasks.close_day_task").crontab
    assert (close.minute, close.hour) == ("5", "0")


def test_the_rollup_task_rolls_up_and_skips_while_another_run_holds_the_lock(
    alice: Agent,
) -> None:
    ingest(*call("alice", "c1", datetime(2026, 11, 20, 12, tzinfo=UTC), talk=10, acw=1))
    with locks.exclusive("rollups", ttl=30) as held:
        assert held
        assert tasks.compute_rollups_task.delay().get() is None
        with locks.exclusive("rollups", ttl=30) as second:
            assert not second
    assert not KpiRollup.objects.exists()
    assert tasks.compute_rollups_task.delay().get() == 1
    assert KpiRollup.objects.filter(grain=Grain.DAY).count() == 1


def test_the_daily_close_task_recomputes_the_day_given(alice: Agent) -> None:
    day = datetime(2026, 11, 20, 12, tzinfo=UTC)
    ingest(*call("alice", "c1", day, talk=10, acw=1))
    assert tasks.close_day_task.delay("2026-11-20").get() == 1
    assert TeamIntervalRollup.objects.filter(bucket_start=day).exists()
    assert KpiRollup.objects.filter(
        grain=Grain.DAY, bucket_start=day - timedelta(hours=12)
    ).exists()


def test_the_alert_task_evaluates_alerts(alice: Agent) -> None:
    assert tasks.evaluate_alerts_task.delay().get() == 0
    with locks.exclusive("alerts", ttl=30):
        assert tasks.evaluate_alerts_task.delay().get() is None
