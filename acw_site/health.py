"""``GET /healthz``: is this web process able to serve, and are beat and the workers alive?

Answered by ``HealthCheckMiddleware``, first in ``MIDDLEWARE``: no login, no CSRF, no rate limit,
no HTTPS redirect and no ``ALLOWED_HOSTS`` check, so a load balancer or a container health check
can ask over plain HTTP by address. The body names each dependency:

- ``database``: ``SELECT 1`` through this process's pool;
- ``redis``: ``PING`` on ``REDIS_URL``;
- ``beat``: when beat last sent a task (beat records it in Redis, ``record_beat``);
- ``worker``: the newest heartbeat of any Celery worker (every ``HEARTBEAT_SECONDS``).

The rule: **503 when the database or Redis is down** (this process cannot serve: take it out of
rotation), **200 otherwise**. A beat or worker heartbeat older than ``HEALTH_STALE_SECONDS`` is
reported as ``stale`` and the overall ``status`` becomes ``degraded``, still with 200: restarting
or removing web processes would not help, and would take the site down for a background
problem. Alert on ``status != "ok"`` instead (docs/operations.md).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse

from .middleware import DATABASE_DOWN
from .redis_keys import redis_key

logger = logging.getLogger(__name__)

PATH = "/healthz"
HEARTBEAT_SECONDS = 15.0


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    # Short timeouts: a health check must answer quickly, above all when Redis does not.
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


def _beat_key() -> str:
    return redis_key("health", "beat")


def _workers_key() -> str:
    return redis_key("health", "workers")


# --- Written by beat and the workers --------------------------------------------------------


def record_beat() -> None:
    """Beat is alive: it just started or sent a task. Never raises (Redis may be down)."""
    try:
        _redis().set(_beat_key(), time.time())
    except redis.RedisError:
        logger.info("could not record beat's heartbeat", exc_info=True)


def record_worker(hostname: str) -> None:
    """A worker is alive and reaches Redis. Never raises."""
    try:
        _redis().hset(_workers_key(), hostname, time.time())
    except redis.RedisError:
        logger.info("could not record the worker's heartbeat", exc_info=True)


def forget_worker(hostname: str) -> None:
    """A worker stopped cleanly: it no longer counts as alive."""
    try:
        _redis().hdel(_workers_key(), hostname)
    except redis.RedisError:
        logger.info("could not remove the worker's heartbeat", exc_info=True)


def start_worker_heartbeat(hostname: str) -> threading.Thread:
    """Record the worker's heartbeat now and every ``HEARTBEAT_SECONDS`` (a daemon thread)."""

    def beat() -> None:
        while True:
            record_worker(hostname)
            time.sleep(HEARTBEAT_SECONDS)

    thread = threading.Thread(target=beat, name="acw-heartbeat", daemon=True)
    thread.start()
    return thread


# --- Read by /healthz -----------------------------------------------------------------------


def _check_database() -> dict[str, Any]:
    error: Exception | None = None
    # Twice: after an outage, the pool may first hand out a connection that died with it
    # (closing it drops it from the pool); only a second failure means "down".
    for _ in range(2):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return {"status": "ok"}
        except DATABASE_DOWN as exc:
            error = exc
            connection.close()
    return {"status": "down", "error": type(error).__name__}


def _heartbeat(stamp: float | None, now: float) -> dict[str, Any]:
    if stamp is None:
        return {"status": "unknown", "last_seen": None, "age_seconds": None}
    age = max(now - stamp, 0.0)
    return {
        "status": "ok" if age <= settings.HEALTH_STALE_SECONDS else "stale",
        "last_seen": datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds"),
        "age_seconds": round(age, 1),
    }


def _check_redis_and_heartbeats() -> dict[str, dict[str, Any]]:
    try:
        client = _redis()
        client.ping()
        beat = client.get(_beat_key())
        workers = {
            str(name, "utf-8") if isinstance(name, bytes) else name: float(stamp)
            for name, stamp in client.hgetall(_workers_key()).items()
        }
    except redis.RedisError as exc:
        unknown = {"status": "unknown", "last_seen": None, "age_seconds": None}
        return {
            "redis": {"status": "down", "error": type(exc).__name__},
            "beat": unknown,
            "worker": {**unknown, "alive": 0},
        }
    now = time.time()
    alive = sum(1 for stamp in workers.values() if now - stamp <= settings.HEALTH_STALE_SECONDS)
    return {
        "redis": {"status": "ok"},
        "beat": _heartbeat(float(beat) if beat is not None else None, now),
        "worker": {**_heartbeat(max(workers.values(), default=None), now), "alive": alive},
    }


def health() -> tuple[int, dict[str, Any]]:
    """The HTTP status and the body of ``/healthz`` (rule in the module docstring)."""
    checks = {"database": _check_database(), **_check_redis_and_heartbeats()}
    if checks["database"]["status"] != "ok" or checks["redis"]["status"] != "ok":
        return 503, {"status": "down", "checks": checks}
    background = (checks["beat"]["status"], checks["worker"]["status"])
    status = "ok" if background == ("ok", "ok") else "degraded"
    return 200, {"status": status, "checks": checks}


class HealthCheckMiddleware:
    """Answers ``GET /healthz`` before any other middleware (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path != PATH or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        status, body = health()
        response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
        response["Cache-Control"] = "no-store"
        return response
