"""Twilio TaskRouter end to end: signed callbacks through the real endpoint into the agent
state API, the wall and the KPI API; wrong signatures, proxies, duplicates and reordering."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import Event
from agents.tests.test_consumers import connected_wall
from integrations.models import IntegrationStatus, RefusedRecord, TwilioActivity

from .vendor import ACTIVITIES, sign, task_fields, taskrouter, worker_fields

PATH = "/api/v1/integrations/twilio/taskrouter"
TOKEN = "twilio-auth-token-for-tests"
BASE = timezone.now().replace(microsecond=0) - timedelta(hours=1)
WES = "WK" + "1" * 32

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def auth_token(settings: Any) -> None:
    settings.TWILIO_AUTH_TOKEN = TOKEN


def post(params: dict[str, str], url: str = f"http://testserver{PATH}", **headers: str) -> Any:
    signature = sign(url, params, TOKEN)
    return Client().post(PATH, params, HTTP_X_TWILIO_SIGNATURE=signature, **headers)


def callbacks() -> list[dict[str, str]]:
    """Wes logs in, takes a call (wrap-up code in the task's attributes), breaks, logs out."""
    n = iter(range(1, 100))

    def ev(kind: str, seconds: float, activity: str = "Available", **fields: str) -> dict:
        return taskrouter(
            kind,
            f"EV{next(n):032d}",
            BASE + timedelta(seconds=seconds),
            **worker_fields(WES, "Wes Twilio", activity),
            **fields,
        )

    task = task_fields("WT" + "2" * 32, "voice", wrap_up_code="sale")
    return [
        ev("worker.activity.update", 0),
        ev("reservation.created", 10, **task),
        ev("reservation.accepted", 12, **task),
        ev("reservation.wrapup", 112, **task),
        ev("reservation.completed", 127, **task),
        ev("worker.activity.update", 200, activity="Break"),
        ev("worker.activity.update", 500, activity="Available"),
        ev("worker.activity.update", 900, activity="Offline"),
    ]


def kpi_row(api: APIClient, agent: str) -> dict[str, Any]:
    days = f"from={(BASE - timedelta(days=1)).date()}&to={timezone.now().date()}"
    rows = api.get(f"/api/v1/kpis?group_by=agent&{days}").json()["rows"]
    return next(row for row in rows if row["key"] == agent)


def state(api: APIClient, agent: str) -> dict[str, Any]:
    rows = api.get("/api/v1/agents/state").json()["agents"]
    return next(row for row in rows if row["agent"] == agent)


@pytest.mark.parametrize("delivery", ["in_order", "shuffled_and_duplicated"])
def test_a_signed_shift_gives_the_same_kpis_whatever_the_delivery(
    api: APIClient, delivery: str
) -> None:
    sent = callbacks()
    if delivery != "in_order":
        sent = sent + sent[2:5]
        random.Random(11).shuffle(sent)
    for params in sent:
        assert post(params).status_code == 200
    row = kpi_row(api, WES)
    assert (row["interactions"], row["talk_seconds"], row["acw_seconds"]) == (1, 100, 15)
    assert row["name"] == "Wes Twilio"
    assert state(api, WES)["state"] == "offline"
    from agents.models import AcwSession

    assert AcwSession.objects.get().wrap_up_code == "sale"


def test_the_state_api_follows_the_callbacks(api: APIClient) -> None:
    sent = callbacks()
    for params in sent[:6]:
        assert post(params).status_code == 200
    row = state(api, WES)
    assert (row["state"], row["reason"]) == ("not_ready", "Break")


def test_a_duplicate_callback_is_a_duplicate(api: APIClient) -> None:
    params = callbacks()[0]
    assert post(params).json() == {"accepted": 1, "duplicates": 0}
    assert post(params).json() == {"accepted": 0, "duplicates": 1}


def multitasking() -> list[dict[str, str]]:
    """Wes accepts chat A, then chat B while A is open (Flex multitasking); each wraps up and
    completes on its own; then a call."""
    n = iter(range(200, 300))

    def ev(kind: str, seconds: float, task: dict[str, str]) -> dict[str, str]:
        return taskrouter(
            kind,
            f"EV{next(n):032d}",
            BASE + timedelta(seconds=seconds),
            **worker_fields(WES, "Wes Twilio", "Available"),
            **task,
        )

    a = task_fields("WT" + "a" * 32, "chat")
    b = task_fields("WT" + "b" * 32, "chat")
    call = task_fields("WT" + "c" * 32, "voice")
    return [
        ev("reservation.accepted", 10, a),
        ev("reservation.accepted", 20, b),
        ev("reservation.wrapup", 60, a),
        ev("reservation.completed", 70, a),
        ev("reservation.wrapup", 100, b),
        ev("reservation.completed", 110, b),
        ev("reservation.accepted", 200, call),
    ]


def test_a_second_task_accepted_while_one_is_open_is_concurrent(api: APIClient) -> None:
    sent = multitasking()
    for params in sent:
        assert post(params).status_code == 200
    flags = dict(
        Event.objects.filter(type="interaction.started").values_list(
            "data__interaction_id", "data__concurrent"
        )
    )
    # B joins A; A came alone, and a voice task is handled alone.
    assert flags == {"WT" + "a" * 32: None, "WT" + "b" * 32: True, "WT" + "c" * 32: None}
    row = kpi_row(api, WES)
    # A: talk 10→60, ACW 60→70; B: talk 20→100, ACW 100→110 (each its own).
    assert (row["interactions"], row["talk_seconds"], row["acw_seconds"]) == (2, 130, 20)
    # Redelivered after A completed, B's callback reads what held before it: a duplicate.
    assert post(sent[1]).json() == {"accepted": 0, "duplicates": 1}


@pytest.mark.parametrize("signature", ["", "bm90IHRoZSBzaWduYXR1cmU=", "garbage"])
def test_a_missing_or_wrong_signature_is_403_and_stores_nothing(signature: str) -> None:
    params = callbacks()[0]
    headers = {"HTTP_X_TWILIO_SIGNATURE": signature} if signature else {}
    response = Client().post(PATH, params, **headers)
    assert response.status_code == 403
    assert "X-Twilio-Signature" in response.json()["error"]
    assert Event.objects.count() == 0
    assert IntegrationStatus.objects.get(name="twilio").refused == 1


def test_a_signature_for_other_parameters_is_403() -> None:
    params = callbacks()[0]
    signature = sign(f"http://testserver{PATH}", params, TOKEN)
    tampered = dict(params, WorkerActivityName="Break")
    response = Client().post(PATH, tampered, HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 403
    assert Event.objects.count() == 0


def test_a_signature_made_with_another_token_is_403() -> None:
    params = callbacks()[0]
    signature = sign(f"http://testserver{PATH}", params, "someone-elses-token")
    assert Client().post(PATH, params, HTTP_X_TWILIO_SIGNATURE=signature).status_code == 403


def test_without_an_auth_token_configured_every_callback_is_403(settings: Any) -> None:
    settings.TWILIO_AUTH_TOKEN = ""
    response = post(callbacks()[0])
    assert response.status_code == 403
    assert "TWILIO_AUTH_TOKEN" in response.json()["error"]
    assert Event.objects.count() == 0


def test_behind_a_proxy_the_url_twilio_signed_is_rebuilt_from_forwarded_headers(
    settings: Any,
) -> None:
    params = callbacks()[0]
    public = f"https://acw.example.com{PATH}"
    proxied = {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_HOST": "acw.example.com"}
    assert post(params, url=public, **proxied).status_code == 200
    # Without the proxy's headers the URL differs from what Twilio signed.
    assert post(callbacks()[1], url=public).status_code == 403


def test_activity_events_teach_the_availability_of_custom_activities(api: APIClient) -> None:
    lunch_sid, _ = ACTIVITIES["Lunch"]
    assert post(callbacks()[0]).status_code == 200
    activity = {
        "EventType": "activity.updated",
        "Sid": "EV" + "a" * 32,
        "ActivitySid": lunch_sid,
        "ActivityName": "Lunch",
        "ActivityAvailable": "true",
        "Timestamp": str(int(BASE.timestamp()) + 1),
    }
    assert post(activity).status_code == 200
    assert TwilioActivity.objects.get(sid=lunch_sid).available is True
    lunch = taskrouter(
        "worker.activity.update",
        "EV" + "b" * 32,
        BASE + timedelta(seconds=5),
        **worker_fields(WES, "Wes Twilio", "Lunch"),
    )
    assert post(lunch).status_code == 200
    assert state(api, WES)["state"] == "available"


def test_a_malformed_callback_is_400_and_reported_with_its_sid() -> None:
    params = callbacks()[2]
    params.pop("TaskSid")
    response = post(params)
    assert response.status_code == 400
    assert response.json() == {"error": "TaskSid: is required"}
    refusal = RefusedRecord.objects.get()
    assert refusal.position == f"event {params['Sid']} (reservation.accepted)"
    assert Event.objects.count() == 0


def test_an_unhandled_event_type_is_200_and_changes_nothing() -> None:
    params = callbacks()[1]  # reservation.created
    assert post(params).json() == {"accepted": 0, "duplicates": 0}
    assert Event.objects.count() == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.asyncio
async def test_the_wall_shows_twilio_workers_live(manager_maria: Any, settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.TWILIO_AUTH_TOKEN = TOKEN
    wall, _ = await connected_wall(manager_maria)
    params = callbacks()[0]
    params["Timestamp"] = str(int(timezone.now().timestamp()))
    params["TimestampMs"] = str(int(timezone.now().timestamp() * 1000))
    assert await database_sync_to_async(lambda: post(params).status_code)() == 200
    frame = await wall.receive_json_from(timeout=3)
    agents = [frame["agent"]] if frame["type"] == "agent" else frame["agents"]
    assert [(a["agent"], a["name"], a["state"]) for a in agents] == [
        (WES, "Wes Twilio", "available")
    ]
    await wall.disconnect()
