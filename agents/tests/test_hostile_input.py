"""Hostile input never answers 500: deep JSON, lone surrogates, NULs, empty parameters.

Each case here was a 500 found by fuzzing the running API; each answer is now a clear 4xx (or a
503 page while the database is down) and nothing is written for what is refused.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from agents.models import Agent, Event
from agents.tests.test_api_events import database_down, event  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db

DEEP = 100_000


def deep_json(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def deep_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


# --- Deeply nested JSON ---------------------------------------------------------------------


@pytest.mark.parametrize("body", [deep_json(), deep_object(DEEP), deep_object(200)])
def test_deeply_nested_json_on_the_events_api_is_400(api: APIClient, body: str) -> None:
    response = api.post("/api/v1/events", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"].startswith("body:")
    assert not Event.objects.exists()


def test_a_deeply_nested_field_inside_an_event_is_400(api: APIClient) -> None:
    raw = json.dumps(event())[:-1] + ', "extra": ' + deep_json(5000) + "}"
    response = api.post("/api/v1/events", raw, content_type="application/json")
    assert response.status_code == 400
    assert not Event.objects.exists()


@pytest.mark.parametrize("body", [deep_json(), deep_object(DEEP), deep_object(200)])
def test_deeply_nested_json_on_agent_provisioning_is_400(api: APIClient, body: str) -> None:
    response = api.put("/api/v1/agents/ext-1", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"].startswith("body:")
    assert not Agent.objects.exists()


def test_deeply_nested_json_on_the_agent_page_is_400(agent_user_alice: Any) -> None:
    client = Client()
    client.force_login(agent_user_alice)
    response = client.post("/me/ready", deep_json(), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"].startswith("body:")


# --- Lone surrogates ------------------------------------------------------------------------

SURROGATE = '"a\\ud800b"'  # valid JSON text, but no UTF-8 encoding exists for U+D800


def test_a_lone_surrogate_in_event_id_is_rejected(api: APIClient) -> None:
    raw = json.dumps(event())
    raw = raw.replace('"event_id": "', '"event_id": "x\\udc80', 1)
    response = api.post("/api/v1/events", raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"].startswith("event_id:")
    assert not Event.objects.exists()


@pytest.mark.parametrize("field", ["type", "agent", "occurred_at", "channel"])
def test_a_lone_surrogate_in_any_field_is_a_clear_400(api: APIClient, field: str) -> None:
    body = event("interaction.started", interaction_id="c1", channel="phone")
    raw = json.dumps({**body, field: "PLACEHOLDER"}).replace('"PLACEHOLDER"', SURROGATE)
    response = api.post("/api/v1/events", raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}:")
    json.dumps(response.json()).encode()  # the answer itself is valid UTF-8
    assert not Event.objects.exists()


def test_a_batch_with_a_lone_surrogate_answers_200_and_a_retry_is_all_duplicates(
    api: APIClient,
) -> None:
    good = [event(agent="dora", offset=1), event(agent="dora", offset=2)]
    bad = event(agent="dora", offset=3)
    raw_bad = json.dumps(bad).replace(f'"{bad["event_id"]}"', '"bad-\\ud800"')
    raw = '{"events": [' + ", ".join([json.dumps(good[0]), raw_bad, json.dumps(good[1])]) + "]}"

    first = api.post("/api/v1/events", raw, content_type="application/json")
    assert first.status_code == 200
    body = first.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 0, 1)
    assert body["results"][1]["status"] == "rejected"
    assert body["results"][1]["error"].startswith("event_id:")

    retry = api.post("/api/v1/events", raw, content_type="application/json")
    assert retry.status_code == 200
    assert (retry.json()["duplicates"], retry.json()["rejected"]) == (2, 1)
    assert Event.objects.count() == 2


# --- NUL in the path ------------------------------------------------------------------------


@pytest.mark.parametrize("external_id", ["a%00b", "%00"])
def test_a_nul_in_the_provisioning_path_is_400(api: APIClient, external_id: str) -> None:
    response = api.put(
        f"/api/v1/agents/{external_id}",
        json.dumps({"name": "N", "team": "T"}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("external_id:")
    assert not Agent.objects.exists()


def test_a_nul_in_a_provisioned_name_is_400(api: APIClient) -> None:
    response = api.put(
        "/api/v1/agents/ext-1",
        json.dumps({"name": "a\x00b", "team": "T"}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("name:")


# --- Query parameters -----------------------------------------------------------------------


def test_an_empty_group_by_is_400(api: APIClient) -> None:
    response = api.get("/api/v1/kpis?group_by=")
    assert response.status_code == 400
    assert response.json()["error"].startswith("group_by:")


# --- The database is down -------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_wall_page_is_a_clear_503_while_the_database_is_down(
    admin_client: Client,
    database_down: None,  # noqa: F811
) -> None:
    # database_down is set up after admin_client logged in (fixture order).
    response = admin_client.get("/")
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert b"database" in response.content.lower()
    assert response["Content-Type"].startswith("text/html")
