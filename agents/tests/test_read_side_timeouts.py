"""The read side does not depend on the worker: an ACW past its deadline is shown timed out.

No worker runs here (and the timeout task scheduled at commit ran before the deadline, so it
changed nothing): the stored live state stays ``acw`` while the API, the wall snapshot and the
agent's own page already show what the timeout makes of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from rest_framework.test import APIClient

from agents import selectors, services
from agents.models import AcwPolicy, Agent, AgentState

pytestmark = pytest.mark.django_db

NOW = datetime.fromisoformat("2026-11-02T15:00:00+00:00")
ENDED = NOW - timedelta(seconds=10)  # the call ended 10 s ago: the default 30 s ACW runs
DEADLINE = ENDED + timedelta(seconds=30)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _send(agent: str, n: int, type_: str, at: datetime, **fields: Any) -> None:
    raw = {"event_id": f"rs-{agent}-{n}", "type": type_, "agent": agent,
           "occurred_at": at.isoformat(), **fields}  # fmt: skip
    assert services.ingest_event(raw).status == "accepted"


def _in_acw(agent: str) -> None:
    _send(agent, 1, "interaction.started", ENDED - timedelta(minutes=3), interaction_id="c",
          channel="phone")  # fmt: skip
    _send(agent, 2, "interaction.ended", ENDED, interaction_id="c")


def _row(api: APIClient, agent: str) -> dict[str, Any]:
    response = api.get("/api/v1/agents/state")
    assert response.status_code == 200
    return {row["agent"]: row for row in response.json()["agents"]}[agent]


def test_the_state_api_shows_an_overdue_acw_as_timed_out_at_its_deadline(
    api: APIClient, alice: Agent, clock: time_machine.Traveller
) -> None:
    _in_acw("alice")
    before = _row(api, "alice")
    assert before["state"] == "acw"
    assert datetime.fromisoformat(before["acw_deadline"]) == DEADLINE

    clock.move_to(DEADLINE + timedelta(seconds=152))  # the worker is down: nothing persisted
    assert AgentState.objects.get(agent=alice).state == "acw"
    row = _row(api, "alice")
    assert (row["state"], row["reason"], row["acw_deadline"]) == ("available", None, None)
    assert datetime.fromisoformat(row["since"]) == DEADLINE


def test_it_shows_the_policys_timeout_action(
    api: APIClient, alice: Agent, north: Any, clock: time_machine.Traveller
) -> None:
    AcwPolicy.objects.create(team=north, mode="timed", seconds=30, timeout_action="not_ready",
                             timeout_reason="missed_wrap_up")  # fmt: skip
    _in_acw("alice")
    assert _row(api, "alice")["acw_timeout"] == {"state": "not_ready", "reason": "missed_wrap_up"}

    clock.move_to(DEADLINE + timedelta(seconds=1))
    row = _row(api, "alice")
    assert (row["state"], row["reason"]) == ("not_ready", "missed_wrap_up")


def test_an_acw_before_its_deadline_is_shown_as_it_is(
    api: APIClient, alice: Agent, clock: time_machine.Traveller
) -> None:
    _in_acw("alice")
    _send("alice", 3, "acw.extended", NOW, seconds=30)
    clock.move_to(DEADLINE + timedelta(seconds=5))  # past the first deadline, not the extended
    row = _row(api, "alice")
    assert row["state"] == "acw"
    assert datetime.fromisoformat(row["acw_deadline"]) == DEADLINE + timedelta(seconds=30)
    assert row["acw_timeout"] == {"state": "available", "reason": None}


def test_the_wall_snapshot_shows_an_overdue_acw_as_timed_out(
    alice: Agent, bob: Agent, clock: time_machine.Traveller
) -> None:
    _in_acw("alice")
    _in_acw("bob")
    _send("bob", 3, "acw.ended", NOW)
    clock.move_to(DEADLINE + timedelta(seconds=60))
    snapshot = selectors.wall_snapshot({alice.team_id})
    agents = {row["agent"]: row for row in snapshot["agents"]}
    assert agents["alice"]["state"] == "available"
    assert datetime.fromisoformat(agents["alice"]["since"]) == DEADLINE
    # An ACW ended by the agent is what it is: available since it ended.
    assert datetime.fromisoformat(agents["bob"]["since"]) == NOW


def test_the_workers_write_later_shows_the_same_state(
    api: APIClient, alice: Agent, clock: time_machine.Traveller
) -> None:
    _in_acw("alice")
    clock.move_to(DEADLINE + timedelta(seconds=30))
    shown = _row(api, "alice")
    assert services.expire_acw(alice.pk) is True  # the worker catches up
    persisted = _row(api, "alice")
    assert {k: v for k, v in persisted.items() if k != "version"} == {
        k: v for k, v in shown.items() if k != "version"
    }
    assert persisted["version"] == shown["version"] + 1
