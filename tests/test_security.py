"""Hardening: login throttling, API rate limits, browser security headers, the WebSocket origin
check and who may read the API schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from acw_site.asgi import application
from agents.api_throttle import HISTORIES
from agents.tests.test_api_events import event
from agents.tests.test_consumers import session_cookie

pytestmark = pytest.mark.django_db


# --- Login throttling -----------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_fifty_wrong_passwords_then_the_right_one_does_not_log_in(url: str, admin_ada: Any) -> None:
    client = Client()
    for _ in range(50):
        client.post(url, {"username": "ada", "password": "wrong"})
    response = client.post(url, {"username": "ada", "password": "pw-ada"})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session
    # A finished page: the site's look, what happened, what to do.
    page = response.content.decode()
    assert "Sign-in locked" in page
    assert "css/app.css" in page
    assert f"{settings.AXES_FAILURE_LIMIT} failed attempts" in page


def test_a_few_typos_do_not_lock_an_account(supervisor_sam: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/accounts/login/", {"username": "sam", "password": "typo"})
    response = client.post("/accounts/login/", {"username": "sam", "password": "pw-sam"})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(supervisor_sam.pk)


def test_a_lockout_does_not_lock_out_another_account(
    supervisor_sam: Any, manager_maria: Any
) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        client.post("/accounts/login/", {"username": "sam", "password": "wrong"})
    response = client.post("/accounts/login/", {"username": "maria", "password": "pw-maria"})
    assert response.status_code == 302


# --- API rate limits ------------------------------------------------------------------------


@pytest.fixture
def low_rates(settings: Any) -> None:
    settings.API_RATE_TOKEN = "3/min"
    settings.API_RATE_USER = "2/min"
    cache.clear()
    HISTORIES.clear()


def test_a_token_over_its_rate_gets_429_with_retry_after(api: APIClient, low_rates: None) -> None:
    for _ in range(3):
        ok = api.post("/api/v1/events", json.dumps(event()), content_type="application/json")
        assert ok.status_code == 201
    refused = api.post("/api/v1/events", json.dumps(event()), content_type="application/json")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["error"]


def test_a_tokens_request_times_are_kept_unpickled_in_the_process(
    api: APIClient, low_rates: None
) -> None:
    # Not in the default cache, which would pickle the whole window's history per request.
    api.post("/api/v1/events", json.dumps(event()), content_type="application/json")
    assert cache.get("throttle_token_1") is None
    assert [len(times) for times in HISTORIES._lists.values()] == [1]


def test_the_rate_is_per_token(api: APIClient, low_rates: None) -> None:
    from agents.models import ApiToken

    for _ in range(4):
        api.get("/api/v1/agents/state")
    _, other = ApiToken.issue("other")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {other}")
    assert client.get("/api/v1/agents/state").status_code == 200


def test_a_logged_in_user_has_a_rate_too(manager_maria: Any, low_rates: None) -> None:
    client = APIClient()
    client.force_login(manager_maria)
    assert [client.get("/api/v1/agents/state").status_code for _ in range(3)] == [200, 200, 429]


def test_the_default_token_rate_allows_telephony_bursts() -> None:
    count, period = settings.API_RATE_TOKEN.split("/")
    assert period.startswith("m") and int(count) >= 3000


# --- Browser security headers ---------------------------------------------------------------


def test_pages_carry_a_csp_without_inline_script_and_a_permissions_policy(
    supervisor_sam: Any,
) -> None:
    client = Client()
    client.force_login(supervisor_sam)
    response = client.get("/")
    policy = dict(
        part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert policy["frame-ancestors"] == "'none'"
    assert "camera=()" in response["Permissions-Policy"]
    assert "microphone=()" in response["Permissions-Policy"]


def _csp_headers(middleware: Any, path: str, response: Any) -> dict[str, str]:
    from django.test import RequestFactory

    request = RequestFactory().get(path)
    middleware.process_request(request)
    answered = middleware.process_response(request, response)
    return {k: v for k, v in answered.items() if k.startswith("Content-Security-Policy")}


def test_the_site_policy_built_once_is_django_csps_own(settings: Any) -> None:
    """Every response as django-csp answers it: the site's policy, a view's own (a decorator),
    a report-only policy, an excluded prefix, after a settings change."""
    from csp.decorators import csp_update
    from csp.middleware import CSPMiddleware
    from django.http import HttpRequest, HttpResponse

    from acw_site.security import SiteCSPMiddleware

    site, theirs = SiteCSPMiddleware(HttpResponse), CSPMiddleware(HttpResponse)

    def both(path: str, make: Any) -> tuple[dict[str, str], dict[str, str]]:
        return _csp_headers(site, path, make()), _csp_headers(theirs, path, make())

    mine, expected = both("/api/v1/events", HttpResponse)
    assert mine == expected
    assert "script-src 'self'" in mine["Content-Security-Policy"]
    with_update = csp_update({"style-src": ["'unsafe-inline'"]})(lambda request: HttpResponse())
    mine, expected = both("/", lambda: with_update(HttpRequest()))
    assert mine == expected and "unsafe-inline" in mine["Content-Security-Policy"]
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {
        "EXCLUDE_URL_PREFIXES": ["/static/"],
        "DIRECTIVES": {"default-src": ["'self'"], "report-uri": "/csp-report/"},
    }
    mine, expected = both("/", HttpResponse)
    assert mine == expected
    assert mine["Content-Security-Policy-Report-Only"].startswith("default-src 'self'")
    mine, expected = both("/static/x.css", HttpResponse)
    assert mine == expected and "Content-Security-Policy-Report-Only" not in mine


def test_no_template_has_an_inline_script_handler_or_style() -> None:
    import re
    from pathlib import Path

    root = Path(settings.BASE_DIR) / "templates"
    for template in root.rglob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            # Only external scripts, or JSON data islands (json_script), which never run.
            assert "src=" in tag or "application/json" in tag, (template, tag)
        assert not re.search(r"\son[a-z]+\s*=", text), template
        assert not re.search(r"\sstyle\s*=", text), template
        assert "<style" not in text, template


# --- The WebSocket origin check -------------------------------------------------------------


async def _handshake(user: Any, origin: str, host: str, **extra: bytes) -> bool:
    from channels.db import database_sync_to_async

    cookie = await database_sync_to_async(session_cookie)(user)
    headers = [
        (b"origin", origin.encode()),
        (b"host", host.encode()),
        (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()),
        *[(name.replace("_", "-").encode(), value) for name, value in extra.items()],
    ]
    wall = WebsocketCommunicator(application, "/ws/wall/", headers=headers)
    connected, _ = await wall.connect()
    await wall.disconnect()
    return connected


@pytest.fixture
def memory_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize(
    ("origin", "host", "extra", "allowed"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", {}, True),
        ("http://127.0.0.1", "127.0.0.1:80", {}, True),
        ("http://127.0.0.1:8001", "127.0.0.1:8000", {}, False),  # another port
        ("https://127.0.0.1:8000", "127.0.0.1:8000", {}, False),  # another scheme
        ("http://localhost:8000", "127.0.0.1:8000", {}, False),  # another host
        ("http://evil.example:8000", "evil.example:8000", {}, False),  # not an allowed host
        ("null", "127.0.0.1:8000", {}, False),
        # Behind a TLS proxy that says so (SECURE_PROXY_SSL_HEADER).
        ("https://127.0.0.1", "127.0.0.1", {"x_forwarded_proto": b"https"}, True),
        ("http://127.0.0.1", "127.0.0.1", {"x_forwarded_proto": b"https"}, False),
    ],
)
async def test_the_wall_socket_compares_scheme_host_and_port(
    memory_layer: None,
    settings: Any,
    supervisor_sam: Any,
    origin: str,
    host: str,
    extra: dict[str, bytes],
    allowed: bool,
) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert await _handshake(supervisor_sam, origin, host, **extra) is allowed


# --- The API schema and docs ----------------------------------------------------------------

SCHEMA_URLS = ["/api/schema/", "/api/docs/"]


def _existing(urls: list[str]) -> list[str]:
    from django.urls import Resolver404, resolve

    found = []
    for url in urls:
        try:
            resolve(url)
        except Resolver404:
            continue
        found.append(url)
    return found


@pytest.mark.parametrize("url", _existing(SCHEMA_URLS))
def test_the_schema_is_for_logged_in_staff(
    url: str, admin_ada: Any, manager_maria: Any, api: APIClient
) -> None:
    assert Client().get(url).status_code in (401, 403)
    manager = Client()
    manager.force_login(manager_maria)
    assert manager.get(url).status_code == 403
    assert api.get(url).status_code == 403  # an integration token is not staff
    staff = Client()
    staff.force_login(admin_ada)
    assert staff.get(url).status_code == 200


@pytest.mark.parametrize("url", _existing(SCHEMA_URLS))
def test_a_setting_makes_the_schema_public(url: str, settings: Any) -> None:
    settings.API_SCHEMA_PUBLIC = True
    assert Client().get(url).status_code == 200


def test_check_deploy_reports_nothing_with_production_settings(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "x" * 20 + "-production-grade-secret-key-of-enough-length-" + "y" * 20,
        "ALLOWED_HOSTS": "acw.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://acw.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
