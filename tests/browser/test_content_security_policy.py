"""The pages work under their Content-Security-Policy in a real browser: nothing is refused."""

from __future__ import annotations

from typing import Any

import pytest

from .support import Server, event, log_in, wait_live

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_the_wall_goes_live_and_updates_with_nothing_refused_by_the_csp(
    live_server_up: Server, new_page: Any, supervisor_sam: Any, alice: Any, api_token: str
) -> None:
    server = live_server_up
    page = new_page()
    log_in(page, server, "sam", "pw-sam")
    wait_live(page)  # the WebSocket is allowed by connect-src 'self'
    server.post_events(api_token, event("alice", "agent.logged_in", 5))
    page.wait_for_selector('.tile[data-agent="alice"][data-state="available"]')
    assert page.csp_violations == []
    assert page.js_errors == []


def test_the_other_pages_render_with_nothing_refused_by_the_csp(
    live_server_up: Server, new_page: Any, admin_ada: Any, agent_user_alice: Any
) -> None:
    server = live_server_up
    page = new_page()
    log_in(page, server, "ada", "pw-ada", then="/kpis/")
    page.goto(f"{server.url}/admin/agents/team/add/")
    page.wait_for_selector("#team_form")
    # The browsable API docs (Swagger UI from the installed package) draw the schema.
    page.goto(f"{server.url}/api/docs/")
    page.wait_for_selector(".opblock-summary-path", timeout=15000)
    agent_page = new_page()
    log_in(agent_page, server, "alice-login", "pw-alice-login", then="/me/")
    assert page.csp_violations == [] and agent_page.csp_violations == []
    assert page.js_errors == [] and agent_page.js_errors == []
