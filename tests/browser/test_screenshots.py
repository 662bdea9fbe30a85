"""Screenshots of the wall (20 and 500 agents) and the agent page, and the 500-agent layout.

The images go to a temporary directory; with ``ACW_SCREENSHOTS=1`` they are written to
``docs/screenshots/`` (``make``-free: ``ACW_SCREENSHOTS=1 pytest tests/browser -k screenshots``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.models import AcwPolicy, ChecklistItem, WrapUpCode
from reporting.alerts import evaluate_alerts

from .support import Server, event, log_in, seed_floor, wait_live

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

FULL_HD = (1920, 1080)


def test_the_wall_with_20_agents_and_the_agent_page(
    live_server_up: Server,
    new_page: Any,
    supervisor_sam: Any,
    agent_user_alice: Any,
    north: Any,
    api_token: str,
    shots: Path,
) -> None:
    server = live_server_up
    seed_floor(19, ["North"], seed=3)
    # A stricter team policy than the site default, so the alerts panel has something to show.
    AcwPolicy.objects.create(team=north, channel="", alert_not_ready_seconds=480)
    for label in ["Update the CRM record", "Document the call", "Schedule the follow-up"]:
        ChecklistItem.objects.create(team=north, label=label)
    ChecklistItem.objects.create(team=None, label="Send the follow-up e-mail", position=9)
    for code, label in [
        ("resolved", "Resolved"),
        ("callback", "Callback booked"),
        ("escalated", "Escalated"),
        ("sale", "Sale"),
    ]:
        WrapUpCode.objects.create(code=code, label=label)
    server.post_events(
        api_token,
        event("alice", "agent.logged_in", 400),
        event("alice", "interaction.started", 300, interaction_id="c1", channel="phone"),
        event("alice", "interaction.ended", 9, interaction_id="c1"),
    )
    evaluate_alerts()

    wall = new_page(*FULL_HD)
    log_in(wall, server, "sam", "pw-sam")
    wait_live(wall)
    wall.wait_for_function("() => document.querySelectorAll('.tile').length === 20")
    wall.wait_for_timeout(1200)  # one tick of the clocks
    wall.screenshot(path=str(shots / "wall-20-agents.png"))

    me = new_page(1280, 900)
    log_in(me, server, "alice-login", "pw-alice-login", then="/me/")
    me.wait_for_selector("#me-form:not([hidden])")
    # Each is saved as it is made: the test ends once both saves are answered, so that no
    # write of the server is still running when the database is emptied for the next test.
    with me.expect_response(lambda r: r.url.endswith("/me/wrap-up")):
        me.check("input[name=checklist] >> nth=0")
    with me.expect_response(lambda r: r.url.endswith("/me/wrap-up")):
        me.select_option("#wrap-up-code", "callback")
    me.fill("#note", "Customer asked for a call back on Friday morning.")
    me.wait_for_timeout(300)
    me.screenshot(path=str(shots / "agent-wrap-up-page.png"), full_page=True)
    assert wall.js_errors == [] and me.js_errors == []


def test_the_compact_wall_shows_500_agents_on_one_full_hd_screen(
    live_server_up: Server, new_page: Any, manager_maria: Any, shots: Path
) -> None:
    server = live_server_up
    seed_floor(500, ["North", "South", "East", "West", "Central", "Nights"], seed=5)
    evaluate_alerts()
    page = new_page(*FULL_HD)
    log_in(page, server, "maria", "pw-maria", then="/?density=compact")
    wait_live(page)
    page.wait_for_function("() => document.querySelectorAll('.tile').length === 500")
    page.wait_for_timeout(1200)
    fits = page.evaluate(
        """() => {
            const grid = document.querySelector('#grid');
            const tiles = [...grid.querySelectorAll('.tile')];
            const bottom = Math.max(...tiles.map((t) => t.getBoundingClientRect().bottom));
            return {scrolls: grid.scrollHeight > grid.clientHeight + 1, bottom,
                    width: document.documentElement.scrollWidth};
        }"""
    )
    page.screenshot(path=str(shots / "wall-500-agents-compact.png"))
    assert not fits["scrolls"], fits
    assert fits["bottom"] <= FULL_HD[1], fits
    assert fits["width"] <= FULL_HD[0], fits
    assert page.js_errors == []
