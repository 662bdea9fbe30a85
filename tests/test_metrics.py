"""``GET /metrics``: who may read it, and that each metric moves when its event happens."""

from __future__ import annotations

from typing import Any

import pytest
from celery import shared_task
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from acw_site import metrics
from agents import events
from agents.tests.factories import event
from reporting.models import Alert, AlertKind, DirtyInterval
from reporting.tasks import compute_rollups_task

pytestmark = pytest.mark.django_db


def _scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _staff(admin_ada: Any) -> Client:
    client = Client()
    client.force_login(admin_ada)
    return client


# --- Access ---------------------------------------------------------------------------------


def test_anonymous_and_non_staff_users_get_403(supervisor_sam: Any) -> None:
    assert Client().get("/metrics").status_code == 403
    client = Client()
    client.force_login(supervisor_sam)
    response = client.get("/metrics")
    assert response.status_code == 403
    assert b"acw_events_total" not in response.content


def test_staff_may_read_it(admin_ada: Any) -> None:
    assert _staff(admin_ada).get("/metrics").status_code == 200


def test_the_metrics_token_opens_it_and_a_wrong_one_does_not(settings: Any) -> None:
    settings.METRICS_TOKEN = "scrape-secret-0123456789"
    ok = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-0123456789")
    assert ok.status_code == 200
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-0000000000")
    assert wrong.status_code == 403


def test_an_allowed_network_opens_it(settings: Any) -> None:
    import ipaddress

    settings.METRICS_ALLOWED_IPS = [ipaddress.ip_network("10.1.0.0/16")]
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="10.2.2.3").get("/metrics").status_code == 403


# --- What it counts -------------------------------------------------------------------------


def test_events_are_counted_by_source_and_result_and_timed(
    api: Any, alice: Any, admin_ada: Any
) -> None:
    client = _staff(admin_ada)
    before = _scrape(client)
    first = event("alice", "agent.logged_in", 60)
    batch = {"events": [first, first, {"event_id": "x", "type": "nonsense"}]}
    assert api.post("/api/v1/events", batch, format="json").status_code == 200
    after = _scrape(client)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("acw_events_total", source="api", status="accepted") == 1
    assert delta("acw_events_total", source="api", status="duplicate") == 1
    assert delta("acw_events_total", source="api", status="rejected") == 1
    # One call of ingest_events: one latency observation for the batch.
    assert delta("acw_ingest_seconds_count", source="api") == 1


def test_an_event_is_counted_under_the_source_it_was_given(alice: Any) -> None:
    from agents import services

    before = _value("acw_events_total", source="simulator", status="accepted")
    api_before = _value("acw_events_total", source="api", status="accepted")
    assert services.ingest_event(event("alice", "agent.logged_in", 60), source="simulator").status == "accepted"  # fmt: skip
    assert services.ingest_event(event("alice", "agent.available", 50)).status == "accepted"
    assert _value("acw_events_total", source="simulator", status="accepted") == before + 1
    assert _value("acw_events_total", source="api", status="accepted") == api_before + 1


def test_an_ingestion_function_must_take_its_source_by_keyword() -> None:
    def positional(raw: Any, source: str = "api") -> Any:
        return None

    with pytest.raises(TypeError, match="keyword-only"):
        metrics.observe_ingest(positional)


def test_open_alerts_and_rollup_lag_are_read_from_the_database(
    admin_ada: Any, alice: Any, north: Any, frozen_now: Any
) -> None:
    client = _staff(admin_ada)
    assert _scrape(client)[("acw_rollup_lag_seconds", ())] == 0
    now = timezone.now()
    Alert.objects.create(
        kind=AlertKind.LONG_ACW, team=north, agent=alice, opened_at=now, updated_at=now,
        value=400, threshold=300, message="ACW over 5 minutes",
    )  # fmt: skip
    DirtyInterval.objects.create(agent=alice, bucket_start=now)
    frozen_now.shift(90)
    scraped = _scrape(client)
    assert scraped[("acw_alerts_open", (("status", "open"),))] == 1
    assert scraped[("acw_alerts_open", (("status", "acknowledged"),))] == 0
    assert scraped[("acw_rollup_lag_seconds", ())] == 90


def test_celery_task_run_times_and_failures_are_counted() -> None:
    name = compute_rollups_task.name
    runs = _value("acw_celery_task_seconds_count", task=name)
    compute_rollups_task.delay()
    assert _value("acw_celery_task_seconds_count", task=name) == runs + 1

    failures = _value("acw_celery_task_failures_total", task="tests.always_fails")
    # As a worker runs it: the failure is recorded, not raised into the caller.
    assert _always_fails.apply(throw=False).failed()
    assert _value("acw_celery_task_failures_total", task="tests.always_fails") == failures + 1


@shared_task(name="tests.always_fails")
def _always_fails() -> None:
    raise RuntimeError("a task that fails")


def test_publish_failures_are_counted(settings: Any) -> None:
    from bench.faults.stack import free_port

    before = _value("acw_publish_failures_total")
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    events._redis.cache_clear()
    try:
        events._publish(1, {"type": "wall.team_changed"})
    finally:
        events._redis.cache_clear()
    assert _value("acw_publish_failures_total") == before + 1


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_wall_connections_frames_and_resyncs_are_counted(
    supervisor_sam: Any, settings: Any
) -> None:
    from channels.db import database_sync_to_async

    from acw_site.asgi import application
    from agents.tests.test_consumers import session_cookie

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    cookie = await database_sync_to_async(session_cookie)(supervisor_sam)
    headers = [
        (b"origin", b"http://127.0.0.1"),
        (b"host", b"127.0.0.1"),
        (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()),
    ]
    open_before = _value("acw_wall_connections")
    snapshots = _value("acw_wall_frames_total", type="snapshot")
    resyncs = _value("acw_wall_resyncs_total")
    wall = WebsocketCommunicator(application, "/ws/wall/", headers=headers)
    connected, _ = await wall.connect()
    assert connected
    assert (await wall.receive_json_from(timeout=3))["type"] == "snapshot"
    assert _value("acw_wall_connections") == open_before + 1
    assert _value("acw_wall_frames_total", type="snapshot") == snapshots + 1
    assert _value("acw_wall_resyncs_total") == resyncs  # the first snapshot is no resync
    await wall.disconnect()
    assert _value("acw_wall_connections") == open_before


def test_without_a_multiprocess_dir_it_serves_this_process(monkeypatch: Any) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    body, content_type = metrics.exposition()
    assert b"acw_events_total" in body
    assert content_type.startswith("text/plain")


def test_in_multiprocess_mode_it_adds_up_every_process(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    from django.conf import settings

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = (
        "from acw_site import metrics; "
        "metrics.EVENTS.labels('api', 'accepted').inc(); metrics.WALL_CONNECTIONS.inc()"
    )
    for _ in range(2):  # two server processes, one after the other
        subprocess.run([sys.executable, "-c", count], cwd=settings.BASE_DIR, env=env, check=True)
    scrape = "from acw_site import metrics; print(metrics.exposition()[0].decode())"
    body = subprocess.run(
        [sys.executable, "-c", scrape], cwd=settings.BASE_DIR, env=env, check=True,
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert 'acw_events_total{source="api",status="accepted"} 2.0' in body
