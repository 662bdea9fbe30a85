"""Amazon Connect end to end: Firehose requests through the real endpoint into the agent state
API, the wall and the KPI API; refusals, duplicates and out-of-order delivery."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import Agent, Event
from agents.tests.test_consumers import connected_wall
from integrations.models import IntegrationStatus, RefusedRecord

from .vendor import contact, firehose, record, snapshot

URL = "/api/v1/integrations/amazon-connect"
BASE = timezone.now().replace(microsecond=0) - timedelta(hours=1)
ANA = "ana@example.com"
BO = "bo@example.com"

pytestmark = pytest.mark.django_db


def at(seconds: float) -> Any:
    return BASE + timedelta(seconds=seconds)


def post(client: Client, body: Any, key: str, **headers: str) -> Any:
    raw = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(
        URL, raw, content_type="application/json", HTTP_X_AMZ_FIREHOSE_ACCESS_KEY=key, **headers
    )


def step(user: str, t: float, prev: list, cur: list, status: str = "Available") -> dict:
    return record(
        "STATE_CHANGE",
        at(t),
        snapshot(user, status, at(0), cur),
        snapshot(user, status, at(0), prev),
    )


def shift() -> list[dict[str, Any]]:
    """Ana: a call through hold to ENDED and gone. Bo: a chat agent with two concurrent chats."""
    ring = contact("call-1", "CONNECTING", at(2), None)
    talk = contact("call-1", "CONNECTED", at(5), at(5))
    held = contact("call-1", "CONNECTED_ONHOLD", at(30), at(5))
    back = contact("call-1", "CONNECTED", at(50), at(5))
    ended = contact("call-1", "ENDED", at(90), at(5))
    chat_a = contact("chat-a", "CONNECTED", at(200), at(200), channel="CHAT")
    chat_b = contact("chat-b", "CONNECTED", at(230), at(230), channel="CHAT")
    a_ended = contact("chat-a", "ENDED", at(300), at(200), channel="CHAT")
    b_ended = contact("chat-b", "ENDED", at(400), at(230), channel="CHAT")
    return [
        record("LOGIN", at(0), snapshot(ANA, "Available", at(0))),
        step(ANA, 2, [], [ring]),
        step(ANA, 5, [ring], [talk]),
        step(ANA, 30, [talk], [held]),
        step(ANA, 50, [held], [back]),
        step(ANA, 90, [back], [ended]),
        record("HEART_BEAT", at(100), snapshot(ANA, "Available", at(0), [ended])),
        step(ANA, 110, [ended], []),
        record("LOGIN", at(150), snapshot(BO, "Available", at(150))),
        step(BO, 200, [], [chat_a]),
        step(BO, 230, [chat_a], [chat_a, chat_b]),
        step(BO, 300, [chat_a, chat_b], [a_ended, chat_b]),
        step(BO, 310, [a_ended, chat_b], [chat_b]),
        step(BO, 400, [chat_b], [b_ended]),
        step(BO, 420, [b_ended], []),
    ]


def kpis(api: APIClient) -> dict[str, dict[str, Any]]:
    days = f"from={(BASE - timedelta(days=1)).date()}&to={timezone.now().date()}"
    rows = api.get(f"/api/v1/kpis?group_by=agent&{days}").json()["rows"]
    return {row["key"]: row for row in rows}


def states(api: APIClient) -> dict[str, dict[str, Any]]:
    return {row["agent"]: row for row in api.get("/api/v1/agents/state").json()["agents"]}


EXPECTED = {
    # talk = 5→90 minus 20 s of hold; ACW from ENDED (90) to the contact's disappearance (110)
    ANA: {"interactions": 1, "talk_seconds": 65, "hold_seconds": 20, "acw_seconds": 20},
    # Two concurrent chats, each its own interaction: chat-a talks 200→300 and wraps up until
    # it disappears (310); chat-b talks 230→400 and wraps up until 420.
    BO: {"interactions": 2, "talk_seconds": 270, "hold_seconds": 0, "acw_seconds": 30},
}


@pytest.mark.parametrize("delivery", ["in_order", "shuffled_and_duplicated"])
def test_a_shift_feeds_state_and_kpis_whatever_the_delivery_order(
    api: APIClient, api_token: str, delivery: str
) -> None:
    records = shift()
    if delivery == "in_order":
        requests = [records]
    else:
        # Firehose retries whole requests and may interleave them: every record twice,
        # the second copies in another request, all in a random order.
        mixed = records + random.Random(7).sample(records, len(records))
        random.Random(3).shuffle(mixed)
        requests = [mixed[:11], mixed[11:]]
    client = Client()
    for batch in requests:
        body = firehose(batch)
        response = post(client, body, api_token)
        assert response.status_code == 200
        assert response.json()["requestId"] == body["requestId"]
        assert isinstance(response.json()["timestamp"], int)
    got = kpis(api)
    for agent, expected in EXPECTED.items():
        assert {key: got[agent][key] for key in expected} == expected
    live = states(api)
    assert (live[ANA]["state"], live[BO]["state"]) == ("available", "available")
    assert live[ANA]["name"] == "Ana Connect"
    status = IntegrationStatus.objects.get(name="amazon-connect")
    assert status.records == sum(len(batch) for batch in requests)
    assert status.refused == 0
    assert status.last_record.startswith('{"AWSAccountId": "123456789012"')
    if delivery != "in_order":
        assert status.events_duplicate > 0


def test_status_changes_show_on_the_state_api(api: APIClient, api_token: str) -> None:
    lunch = record(
        "STATE_CHANGE",
        at(20),
        snapshot(ANA, "Lunch", at(20)),
        snapshot(ANA, "Available", at(0)),
    )
    body = firehose([record("LOGIN", at(0), snapshot(ANA, "Available", at(0))), lunch])
    assert post(Client(), body, api_token).status_code == 200
    row = states(api)[ANA]
    assert (row["state"], row["reason"], row["since"]) == ("not_ready", "Lunch", at(20).isoformat())


def test_a_redelivered_request_is_all_duplicates(api_token: str) -> None:
    body = firehose(shift()[:6])
    client = Client()
    assert post(client, body, api_token).status_code == 200
    stored = Event.objects.count()
    assert post(client, body, api_token).status_code == 200
    assert Event.objects.count() == stored
    status = IntegrationStatus.objects.get(name="amazon-connect")
    assert status.events_duplicate == stored


def test_a_bad_record_is_refused_with_its_position_and_never_blocks_the_rest(
    api: APIClient, api_token: str
) -> None:
    good = shift()[:3]
    broken = dict(good[1], EventTimestamp="not a time")
    future = record("LOGIN", timezone.now() + timedelta(hours=2), snapshot(BO, "Available", at(0)))
    body = firehose(
        [good[0], b"{not json", broken, b"\xff\xfe", future, good[1], good[2]],
        request_id="req-42",
    )
    body["records"].insert(2, {"data": "***not base64***"})
    body["records"].insert(3, "not an object")
    response = post(Client(), body, api_token)
    assert response.status_code == 200
    assert states(api)[ANA]["state"] == "on_interaction"
    refusals = {
        r.position: r.reason
        for r in RefusedRecord.objects.filter(integration__name="amazon-connect")
    }
    assert refusals["request req-42 record 1"] == "data: not a JSON agent event"
    assert refusals["request req-42 record 2"] == "data: not valid base64"
    assert refusals["request req-42 record 3"] == "data: must be a base64 string"
    assert refusals["request req-42 record 4"].startswith("EventTimestamp: not an ISO 8601")
    assert refusals["request req-42 record 5"] == "data: not a JSON agent event"
    assert (
        "occurred_at: is more than 5 minutes in the future" in refusals["request req-42 record 6"]
    )
    # The agent of the refused future LOGIN was not left behind as a phantom.
    assert not Agent.objects.filter(external_id=BO).exists()
    status = IntegrationStatus.objects.get(name="amazon-connect")
    # good[1] (ringing) implies no event: the LOGIN and the CONNECTED are the two accepted.
    assert (status.records, status.refused, status.events_accepted) == (9, 6, 2)
    assert status.last_refusal.startswith("request req-42 record 6")


def test_a_bad_access_key_is_401_with_firehose_error_shape(api_token: str) -> None:
    body = firehose(shift()[:1], request_id="req-1")
    for key in ("", "wrong", api_token + "x"):
        response = post(Client(), body, key, HTTP_X_AMZ_FIREHOSE_REQUEST_ID="req-1")
        assert response.status_code == 401
        answer = response.json()
        assert answer["requestId"] == "req-1"
        assert "X-Amz-Firehose-Access-Key" in answer["errorMessage"]
        assert isinstance(answer["timestamp"], int)
    assert Event.objects.count() == 0


def test_errors_echo_the_request_id_of_the_body_without_the_header(api_token: str) -> None:
    body = firehose(shift()[:1], request_id="req-body")
    assert post(Client(), body, "wrong").json()["requestId"] == "req-body"
    assert post(Client(), {"requestId": "req-x"}, api_token).json() == {
        "requestId": "req-x",
        "timestamp": ANY_INT,
        "errorMessage": 'body: expected {"requestId", "records": [...]}',
    }


class _AnyInt:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, int)


ANY_INT = _AnyInt()


@pytest.mark.parametrize(
    "raw", [b"{nope", b"[]", b'{"records": 5}', b"\xff", b"[" * 100_000 + b"]" * 100_000]
)
def test_bad_json_is_400_with_firehose_error_shape(api_token: str, raw: bytes) -> None:
    response = post(Client(), raw, api_token, HTTP_X_AMZ_FIREHOSE_REQUEST_ID="req-2")
    assert response.status_code == 400
    assert response.json()["requestId"] == "req-2"
    assert response.json()["errorMessage"].startswith("body:")


def test_a_record_nested_too_deep_is_refused_on_its_own(api: APIClient, api_token: str) -> None:
    body = firehose([b"[" * 100_000 + b"]" * 100_000, *shift()[:1]], request_id="req-deep")
    assert post(Client(), body, api_token).status_code == 200
    assert states(api)[ANA]["state"] == "available"
    refusal = RefusedRecord.objects.get()
    assert refusal.position == "request req-deep record 0"


def test_a_gzip_encoded_request_is_read(api: APIClient, api_token: str) -> None:
    import gzip

    raw = gzip.compress(json.dumps(firehose(shift()[:3])).encode())
    response = post(Client(), raw, api_token, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200
    assert states(api)[ANA]["state"] == "on_interaction"


def test_an_agent_named_by_an_admin_keeps_that_name(api_token: str, north: Any) -> None:
    Agent.objects.create(external_id=ANA, name="Ana Pereira", team=north)
    from agents.models import AgentState

    AgentState.objects.create(agent=Agent.objects.get(external_id=ANA))
    post(Client(), firehose(shift()[:1]), api_token)
    assert Agent.objects.get(external_id=ANA).name == "Ana Pereira"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.asyncio
async def test_the_wall_shows_connect_agents_live(
    manager_maria: Any, api_token: str, settings: Any
) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    wall, _ = await connected_wall(manager_maria)
    records = shift()[:3]
    now = timezone.now().replace(microsecond=0)
    records[0]["EventTimestamp"] = now.isoformat().replace("+00:00", "Z")

    def deliver() -> int:
        return post(Client(), firehose(records[:1]), api_token).status_code

    assert await database_sync_to_async(deliver)() == 200
    frame = await wall.receive_json_from(timeout=3)
    agents = [frame["agent"]] if frame["type"] == "agent" else frame["agents"]
    assert [(a["agent"], a["name"], a["state"]) for a in agents] == [
        (ANA, "Ana Connect", "available")
    ]
    await wall.disconnect()
    await asyncio.sleep(0)
