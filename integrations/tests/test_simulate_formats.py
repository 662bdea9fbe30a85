"""``simulate --format connect|twilio|asterisk``: demo traffic through each platform's adapter."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from agents.models import AgentState, Event
from integrations.models import IntegrationStatus

SOURCE = {"connect": "amazon-connect", "twilio": "twilio", "asterisk": "asterisk"}


@pytest.mark.django_db
@pytest.mark.parametrize("format_", ["connect", "twilio", "asterisk"])
def test_simulate_drives_each_platform_format_through_its_adapter(
    format_: str, alice: Any, bob: Any, carol: Any, tmp_path: Path
) -> None:
    out, err = StringIO(), StringIO()
    queue_log = tmp_path / "queue_log"
    call_command(
        "simulate",
        "--duration",
        "2",
        "--rate",
        "60",
        "--seed",
        "1",
        "--format",
        format_,
        "--queue-log",
        str(queue_log),
        stdout=out,
        stderr=err,
    )
    sent = Event.objects.all()
    assert set(sent.values_list("source", flat=True)) == {SOURCE[format_]}
    # TaskRouter has no login: a worker going Available is an agent becoming available.
    login = "agent.available" if format_ == "twilio" else "agent.logged_in"
    assert set(sent.filter(type=login).values_list("agent__external_id", flat=True)) == {
        "alice",
        "bob",
        "carol",
    }
    assert sent.filter(type="interaction.started").exists()
    # A clean stop logs the floor out, through the platform too.
    assert set(AgentState.objects.values_list("state", flat=True)) == {"offline"}
    assert "0 not accepted" in out.getvalue(), err.getvalue()
    status = IntegrationStatus.objects.get(kind=SOURCE[format_])
    assert status.records > 0 and status.refused == 0
    if format_ == "asterisk":
        assert "|CONNECT|" in queue_log.read_text()
