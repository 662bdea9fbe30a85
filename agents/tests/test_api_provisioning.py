"""``PUT /api/v1/agents/<external_id>`` (docs/api.md, section 4)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from agents import services
from agents.models import Agent, AgentState, Team
from agents.tests.factories import client_for, event

pytestmark = pytest.mark.django_db


def put(client: APIClient, external_id: str, body: Any) -> Any:
    return client.put(
        f"/api/v1/agents/{external_id}", json.dumps(body), content_type="application/json"
    )


def test_a_token_creates_an_agent_and_its_new_team(api: APIClient) -> None:
    response = put(api, "ext-1", {"name": "Dora Vidal", "team": "West"})
    assert response.status_code == 201
    assert response.json() == {"agent": "ext-1", "name": "Dora Vidal", "team": "West"}
    agent = Agent.objects.select_related("team").get(external_id="ext-1")
    assert (agent.name, agent.team.name) == ("Dora Vidal", "West")
    assert AgentState.objects.get(agent=agent).state == "offline"


def test_a_second_put_updates_the_agent_with_200(api: APIClient, alice: Agent) -> None:
    response = put(api, "alice", {"name": "Alice M.", "team": "South"})
    assert response.status_code == 200
    assert response.json() == {"agent": "alice", "name": "Alice M.", "team": "South"}
    alice.refresh_from_db()
    assert (alice.name, alice.team.name) == ("Alice M.", "South")
    assert Team.objects.filter(name="South").count() == 1
    assert Agent.objects.count() == 1


def test_putting_the_same_body_twice_is_idempotent(api: APIClient) -> None:
    body = {"name": "Emil", "team": "East"}
    assert put(api, "emil", body).status_code == 201
    assert put(api, "emil", body).status_code == 200
    assert Agent.objects.filter(external_id="emil").count() == 1
    assert Team.objects.filter(name="East").count() == 1


def test_an_auto_created_agent_is_named_and_placed_by_provisioning(api: APIClient) -> None:
    result = services.ingest_event(event("t-77", "agent.logged_in", 60))
    assert result.status == "accepted"
    assert Agent.objects.get(external_id="t-77").team.name == "Unassigned"
    response = put(api, "t-77", {"name": "Farid", "team": "North"})
    assert response.status_code == 200
    state = api.get("/api/v1/agents/state").json()["agents"]
    assert [(a["agent"], a["name"], a["team"], a["state"]) for a in state] == [
        ("t-77", "Farid", "North", "available")
    ]


def test_an_admin_session_may_provision(admin_ada: Any) -> None:
    response = put(client_for(admin_ada), "ext-2", {"name": "Gus", "team": "North"})
    assert response.status_code == 201


@pytest.mark.parametrize("who", ["supervisor_sam", "manager_maria", "agent_user_alice"])
def test_supervisors_managers_and_agents_may_not_provision(
    request: pytest.FixtureRequest, who: str
) -> None:
    response = put(client_for(request.getfixturevalue(who)), "ext-3", {"name": "X", "team": "T"})
    assert response.status_code == 403
    assert "error" in response.json()
    assert not Agent.objects.filter(external_id="ext-3").exists()
    assert not Team.objects.filter(name="T").exists()


def test_anonymous_may_not_provision(db: None) -> None:
    response = put(APIClient(), "ext-4", {"name": "X", "team": "T"})
    assert response.status_code == 401
    assert not Agent.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"team": "North"}, "name"),
        ({"name": "", "team": "North"}, "name"),
        ({"name": "   ", "team": "North"}, "name"),
        ({"name": "n" * 201, "team": "North"}, "name"),
        ({"name": 42, "team": "North"}, "name"),
        ({"name": "Dora"}, "team"),
        ({"name": "Dora", "team": ""}, "team"),
        ({"name": "Dora", "team": "t" * 101}, "team"),
        ({"name": "Dora", "team": ["North"]}, "team"),
        ({"name": "Dora", "team": None}, "team"),
    ],
    ids=[
        "no name",
        "empty name",
        "blank name",
        "long name",
        "numeric name",
        "no team",
        "empty team",
        "long team",
        "list team",
        "null team",
    ],
)
def test_an_invalid_body_is_400_naming_the_field(
    api: APIClient, body: dict[str, Any], field: str
) -> None:
    response = put(api, "ext-5", body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}:"), response.json()
    assert not Agent.objects.filter(external_id="ext-5").exists()


def test_an_external_id_over_100_characters_is_400(api: APIClient) -> None:
    response = put(api, "x" * 101, {"name": "Long", "team": "North"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("external_id:")
    assert put(api, "x" * 100, {"name": "Long", "team": "North"}).status_code == 201


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'"x"'], ids=["text", "array", "string"])
def test_a_body_that_is_not_a_json_object_is_400(api: APIClient, raw: bytes) -> None:
    response = api.put("/api/v1/agents/ext-6", raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"].startswith("body:"), response.json()
    assert not Agent.objects.exists()


def test_moving_an_agent_keeps_its_live_state(api: APIClient, alice: Agent) -> None:
    services.ingest_event(event("alice", "agent.not_ready", 60, reason="training"))
    assert put(api, "alice", {"name": "Alice Martin", "team": "South"}).status_code == 200
    row = api.get("/api/v1/agents/state").json()["agents"][0]
    assert (row["team"], row["state"], row["reason"]) == ("South", "not_ready", "training")


def test_an_agent_whose_id_is_state_can_be_provisioned(
    api: APIClient, supervisor_sam: Any, alice: Agent
) -> None:
    response = put(api, "state", {"name": "Stan Tate", "team": "North"})
    assert response.status_code == 201
    assert Agent.objects.get(external_id="state").name == "Stan Tate"
    assert (
        put(client_for(supervisor_sam), "state", {"name": "X", "team": "North"}).status_code == 403
    )
    listed = {row["agent"] for row in api.get("/api/v1/agents/state").json()["agents"]}
    assert {"state", "alice"} <= listed
