"""The wall's alert panel in a real browser: an alert opens, is acknowledged, and resolves.

The panel reads the alert fields that ``reporting.selectors.alert_payload`` sends (docs/wall.md,
Alerts), and nothing else.
"""

from __future__ import annotations

from typing import Any

import pytest

from agents.models import AcwPolicy
from reporting.alerts import evaluate_alerts
from reporting.models import Alert

from .support import Server, event, log_in, wait_live

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_an_alert_opens_is_acknowledged_and_leaves_the_wall_when_it_resolves(
    live_server_up: Server,
    new_page: Any,
    supervisor_sam: Any,
    north: Any,
    alice: Any,
    api_token: str,
) -> None:
    server = live_server_up
    AcwPolicy.objects.create(team=north, channel="", alert_not_ready_seconds=60)
    server.post_events(api_token, event("alice", "agent.not_ready", 300, reason="training"))
    page = new_page()
    log_in(page, server, "sam", "pw-sam")
    wait_live(page)

    evaluate_alerts()  # published to the wall after commit
    item = '#alerts-list .alert[data-acknowledged="false"]'
    page.wait_for_selector(item)
    assert page.inner_text(f"{item} .alert-title") == "Long not ready"
    assert "Alice Martin · North" in page.inner_text(f"{item} .alert-meta")
    assert page.inner_text("#alerts-sub") == "1 unacknowledged"

    page.click(f"{item} button")
    done = '#alerts-list .alert[data-acknowledged="true"]'
    page.wait_for_selector(done)
    assert "Acknowledged by sam" in page.inner_text(done)
    assert page.inner_text("#alerts-sub") == "0 unacknowledged"
    assert Alert.objects.get().acknowledged_by == supervisor_sam

    server.post_events(api_token, event("alice", "agent.available"))
    evaluate_alerts()
    page.wait_for_selector("#alerts-list .alert", state="detached")
    assert page.is_visible("#alerts-empty")
    assert page.js_errors == []
