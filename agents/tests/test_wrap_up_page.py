"""The wrap-up page records what really happened: ticks saved as they are ticked (and kept by a
timeout), a strict policy's Ready refused before the deadline, a missing code flagged."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from agents import services
from agents.models import AcwPolicy, AcwSession, ChecklistItem, Event, WrapUpCode
from agents.tests.factories import event

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def ingest(*events: dict[str, Any]) -> None:
    assert [services.ingest_event(e).status for e in events] == ["accepted"] * len(events)


def put_in_acw(agent: str, ended_ago: float = 5) -> None:
    ingest(
        event(agent, "agent.logged_in", ended_ago + 70),
        event(agent, "interaction.started", ended_ago + 60, interaction_id="c1", channel="phone"),
        event(agent, "interaction.ended", ended_ago, interaction_id="c1"),
    )


def post(client: Client, url: str, body: dict[str, Any]) -> Any:
    return client.post(url, body, content_type="application/json")


@pytest.fixture
def steps(north: Any) -> list[ChecklistItem]:
    return [
        ChecklistItem.objects.create(team=north, label="Update the CRM record"),
        ChecklistItem.objects.create(team=None, label="Send the summary e-mail"),
    ]


def test_a_tick_is_saved_with_the_acw_without_ready(
    agent_user_alice: User, alice: Any, steps: list[ChecklistItem]
) -> None:
    put_in_acw("alice")
    client = client_for(agent_user_alice)
    response = post(client, "/me/wrap-up", {"checklist": [steps[0].pk]})
    assert response.status_code == 200, response.content
    assert response.json()["agent"]["state"] == "acw"
    acw = AcwSession.objects.get(agent=alice)
    assert (acw.checklist, acw.ended_at) == ([steps[0].pk], None)
    updated = Event.objects.get(type="acw.updated")
    assert (updated.source, updated.actor_id) == ("agent_page", agent_user_alice.pk)
    # Unticking saves the new list; the page's state carries it for a reload.
    post(client, "/me/wrap-up", {"checklist": [steps[1].pk]})
    assert AcwSession.objects.get(agent=alice).checklist == [steps[1].pk]
    assert client.get("/me/state").json()["wrap_up"] == {
        "checklist": [steps[1].pk],
        "wrap_up_code": "",
        "note": "",
    }


def test_saved_ticks_and_code_survive_a_timeout(
    agent_user_alice: User, alice: Any, steps: list[ChecklistItem]
) -> None:
    WrapUpCode.objects.create(code="resolved", label="Resolved")
    put_in_acw("alice")
    client = client_for(agent_user_alice)
    post(client, "/me/wrap-up", {"checklist": [steps[0].pk, steps[1].pk]})
    post(client, "/me/wrap-up", {"wrap_up_code": "resolved"})
    with time_machine.travel(timezone.now() + timedelta(seconds=60), tick=False):
        assert services.expire_due_acws() == 1
    acw = AcwSession.objects.get(agent=alice)
    assert acw.end_reason == "timeout"
    assert acw.checklist == [steps[0].pk, steps[1].pk]
    assert acw.wrap_up_code == "resolved"


def test_a_wrap_up_save_is_checked_like_ready(
    agent_user_alice: User, alice: Any, south: Any
) -> None:
    other = ChecklistItem.objects.create(team=south, label="South-only step")
    client = client_for(agent_user_alice)
    assert post(client, "/me/wrap-up", {"checklist": []}).status_code == 409  # not in ACW
    put_in_acw("alice")
    assert post(client, "/me/wrap-up", {"checklist": [other.pk]}).json() == {
        "error": "checklist: unknown item"
    }
    assert post(client, "/me/wrap-up", {"wrap_up_code": "nope"}).status_code == 400
    assert post(client, "/me/wrap-up", {}).status_code == 400
    assert not Event.objects.filter(type="acw.updated").exists()


@pytest.mark.usefixtures("frozen_now")
def test_ready_under_a_strict_policy_is_refused_before_the_deadline(
    agent_user_alice: User, alice: Any, north: Any
) -> None:
    AcwPolicy.objects.create(team=north, channel="", mode="timed_strict", seconds=30)
    put_in_acw("alice", ended_ago=3)
    client = client_for(agent_user_alice)
    state = client.get("/me/state").json()
    deadline = AcwSession.objects.get(agent=alice).deadline
    assert state["ready_from"] == deadline.isoformat()
    response = post(client, "/me/ready", {"checklist": []})
    assert response.status_code == 409
    body = response.json()
    # The deadline is 27 s away (30 s timer, the interaction ended 3 s ago).
    assert body["error"] == (
        "state: your ACW policy is strict: Ready is possible at the deadline, in 27 s"
    )
    assert body["ready_from"] == deadline.isoformat()
    acw = AcwSession.objects.get(agent=alice)
    assert (acw.ended_at, acw.policy_violation) == (None, "")
    assert not Event.objects.filter(type="acw.ended").exists()


def test_a_strict_acw_ends_by_itself_at_the_deadline(
    agent_user_alice: User, alice: Any, north: Any
) -> None:
    AcwPolicy.objects.create(team=north, channel="", mode="timed_strict", seconds=30)
    put_in_acw("alice", ended_ago=3)
    with time_machine.travel(timezone.now() + timedelta(seconds=28), tick=False):
        state = client_for(agent_user_alice).get("/me/state").json()
    assert state["agent"]["state"] == "available"
    assert state["ready_from"] is None


def test_the_api_still_applies_an_early_acw_ended_under_strict_and_flags_it(
    alice: Any, north: Any
) -> None:
    # Contract §3: acw.ended closes the open ACW; the early exit is only flagged.
    AcwPolicy.objects.create(team=north, channel="", mode="timed_strict", seconds=30)
    put_in_acw("alice", ended_ago=3)
    ingest(event("alice", "acw.ended", 0))
    acw = AcwSession.objects.get(agent=alice)
    assert (acw.end_reason, acw.policy_violation) == ("agent_ready", "early_exit")


def test_ready_under_a_timed_policy_is_still_allowed_early(
    agent_user_alice: User, alice: Any
) -> None:
    put_in_acw("alice", ended_ago=3)
    client = client_for(agent_user_alice)
    assert client.get("/me/state").json()["ready_from"] is None
    assert post(client, "/me/ready", {}).status_code == 200


def test_a_timeout_without_the_required_code_is_flagged_and_queryable(
    alice: Any, bob: Any, north: Any
) -> None:
    AcwPolicy.objects.create(team=north, channel="", seconds=30, wrap_up_required=True)
    put_in_acw("alice", ended_ago=100)  # its deadline passed 70 s ago
    put_in_acw("bob", ended_ago=100)
    ingest(event("bob", "acw.updated", 90, wrap_up_code="sale"))  # a code before the deadline
    services.expire_due_acws()
    flagged = AcwSession.objects.filter(missing_wrap_up=True)
    assert [acw.agent.external_id for acw in flagged] == ["alice"]
    alice_acw = flagged.get()
    assert (alice_acw.end_reason, alice_acw.policy_violation) == ("timeout", "missing_wrap_up")
    assert AcwSession.objects.get(agent=bob).policy_violation == ""


def test_the_agents_kpi_page_shows_the_missing_code(
    supervisor_sam: User, alice: Any, north: Any
) -> None:
    AcwPolicy.objects.create(team=north, channel="", seconds=30, wrap_up_required=True)
    put_in_acw("alice", ended_ago=100)
    services.expire_due_acws()
    client = client_for(supervisor_sam)
    html = client.get("/kpis/agents/alice/").content.decode()
    assert '<span class="flag flag-missing_wrap_up">Missing wrap-up code</span>' in html
    export = client.get("/kpis/agents/alice/", {"csv": "interactions"})
    lines = b"".join(export.streaming_content).decode().splitlines()
    assert lines[0].endswith(",policy_violation")
    assert lines[1].endswith(",missing_wrap_up")


def test_ready_accepts_the_code_saved_before(
    agent_user_alice: User, alice: Any, north: Any
) -> None:
    AcwPolicy.objects.create(team=north, channel="", wrap_up_required=True)
    WrapUpCode.objects.create(code="resolved", label="Resolved")
    put_in_acw("alice")
    client = client_for(agent_user_alice)
    post(client, "/me/wrap-up", {"wrap_up_code": "resolved", "note": "Called back"})
    response = post(client, "/me/ready", {"wrap_up_code": "", "note": ""})
    assert response.status_code == 200, response.content
    acw = AcwSession.objects.get(agent=alice)
    assert (acw.wrap_up_code, acw.note, acw.policy_violation) == ("resolved", "Called back", "")
