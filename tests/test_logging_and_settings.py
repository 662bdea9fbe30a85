"""Request ids, JSON logs, quiet 403s, and the operations settings read from the environment."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import Client

from acw_site import logs

pytestmark = pytest.mark.django_db


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """What the configured console handler writes (the settings' LOGGING), as text."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    stream = io.StringIO()
    old = handler.setStream(stream)  # type: ignore[attr-defined]
    yield stream
    handler.setStream(old)  # type: ignore[attr-defined]


def test_every_response_carries_a_request_id() -> None:
    first = Client().get("/accounts/login/")["X-Request-ID"]
    second = Client().get("/accounts/login/")["X-Request-ID"]
    assert len(first) == 32 and first != second


def test_a_proxys_request_id_is_kept_and_a_forged_one_replaced() -> None:
    kept = Client().get("/accounts/login/", HTTP_X_REQUEST_ID="0f8e7d6c5b4a39281716151413121110")
    assert kept["X-Request-ID"] == "0f8e7d6c5b4a39281716151413121110"
    forged = Client().get("/accounts/login/", HTTP_X_REQUEST_ID="x\n2026 ERROR fake line")
    assert forged["X-Request-ID"] != "x\n2026 ERROR fake line"
    assert len(forged["X-Request-ID"]) == 32


def test_an_expected_403_is_logged_with_its_request_id_and_without_a_traceback(
    console: io.StringIO,
) -> None:
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.create_user("nobody"))
    # The wall for a login with no role: PermissionDenied in the view.
    response = client.get("/", HTTP_X_REQUEST_ID="req-403-abcdef12")
    assert response.status_code == 403
    logged = console.getvalue()
    assert "Forbidden" in logged
    assert "[req-403-abcdef12]" in logged
    assert "Traceback" not in logged


def test_the_json_format_writes_one_object_per_line_with_the_request_id() -> None:
    logs.request_id.set("req-json-12345678")
    record = logging.LogRecord("acw.test", logging.WARNING, __file__, 1, "hello %s", ("you",), None)
    logs.RequestIdFilter().filter(record)
    record.status_code = 403
    line = logs.JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["message"] == "hello you"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "acw.test"
    assert entry["request_id"] == "req-json-12345678"
    assert entry["status_code"] == 403
    assert "\n" not in line


def _settings_in_a_process(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    """Load the site's settings in a fresh process with ``env`` added, then run ``code``."""
    program = "import django; django.setup(); from django.conf import settings; " + code
    return subprocess.run(
        [sys.executable, "-c", program],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "acw_site.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_mail_admins_and_smtp_settings_come_from_the_environment() -> None:
    result = _settings_in_a_process(
        {
            "ADMINS": "Ops Desk <ops@example.com>, noc@example.com",
            "EMAIL_HOST_USER": "mailer",
            "EMAIL_HOST_PASSWORD": "s3cret",
            "EMAIL_USE_TLS": "1",
            "LOG_FORMAT": "json",
        },
        "print(settings.ADMINS, settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD, "
        "settings.EMAIL_USE_TLS, settings.EMAIL_USE_SSL, settings.LOG_FORMAT)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == (
        "[('Ops Desk', 'ops@example.com'), ('noc@example.com', 'noc@example.com')] "
        "mailer s3cret True False json"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EMAIL_USE_TLS": "1", "EMAIL_USE_SSL": "1"}, "not both"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be plain or json"),
        ({"ADMINS": "not an address"}, "ADMINS must be e-mail addresses"),
        ({"CELERY_TASK_SOFT_TIME_LIMIT": "600"}, "below CELERY_TASK_TIME_LIMIT"),
        ({"METRICS_ALLOWED_IPS": "10.0.0.0/8,nonsense"}, "METRICS_ALLOWED_IPS"),
    ],
)
def test_a_bad_operations_setting_stops_the_start_with_a_clear_message(
    env: dict[str, str], message: str
) -> None:
    result = _settings_in_a_process(env, "pass")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_sentry_starts_only_when_a_dsn_is_set() -> None:
    code = "import sentry_sdk; print(sentry_sdk.get_client().is_active())"
    assert _settings_in_a_process({"SENTRY_DSN": ""}, code).stdout.strip() == "False"
    # A DSN that points nowhere: initialised, nothing is sent by start-up.
    with_dsn = _settings_in_a_process({"SENTRY_DSN": "http://public@127.0.0.1:9/1"}, code)
    assert with_dsn.returncode == 0, with_dsn.stderr
    assert with_dsn.stdout.strip().endswith("True")


def test_celery_tasks_have_soft_and_hard_time_limits() -> None:
    from acw_site.celery import app

    assert 0 < app.conf.task_soft_time_limit < app.conf.task_time_limit
    # The nightly purge may run long: its own limits, within its lock's TTL (an hour).
    app.loader.import_default_modules()  # what a worker does at start: load every tasks.py
    purge = app.tasks["agents.tasks.purge_expired_data_task"]
    assert purge.soft_time_limit < purge.time_limit == 3600
