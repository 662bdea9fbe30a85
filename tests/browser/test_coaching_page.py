"""The coaching page in chromium, as a manager and as a supervisor, against its API.

With ``ACW_SCREENSHOTS=1`` the screenshot goes to ``docs/screenshots/``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from agents.models import AcwPolicy, Agent, ChecklistItem, Team
from reporting.rollups import compute_rollups
from reporting.tests.factories import ingest

from .support import Server, event, log_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LAPTOP = (1366, 768)
PERIOD = "period=last_7_days"


def _short_acws(agent: str, ticked: list[int]) -> list[dict[str, Any]]:
    """60 calls of 60 s, each followed by 5 s of ACW (under the 10 s minimum): with the
    history's 14 calls a day, over a third of the week's ACWs."""
    events = []
    for i in range(60):
        start = 9500 - 150 * i
        cid = f"short-{agent}-{i}"
        events += [
            event(agent, "interaction.started", start, interaction_id=cid, channel="phone"),
            event(agent, "interaction.ended", start - 60, interaction_id=cid),
            event(agent, "acw.ended", start - 65, checklist=ticked if i % 4 == 0 else []),
        ]
    return events


@pytest.fixture
def floor(supervisor_sam: Any, manager_maria: Any, live_server_up: Server) -> Any:
    """Two teams of four agents with ten days of history, and one agent per team whose ACWs
    of today are all too short. Sam supervises the first team only."""
    AcwPolicy.objects.filter(team=None, channel="").update(min_seconds=10)
    call_command(
        "seed_history",
        agents=8,
        days=10,
        team_size=4,
        calls=14,
        prefix="kpi",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    Agent.objects.filter(external_id="kpi-0001").update(name="Alice Martin")
    Agent.objects.filter(external_id="kpi-0005").update(name="Eli Fischer")
    mine = Team.objects.get(name="Kpi 01")
    mine.supervisors.add(supervisor_sam)
    crm = ChecklistItem.objects.create(label="Update the CRM record")
    ChecklistItem.objects.create(label="Document the call", position=1)
    # Through ingest_event in this process (the server reads the same database): 360 events
    # over HTTP could outlast the client's timeout on a busy machine.
    ingest(*_short_acws("kpi-0001", [crm.pk]), *_short_acws("kpi-0005", []))
    compute_rollups()
    return {"mine": mine}


def _entries(page: Any, server: Server, filters: str = "") -> dict[str, Any]:
    """The API's entries for the period the page shows (and ``filters``, a query string)."""
    first = page.input_value("input[name=from]")
    last = page.input_value("input[name=to]")
    response = page.request.get(f"{server.url}/api/v1/coaching?from={first}&to={last}&{filters}")
    assert response.ok, response.text()
    return {e["agent"]: e for e in response.json()["entries"]}


def test_a_manager_reads_the_coaching_list_of_every_team(
    live_server_up: Server, new_page: Any, floor: dict[str, Any], shots: Path
) -> None:
    server = live_server_up
    page = new_page(*LAPTOP)
    log_in(page, server, "maria", "pw-maria", then=f"/kpis/coaching/?{PERIOD}")
    table = page.inner_text("#coaching-table")
    assert "Alice Martin" in table and "Eli Fischer" in table
    # The page says why, with the API's numbers.
    alice = page.locator('#coaching-table tr[data-key="kpi-0001"]')
    reason = alice.locator('[data-reason="too_short"]').inner_text()
    api = _entries(page, server)["kpi-0001"]
    assert "too_short" in [r["code"] for r in api["reasons"]]
    (api_reason,) = [r for r in api["reasons"] if r["code"] == "too_short"]
    assert reason.strip() == api_reason["message"]
    assert "Checklist completion" in reason
    assert page.locator("#checklist-teams").count() == 1
    assert "Update the CRM record" in page.inner_text("#checklist-teams")
    page.screenshot(path=str(shots / "kpis-coaching.png"), full_page=True)
    # Each entry links to the agent's page.
    alice.locator("a").click()
    page.wait_for_url(f"{server.url}/kpis/agents/kpi-0001/**")
    assert page.locator("h1").inner_text().strip() == "Alice Martin"


def test_a_supervisor_sees_only_their_teams_coaching_list(
    live_server_up: Server, new_page: Any, floor: dict[str, Any]
) -> None:
    server = live_server_up
    page = new_page(*LAPTOP)
    log_in(page, server, "sam", "pw-sam", then=f"/kpis/coaching/?{PERIOD}")
    table = page.inner_text("#coaching-table")
    assert "Alice Martin" in table and "Eli Fischer" not in table
    assert "kpi-0005" not in _entries(page, server)
    response = page.goto(f"{server.url}/kpis/coaching/?team=Kpi%2002")
    assert response is not None and response.status == 400
    assert "team:" in page.inner_text("[role=alert]")


def test_a_manager_pages_through_a_long_coaching_list_worst_first(
    live_server_up: Server, new_page: Any, floor: dict[str, Any]
) -> None:
    """60 more agents: the page shows 50 entries, those meeting the most rules first; the next
    page keeps the period and the channel, and the two pages hold the API's entries."""
    call_command(
        "seed_history",
        agents=60,
        days=10,
        team_size=20,
        calls=14,
        prefix="many",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    server = live_server_up
    page = new_page(*LAPTOP)
    log_in(page, server, "maria", "pw-maria", then=f"/kpis/coaching/?{PERIOD}")
    page.goto(f"{server.url}/kpis/coaching/?{PERIOD}&channel=phone")
    api = _entries(page, server, "channel=phone")
    rows = page.locator("#coaching-table tbody tr")
    assert len(api) > 50 and rows.count() == 50

    def shown() -> list[tuple[str, int]]:
        keys = rows.evaluate_all("rows => rows.map(r => r.dataset.key)")
        return [(key, len(api[key]["reasons"])) for key in keys]

    first = shown()
    page.click(".pager a[rel=next]")
    page.wait_for_url("**page=2**")
    assert "channel=phone" in page.url and PERIOD in page.url
    second = shown()
    assert len(second) == len(api) - 50
    assert {key for key, _ in first + second} == set(api)
    reasons = [n for _, n in first + second]
    assert reasons == sorted(reasons, reverse=True)
