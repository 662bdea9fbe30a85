"""Test-suite set-up shared by every app: services and named personas.

Without REDIS_URL the suite runs on its own embedded Redis (started by the plugin
``acw_site.test_services``), so ``make test`` works on a bare machine; CI sets REDIS_URL and
DATABASE_URL to the real services.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """On the embedded default (SQLite in memory) no other process can see the test database:
    tests that need one (server processes, browsers, a second connection) run on PostgreSQL,
    as in CI (``.ci/run``), and are skipped here with that reason."""
    from django.db import connection

    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL, as .ci/run does)")
    for item in items:
        if "postgres" in item.keywords or "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _release_test_database(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Before the test database is dropped, end the sessions other threads left in it.

    Connections opened in worker threads (database_sync_to_async, Playwright's loop) belong to
    those threads and the pool; PostgreSQL refuses to drop a database that still has sessions.
    """
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def _test_settings(settings: Any) -> None:
    # Tasks scheduled by the ingestion service run inline unless a test starts a real worker.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_TASK_EAGER_PROPAGATES = True
    from acw_site.celery import app

    app.conf.task_always_eager = True
    # API rate-limit counters live in the process's cache and memory: each test starts with none.
    from django.core.cache import cache

    from agents.api_throttle import HISTORIES

    cache.clear()
    HISTORIES.clear()
    # Each test starts in the site's default language: a request made earlier in this thread
    # (LocaleMiddleware, a user's saved language) leaves its language active.
    from django.utils import translation

    translation.deactivate()


@pytest.fixture
def frozen_now() -> Iterator[Any]:
    """Time stands still at ``factories.NOW``, the afternoon of the fixed day ``factories.DAY``;
    the traveller moves it (``move_to``, ``shift``)."""
    import time_machine

    from agents.tests.factories import NOW

    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def north(db: None) -> Any:
    from agents.models import Team

    return Team.objects.create(name="North")


@pytest.fixture
def south(db: None) -> Any:
    from agents.models import Team

    return Team.objects.create(name="South")


def _agent(external_id: str, name: str, team: Any) -> Any:
    from agents.models import Agent, AgentState

    agent = Agent.objects.create(external_id=external_id, name=name, team=team)
    AgentState.objects.create(agent=agent)
    return agent


@pytest.fixture
def alice(north: Any) -> Any:
    return _agent("alice", "Alice Martin", north)


@pytest.fixture
def bob(north: Any) -> Any:
    return _agent("bob", "Bob Jansen", north)


@pytest.fixture
def carol(south: Any) -> Any:
    return _agent("carol", "Carol Dubois", south)


def _user(username: str, group: str | None = None, **extra: Any) -> Any:
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(username=username, password="pw-" + username, **extra)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def supervisor_sam(north: Any) -> Any:
    """Supervises North (alice, bob) — never sees South (carol)."""
    sam = _user("sam", "Supervisors")
    north.supervisors.add(sam)
    return sam


@pytest.fixture
def manager_maria(db: None) -> Any:
    return _user("maria", "Managers")


@pytest.fixture
def admin_ada(db: None) -> Any:
    return _user("ada", is_superuser=True, is_staff=True)


@pytest.fixture
def agent_user_alice(alice: Any) -> Any:
    user = _user("alice-login")
    alice.user = user
    alice.save(update_fields=["user"])
    return user


@pytest.fixture
def api_token(db: None) -> str:
    from agents.models import ApiToken

    _, token = ApiToken.issue("tests")
    return token


@pytest.fixture
def api(api_token: str) -> Iterator[Any]:
    """A DRF client authenticated with an integration token."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token}")
    yield client
