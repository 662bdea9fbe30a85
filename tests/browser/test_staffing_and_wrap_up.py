"""The staffing what-if form and the wrap-up page in chromium.

Staffing: a supervisor changes the inputs with the GET form (no inline script under the CSP),
the figures match ``GET /api/v1/staffing`` for the inputs shown, the table downloads as CSV.
Wrap-up: a tick is saved without Ready and survives a timeout; under a strict policy Ready is
disabled with a countdown, and refused by the server. With ``ACW_SCREENSHOTS=1`` the staffing
screenshot goes to ``docs/screenshots/``.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from agents import services
from agents.models import AcwPolicy, AcwSession, ChecklistItem, Team, WrapUpCode
from reporting.queries import site_today
from reporting.rollups import compute_rollups
from reporting.staffing import measured_load

from .support import Server, event, log_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LAPTOP = (1366, 768)


def _busiest_hour(team: Team) -> tuple[Any, int]:
    """Yesterday's hour with the most interactions for ``team`` (from the same query)."""
    day = site_today() - timedelta(days=1)
    loads = {hour: measured_load(team.pk, day, hour).interactions for hour in range(24)}
    return day, max(loads, key=lambda hour: loads[hour])


def test_a_supervisor_runs_the_staffing_what_if(
    live_server_up: Server, new_page: Any, supervisor_sam: Any, shots: Path
) -> None:
    server = live_server_up
    call_command(
        "seed_history",
        agents=24,
        days=2,
        team_size=12,
        departments=1,
        calls=40,
        prefix="stf",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    compute_rollups()
    mine, theirs = Team.objects.order_by("name").filter(name__startswith="Stf")[:2]
    mine.supervisors.add(supervisor_sam)
    day, hour = _busiest_hour(mine)
    measured = measured_load(mine.pk, day, hour)
    assert measured.interactions > 0

    page = new_page(*LAPTOP)
    log_in(page, server, "sam", "pw-sam", then="/kpis/staffing/")
    # Sam's teams only: North (the fixture's) and the seeded team he was given.
    assert page.locator("select[name=team] option").all_inner_texts() == ["North", mine.name]
    page.select_option("select[name=team]", str(mine.pk))
    page.fill("input[name=day]", day.isoformat())
    page.select_option("select[name=hour]", str(hour))
    page.fill("input[name=service_level_percent]", "90")
    page.fill("input[name=acw_change_seconds]", "-20")
    page.click("button:has-text('Calculate')")
    page.wait_for_url("**acw_change_seconds=-20**")

    inputs = page.inner_text("#staffing-inputs")
    assert f"{measured.interactions} interactions" in inputs
    response = page.request.get(
        f"{server.url}/api/v1/staffing?volume={measured.interactions}&interval_seconds=3600"
        f"&aht_seconds={measured.aht_seconds}&target_service_level=0.9"
        "&target_answer_seconds=20&acw_change_seconds=-20"
    )
    assert response.ok, response.text()
    api = response.json()
    assert page.inner_text("#agents-needed") == str(api["agents_needed"])
    assert page.inner_text("#agents-needed-changed") == str(api["with_acw_change"]["agents_needed"])
    sentence = page.inner_text("#staffing-sentence")
    assert sentence.startswith("Cutting ACW from") and "for 90/20" in sentence
    needed = page.locator('#staffing-table tr.row-needed[data-scenario="current"]')
    assert needed.get_attribute("data-agents") == str(api["agents_needed"])

    with page.expect_download() as download:
        page.click("a.csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    shown = page.locator("#staffing-table tbody tr").count()
    assert len(rows) == shown
    assert page.evaluate("document.documentElement.scrollWidth <= 1366")
    page.screenshot(path=str(shots / "kpis-staffing.png"), full_page=True)

    assert page.goto(f"{server.url}/kpis/staffing/?team={theirs.pk}").status == 404
    assert page.js_errors == [] and page.csp_violations == []


def _alice_in_acw(server: Server, token: str, new_page: Any) -> Any:
    """Alice's interaction ends now; her wrap-up page, open on the ACW."""
    server.post_events(
        token,
        event("alice", "agent.logged_in", 100),
        event("alice", "interaction.started", 60, interaction_id="c1", channel="phone"),
        event("alice", "interaction.ended", 1, interaction_id="c1"),
    )
    page = new_page(1280, 900)
    log_in(page, server, "alice-login", "pw-alice-login", then="/me/")
    page.wait_for_selector("#me-form:not([hidden])")
    return page


def test_a_tick_is_saved_without_ready_and_survives_the_timeout(
    live_server_up: Server,
    new_page: Any,
    agent_user_alice: Any,
    north: Any,
    api_token: str,
) -> None:
    server = live_server_up
    # A short timer and a required code: the timeout keeps the ticks and flags the code.
    # 15 s leave room for signing in on a busy machine before the deadline.
    AcwPolicy.objects.create(team=north, channel="", seconds=15, wrap_up_required=True)
    crm = ChecklistItem.objects.create(team=north, label="Update the CRM record")
    ChecklistItem.objects.create(team=north, label="Document the call")
    WrapUpCode.objects.create(code="resolved", label="Resolved")
    page = _alice_in_acw(server, api_token, new_page)
    page.check(f"input[name=checklist][value='{crm.pk}']")
    page.locator("#me-msg", has_text="Saved.").wait_for()
    assert AcwSession.objects.get(agent__external_id="alice").checklist == [crm.pk]

    # A reload shows the saved tick again.
    page.reload()
    page.wait_for_selector("#me-form:not([hidden])")
    assert page.is_checked(f"input[name=checklist][value='{crm.pk}']")

    # Nobody presses Ready: the page turns to available at the deadline.
    page.wait_for_selector('#me-state[data-state="available"]', timeout=45_000)
    services.expire_due_acws()
    acw = AcwSession.objects.get(agent__external_id="alice")
    assert (acw.end_reason, acw.checklist) == ("timeout", [crm.pk])
    assert (acw.policy_violation, acw.missing_wrap_up) == ("missing_wrap_up", True)
    assert page.js_errors == [] and page.csp_violations == []


def test_ready_under_a_strict_policy_waits_for_the_deadline(
    live_server_up: Server,
    new_page: Any,
    agent_user_alice: Any,
    north: Any,
    api_token: str,
) -> None:
    server = live_server_up
    AcwPolicy.objects.create(team=north, channel="", mode="timed_strict", seconds=120)
    page = _alice_in_acw(server, api_token, new_page)
    ready = page.locator("#ready")
    assert ready.is_disabled()
    assert ready.inner_text().startswith("Ready in 1:")
    assert page.locator("#strict-note").is_visible()

    # The server refuses it too (a page that skipped the disabled button).
    answer = page.evaluate(
        """async () => {
            const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
            const response = await fetch('/me/ready', {method: 'POST', credentials: 'same-origin',
                headers: {'Content-Type': 'application/json', 'X-CSRFToken': token},
                body: JSON.stringify({checklist: []})});
            return {status: response.status, body: await response.json()};
        }"""
    )
    assert answer["status"] == 409
    assert "strict" in answer["body"]["error"]
    acw = AcwSession.objects.get(agent__external_id="alice")
    assert (acw.ended_at, acw.policy_violation) == (None, "")
    assert page.js_errors == [] and page.csp_violations == []
