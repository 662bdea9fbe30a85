"""The live-state read API: ``GET /api/v1/agents/state`` (and the read APIs' shared access rules)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from rest_framework.test import APIClient

from agents.models import AcwPolicy, Agent
from agents.tests.factories import at, call, client_for, send

STATE_URL = "/api/v1/agents/state"
KPI_URL = "/api/v1/kpis"

# Time stands still on the afternoon of DAY (the root conftest's frozen_now).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

AGENT_FIELDS = {
    "agent",
    "name",
    "team",
    "state",
    "reason",
    "since",
    "interaction_id",
    "acw_deadline",
}


# --- GET /api/v1/agents/state ---------------------------------------------------------------


@pytest.fixture
def live_floor(alice: Agent, bob: Agent, carol: Agent) -> None:
    """alice on a call, bob in ACW, carol on lunch, dora auto-created and available."""
    send("alice", "agent.logged_in", "14:00:00")
    send("alice", "interaction.started", "14:50:00", interaction_id="c-7", channel="chat")
    send("bob", "interaction.started", "14:55:00", interaction_id="c-8", channel="phone")
    send("bob", "interaction.ended", "14:59:50", interaction_id="c-8")
    send("carol", "agent.not_ready", "14:30:00", reason="lunch")
    send("dora", "agent.logged_in", "14:45:00")


def test_agent_states_have_exactly_the_contract_fields(api: APIClient, live_floor: None) -> None:
    response = api.get(STATE_URL)
    assert response.status_code == 200
    agents = {row["agent"]: row for row in response.json()["agents"]}
    assert set(agents) == {"alice", "bob", "carol", "dora"}
    for row in agents.values():
        assert set(row) >= AGENT_FIELDS
    assert {k: agents["alice"][k] for k in AGENT_FIELDS} == {
        "agent": "alice",
        "name": "Alice Martin",
        "team": "North",
        "state": "on_interaction",
        "reason": None,
        "since": agents["alice"]["since"],
        "interaction_id": "c-7",
        "acw_deadline": None,
    }
    assert datetime.fromisoformat(agents["alice"]["since"]) == at("14:50:00")
    bob = agents["bob"]
    assert (bob["state"], bob["reason"], bob["interaction_id"]) == ("acw", None, None)
    assert datetime.fromisoformat(bob["since"]) == at("14:59:50")
    # Site default policy: a timed ACW of 30 s.
    assert datetime.fromisoformat(bob["acw_deadline"]) == at("15:00:20")
    carol = agents["carol"]
    assert (carol["state"], carol["reason"], carol["team"]) == ("not_ready", "lunch", "South")
    assert (carol["interaction_id"], carol["acw_deadline"]) == (None, None)
    dora = agents["dora"]
    assert (dora["name"], dora["team"], dora["state"]) == ("dora", "Unassigned", "available")


def test_an_agent_never_seen_is_offline_with_no_since(api: APIClient, alice: Agent) -> None:
    row = api.get(STATE_URL).json()["agents"][0]
    assert (row["agent"], row["state"], row["reason"]) == ("alice", "offline", None)
    assert (row["interaction_id"], row["acw_deadline"]) == (None, None)


def test_an_untimed_acw_has_a_null_deadline(api: APIClient, alice: Agent, north: Any) -> None:
    AcwPolicy.objects.create(team=north, mode="manual")
    call("alice", "c-1", "14:00:00", "14:10:00")
    row = api.get(STATE_URL).json()["agents"][0]
    assert (row["state"], row["acw_deadline"]) == ("acw", None)


def test_a_supervisor_sees_only_their_teams(supervisor_sam: Any, live_floor: None) -> None:
    response = client_for(supervisor_sam).get(STATE_URL)
    assert response.status_code == 200
    assert sorted(row["agent"] for row in response.json()["agents"]) == ["alice", "bob"]


@pytest.mark.parametrize("who", ["manager_maria", "admin_ada"])
def test_managers_and_admins_see_every_agent(
    request: pytest.FixtureRequest, who: str, live_floor: None
) -> None:
    response = client_for(request.getfixturevalue(who)).get(STATE_URL)
    assert response.status_code == 200
    agents = sorted(row["agent"] for row in response.json()["agents"])
    assert agents == ["alice", "bob", "carol", "dora"]


def test_an_agent_user_gets_403_on_the_read_apis(agent_user_alice: Any) -> None:
    client = client_for(agent_user_alice)
    assert client.get(STATE_URL).status_code == 403
    response = client.get(KPI_URL)
    assert response.status_code == 403
    assert "error" in response.json()


def test_anonymous_gets_401_on_the_read_apis(db: None) -> None:
    for url in (STATE_URL, KPI_URL):
        response = APIClient().get(url)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_user_without_a_role_gets_403(django_user_model: Any) -> None:
    nobody = django_user_model.objects.create_user("nobody", password="x")
    assert client_for(nobody).get(STATE_URL).status_code == 403


def test_a_supervisor_of_no_team_sees_no_agent(django_user_model: Any, live_floor: None) -> None:
    from django.contrib.auth.models import Group

    lonely = django_user_model.objects.create_user("lonely", password="x")
    lonely.groups.add(Group.objects.get(name="Supervisors"))
    response = client_for(lonely).get(STATE_URL)
    assert response.status_code == 200
    assert response.json() == {"agents": []}
