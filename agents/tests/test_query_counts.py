"""The wall's snapshot and the live-state API read a fixed number of queries, however many agents.

A snapshot is read on every wall connect and resync, from the consumer's one sync thread: one
query per agent (an N+1 through a missing ``select_related``) would slow every wall of a large
floor. Each test counts the queries for a small floor and for a floor three times larger, and
pins the number, so a change that adds a query per agent, or a query at all, shows up here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from agents import selectors, services
from agents.models import Agent, Team
from agents.tests.factories import event
from reporting.models import Alert, AlertKind

pytestmark = pytest.mark.django_db

SMALL, LARGE = 4, 12


def floor(size: int, acknowledged_by: Any) -> set[int]:
    """``size`` agents over two teams in every state, each with an alert; returns the teams."""
    teams = [Team.objects.get_or_create(name=name)[0] for name in ("North", "South")]
    now = timezone.now()
    for n in range(size):
        agent_id, team = f"q-{size}-{n}", teams[n % 2]
        services.provision_agent(agent_id, name=f"Agent {n}", team_name=team.name)
        steps = [
            [event(agent_id, "agent.logged_in", 60)],
            [event(agent_id, "interaction.started", 30, interaction_id=f"c-{n}", channel="chat")],
            [
                event(
                    agent_id, "interaction.started", 30, interaction_id=f"c-{n}", channel="phone"
                ),
                event(agent_id, "interaction.ended", 10, interaction_id=f"c-{n}"),
            ],
            [event(agent_id, "agent.not_ready", 20, reason="break")],
        ][n % 4]
        assert {services.ingest_event(e).status for e in steps} == {"accepted"}
        Alert.objects.create(
            kind=AlertKind.LONG_ACW,
            team=team,
            agent=Agent.objects.get(external_id=agent_id),
            opened_at=now - timedelta(seconds=n),
            updated_at=now,
            value=100,
            threshold=60,
            message="ACW longer than the threshold",
            status="acknowledged" if n % 2 else "open",
            acknowledged_by=acknowledged_by if n % 2 else None,
        )
    return {team.pk for team in teams}


def count_queries(read: Callable[[], Any]) -> int:
    with CaptureQueriesContext(connection) as captured:
        read()
    return len(captured.captured_queries)


def test_the_wall_snapshot_reads_three_queries_for_any_number_of_agents(
    supervisor_sam: Any, django_assert_num_queries: Any
) -> None:
    small = floor(SMALL, supervisor_sam)
    snapshot_small = count_queries(lambda: selectors.wall_snapshot(small))
    large = floor(LARGE, supervisor_sam)
    assert count_queries(lambda: selectors.wall_snapshot(large)) == snapshot_small
    # The agents with their teams, the ACW policies of those teams (tile colour points), then
    # the open alerts with their teams, agents and users.
    with django_assert_num_queries(3):
        snapshot = selectors.wall_snapshot(large)
    assert len(snapshot["agents"]) == SMALL + LARGE
    assert len(snapshot["alerts"]) == SMALL + LARGE


def test_the_agent_state_api_reads_four_queries_for_any_number_of_agents(
    api: APIClient, supervisor_sam: Any, django_assert_num_queries: Any
) -> None:
    def read() -> Any:
        return api.get("/api/v1/agents/state")

    read()  # the token's first use of the minute also records its last use (one UPDATE)
    floor(SMALL, supervisor_sam)
    small = count_queries(read)
    floor(LARGE, supervisor_sam)
    assert count_queries(read) == small
    # The token, the teams the caller may see, the agents with their teams, their ACW policies.
    with django_assert_num_queries(4):
        response = read()
    assert len(response.json()["agents"]) == SMALL + LARGE
