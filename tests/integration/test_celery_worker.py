"""End to end through a real Celery worker on Redis: rollups, alerts and ACW timeouts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from agents import services as agent_services
from agents.models import AcwPolicy, AcwSession, AgentState, Team
from agents.tests.factories import event
from reporting import tasks
from reporting.models import Alert, Grain, KpiRollup

from .conftest import needs_postgresql, wait_for

pytestmark = [
    needs_postgresql,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _event(type_: str, seconds_ago: float, **fields: object) -> dict:
    return event("iris", type_, seconds_ago, **fields)


def _call(channel: str = "phone") -> list[dict]:
    cid = {"interaction_id": f"call-{timezone.now().timestamp()}"}
    return [
        _event("interaction.started", 40, channel=channel, **cid),
        _event("interaction.ended", 0, **cid),
    ]


def test_the_worker_rolls_up_and_raises_an_alert(broker_tasks: Path) -> None:
    agent, _ = agent_services.provision_agent("iris", name="Iris Kovač", team_name="West")
    AcwPolicy.objects.create(
        team=Team.objects.get(name="West"), mode="manual", seconds=0, max_seconds=0,
        alert_acw_seconds=1,
    )  # fmt: skip
    assert [agent_services.ingest_event(e).status for e in _call()] == ["accepted"] * 2

    tasks.compute_rollups_task.delay()
    wait_for(lambda: KpiRollup.objects.filter(grain=Grain.DAY, agent=agent).exists(), 15)
    row = KpiRollup.objects.get(grain=Grain.DAY, agent=agent)
    assert (row.interactions, row.channel) == (1, "phone")
    assert row.talk_seconds == pytest.approx(40, abs=0.01)

    wait_for(lambda: AgentState.objects.filter(agent=agent, state="acw").exists(), 1)
    wait_for(lambda: (timezone.now() - AgentState.objects.get(agent=agent).acw_started_at)
             > timedelta(seconds=1.5), 5)  # fmt: skip
    tasks.evaluate_alerts_task.delay()
    wait_for(lambda: Alert.objects.filter(agent=agent, kind="long_acw").exists(), 15)
    alert = Alert.objects.get(agent=agent, kind="long_acw")
    assert (alert.status, alert.threshold) == ("open", 1)


def test_an_acw_times_out_in_real_time_at_its_deadline(broker_tasks: Path) -> None:
    agent, _ = agent_services.provision_agent("iris", name="Iris Kovač", team_name="West")
    AcwPolicy.objects.create(team=Team.objects.get(name="West"), seconds=2, max_seconds=300)
    assert [agent_services.ingest_event(e).status for e in _call()] == ["accepted"] * 2
    acw = AcwSession.objects.get(agent=agent)
    assert acw.deadline is not None and acw.ended_at is None

    # No beat here: only the task scheduled for the deadline when the ACW started closes it.
    def closed() -> bool:
        acw.refresh_from_db()
        return acw.ended_at is not None

    wait_for(closed, 10, interval=0.05)
    late = (timezone.now() - acw.deadline).total_seconds()
    print(f"ACW closed by the worker {late:.2f} s after its deadline")
    assert late < 5, f"closed {late:.2f} s after the deadline"
    assert "agents.tasks.expire_acw_task" in broker_tasks.read_text()
    assert (acw.end_reason, acw.ended_at) == ("timeout", acw.deadline)
    live = AgentState.objects.get(agent=agent)
    assert (live.state, live.since) == ("available", acw.deadline)
