"""``GET /api/v1/staffing`` (contract §4b): Erlang C answers, the ACW what-if, clear 400s."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from agents.tests.factories import client_for

pytestmark = pytest.mark.django_db

URL = "/api/v1/staffing"
# Call Centre Helper's worked example (reporting/tests/test_erlang.py): 100 calls in 30 minutes,
# AHT 180 s, 80 % in 20 s → 10 Erlangs, 14 agents.
EXAMPLE = {
    "volume": 100,
    "interval_seconds": 1800,
    "aht_seconds": 180,
    "target_service_level": 0.8,
    "target_answer_seconds": 20,
}
FIELDS = {
    "traffic_erlangs",
    "agents_needed",
    "service_level",
    "waiting_probability",
    "occupancy",
    "asa_seconds",
}


def _get(client: APIClient, **params: Any) -> Any:
    return client.get(URL, params)


def test_it_answers_the_worked_example(manager_maria: Any) -> None:
    response = _get(client_for(manager_maria), **EXAMPLE)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == FIELDS
    assert body["traffic_erlangs"] == 10.0
    assert body["agents_needed"] == 14
    assert body["service_level"] == pytest.approx(0.888350, abs=1e-6)
    assert body["waiting_probability"] == pytest.approx(0.174132, abs=1e-6)
    assert body["occupancy"] == pytest.approx(10 / 14)
    assert body["asa_seconds"] == pytest.approx(7.835937, abs=1e-6)


def test_it_adds_the_acw_what_if(supervisor_sam: Any) -> None:
    # AHT 180 − 30 = 150 s: traffic 100 · 150 / 1800 = 8.3333 Erlangs. 11 agents: C = 0.2901,
    # SL = 1 − C · e^(−2.6667 · 20/150) = 0.7946 < 0.8; 12 agents: SL = 0.8903 → 12, two fewer.
    response = _get(client_for(supervisor_sam), **EXAMPLE, acw_change_seconds=-30)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["agents_needed"] == 14
    changed = body["with_acw_change"]
    assert set(changed) == FIELDS
    assert changed["traffic_erlangs"] == pytest.approx(100 * 150 / 1800)
    assert changed["agents_needed"] == 12
    assert changed["service_level"] >= 0.8


def test_the_targets_have_the_usual_defaults(manager_maria: Any) -> None:
    params = {k: v for k, v in EXAMPLE.items() if not k.startswith("target")}
    assert _get(client_for(manager_maria), **params).json()["agents_needed"] == 14


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"volume": 0}, "volume"),
        ({"volume": "many"}, "volume"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"aht_seconds": 0}, "aht_seconds"),
        ({"aht_seconds": "nan"}, "aht_seconds"),
        ({"aht_seconds": "inf"}, "aht_seconds"),
        ({"target_service_level": 1}, "target_service_level"),
        ({"target_service_level": 0}, "target_service_level"),
        ({"target_service_level": 80}, "target_service_level"),
        ({"target_answer_seconds": -1}, "target_answer_seconds"),
        ({"acw_change_seconds": -180}, "acw_change_seconds"),
        ({"acw_change_seconds": "soon"}, "acw_change_seconds"),
        # An empty value is not "use the default": the schema says each is a number.
        ({"target_answer_seconds": ""}, "target_answer_seconds"),
        ({"target_service_level": ""}, "target_service_level"),
        ({"acw_change_seconds": ""}, "acw_change_seconds"),
        # 10 million contacts of a day each in one second: more agents than any queue has.
        ({"volume": 10_000_000, "interval_seconds": 1, "aht_seconds": 86_400}, "volume"),
    ],
)
def test_it_refuses_bad_or_impossible_input(
    manager_maria: Any, change: dict[str, Any], field: str
) -> None:
    response = _get(client_for(manager_maria), **{**EXAMPLE, **change})
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}: ")


def test_a_missing_load_names_the_parameter(manager_maria: Any) -> None:
    response = _get(client_for(manager_maria), volume=100, interval_seconds=1800)
    assert response.status_code == 400
    assert response.json() == {"error": "aht_seconds: is required"}


def test_an_impossible_what_if_names_the_change(manager_maria: Any) -> None:
    # The current load fits; adding a day of ACW to each of 10 million contacts does not.
    params = {**EXAMPLE, "volume": 10_000_000, "interval_seconds": 86_400, "aht_seconds": 60}
    response = _get(client_for(manager_maria), **params, acw_change_seconds=86_400)
    assert response.status_code == 400
    assert response.json()["error"].startswith("acw_change_seconds: ")


def test_agent_users_and_strangers_are_refused(agent_user_alice: Any) -> None:
    assert _get(client_for(agent_user_alice), **EXAMPLE).status_code == 403
    assert _get(APIClient(), **EXAMPLE).status_code in (401, 403)


def test_an_integration_token_may_read_it(api: APIClient) -> None:
    assert _get(api, **EXAMPLE).json()["agents_needed"] == 14


def test_the_schema_has_exactly_the_fields_the_api_answers(
    admin_ada: Any, manager_maria: Any
) -> None:
    staff = Client()
    staff.force_login(admin_ada)
    schema = staff.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/staffing"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {*EXAMPLE, "acw_change_seconds"}
    assert "400" in operation["responses"]
    components = schema["components"]["schemas"]
    answer = _get(client_for(manager_maria), **EXAMPLE, acw_change_seconds=-30).json()
    assert set(components["Staffing"]["properties"]) == set(answer)
    assert set(components["StaffingFigures"]["properties"]) == set(answer["with_acw_change"])
