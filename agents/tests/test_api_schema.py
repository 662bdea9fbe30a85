"""The OpenAPI schema, generated from the serializers that validate and render.

Each response shape in the schema is compared with a real answer of its endpoint (the expected
fields come from the answer, never from a list written here), so schema and API cannot drift
apart. ``/api/docs/`` browses the schema with Swagger UI served from local files.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from agents import selectors, services
from agents.events import agent_payload
from agents.models import AgentState
from agents.states import EVENT_TYPES
from agents.tests.factories import event

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(admin_ada: Any) -> Client:
    """The schema and its docs are read as an admin, who may see them in any configuration."""
    client = Client()
    client.force_login(admin_ada)
    return client


@pytest.fixture
def schema(staff_client: Client) -> dict[str, Any]:
    response = staff_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def component(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return schema["components"]["schemas"][name]


def fields(schema: dict[str, Any], name: str) -> set[str]:
    return set(component(schema, name)["properties"])


def keys_of(rows: list[dict[str, Any]]) -> set[str]:
    """The keys every row has (and each row has the same ones)."""
    assert rows
    keys = [set(row) for row in rows]
    assert all(k == keys[0] for k in keys), keys
    return keys[0]


def ingest(*events: dict[str, Any]) -> None:
    assert [services.ingest_event(e).status for e in events] == ["accepted"] * len(events)


@pytest.fixture
def floor(alice: Any, bob: Any, carol: Any) -> None:
    """Agents in every state: alice in an extended ACW, bob on a call, carol on a break, dora
    available and erin offline (both auto-created)."""
    ingest(
        event("alice", "interaction.started", 90, interaction_id="c-1", channel="phone"),
        event("alice", "interaction.ended", 5, interaction_id="c-1"),
        event("alice", "acw.extended", 2, seconds=10),
        event("bob", "interaction.started", 30, interaction_id="c-2", channel="chat"),
        event("carol", "agent.not_ready", 60, reason="break"),
        event("dora", "agent.logged_in", 60),
        event("erin", "agent.logged_in", 60),
        event("erin", "agent.logged_out", 30),
    )


def test_the_schema_lists_the_four_endpoints(schema: dict[str, Any]) -> None:
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert "post" in paths["/api/v1/events"]
    assert "get" in paths["/api/v1/agents/state"]
    assert "put" in paths["/api/v1/agents/{external_id}"]
    assert "get" in paths["/api/v1/kpis"]
    kpi_params = {p["name"] for p in paths["/api/v1/kpis"]["get"]["parameters"]}
    assert {"group_by", "from", "to", "team"} <= kpi_params
    assert "bearerToken" in schema["components"]["securitySchemes"]


def test_the_schema_is_valid_and_generated_without_warnings(tmp_path: Path) -> None:
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml")
    )
    assert (tmp_path / "schema.yml").stat().st_size > 1000


def test_an_agent_state_in_the_schema_has_exactly_the_fields_the_api_answers(
    api: APIClient, schema: dict[str, Any], floor: None
) -> None:
    rows = api.get("/api/v1/agents/state").json()["agents"]
    assert {row["state"] for row in rows} == {
        "acw",
        "on_interaction",
        "not_ready",
        "available",
        "offline",
    }
    assert fields(schema, "AgentState") == keys_of(rows)
    documented = component(schema, "AgentState")["properties"]
    for row in rows:
        for name, value in row.items():
            if value is None:
                assert documented[name].get("nullable"), f"{name} is null in {row}"


def test_the_wall_shows_agents_with_the_same_fields_as_the_api(
    schema: dict[str, Any], floor: None, north: Any, south: Any
) -> None:
    snapshot = selectors.wall_snapshot({north.pk, south.pk})
    assert keys_of(snapshot["agents"]) == fields(schema, "AgentState")
    live = AgentState.objects.select_related("agent__team").get(agent__external_id="alice")
    assert set(agent_payload(live)) == fields(schema, "AgentState")


@pytest.mark.parametrize("group_by", ["agent", "team", "wrap_up_code"])
def test_a_kpi_row_in_the_schema_has_exactly_the_fields_the_api_answers(
    api: APIClient, schema: dict[str, Any], alice: Any, group_by: str
) -> None:
    ingest(
        event("alice", "interaction.started", 120, interaction_id="c-1", channel="phone"),
        event("alice", "interaction.ended", 60, interaction_id="c-1"),
        event("alice", "acw.ended", 30),
    )
    today = timezone.localdate()
    query = {"group_by": group_by, "from": str(today - timedelta(days=1)), "to": str(today)}
    response = api.get("/api/v1/kpis", query)
    assert response.status_code == 200
    keys = keys_of(response.json()["rows"])
    # Optional fields (not "required" in the schema) belong to some groupings only.
    required = set(component(schema, "KpiRow")["required"])
    optional = fields(schema, "KpiRow") - required
    assert keys == (required | optional if group_by == "wrap_up_code" else required)
    assert fields(schema, "Kpis") == set(response.json())


def test_event_results_in_the_schema_match_the_answers(
    api: APIClient, schema: dict[str, Any], alice: Any
) -> None:
    def post(body: Any) -> Any:
        return api.post("/api/v1/events", json.dumps(body), content_type="application/json")

    accepted = post(event("alice", "agent.logged_in", 10)).json()
    rejected = post(event("alice", "agent.not_ready", 5)).json()  # no reason
    assert set(accepted) | set(rejected) == fields(schema, "EventResult")
    batch = post({"events": [event("alice", "agent.available", 1), {"no": "event"}]}).json()
    assert set(batch) == fields(schema, "BatchResult")
    assert set().union(*batch["results"]) == fields(schema, "EventResult")


def test_the_provisioning_answer_matches_the_schema(api: APIClient, schema: dict[str, Any]) -> None:
    response = api.put("/api/v1/agents/a-9", {"name": "Ann", "team": "North"}, format="json")
    assert response.status_code == 201
    assert set(response.json()) == fields(schema, "Agent")


def test_every_event_type_is_documented_with_the_fields_that_are_validated(
    schema: dict[str, Any],
) -> None:
    mapping = component(schema, "Event")["discriminator"]["mapping"]
    assert set(mapping) == set(EVENT_TYPES)
    acw_ended = fields(schema, mapping["acw.ended"].rsplit("/", 1)[1])
    assert {"reason", "wrap_up_code", "note", "checklist"} <= acw_ended
    started = fields(schema, mapping["interaction.started"].rsplit("/", 1)[1])
    assert {"interaction_id", "channel", "direction", "queue"} <= started
    envelope = {"event_id", "type", "agent", "occurred_at"}
    assert all(envelope <= fields(schema, ref.rsplit("/", 1)[1]) for ref in mapping.values())


def test_the_api_docs_page_uses_only_local_assets(staff_client: Client) -> None:
    response = staff_client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    # The start-up script is a file of its own (no inline script under the CSP).
    script = staff_client.get("/api/docs/", {"script": ""})
    assert script.status_code == 200 and "/api/schema/" in script.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    static = [url for url in assets if url.startswith("/static/")]
    assert any(url.endswith("swagger-ui-bundle.js") for url in static)
    assert not [url for url in assets if "//" in url], "the docs page must not load from a CDN"
    for url in static:
        assert finders.find(url.removeprefix("/static/")), url
