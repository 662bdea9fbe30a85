"""A Redis restart while the worker holds an ACW timer must not kill the worker.

Regression test for the worker's ``Unrecoverable error: AttributeError("'NoneType' object has no
attribute 'hostname'")`` in kombu's ``restore_unacked`` (acw_site/broker_recovery.py explains
the cause). The worker runs against a private ``redis-server`` that the test kills and starts
again; without the workaround the worker exits within a second of the restart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from acw_site.celery import app
from agents import services
from agents.models import AcwPolicy, AgentState
from agents.tests.factories import event
from bench.faults.stack import PrivateRedis

from .conftest import needs_postgresql, wait_for, worker_process

pytestmark = [
    needs_postgresql,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    # The ingestion's own scheduling runs inline (the suite's default); the timers under test
    # are sent to the private broker explicitly, which send_task warns about.
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    with PrivateRedis() as redis_server:
        yield redis_server


def _start_acw(agent: str, seconds: int) -> AgentState:
    """Put ``agent`` in a timed ACW of ``seconds`` (the site default policy, made shorter)."""
    AcwPolicy.objects.filter(team__isnull=True, channel="").update(seconds=seconds)
    cid = {"interaction_id": f"call-{agent}"}
    for raw in (
        event(agent, "interaction.started", 30, channel="phone", **cid),
        event(agent, "interaction.ended", 0, **cid),
    ):
        assert services.ingest_event(raw).status == "accepted"
    live = AgentState.objects.get(agent__external_id=agent)
    assert live.state == "acw"
    return live


def _send_timer(url: str, live: AgentState) -> None:
    """Schedule the agent's timeout on the private broker, as the ingestion does on commit."""
    with app.connection_for_write(url) as conn:
        app.send_task(
            "agents.tasks.expire_acw_task",
            args=[live.agent_id],
            eta=live.acw_deadline,
            expires=3600,
            connection=conn,
        )


def _wait_until_ready(worker, log: Path) -> None:  # type: ignore[no-untyped-def]
    give_up = time.monotonic() + 30
    while " ready." not in log.read_text():
        if worker.poll() is not None or time.monotonic() > give_up:
            raise AssertionError(f"the worker did not start:\n{log.read_text()}")
        time.sleep(0.1)


def test_the_worker_survives_a_redis_restart_with_a_pending_acw_timer(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    with worker_process(log, private_redis.url, name="restart") as worker:
        _wait_until_ready(worker, log)
        pending = _start_acw("alice", seconds=12)
        _send_timer(private_redis.url, pending)
        # The worker has received the timer and holds it, unacked, until its eta.
        wait_for(lambda: "expire_acw_task" in log.read_text() and "received" in log.read_text(), 10)

        for _ in range(2):  # the fault killed the worker 2 of 2 times
            private_redis.restart(down_seconds=1)
            time.sleep(3)
            assert worker.poll() is None, f"the worker died:\n{log.read_text()[-3000:]}"
        assert "Unrecoverable error" not in log.read_text()

        # It is still a working worker: a timer sent after the restarts runs at its deadline.
        fresh = _start_acw("bob", seconds=1)
        _send_timer(private_redis.url, fresh)
        wait_for(lambda: AgentState.objects.get(pk=fresh.pk).state == "available", 20)
        assert worker.poll() is None
