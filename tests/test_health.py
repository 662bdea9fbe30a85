"""``GET /healthz``: each dependency named, 503 only when the database or Redis is down.

Redis down is a private ``redis-server`` that the test stops (never the shared one); the
database-down path through a real server process is in ``tests/integration/test_health_faults.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from acw_site import health
from bench.faults.stack import PrivateRedis

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_heartbeats() -> Iterator[None]:
    """Each test starts with no beat or worker heard of (keys under this run's prefix)."""
    health._redis.cache_clear()
    client = health._redis()
    client.delete(health._beat_key(), health._workers_key())
    yield
    health._redis.cache_clear()


def _get(client: Client | None = None, **extra: Any) -> tuple[int, dict[str, Any]]:
    response = (client or Client()).get("/healthz", **extra)
    assert response["Content-Type"] == "application/json"
    return response.status_code, json.loads(response.content)


def test_it_names_each_dependency_and_answers_200_when_all_are_alive() -> None:
    health.record_beat()
    health.record_worker("celery@web-1")
    status, body = _get()
    assert status == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "beat", "worker"}
    assert body["checks"]["database"] == {"status": "ok"}
    assert body["checks"]["redis"] == {"status": "ok"}
    assert body["checks"]["beat"]["status"] == "ok"
    assert body["checks"]["worker"]["status"] == "ok"
    assert body["checks"]["worker"]["alive"] == 1


def test_beat_and_worker_never_heard_of_are_unknown_and_degraded_but_200() -> None:
    status, body = _get()
    assert status == 200
    assert body["status"] == "degraded"
    assert body["checks"]["beat"] == {"status": "unknown", "last_seen": None, "age_seconds": None}
    assert body["checks"]["worker"]["status"] == "unknown"


def test_a_stale_beat_or_worker_is_reported_stale_without_a_503(settings: Any) -> None:
    settings.HEALTH_STALE_SECONDS = 60
    with time_machine.travel(timezone.now() - timedelta(minutes=5)):
        health.record_beat()
        health.record_worker("celery@gone")
    health.record_worker("celery@alive")
    status, body = _get()
    assert status == 200
    assert body["status"] == "degraded"
    assert body["checks"]["beat"]["status"] == "stale"
    assert body["checks"]["beat"]["age_seconds"] >= 290
    # The newest worker heartbeat counts; the old one is not alive.
    assert body["checks"]["worker"]["status"] == "ok"
    assert body["checks"]["worker"]["alive"] == 1


def test_a_worker_that_stops_cleanly_no_longer_counts() -> None:
    health.record_worker("celery@leaving")
    health.forget_worker("celery@leaving")
    assert _get()[1]["checks"]["worker"]["status"] == "unknown"


def test_it_needs_no_login_no_allowed_host_and_no_https_in_production(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["acw.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    # A load balancer asks by address over plain HTTP: no 400 (host) and no 301 (HTTPS).
    status, body = _get(HTTP_HOST="10.0.0.7:8000")
    assert status == 200
    assert body["checks"]["database"]["status"] == "ok"
    # Other pages still get the host check.
    assert Client().get("/accounts/login/", HTTP_HOST="10.0.0.7:8000").status_code == 400


def test_it_answers_503_naming_redis_when_redis_is_down(settings: Any) -> None:
    with PrivateRedis() as server:
        settings.REDIS_URL = server.url
        health._redis.cache_clear()
        health.record_beat()
        assert _get()[0] == 200
        server.stop()
        status, body = _get()
    assert status == 503
    assert body["status"] == "down"
    assert body["checks"]["redis"] == {"status": "down", "error": "ConnectionError"}
    assert body["checks"]["database"] == {"status": "ok"}
    assert body["checks"]["beat"]["status"] == "unknown"


def test_a_post_is_not_answered_as_a_health_check() -> None:
    assert Client().post("/healthz").status_code == 404
