"""``GET /api/v1/kpis`` reads a fixed number of queries, however many agents have KPIs.

Counted for a small floor and for one three times larger, with and without rollups computed,
and pinned, so that a query per row (an N+1) or any new query shows up here.
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

from agents import services
from reporting.rollups import compute_rollups

from .factories import call, ingest

pytestmark = pytest.mark.django_db

SMALL, LARGE = 3, 9


def calls(size: int) -> None:
    """``size`` agents over two teams, each with a call ended an hour ago and one in ACW now."""
    now = timezone.now()
    for n in range(size):
        agent = f"k-{size}-{n}"
        services.provision_agent(agent, name=f"Agent {n}", team_name=("North", "South")[n % 2])
        done = call(agent, f"{agent}-1", now - timedelta(hours=1), talk=120, acw=30)
        open_acw = call(agent, f"{agent}-2", now - timedelta(minutes=3), talk=60, acw=None)
        assert set(ingest(*done, *open_acw)) == {"accepted"}


def count_queries(read: Callable[[], Any]) -> int:
    with CaptureQueriesContext(connection) as captured:
        read()
    return len(captured.captured_queries)


@pytest.mark.parametrize("group_by", ["agent", "team"])
@pytest.mark.parametrize("rolled_up", [False, True], ids=["raw", "rolled-up"])
def test_the_kpi_api_reads_a_fixed_number_of_queries(
    api: APIClient, django_assert_num_queries: Any, group_by: str, rolled_up: bool
) -> None:
    today = timezone.localdate()
    query = {"group_by": group_by, "from": str(today - timedelta(days=1)), "to": str(today)}

    def read() -> Any:
        return api.get("/api/v1/kpis", query)

    read()  # the token's first use of the minute also records its last use (one UPDATE)
    calls(SMALL)
    if rolled_up:
        compute_rollups()
    small = count_queries(read)
    calls(LARGE)
    if rolled_up:
        compute_rollups()
    assert count_queries(read) == small
    # The token, the teams the caller may see, the codes' admin norms (the learned ones are
    # cached), then kpi_rows per group and code: which reads it makes depends on which
    # intervals are rolled up or dirty, never on how many agents or rows there are.
    with django_assert_num_queries(small):
        response = read()
    assert response.status_code == 200
    rows = response.json()["rows"]
    assert len(rows) == (SMALL + LARGE if group_by == "agent" else 2)
    # Every KPI read asks which buckets lag (StaleBucket) and reads the wrap-up codes' norms
    # (the ACW index); a team grouping reads the team rollups, and the agent rows of dirty
    # buckets.
    pins = {"agent": (7, 8), "team": (7, 9)}[group_by]
    assert small == (pins[0] if rolled_up else pins[1])
