"""Open walls follow revocation: a supervisor removed from a team, or a deactivated account.

Driven through the real ASGI application; the changes are made the way an admin makes them
(admin forms, ``manage.py create_user``), and the pushes go out after commit. Without a push
(a change made in a shell) the wall's periodic re-check catches up.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.forms import MultiWidget
from django.test import Client
from django.urls import reverse

from agents import consumers
from agents.tests.test_consumers import DB, by_agent, connected_wall, frames_until_quiet

pytestmark = [pytest.mark.asyncio]


@pytest.fixture
def memory_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def sam_on_north_and_south(supervisor_sam: Any, south: Any, alice: Any, carol: Any) -> Any:
    south.supervisors.add(supervisor_sam)
    return supervisor_sam


def _form_data(page: Any) -> dict[str, Any]:
    """The POST an admin's browser sends for a change page as it is (forms and inlines)."""
    data: dict[str, Any] = {}

    def add(form: Any) -> None:
        for bound in form:
            value = bound.value()
            if value is None:
                continue
            if isinstance(bound.field.widget, MultiWidget):
                for index, part in enumerate(bound.field.widget.decompress(value)):
                    data[f"{bound.html_name}_{index}"] = "" if part is None else str(part)
            elif isinstance(value, bool):
                if value:
                    data[bound.html_name] = "on"
            elif isinstance(value, list | tuple):
                data[bound.html_name] = [str(item) for item in value]
            else:
                data[bound.html_name] = str(value)

    add(page.context["adminform"].form)
    for inline in page.context["inline_admin_formsets"]:
        add(inline.formset.management_form)
        for form in inline.formset.forms:
            add(form)
    return data


def admin_change(admin: Any, model: str, pk: int, **changes: Any) -> None:
    """Open ``model``'s admin change page, change some fields, and save it."""
    client = Client()
    client.force_login(admin)
    url = reverse(f"admin:{model}_change", args=[pk])
    data = _form_data(client.get(url))
    for name, value in changes.items():
        if value is False:
            data.pop(name, None)
        else:
            data[name] = value
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors


async def closed_code(wall: Any, timeout: float = 3) -> int:
    """Skip frames until the server closes the socket; return the close code."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        output = await wall.receive_output(timeout=deadline - loop.time())
        if output["type"] == "websocket.close":
            return output.get("code", 1000)
    raise AssertionError("the wall was not closed")


# --- Pushed when the change is made ---------------------------------------------------------


@DB
async def test_removing_a_supervisor_from_a_team_in_admin_narrows_the_open_wall(
    memory_layer: None, sam_on_north_and_south: Any, admin_ada: Any, south: Any
) -> None:
    wall, snapshot = await connected_wall(sam_on_north_and_south)
    assert sorted(by_agent(snapshot["agents"])) == ["alice", "carol"]

    await database_sync_to_async(admin_change)(admin_ada, "agents_team", south.pk, supervisors=[])

    frame = await wall.receive_json_from(timeout=3)
    assert frame["type"] == "snapshot"
    assert sorted(by_agent(frame["agents"])) == ["alice"]
    await wall.disconnect()


@DB
async def test_deactivating_an_account_in_admin_closes_its_open_wall(
    memory_layer: None, supervisor_sam: Any, admin_ada: Any, alice: Any
) -> None:
    wall, _ = await connected_wall(supervisor_sam)
    await database_sync_to_async(admin_change)(
        admin_ada, "auth_user", supervisor_sam.pk, is_active=False
    )
    assert await closed_code(wall) == consumers.FORBIDDEN


@DB
async def test_re_running_create_user_closes_the_open_wall(
    memory_layer: None, sam_on_north_and_south: Any, monkeypatch: Any
) -> None:
    # create_user states the role and sets the password anew, which ends the user's sessions:
    # the wall goes with them at once, not at its next periodic check.
    wall, _ = await connected_wall(sam_on_north_and_south)
    monkeypatch.setenv("ACW_PASSWORD", "pw-sam")
    await database_sync_to_async(call_command)(
        "create_user", "sam", "--role", "supervisor", "--teams", "South"
    )
    assert await closed_code(wall, timeout=2) == consumers.FORBIDDEN


@DB
async def test_an_unrelated_admin_change_leaves_the_wall_alone(
    memory_layer: None, supervisor_sam: Any, admin_ada: Any, south: Any, alice: Any
) -> None:
    # A team the wall does not show (a change to its own team refreshes it: see test_admin).
    wall, _ = await connected_wall(supervisor_sam)
    await database_sync_to_async(admin_change)(
        admin_ada, "agents_team", south.pk, name="South East"
    )
    assert await frames_until_quiet(wall) == []
    await wall.disconnect()


# --- Without a push: the periodic re-check --------------------------------------------------


@DB
async def test_the_periodic_check_closes_a_wall_whose_account_was_deactivated_elsewhere(
    memory_layer: None, supervisor_sam: Any, alice: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(consumers.WallConsumer, "rights_check_seconds", 0.3)
    wall, _ = await connected_wall(supervisor_sam)
    await database_sync_to_async(User.objects.filter(pk=supervisor_sam.pk).update)(is_active=False)
    assert await closed_code(wall) == consumers.FORBIDDEN


@DB
async def test_the_periodic_check_narrows_a_wall_whose_team_was_removed_elsewhere(
    memory_layer: None, sam_on_north_and_south: Any, south: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(consumers.WallConsumer, "rights_check_seconds", 0.3)
    wall, _ = await connected_wall(sam_on_north_and_south)
    await database_sync_to_async(south.supervisors.remove)(sam_on_north_and_south)
    frame = await wall.receive_json_from(timeout=3)
    assert frame["type"] == "snapshot"
    assert sorted(by_agent(frame["agents"])) == ["alice"]
    await wall.disconnect()


@DB
async def test_the_periodic_check_closes_a_wall_whose_session_ended(
    memory_layer: None, supervisor_sam: Any, alice: Any, monkeypatch: Any
) -> None:
    from django.contrib.sessions.models import Session

    monkeypatch.setattr(consumers.WallConsumer, "rights_check_seconds", 0.3)
    wall, _ = await connected_wall(supervisor_sam)
    await database_sync_to_async(Session.objects.all().delete)()  # logged out everywhere
    assert await closed_code(wall) == consumers.FORBIDDEN


async def test_the_periodic_check_runs_at_least_every_minute() -> None:
    assert consumers.WallConsumer.rights_check_seconds <= 60


# --- On the real Redis layer ----------------------------------------------------------------


@pytest.mark.integration
@DB
async def test_deactivation_closes_the_wall_over_the_redis_layer(
    supervisor_sam: Any, admin_ada: Any, alice: Any
) -> None:
    assert "pubsub" in settings.CHANNEL_LAYERS["default"]["BACKEND"]
    wall, _ = await connected_wall(supervisor_sam)
    await database_sync_to_async(admin_change)(
        admin_ada, "auth_user", supervisor_sam.pk, is_active=False
    )
    assert await closed_code(wall) == consumers.FORBIDDEN
