"""``/healthz`` of a real server process with the database cut, and a real worker's heartbeat.

The database is cut with the fault suite's TCP proxy (as ``test_web_faults`` does); Redis is a
private ``redis-server`` (never the shared one).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from acw_site import health
from bench.faults.stack import PrivateRedis, TcpProxy

from .conftest import needs_postgresql, wait_for
from .test_web_faults import Web

pytestmark = [
    needs_postgresql,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _healthz(web: Web) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{web.url}/healthz", timeout=30) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read())


def _metrics(web: Web) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{web.url}/metrics", headers={"Authorization": "Bearer health-test-token-1234"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


def test_with_the_database_down_healthz_answers_503_naming_it_then_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRICS_TOKEN", "health-test-token-1234")
    db_port = int(settings.DATABASES["default"].get("PORT") or 5432)
    proxy = TcpProxy(db_port).start()
    with PrivateRedis() as redis_server:
        web = Web(tmp_path / "web.log", redis_server.url, db_port=proxy.port)
        try:
            status, body = _healthz(web)
            assert status == 200
            assert body["checks"]["database"] == {"status": "ok"}
            proxy.down()
            status, body = _healthz(web)
            assert status == 503
            assert body["status"] == "down"
            assert body["checks"]["database"]["status"] == "down"
            assert body["checks"]["redis"] == {"status": "ok"}
            # The processes' own metrics are still served; the database gauges are left out.
            status, text = _metrics(web)
            assert status == 200
            assert "acw_ingest_seconds" in text
            assert "acw_rollup_lag_seconds" not in text
            proxy.up()
            # At once (no stale pooled connection answered for it), by the same process.
            assert _healthz(web)[0] == 200
            assert "acw_rollup_lag_seconds 0.0" in _metrics(web)[1]
        finally:
            web.stop()
            proxy.close()


def test_a_running_worker_reports_its_heartbeat(broker_tasks: Path) -> None:
    def worker_seen() -> bool:
        body = json.loads(Client().get("/healthz").content)
        return body["checks"]["worker"]["status"] == "ok"

    health._redis.cache_clear()
    wait_for(worker_seen, timeout=30)
    body = json.loads(Client().get("/healthz").content)
    assert body["checks"]["worker"]["alive"] >= 1


def test_a_running_beat_reports_its_heartbeat(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from bench.faults.stack import stop_process

    from .conftest import _test_database_url

    health._redis.cache_clear()
    health._redis().delete(health._beat_key())
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "DEBUG": "1"}
    with (tmp_path / "beat.log").open("w") as log:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "acw_site", "beat", "--loglevel=INFO",
             f"--schedule={tmp_path / 'schedule'}"],
            cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:

        def beat_seen() -> bool:
            body = json.loads(Client().get("/healthz").content)
            return body["checks"]["beat"]["status"] == "ok"

        wait_for(beat_seen, timeout=30)
    finally:
        stop_process(beat)
