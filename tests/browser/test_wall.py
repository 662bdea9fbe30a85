"""The wall and the wrap-up page in a real browser, against a real server process."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.utils import timezone

from agents import services
from agents.models import AcwPolicy, AcwSession, ChecklistItem, WrapUpCode

from .support import Server, event, log_in, wait_live

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def tile(page: Any, agent: str, state: str | None = None) -> str:
    selector = f'.tile[data-agent="{agent}"]'
    return f'{selector}[data-state="{state}"]' if state else selector


def test_an_event_posted_to_the_api_changes_the_tile_without_reload_within_a_second(
    live_server_up: Server,
    new_page: Any,
    supervisor_sam: Any,
    alice: Any,
    bob: Any,
    api_token: str,
) -> None:
    server = live_server_up
    server.post_events(api_token, event("alice", "agent.logged_in", 60))
    page = new_page()
    log_in(page, server, "sam", "pw-sam")
    wait_live(page)
    page.wait_for_selector(tile(page, "alice", "available"))
    page.evaluate("window.__marker = 'same page'")
    start = time.monotonic()
    server.post_events(api_token, event("alice", "agent.not_ready", reason="lunch"))
    page.wait_for_selector(tile(page, "alice", "not_ready"), timeout=1000)
    latency = time.monotonic() - start
    print(f"\nevent → wall tile: {latency * 1000:.0f} ms")
    assert latency < 1.0
    assert page.evaluate("window.__marker") == "same page"  # no reload
    assert "lunch" in page.inner_text(tile(page, "alice"))
    page.wait_for_function(  # the counters follow on the next animation frame
        "document.querySelector('[data-count=\"not_ready\"]').textContent === '1'", timeout=1000
    )
    assert page.js_errors == []


def test_a_south_agent_never_appears_on_a_north_supervisors_wall(
    live_server_up: Server,
    new_page: Any,
    supervisor_sam: Any,
    alice: Any,
    carol: Any,
    api_token: str,
) -> None:
    server = live_server_up
    page = new_page()
    log_in(page, server, "sam", "pw-sam")
    wait_live(page)
    server.post_events(api_token, event("carol", "agent.logged_in"))
    server.post_events(api_token, event("alice", "agent.logged_in"))
    page.wait_for_selector(tile(page, "alice", "available"))
    page.wait_for_timeout(300)
    assert page.locator(tile(page, "carol")).count() == 0
    assert "Carol" not in page.content()
    page.wait_for_function(
        "document.querySelector('#shown-count').textContent === '1 of 1 agents'", timeout=1000
    )


def test_after_a_server_restart_the_wall_reconnects_and_shows_the_current_state(
    live_server_up: Server, new_page: Any, supervisor_sam: Any, alice: Any, api_token: str
) -> None:
    server = live_server_up
    page = new_page()
    log_in(page, server, "sam", "pw-sam")
    wait_live(page)
    server.stop()
    page.wait_for_selector('#conn[data-status="offline"]')
    # While the server is down the agent's state changes (stored directly, as another web
    # process or the worker would): nobody pushes it to this page.
    result = services.ingest_event(event("alice", "agent.not_ready", reason="meeting"))
    assert result.status == "accepted"
    server.start()
    page.wait_for_selector(tile(page, "alice", "not_ready"), timeout=20_000)
    wait_live(page)
    assert "meeting" in page.inner_text(tile(page, "alice"))


def test_the_agent_pages_ready_button_ends_acw_and_the_wall_shows_it(
    live_server_up: Server,
    new_page: Any,
    supervisor_sam: Any,
    agent_user_alice: Any,
    alice: Any,
    north: Any,
    api_token: str,
) -> None:
    server = live_server_up
    step = ChecklistItem.objects.create(team=north, label="Update the CRM record")
    WrapUpCode.objects.create(code="resolved", label="Resolved")
    server.post_events(
        api_token,
        event("alice", "agent.logged_in", 90),
        event("alice", "interaction.started", 80, interaction_id="c1", channel="phone"),
    )
    wall = new_page()
    log_in(wall, server, "sam", "pw-sam")
    wait_live(wall)
    me = new_page(1100, 900)
    log_in(me, server, "alice-login", "pw-alice-login", then="/me/")
    me.wait_for_selector('#me-state[data-state="on_interaction"]')
    assert me.locator("#me-form").is_hidden()

    # The call ends: the wall and the open wrap-up page both switch to ACW without a reload.
    server.post_events(api_token, event("alice", "interaction.ended", interaction_id="c1"))
    wall.wait_for_selector(tile(wall, "alice", "acw"), timeout=1000)
    me.wait_for_selector("#me-form:not([hidden])", timeout=3000)
    me.check(f'input[name=checklist][value="{step.pk}"]')
    me.select_option("#wrap-up-code", "resolved")
    me.fill("#note", "Customer called back")
    me.click("#ready")
    me.wait_for_selector('#me-state[data-state="available"]')
    wall.wait_for_selector(tile(wall, "alice", "available"), timeout=2000)
    acw = AcwSession.objects.get(agent=alice)
    assert (acw.end_reason, acw.wrap_up_code, acw.checklist) == (
        "agent_ready",
        "resolved",
        [step.pk],
    )
    assert acw.note == "Customer called back"
    assert wall.js_errors == [] and me.js_errors == []


def test_a_supervisor_ends_an_acw_from_the_tile(
    live_server_up: Server, new_page: Any, supervisor_sam: Any, alice: Any, api_token: str
) -> None:
    server = live_server_up
    server.post_events(
        api_token,
        event("alice", "agent.logged_in", 90),
        event("alice", "interaction.started", 80, interaction_id="c1", channel="chat"),
        event("alice", "interaction.ended", 1, interaction_id="c1"),
    )
    page = new_page()
    log_in(page, server, "sam", "pw-sam")
    wait_live(page)
    page.click(tile(page, "alice", "acw"))
    page.click("#dlg-end-acw")
    page.wait_for_selector('#dlg-msg[data-kind="ok"]')
    page.wait_for_selector(tile(page, "alice", "available"), timeout=2000)
    acw = AcwSession.objects.get(agent=alice)
    assert acw.end_reason == "supervisor"
    assert acw.ended_by == supervisor_sam


def test_a_chat_agent_holding_two_chats_shows_the_count_on_the_tile(
    live_server_up: Server, new_page: Any, supervisor_sam: Any, alice: Any, api_token: str
) -> None:
    server = live_server_up
    server.post_events(
        api_token,
        event("alice", "agent.logged_in", 90),
        event("alice", "interaction.started", 80, interaction_id="c1", channel="chat"),
        event(
            "alice",
            "interaction.started",
            70,
            interaction_id="c2",
            channel="chat",
            concurrent=True,
        ),
    )
    page = new_page()
    log_in(page, server, "sam", "pw-sam")
    wait_live(page)
    page.wait_for_selector(tile(page, "alice", "on_interaction"))
    assert "×2" in page.inner_text(tile(page, "alice"))
    # c1 ends: its ACW runs while c2 is connected, still two contacts; its ACW ends: one left.
    server.post_events(api_token, event("alice", "interaction.ended", 2, interaction_id="c1"))
    server.post_events(api_token, event("alice", "acw.ended", 1, interaction_id="c1"))
    one_left = page.locator(tile(page, "alice", "on_interaction")).filter(has_not_text="×")
    one_left.wait_for(timeout=2000)
    assert page.js_errors == []


def test_a_new_alert_appears_live_and_the_supervisor_acknowledges_it(
    live_server_up: Server, new_page: Any, supervisor_sam: Any, alice: Any, api_token: str
) -> None:
    from reporting.alerts import evaluate_alerts
    from reporting.models import Alert

    server = live_server_up
    server.post_events(
        api_token,
        event("alice", "agent.logged_in", 1300),
        event("alice", "agent.not_ready", 1200, reason="break"),
    )
    page = new_page()
    log_in(page, server, "sam", "pw-sam")
    wait_live(page)
    assert page.locator(".alert").count() == 0
    evaluate_alerts()  # what the periodic task does: the alert is pushed to the open wall
    page.wait_for_selector('.alert[data-acknowledged="false"]', timeout=2000)
    assert "Alice Martin" in page.inner_text(".alert")
    page.click('.alert button:has-text("Acknowledge")')
    page.wait_for_selector('.alert[data-acknowledged="true"]')
    assert "by sam" in page.inner_text(".alert")
    assert Alert.objects.get().acknowledged_by == supervisor_sam


def test_filters_by_state_and_team_and_sorts_by_time_in_state_or_name(
    live_server_up: Server,
    new_page: Any,
    manager_maria: Any,
    alice: Any,
    bob: Any,
    carol: Any,
    api_token: str,
) -> None:
    server = live_server_up
    server.post_events(
        api_token,
        event("alice", "agent.logged_in", 30),
        event("bob", "agent.not_ready", 300, reason="lunch"),
        event("carol", "agent.logged_in", 600),
    )
    page = new_page()
    log_in(page, server, "maria", "pw-maria")
    wait_live(page)
    page.wait_for_function("() => document.querySelectorAll('.tile').length === 3")

    def expect(order: list[str]) -> None:
        # Tiles are reordered on the next animation frame.
        page.wait_for_function(
            "(order) => [...document.querySelectorAll('.tile')].map((t) => t.dataset.agent)"
            ".join() === order",
            arg=",".join(order),
            timeout=2000,
        )

    expect(["carol", "bob", "alice"])  # longest in state first
    page.select_option("#f-sort", "name")
    expect(["alice", "bob", "carol"])
    page.click('.stat-state[data-state="available"]')
    expect(["alice", "carol"])
    page.select_option("#f-team", "South")
    expect(["carol"])
    page.click("#f-states-clear")
    page.select_option("#f-team", "")
    page.click('.segmented button[data-density="compact"]')
    assert page.get_attribute("#grid", "data-density") == "compact"
    expect(["alice", "bob", "carol"])


def test_a_tile_shows_the_acw_timeout_at_its_deadline_without_a_worker(
    live_server_up: Server, new_page: Any, supervisor_sam: Any, alice: Any, api_token: str
) -> None:
    from agents.models import AcwPolicy, AgentState

    # Long enough for the page to load and show the ACW first (this machine may be busy).
    AcwPolicy.objects.filter(team__isnull=True, channel="").update(seconds=15)
    server = live_server_up
    server.post_events(
        api_token,
        event("alice", "agent.logged_in", 90),
        event("alice", "interaction.started", 80, interaction_id="c1", channel="phone"),
        event("alice", "interaction.ended", 0, interaction_id="c1"),
    )
    page = new_page()
    log_in(page, server, "sam", "pw-sam")
    wait_live(page)
    page.wait_for_selector(tile(page, "alice", "acw"))
    deadline = AgentState.objects.get(agent=alice).acw_deadline
    assert deadline is not None
    # No worker runs here: nothing persists the timeout; the page shows it at the deadline
    # by itself (the next snapshot would too, but only on a reconnect or a resync).
    time.sleep(max(0.0, (deadline - timezone.now()).total_seconds()))
    page.wait_for_selector(tile(page, "alice", "available"), timeout=4000)
    print(f"\ntile flipped {(timezone.now() - deadline).total_seconds():.2f} s after the deadline")
    assert AgentState.objects.get(agent=alice).state == "acw"


def test_acw_tiles_take_their_colours_from_the_payload(
    live_server_up: Server, new_page: Any, supervisor_sam: Any, alice: Any, bob: Any, north: Any
) -> None:
    # The page resolves no policy: each tile's amber/red points and overrun flag come from the
    # server (agents.policies.acw_colour_points).
    server = live_server_up
    AcwPolicy.objects.create(team=north, channel="phone", seconds=200)
    AcwPolicy.objects.create(team=north, channel="email", mode="manual", alert_acw_seconds=100)
    services.provision_agent("dave", name="Dave Ode", team_name="North")
    for agent, channel, ended_ago in (
        ("alice", "phone", 160),
        ("bob", "phone", 5),
        ("dave", "email", 110),
    ):
        for raw in (
            event(agent, "agent.logged_in", ended_ago + 70),
            event(
                agent, "interaction.started", ended_ago + 60, interaction_id="c", channel=channel
            ),
            event(agent, "interaction.ended", ended_ago, interaction_id="c"),
        ):
            assert services.ingest_event(raw).status == "accepted"
    assert services.ingest_event(event("bob", "acw.extended")).status == "accepted"
    page = new_page()
    log_in(page, server, "sam", "pw-sam")
    wait_live(page)
    page.wait_for_selector(tile(page, "dave", "acw"))
    levels = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('.tile')]"
        ".map((t) => [t.dataset.agent, t.dataset.level]))"
    )
    # alice: 160 s into a 200 s timer (amber from 150 s); bob: extended (overrun);
    # dave: an untimed ACW past its 100 s long-ACW threshold.
    assert levels == {"alice": "amber", "bob": "red", "dave": "red"}
    assert page.js_errors == []
