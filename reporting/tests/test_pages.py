"""The KPI page: the visible teams' KPIs for a period, from the same kpi_rows as the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from agents.models import Agent

from .factories import call, ingest

pytestmark = pytest.mark.django_db


def test_the_kpi_page_shows_the_supervisors_teams_only(
    client: Client, supervisor_sam: Any, alice: Agent, carol: Agent
) -> None:
    start = timezone.now() - timedelta(minutes=20)
    ingest(*call("alice", "a", start, talk=100, acw=20), *call("carol", "c", start, talk=5, acw=1))
    client.force_login(supervisor_sam)
    page = client.get("/kpis/").content.decode()
    assert "Alice Martin" in page and "Carol Dubois" not in page
    assert "100 s" in page and "20 s" in page


def test_the_kpi_page_rejects_a_bad_period(client: Client, manager_maria: Any) -> None:
    client.force_login(manager_maria)
    response = client.get("/kpis/?from=2026-11-20&to=2026-11-01")
    assert response.status_code == 400
    assert b"must not be after" in response.content


def test_agent_users_may_not_see_kpis(client: Client, agent_user_alice: Any) -> None:
    client.force_login(agent_user_alice)
    assert client.get("/kpis/").status_code == 403


def test_the_total_row_uses_the_kpi_formulas_on_the_sums(
    client: Client, manager_maria: Any, alice: Agent, bob: Agent
) -> None:
    start = timezone.now() - timedelta(minutes=20)
    ingest(*call("alice", "a", start, talk=100, acw=20), *call("bob", "b", start, talk=50, acw=10))
    client.force_login(manager_maria)
    page = client.get("/kpis/").content.decode()
    footer = page[page.index("<tfoot>") : page.index("</tfoot>")]
    # Avg ACW = 30 / 2 = 15; AHT = (150 + 30) / 2 = 90; ACW share = 30 / 180 = 17 %.
    assert "15.0 s" in footer and "90.0 s" in footer and "17 %" in footer
