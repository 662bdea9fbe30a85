"""The wall page, its summary and supervisor action, and the agent's wrap-up page."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from agents import selectors, services
from agents.models import (
    AcwPolicy,
    AcwSession,
    Channel,
    ChecklistItem,
    Event,
    State,
    StateThreshold,
    WrapUpCode,
)
from agents.tests.factories import event

pytestmark = pytest.mark.django_db


def client_for(user: Any, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def ingest(agent: str, type_: str, seconds_ago: float = 0, **fields: Any) -> None:
    result = services.ingest_event(event(agent, type_, seconds_ago, **fields))
    assert result.status == "accepted", result


def put_in_acw(agent: str, channel: str = "phone", ended_ago: float = 5) -> None:
    ingest(agent, "agent.logged_in", ended_ago + 70)
    ingest(agent, "interaction.started", ended_ago + 60, interaction_id="c1", channel=channel)
    ingest(agent, "interaction.ended", ended_ago, interaction_id="c1")


# --- The wall page --------------------------------------------------------------------------


def test_the_wall_sends_anonymous_users_to_the_login_page(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_login_page_is_styled_and_posts_to_django_auth(client: Client) -> None:
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b'action="/accounts/login/"' in response.content
    assert b"css/app.css" in response.content


def test_a_supervisor_gets_the_wall_with_their_teams_only(supervisor_sam: User, south: Any) -> None:
    response = client_for(supervisor_sam).get("/")
    assert response.status_code == 200
    content = response.content.decode()
    assert '<option value="North">' in content
    assert '<option value="South">' not in content
    assert "js/wall.js" in content
    assert 'id="wall-summary"' in content


def test_the_wall_takes_its_states_and_channels_from_the_model_choices(
    supervisor_sam: User,
) -> None:
    page = client_for(supervisor_sam).get("/").content.decode()
    match = re.search(r'<script id="vocabulary" type="application/json">(.*?)</script>', page)
    assert match is not None
    vocabulary = json.loads(match.group(1))
    assert vocabulary["states"] == [{"value": v, "label": str(lab)} for v, lab in State.choices]
    assert vocabulary["channels"] == [{"value": v, "label": str(lab)} for v, lab in Channel.choices]
    counters = re.findall(r'data-count="(\w+)"', page)
    assert sorted(counters) == sorted(State.values)
    assert counters[-1] == "offline"


def test_an_agent_user_is_sent_to_the_wrap_up_page(agent_user_alice: User) -> None:
    response = client_for(agent_user_alice).get("/")
    assert response.status_code == 302
    assert response["Location"] == "/me/"


def test_a_user_without_a_role_is_refused_the_wall(db: None) -> None:
    nobody = User.objects.create_user("nobody", password="x")
    assert client_for(nobody).get("/").status_code == 403
    assert client_for(nobody).get("/wall/summary").status_code == 403


def test_the_nav_shows_admin_to_staff_only(supervisor_sam: User, admin_ada: User) -> None:
    assert b'href="/admin/"' not in client_for(supervisor_sam).get("/").content
    assert b'href="/admin/"' in client_for(admin_ada).get("/").content


def test_the_summary_gives_todays_average_acw_against_the_weighted_target(
    supervisor_sam: User, alice: Any, bob: Any, north: Any
) -> None:
    AcwPolicy.objects.create(team=north, channel="", target_avg_seconds=20)
    put_in_acw("alice", ended_ago=40)
    ingest("alice", "acw.ended", 30)  # 10 s of ACW
    put_in_acw("bob", ended_ago=40)
    ingest("bob", "acw.ended", 10)  # 30 s of ACW
    body = client_for(supervisor_sam).get("/wall/summary").json()
    assert body["kpis"]["interactions"] == 2
    assert body["kpis"]["avg_acw_seconds"] == pytest.approx(20, abs=0.2)
    assert body["kpis"]["target_avg_seconds"] == 20


def test_the_default_colour_tiers_are_for_states_that_exist() -> None:
    assert set(selectors.DEFAULT_STATE_TIERS) <= set(State.values)


def test_the_summary_carries_the_admin_edited_colour_tiers_and_no_policies(
    supervisor_sam: User, north: Any
) -> None:
    StateThreshold.objects.update_or_create(
        state="not_ready",
        defaults={"notice_after_seconds": 5, "amber_after_seconds": 20, "red_after_seconds": 40},
    )
    AcwPolicy.objects.create(team=north, channel="chat", seconds=90)
    config = client_for(supervisor_sam).get("/wall/summary").json()["config"]
    assert config["tiers"]["not_ready"] == [5, 20, 40]
    assert config["tiers"]["on_interaction"] == [10, 60, 300]  # VICIdial's defaults (0003)
    # The page resolves no policy: ACW tiles carry their colour points (agents.policies).
    assert set(config) == {"tiers"}
    page = client_for(supervisor_sam).get("/").content.decode()
    assert '"policies"' not in page and "alert_acw_seconds" not in page


# --- A supervisor ends an ACW ---------------------------------------------------------------


def test_a_supervisor_ends_an_agents_acw_through_the_ingestion_service(
    supervisor_sam: User, alice: Any
) -> None:
    put_in_acw("alice")
    response = client_for(supervisor_sam).post("/wall/end-acw/alice")
    assert response.status_code == 200
    assert response.json()["agent"]["state"] == "available"
    acw = AcwSession.objects.get(agent=alice)
    assert acw.end_reason == "supervisor"
    assert acw.ended_by == supervisor_sam
    stored = Event.objects.get(agent=alice, type="acw.ended")
    assert (stored.source, stored.actor, stored.data["reason"]) == (
        "wall",
        supervisor_sam,
        "supervisor",
    )


def test_a_supervisor_cannot_end_the_acw_of_another_teams_agent(
    supervisor_sam: User, carol: Any
) -> None:
    put_in_acw("carol")
    assert client_for(supervisor_sam).post("/wall/end-acw/carol").status_code == 404
    assert AcwSession.objects.get(agent=carol).ended_at is None


def test_ending_acw_of_an_agent_not_in_acw_is_a_conflict(supervisor_sam: User, alice: Any) -> None:
    response = client_for(supervisor_sam).post("/wall/end-acw/alice")
    assert response.status_code == 409
    assert not Event.objects.filter(type="acw.ended").exists()


def test_ending_acw_needs_post_and_a_csrf_token(supervisor_sam: User, alice: Any) -> None:
    put_in_acw("alice")
    assert client_for(supervisor_sam).get("/wall/end-acw/alice").status_code == 405
    assert client_for(supervisor_sam, csrf=True).post("/wall/end-acw/alice").status_code == 403
    assert AcwSession.objects.get(agent=alice).ended_at is None


def test_an_agent_user_cannot_end_anyones_acw(agent_user_alice: User, alice: Any) -> None:
    put_in_acw("alice")
    assert client_for(agent_user_alice).post("/wall/end-acw/alice").status_code == 403


# --- The agent's wrap-up page ---------------------------------------------------------------


def test_the_wrap_up_page_lists_the_teams_and_global_checklist_items(
    agent_user_alice: User, north: Any, south: Any
) -> None:
    ChecklistItem.objects.create(team=north, label="Update the CRM record")
    ChecklistItem.objects.create(team=None, label="Document the call")
    ChecklistItem.objects.create(team=south, label="South-only step")
    WrapUpCode.objects.create(code="resolved", label="Resolved")
    content = client_for(agent_user_alice).get("/me/").content.decode()
    assert "Update the CRM record" in content
    assert "Document the call" in content
    assert "South-only step" not in content
    assert 'value="resolved"' in content


def test_the_wrap_up_page_says_so_when_no_agent_is_linked(supervisor_sam: User) -> None:
    response = client_for(supervisor_sam).get("/me/")
    assert response.status_code == 200
    assert b"No agent is linked to this login" in response.content
    assert client_for(supervisor_sam).post("/me/ready").status_code == 403
    assert client_for(supervisor_sam).get("/me/state").status_code == 403


def test_ready_ends_the_acw_with_code_note_and_checklist(
    agent_user_alice: User, alice: Any, north: Any
) -> None:
    step = ChecklistItem.objects.create(team=north, label="Update the CRM record")
    WrapUpCode.objects.create(code="resolved", label="Resolved")
    put_in_acw("alice")
    body = {"wrap_up_code": "resolved", "note": "Called back", "checklist": [step.pk]}
    response = client_for(agent_user_alice).post("/me/ready", body, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["agent"]["state"] == "available"
    acw = AcwSession.objects.get(agent=alice)
    assert (acw.end_reason, acw.wrap_up_code, acw.note) == (
        "agent_ready",
        "resolved",
        "Called back",
    )
    assert acw.checklist == [step.pk]
    assert acw.ended_by == agent_user_alice
    assert Event.objects.get(type="acw.ended").source == "agent_page"


def test_ready_requires_a_wrap_up_code_when_the_policy_says_so(
    agent_user_alice: User, alice: Any, north: Any
) -> None:
    AcwPolicy.objects.create(team=north, channel="", wrap_up_required=True)
    put_in_acw("alice")
    client = client_for(agent_user_alice)
    response = client.post("/me/ready", {"note": "x"}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"].startswith("wrap_up_code")
    assert AcwSession.objects.get(agent=alice).ended_at is None


def test_ready_refuses_another_teams_checklist_item(
    agent_user_alice: User, alice: Any, south: Any
) -> None:
    other = ChecklistItem.objects.create(team=south, label="South-only step")
    put_in_acw("alice")
    response = client_for(agent_user_alice).post(
        "/me/ready", {"checklist": [other.pk]}, content_type="application/json"
    )
    assert response.status_code == 400


def test_extend_adds_the_policys_step_to_the_deadline(agent_user_alice: User, alice: Any) -> None:
    put_in_acw("alice")
    before = AcwSession.objects.get(agent=alice).deadline
    response = client_for(agent_user_alice).post("/me/extend")
    assert response.status_code == 200
    acw = AcwSession.objects.get(agent=alice)
    assert acw.deadline - before == timedelta(seconds=30)
    assert acw.extensions == 1
    assert response.json()["agent"]["acw_extensions"] == 1


def test_extend_is_refused_when_the_policy_does_not_allow_it(
    agent_user_alice: User, alice: Any, north: Any
) -> None:
    AcwPolicy.objects.create(team=north, channel="", allow_extension=False)
    put_in_acw("alice")
    response = client_for(agent_user_alice).post("/me/extend")
    assert response.status_code == 400
    assert AcwSession.objects.get(agent=alice).extensions == 0


def test_my_state_shows_the_acw_and_its_policy(agent_user_alice: User, alice: Any) -> None:
    put_in_acw("alice", channel="chat")
    body = client_for(agent_user_alice).get("/me/state").json()
    assert body["agent"]["state"] == "acw"
    assert body["agent"]["channel"] == "chat"
    assert body["policy"]["seconds"] == 30
    assert body["policy"]["allow_extension"] is True


def test_extend_is_refused_at_the_state_machines_cap(
    agent_user_alice: User, alice: Any, north: Any
) -> None:
    AcwPolicy.objects.create(team=north, channel="", seconds=30, max_seconds=60)
    put_in_acw("alice")
    client = client_for(agent_user_alice)
    assert client.post("/me/extend").status_code == 200  # 30 s → 60 s, the maximum
    response = client.post("/me/extend")
    assert response.status_code == 409
    assert response.json() == {"error": "seconds: ACW already at its maximum of 60 s"}
    acw = AcwSession.objects.get(agent=alice)
    assert (acw.deadline - acw.started_at, acw.extensions) == (timedelta(seconds=60), 1)


def test_extend_follows_the_policy_the_acw_started_under(
    agent_user_alice: User, alice: Any, north: Any
) -> None:
    # An admin forbids extension while the ACW runs: the state machine keeps the ACW's own
    # policy (it would apply the extension on a replay too), and so does the page.
    put_in_acw("alice")
    AcwPolicy.objects.create(team=north, channel="", allow_extension=False)
    response = client_for(agent_user_alice).post("/me/extend")
    assert response.status_code == 200
    assert AcwSession.objects.get(agent=alice).extensions == 1
