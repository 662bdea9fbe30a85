"""The managers' KPI pages in chromium: as a manager and as a supervisor, against the API.

With ``ACW_SCREENSHOTS=1`` the screenshots go to ``docs/screenshots/``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from agents.models import AcwPolicy, Agent, ChecklistItem, Team
from reporting.alerts import evaluate_alerts
from reporting.rollups import compute_rollups
from reporting.templatetags.kpi_format import format_duration

from .support import Server, event, log_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LAPTOP = (1366, 768)


NAMES = [
    "Alice Martin",
    "Ben Costa",
    "Chloé Dubois",
    "Dev Eriksen",
    "Eli Fischer",
    "Fatima Haddad",
    "Gus Ito",
    "Hana Jansen",
]


@pytest.fixture
def floor(supervisor_sam: Any, manager_maria: Any, api_token: str, live_server_up: Server) -> Any:
    """Two teams of four agents with ten days of history (the bulk generator), and a few of
    today's interactions through the event API: a supervisor's end, a note, a checklist, a
    timeout. Sam supervises the first team only."""
    AcwPolicy.objects.filter(team=None, channel="").update(min_seconds=10)
    call_command(
        "seed_history",
        agents=8,
        days=10,
        team_size=4,
        departments=2,
        calls=14,
        prefix="kpi",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    for n, name in enumerate(NAMES):
        Agent.objects.filter(external_id=f"kpi-{n + 1:04d}").update(name=name)
    mine, theirs = Team.objects.get(name="Kpi 01"), Team.objects.get(name="Kpi 02")
    mine.supervisors.add(supervisor_sam)
    crm = ChecklistItem.objects.create(label="Update the CRM record")
    alice = "kpi-0001"
    live_server_up.post_events(
        api_token,
        event(alice, "agent.logged_in", 1500),
        event(alice, "interaction.started", 1400, interaction_id="today-1", channel="phone"),
        event(alice, "interaction.ended", 1200, interaction_id="today-1"),
        event(
            alice,
            "acw.ended",
            1180,
            reason="supervisor",
            wrap_up_code="callback",
            note="Customer asked for a call back on Friday.",
            checklist=[crm.pk],
        ),
        event(alice, "interaction.started", 1000, interaction_id="today-2", channel="chat"),
        event(alice, "interaction.ended", 800, interaction_id="today-2"),
        # No acw.ended: the ACW times out at its deadline, before the next event applies.
        event(alice, "agent.not_ready", 600, reason="break"),
    )
    compute_rollups()
    evaluate_alerts()
    return {"mine": mine, "theirs": theirs}


def _api(page: Any, server: Server, query: str) -> Any:
    response = page.request.get(f"{server.url}/api/v1/kpis?{query}")
    assert response.ok, response.text()
    return response.json()["rows"]


def _card(page: Any, key: str) -> str:
    return page.inner_text(f'[data-card="{key}"] .kpi-value').strip()


def _fits_the_width(page: Any, width: int) -> bool:
    return bool(page.evaluate(f"document.documentElement.scrollWidth <= {width}"))


def test_a_manager_reads_the_overview_and_its_numbers_match_the_api(
    live_server_up: Server, new_page: Any, floor: dict[str, Any], shots: Path
) -> None:
    server = live_server_up
    page = new_page(*LAPTOP)
    log_in(page, server, "maria", "pw-maria", then="/kpis/?period=last_7_days")
    first = page.input_value("input[name=from]")
    last = page.input_value("input[name=to]")
    rows = _api(page, server, f"group_by=team&from={first}&to={last}")
    interactions = sum(r["interactions"] for r in rows)
    acw = sum(r["acw_seconds"] for r in rows)
    assert _card(page, "interactions") == f"{interactions:,}".replace(",", "\u202f")
    assert _card(page, "avg_acw") == format_duration(acw / interactions)
    assert _card(page, "acw") == format_duration(acw)
    # Both teams, every chart drawn, no raw second counts in the table.
    table = page.inner_text("#kpi-table")
    assert "Alice Martin" in table and "Hana Jansen" in table
    for heading in ["Average ACW per day", "AHT per day", "ACW durations", "weekday and hour"]:
        assert page.locator("h2", has_text=heading).count() == 1
    assert page.locator("svg.chart-heat g").count() > 10
    assert _fits_the_width(page, LAPTOP[0])
    page.screenshot(path=str(shots / "kpis-overview.png"), full_page=True)

    # A preset keeps the other filters.
    page.select_option("select[name=channel]", "phone")
    page.click("button:has-text('Show')")
    page.click(".kpi-presets a:has-text('Last 30 days')")
    assert "channel=phone" in page.url and "period=last_30_days" in page.url
    assert page.input_value("select[name=channel]") == "phone"

    # Printed: no navigation, no form, the charts kept.
    page.emulate_media(media="print")
    assert page.locator(".topnav").is_hidden() and page.locator(".kpi-filters").is_hidden()
    assert page.locator("svg.chart").first.is_visible()
    assert page.js_errors == []


def test_a_supervisor_sees_no_foreign_team_and_clicks_through_to_an_agent(
    live_server_up: Server, new_page: Any, floor: dict[str, Any], shots: Path
) -> None:
    server = live_server_up
    page = new_page(*LAPTOP)
    log_in(page, server, "sam", "pw-sam", then="/kpis/?period=last_7_days")
    table = page.inner_text("#kpi-table")
    assert "Alice Martin" in table and "Dev Eriksen" in table
    assert "Eli Fischer" not in table and "Hana Jansen" not in table
    assert page.locator("select[name=team] option", has_text="Kpi 02").count() == 0
    theirs = floor["theirs"]
    assert page.goto(f"{server.url}/kpis/teams/{theirs.pk}/").status == 404
    assert page.goto(f"{server.url}/kpis/agents/kpi-0005/").status == 404
    assert page.goto(f"{server.url}/kpis/?team=Kpi%2002").status == 400

    page.goto(f"{server.url}/kpis/?period=last_7_days&group_by=team")
    page.click("#kpi-table a:has-text('Kpi 01')")
    page.wait_for_url("**/kpis/teams/**")
    assert page.locator("#agents-table tbody tr").count() == 4
    assert page.locator("#agents-table svg.sparkline").count() == 4
    # Sort by average ACW, longest first, then compare with the API.
    page.click("#agents-table th a:has-text('Avg ACW')")
    page.wait_for_url("**sort=-avg_acw**")
    shown = page.locator("#agents-table tbody th").all_inner_texts()
    rows = _api(
        page,
        server,
        f"group_by=agent&team=Kpi%2001&from={page.input_value('input[name=from]')}"
        f"&to={page.input_value('input[name=to]')}",
    )
    assert shown == [r["name"] for r in sorted(rows, key=lambda r: -r["avg_acw_seconds"])]
    assert _fits_the_width(page, LAPTOP[0])
    page.screenshot(path=str(shots / "kpis-team.png"), full_page=True)

    page.click("#agents-table a:has-text('Alice Martin')")
    page.wait_for_url("**/kpis/agents/kpi-0001/**")
    assert page.locator("h1").inner_text() == "Alice Martin"
    recent = page.locator("#interactions-table tbody tr")
    assert recent.count() > 5
    text = page.inner_text("#interactions-table")
    assert "timeout" in text and "supervisor" in text and "Update the CRM record" in text
    assert _fits_the_width(page, LAPTOP[0])
    page.screenshot(path=str(shots / "kpis-agent.png"), full_page=True)
    assert page.js_errors == []


def test_a_table_downloads_as_csv_with_the_apis_numbers(
    live_server_up: Server, new_page: Any, floor: dict[str, Any]
) -> None:
    server = live_server_up
    page = new_page(*LAPTOP)
    log_in(page, server, "maria", "pw-maria", then="/kpis/")
    page.goto(f"{server.url}/kpis/?period=last_30_days&group_by=team")
    with page.expect_download() as info:
        page.click("#table-h ~ a.csv")
    lines = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    rows = _api(
        page,
        server,
        f"group_by=team&from={page.input_value('input[name=from]')}"
        f"&to={page.input_value('input[name=to]')}",
    )
    assert [line["key"] for line in lines] == ["Kpi 01", "Kpi 02"]
    assert [int(line["interactions"]) for line in lines] == [r["interactions"] for r in rows]
    assert [float(line["acw_seconds"]) for line in lines] == [r["acw_seconds"] for r in rows]

    page.goto(f"{server.url}/kpis/agents/kpi-0001/?period=last_7_days")
    with page.expect_download() as info:
        page.click("#recent-h ~ a.csv")
    lines = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    assert len(lines) == page.locator("#interactions-table tbody tr").count()
    assert {line["acw_ended_by"] for line in lines} >= {"agent", "timeout"}


def test_a_manager_pages_through_a_long_agent_table_sorted_and_filtered(
    live_server_up: Server, new_page: Any, floor: dict[str, Any]
) -> None:
    """60 more agents in the same department as the first team: the table shows 50 rows a
    page, sorted over every page, and the page links keep the filter and the sort."""
    call_command(
        "seed_history",
        agents=60,
        days=2,
        team_size=20,
        departments=1,
        calls=6,
        prefix="many",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    server = live_server_up
    page = new_page(*LAPTOP)
    department = floor["mine"].department.name
    log_in(page, server, "maria", "pw-maria", then="/kpis/?period=last_7_days")
    page.goto(f"{server.url}/kpis/?period=last_7_days&department={department}")
    assert page.locator("#kpi-table tbody tr").count() == 50
    page.click("#kpi-table th a:has-text('Avg ACW')")
    page.wait_for_url("**sort=-avg_acw**")
    first = page.locator("#kpi-table tbody th").all_inner_texts()
    page.click(".pager a:has-text('2')")
    page.wait_for_url("**page=2**")
    assert f"department={department.replace(' ', '+')}" in page.url and "sort=-avg_acw" in page.url
    assert page.input_value("select[name=department]") == department
    second = page.locator("#kpi-table tbody th").all_inner_texts()
    assert page.locator(".pager a[aria-current=page]").inner_text() == "2"
    rows = _api(
        page,
        server,
        f"group_by=agent&department={department}&from={page.input_value('input[name=from]')}"
        f"&to={page.input_value('input[name=to]')}",
    )
    assert len(first) == 50 and len(first) + len(second) == len(rows) > 60
    assert first + second == [r["name"] for r in sorted(rows, key=lambda r: -r["avg_acw_seconds"])]
    assert _fits_the_width(page, LAPTOP[0])
    assert page.js_errors == []
