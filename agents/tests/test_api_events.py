"""``POST /api/v1/events`` (docs/api.md, section 3): shapes, validation, idempotency, batches,
outages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from agents import events as wall_events
from agents.models import Agent, AgentState, ApiToken, Event
from agents.serializers import EventResultSerializer, event_result
from agents.services import IngestResult
from agents.tests import factories

URL = "/api/v1/events"
BASE = timezone.now().replace(microsecond=0) - timedelta(hours=1)

pytestmark = pytest.mark.django_db


def event(type_: str = "agent.logged_in", offset: float = 0, agent: str = "alice", **fields: Any):
    """An event ``offset`` seconds after BASE with a fresh event_id (the factories' builder)."""
    return factories.event(agent, type_, BASE + timedelta(seconds=offset), **fields)


def post(client: APIClient, body: Any) -> Any:
    return client.post(URL, json.dumps(body), content_type="application/json")


def post_raw(client: APIClient, raw: bytes | str) -> Any:
    return client.post(URL, raw, content_type="application/json")


# --- Validation: every rejected input is 400 with an error naming the field ---------------

STARTED = {"interaction_id": "c1", "channel": "phone"}

REJECTED: list[tuple[str, dict[str, Any], str]] = [
    ("missing event_id", {"event_id": None}, "event_id"),
    ("empty event_id", {"event_id": ""}, "event_id"),
    ("event_id of 101 characters", {"event_id": "e" * 101}, "event_id"),
    ("numeric event_id", {"event_id": 123}, "event_id"),
    ("boolean event_id", {"event_id": True}, "event_id"),
    ("list event_id", {"event_id": ["a"]}, "event_id"),
    ("event_id with a NUL character", {"event_id": "a\x00b"}, "event_id"),
    ("missing agent", {"agent": None}, "agent"),
    ("empty agent", {"agent": ""}, "agent"),
    ("agent of 101 characters", {"agent": "a" * 101}, "agent"),
    ("numeric agent", {"agent": 42}, "agent"),
    ("object agent", {"agent": {"id": "alice"}}, "agent"),
    ("missing type", {"type": None}, "type"),
    ("unknown type", {"type": "agent.dancing"}, "type"),
    ("numeric type", {"type": 3}, "type"),
    ("missing occurred_at", {"occurred_at": None}, "occurred_at"),
    ("occurred_at without offset", {"occurred_at": "2026-11-25T09:30:00"}, "occurred_at"),
    ("occurred_at as a bare date", {"occurred_at": "2026-11-25"}, "occurred_at"),
    ("occurred_at not a date", {"occurred_at": "yesterday"}, "occurred_at"),
    ("occurred_at as a number", {"occurred_at": 1764063000}, "occurred_at"),
    ("occurred_at in year 1", {"occurred_at": "0001-01-01T00:00:00+14:00"}, "occurred_at"),
    ("occurred_at before 2000", {"occurred_at": "1999-12-31T23:59:59Z"}, "occurred_at"),
    (
        "interaction.started without interaction_id",
        {"type": "interaction.started"},
        "interaction_id",
    ),
    (
        "numeric interaction_id",
        {"type": "interaction.started", "interaction_id": 7, "channel": "phone"},
        "interaction_id",
    ),
    (
        "interaction.started without channel",
        {"type": "interaction.started", "interaction_id": "c1"},
        "channel",
    ),
    ("bad channel", {"type": "interaction.started", **STARTED, "channel": "fax"}, "channel"),
    (
        "bad direction",
        {"type": "interaction.started", **STARTED, "direction": "sideways"},
        "direction",
    ),
    ("numeric queue", {"type": "interaction.started", **STARTED, "queue": 5}, "queue"),
    ("interaction.held without interaction_id", {"type": "interaction.held"}, "interaction_id"),
    (
        "interaction.resumed without interaction_id",
        {"type": "interaction.resumed"},
        "interaction_id",
    ),
    ("interaction.ended without interaction_id", {"type": "interaction.ended"}, "interaction_id"),
    ("acw.extended by 0 seconds", {"type": "acw.extended", "seconds": 0}, "seconds"),
    ("acw.extended by negative seconds", {"type": "acw.extended", "seconds": -30}, "seconds"),
    ("acw.extended by a word", {"type": "acw.extended", "seconds": "thirty"}, "seconds"),
    ("acw.extended by a numeric string", {"type": "acw.extended", "seconds": "30"}, "seconds"),
    ("acw.extended by true", {"type": "acw.extended", "seconds": True}, "seconds"),
    ("acw.ended with a bad reason", {"type": "acw.ended", "reason": "bored"}, "reason"),
    (
        "acw.ended with a numeric wrap_up_code",
        {"type": "acw.ended", "wrap_up_code": 12},
        "wrap_up_code",
    ),
    ("agent.not_ready without reason", {"type": "agent.not_ready"}, "reason"),
    ("agent.not_ready with an empty reason", {"type": "agent.not_ready", "reason": ""}, "reason"),
    ("agent.not_ready with a numeric reason", {"type": "agent.not_ready", "reason": 1}, "reason"),
]


def _without_nones(body: dict[str, Any]) -> dict[str, Any]:
    # A None in the overrides means "leave the field out".
    return {key: value for key, value in body.items() if value is not None}


@pytest.mark.parametrize(
    ("overrides", "field"), [case[1:] for case in REJECTED], ids=[case[0] for case in REJECTED]
)
def test_it_rejects_an_invalid_event_with_400_naming_the_field(
    api: APIClient, overrides: dict[str, Any], field: str
) -> None:
    body = _without_nones({**event(), **overrides})
    response = post(api, body)
    assert response.status_code == 400, response.json()
    assert set(response.json()) == {"event_id", "status", "error"} or "error" in response.json()
    error = response.json()["error"]
    assert error.startswith(f"{field}:"), error
    assert not Event.objects.exists()


def test_it_rejects_an_event_more_than_5_minutes_in_the_future(api: APIClient) -> None:
    soon = (timezone.now() + timedelta(minutes=4)).isoformat()
    later = (timezone.now() + timedelta(minutes=6)).isoformat()
    assert post(api, {**event(), "occurred_at": soon}).status_code == 201
    response = post(api, {**event(), "occurred_at": later})
    assert response.status_code == 400
    assert response.json()["error"].startswith("occurred_at:")
    assert "future" in response.json()["error"]


def test_a_rejected_single_event_reports_its_id_and_status(api: APIClient) -> None:
    response = post(api, {**event("agent.not_ready"), "event_id": "x-1"})
    assert response.status_code == 400
    assert response.json() == {
        "event_id": "x-1",
        "status": "rejected",
        "error": response.json()["error"],
    }
    assert response.json()["error"].startswith("reason:")


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1" + "0" * 400])
def test_acw_extended_seconds_must_be_a_finite_number(api: APIClient, number: str) -> None:
    raw = json.dumps(event("acw.extended")).replace("}", f', "seconds": {number}}}')
    response = post_raw(api, raw)
    assert response.status_code == 400
    assert response.json()["error"].startswith("seconds:")


# --- Body shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"{", b"", b"\xff\xfe", b"[]", b"[{}]", b'"an event"', b"42", b"null", b"true"],
    ids=[
        "text",
        "truncated",
        "empty",
        "not utf-8",
        "empty array",
        "array",
        "string",
        "number",
        "null",
        "bool",
    ],
)
def test_a_body_that_is_not_an_event_object_or_batch_is_400(api: APIClient, raw: bytes) -> None:
    response = post_raw(api, raw)
    assert response.status_code == 400
    assert response.json()["error"].startswith("body:")


@pytest.mark.parametrize(
    "events_value",
    [[], "x", {"0": {}}, None, 3],
    ids=["empty", "string", "object", "null", "number"],
)
def test_an_events_value_that_is_not_a_list_of_1_to_1000_is_400(
    api: APIClient, events_value: Any
) -> None:
    response = post(api, {"events": events_value})
    assert response.status_code == 400
    assert response.json()["error"].startswith("events:")


def test_more_than_1000_events_is_413_and_nothing_is_stored(api: APIClient) -> None:
    batch = [event(offset=i) for i in range(1001)]
    response = post(api, {"events": batch})
    assert response.status_code == 413
    assert response.json()["error"].startswith("events:")
    assert not Event.objects.exists()


def test_exactly_1000_events_are_taken_as_a_batch(api: APIClient, alice: Agent) -> None:
    # Rejected events keep this fast: the point is that 1000 is within the limit.
    batch = [event("agent.not_ready", offset=i) for i in range(999)] + [event(offset=999)]
    response = post(api, {"events": batch})
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"], len(body["results"])) == (1, 999, 1000)
    assert body["results"][-1]["event_id"] == batch[-1]["event_id"]


def test_a_body_over_1_mib_is_413(api: APIClient) -> None:
    body = {**event(), "padding": "x" * (1024 * 1024)}
    response = post(api, body)
    assert response.status_code == 413
    assert response.json()["error"].startswith("body:")
    assert not Event.objects.exists()


def test_a_body_just_under_1_mib_is_read(api: APIClient) -> None:
    body = event()
    body["padding"] = ""
    body["padding"] = "x" * (1024 * 1024 - len(json.dumps(body)))
    raw = json.dumps(body)
    assert len(raw) == 1024 * 1024
    assert post_raw(api, raw).status_code == 201


# --- Authentication -------------------------------------------------------------------------


def test_without_a_token_it_is_401_with_www_authenticate(db: None) -> None:
    response = post(APIClient(), event())
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "error" in response.json()
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "header",
    ["Bearer not-a-real-token", "Bearer", "Bearer a b", "Token abc", "Basic YWRhOnB3"],
    ids=["unknown token", "no token", "two tokens", "other scheme", "basic"],
)
def test_a_wrong_token_is_401_with_www_authenticate(api_token: str, header: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = post(client, event())
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Event.objects.exists()


def test_a_revoked_token_is_401(api: APIClient, api_token: str) -> None:
    assert post(api, event()).status_code == 201
    ApiToken.objects.filter(token_hash=ApiToken.hash(api_token)).update(active=False)
    response = post(api, event())
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert Event.objects.count() == 1


def test_a_logged_in_admin_session_without_a_token_is_401(admin_ada: Any) -> None:
    # The ingestion endpoint is for integrations: it takes a Bearer token and nothing else.
    client = APIClient()
    client.force_login(admin_ada)
    response = post(client, event())
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Event.objects.exists()


def test_the_token_is_accepted_with_any_case_of_the_scheme(api_token: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"bearer {api_token}")
    assert post(client, event()).status_code == 201


# --- Single events --------------------------------------------------------------------------


def test_an_accepted_event_is_201_and_applied(api: APIClient, alice: Agent) -> None:
    body = event("agent.not_ready", reason="lunch")
    response = post(api, body)
    assert response.status_code == 201
    assert response.json() == {"event_id": body["event_id"], "status": "accepted"}
    live = AgentState.objects.get(agent=alice)
    assert (live.state, live.reason) == ("not_ready", "lunch")


def test_acw_started_puts_the_agent_in_acw_with_the_policy_deadline(
    api: APIClient, alice: Agent
) -> None:
    now = timezone.now().replace(microsecond=0)
    started = {**event("acw.started", channel="phone"), "occurred_at": now.isoformat()}
    assert post(api, event("agent.logged_in", 0)).status_code == 201
    assert post(api, started).status_code == 201
    rows = api.get("/api/v1/agents/state").json()["agents"]
    row = next(r for r in rows if r["agent"] == "alice")
    assert row["state"] == "acw"
    # The site default policy: 30 s of timed ACW from the event.
    assert datetime.fromisoformat(row["acw_deadline"]) == now + timedelta(seconds=30)


def test_a_duplicate_is_200_and_changes_nothing(api: APIClient, alice: Agent) -> None:
    body = event("agent.not_ready", reason="break")
    assert post(api, body).status_code == 201
    since = AgentState.objects.get(agent=alice).since
    response = post(api, body)
    assert response.status_code == 200
    assert response.json() == {"event_id": body["event_id"], "status": "duplicate"}
    assert Event.objects.count() == 1
    assert AgentState.objects.get(agent=alice).since == since


def test_the_same_instant_in_another_offset_with_extra_fields_is_a_duplicate(
    api: APIClient, alice: Agent
) -> None:
    body = event("interaction.started", interaction_id="c9", channel="chat", queue="sales")
    paris = datetime.fromisoformat(body["occurred_at"]).astimezone(timezone.get_fixed_timezone(60))
    again = {**body, "occurred_at": paris.isoformat(), "vendor_trace": {"hop": 3}}
    assert again["occurred_at"] != body["occurred_at"]
    assert post(api, body).status_code == 201
    response = post(api, again)
    assert response.status_code == 200
    assert response.json()["status"] == "duplicate"


def test_a_z_suffix_and_plus_zero_are_the_same_instant(api: APIClient, alice: Agent) -> None:
    body = {**event(), "occurred_at": "2026-11-01T08:00:00Z"}
    assert post(api, body).status_code == 201
    assert post(api, {**body, "occurred_at": "2026-11-01T09:00:00+01:00"}).status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        {"type": "agent.available"},
        {"agent": "bob"},
        {"occurred_at_shift": 1},
        {"reason": "lunch"},
    ],
    ids=["type", "agent", "instant", "own field"],
)
def test_the_same_id_with_different_content_is_409(
    api: APIClient, alice: Agent, bob: Agent, change: dict[str, Any]
) -> None:
    body = event("agent.not_ready", reason="break")
    assert post(api, body).status_code == 201
    other = dict(body)
    if "occurred_at_shift" in change:
        other["occurred_at"] = (BASE + timedelta(seconds=1)).isoformat()
    else:
        other.update(change)
    response = post(api, other)
    assert response.status_code == 409
    assert response.json()["status"] == "conflict"
    assert response.json()["error"].startswith("event_id:")
    assert Event.objects.count() == 1
    assert AgentState.objects.get(agent=alice).reason == "break"


def test_an_invalid_event_whose_id_exists_is_400_not_duplicate(
    api: APIClient, alice: Agent
) -> None:
    body = event("agent.not_ready", reason="break")
    assert post(api, body).status_code == 201
    response = post(api, {**body, "reason": None})
    assert response.status_code == 400
    assert response.json()["error"].startswith("reason:")


def test_an_unknown_agent_is_created_in_team_unassigned_named_by_its_id(api: APIClient) -> None:
    response = post(api, event(agent="ext-9001"))
    assert response.status_code == 201
    agent = Agent.objects.select_related("team").get(external_id="ext-9001")
    assert (agent.name, agent.team.name) == ("ext-9001", "Unassigned")
    assert AgentState.objects.get(agent=agent).state == "available"


def test_a_rejected_event_does_not_create_its_agent(api: APIClient) -> None:
    assert post(api, event("agent.not_ready", agent="ghost")).status_code == 400
    assert not Agent.objects.filter(external_id="ghost").exists()


def test_a_conflicting_event_does_not_create_its_agent(api: APIClient, alice: Agent) -> None:
    # A conflict is not stored, so its unknown agent must not appear on the walls either.
    body = event("agent.logged_in")
    assert post(api, body).status_code == 201
    response = post(api, {**body, "agent": "phantom"})
    assert response.status_code == 409
    assert not Agent.objects.filter(external_id="phantom").exists()


def test_the_token_records_when_it_was_last_used(api: APIClient, api_token: str) -> None:
    row = ApiToken.objects.get(token_hash=ApiToken.hash(api_token))
    assert row.last_used_at is None
    post(api, event())
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_a_valid_event_that_does_not_fit_the_state_is_accepted_and_changes_nothing(
    api: APIClient, alice: Agent
) -> None:
    assert post(api, event("agent.available")).status_code == 201
    response = post(api, event("acw.ended", offset=5))
    assert response.status_code == 201
    assert AgentState.objects.get(agent=alice).state == "available"
    assert Event.objects.filter(type="acw.ended").exists()


def test_a_wrap_up_code_no_admin_defined_is_stored_as_given(api: APIClient, alice: Agent) -> None:
    post(api, event("interaction.started", 0, interaction_id="c1", channel="phone"))
    post(api, event("interaction.ended", 60, interaction_id="c1"))
    response = post(api, event("acw.ended", 70, wrap_up_code="NEVER-DEFINED"))
    assert response.status_code == 201
    assert Event.objects.get(type="acw.ended").data["wrap_up_code"] == "NEVER-DEFINED"


# --- Batches --------------------------------------------------------------------------------


def test_a_batch_reports_counts_and_results_in_input_order(api: APIClient, alice: Agent) -> None:
    first = event("agent.logged_in", 0)
    stored = event("agent.not_ready", 10, reason="break")
    post(api, stored)
    conflicting = {**stored, "reason": "lunch"}
    batch = [
        first,
        "not an object",
        {**event("agent.not_ready", 20), "event_id": "no-reason"},
        dict(stored),
        conflicting,
        event("agent.available", 30),
        [1, 2],
        None,
    ]
    response = post(api, {"events": batch})
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 1, 5)
    assert [r["status"] for r in body["results"]] == [
        "accepted",
        "rejected",
        "rejected",
        "duplicate",
        "rejected",
        "accepted",
        "rejected",
        "rejected",
    ]
    results = body["results"]
    assert results[0] == {"event_id": first["event_id"], "status": "accepted"}
    assert results[1]["event_id"] is None and results[1]["error"].startswith("event:")
    assert results[2]["event_id"] == "no-reason" and results[2]["error"].startswith("reason:")
    assert results[3] == {"event_id": stored["event_id"], "status": "duplicate"}
    assert results[4]["event_id"] == stored["event_id"]
    assert results[4]["error"].startswith("event_id:")
    assert results[6]["error"].startswith("event:") and results[7]["error"].startswith("event:")
    assert set(Event.objects.values_list("event_id", flat=True)) == {
        first["event_id"],
        stored["event_id"],
        batch[5]["event_id"],
    }
    assert AgentState.objects.get(agent=alice).state == "available"


def test_a_batch_applies_events_in_input_order_on_ties(api: APIClient, alice: Agent) -> None:
    at = event()["occurred_at"]
    batch = [
        {**event("agent.not_ready", reason="break"), "occurred_at": at},
        {**event("agent.not_ready", reason="lunch"), "occurred_at": at},
    ]
    assert post(api, {"events": batch}).json()["accepted"] == 2
    assert AgentState.objects.get(agent=alice).reason == "lunch"


def test_a_duplicate_within_one_batch_is_reported_as_duplicate(
    api: APIClient, alice: Agent
) -> None:
    body = event("agent.not_ready", reason="break")
    reused = {**body, "reason": "training"}
    response = post(api, {"events": [body, dict(body), reused]})
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == [
        "accepted",
        "duplicate",
        "rejected",
    ]
    assert response.json()["results"][2]["error"].startswith("event_id:")
    assert Event.objects.count() == 1


def test_a_batch_of_only_rejected_events_is_still_200(api: APIClient) -> None:
    response = post(api, {"events": [{}, {"event_id": "x"}]})
    assert response.status_code == 200
    assert (response.json()["accepted"], response.json()["rejected"]) == (0, 2)
    assert response.json()["results"][1]["event_id"] == "x"


def test_a_late_event_in_a_batch_rebuilds_one_interaction(api: APIClient, alice: Agent) -> None:
    started = event("interaction.started", 0, interaction_id="c1", channel="phone")
    ended = event("interaction.ended", 90, interaction_id="c1")
    response = post(api, {"events": [ended, started]})
    assert response.json()["accepted"] == 2
    interaction = alice.interactions.get()
    assert (interaction.talk_seconds, interaction.end_reason) == (90, "ended")


# --- Durability -----------------------------------------------------------------------------


def _committed_event_ids() -> set[str]:
    """Read through a separate connection: it sees only what was committed."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params) as other, other.cursor() as cursor:
        cursor.execute("SELECT event_id FROM agents_event")
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_accepted_event_is_committed_before_the_response(api: APIClient) -> None:
    single = event(agent="dora")
    assert post(api, single).status_code == 201
    assert single["event_id"] in _committed_event_ids()
    batch = [event(agent="dora", offset=1), event(agent="emil", offset=2)]
    assert post(api, {"events": batch}).json()["accepted"] == 2
    assert {e["event_id"] for e in batch} <= _committed_event_ids()


@pytest.fixture
def redis_down(settings: Any) -> Iterator[None]:
    """Point every Redis client at a closed port, as when Redis is down: the wall publisher,
    the channel layer and Celery's broker (tasks are sent, not run inline)."""
    from acw_site.celery import app

    closed = "redis://127.0.0.1:1/0"
    settings.REDIS_URL = closed
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": closed, "socket_timeout": 1}]},
        }
    }
    wall_events._redis.cache_clear()
    saved = app.conf.broker_url, app.conf.task_always_eager
    app.close()  # drop pooled broker connections, so the next send connects to `closed`
    app.conf.broker_url, app.conf.task_always_eager = closed, False
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.task_always_eager = saved
        app.close()
        # app.close() keeps the producer pool, still bound to the closed broker: drop it too.
        app.amqp._producer_pool = None
        wall_events._redis.cache_clear()


def test_redis_down_does_not_fail_a_stored_event(
    api: APIClient, alice: Agent, redis_down: None, django_capture_on_commit_callbacks: Any
) -> None:
    failures = wall_events.publish_failures()
    recently = timezone.now() - timedelta(seconds=20)
    body = event("interaction.started", interaction_id="c1", channel="phone")
    body["occurred_at"] = recently.isoformat()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(api, body)
    assert response.status_code == 201
    assert callbacks, "the publish must have been attempted"
    assert wall_events.publish_failures() > failures
    assert Event.objects.filter(event_id=body["event_id"]).exists()
    assert AgentState.objects.get(agent=alice).state == "on_interaction"
    # interaction.ended also schedules the ACW timeout through the (unreachable) broker.
    ended = event("interaction.ended", interaction_id="c1")
    ended["occurred_at"] = (recently + timedelta(seconds=15)).isoformat()
    with django_capture_on_commit_callbacks(execute=True):
        batch = post(api, {"events": [ended]})
    assert batch.status_code == 200
    assert batch.json()["accepted"] == 1
    assert AgentState.objects.get(agent=alice).state == "acw"


@pytest.fixture(params=["direct", "pooled"])
def database_down(request: Any, api_token: str) -> Iterator[None]:
    """Point the default connection at a closed port, as when PostgreSQL is down.

    ``pooled`` goes through psycopg's pool as production does (it fails after its timeout).
    """
    saved_settings = connection.settings_dict
    saved_pools = dict(connection._connection_pools)
    connection.close()
    options: dict[str, Any] = {"connect_timeout": 2}
    if request.param == "pooled":
        options["pool"] = {"min_size": 1, "max_size": 1, "timeout": 1}
    connection._connection_pools.pop(connection.alias, None)
    connection.settings_dict = {
        **saved_settings,
        "HOST": "127.0.0.1",
        "PORT": "1",
        "OPTIONS": options,
    }
    try:
        yield
    finally:
        connection.close()
        if connection.alias in connection._connection_pools:
            connection.close_pool()
        connection._connection_pools.update(saved_pools)
        connection.settings_dict = saved_settings


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_database_outage_is_503_with_retry_after(api: APIClient, database_down: None) -> None:
    response = post(api, event(agent="dora"))
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert "database" in response.json()["error"]
    batch = post(api, {"events": [event(agent="dora", offset=1)]})
    assert batch.status_code == 503
    assert int(batch["Retry-After"]) > 0


@pytest.mark.parametrize(
    "result",
    [
        IngestResult("e-1", "accepted"),
        IngestResult("e-1", "duplicate"),
        IngestResult(
            "e-1", "conflict", "event_id: already used by an event with different content"
        ),
        IngestResult(None, "rejected", "body: not valid JSON"),
    ],
)
def test_an_event_result_is_written_as_its_serializer_renders_it(result: IngestResult) -> None:
    # The answers are built without the serializer (on the hot path), which stays their schema.
    written = event_result(result.event_id, result.status, result.error)
    assert written == EventResultSerializer(result).data
