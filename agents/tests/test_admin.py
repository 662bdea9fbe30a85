"""Django admin: every model is configured and its pages render for an admin."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from agents import events, services
from agents.models import AcwPolicy, AcwSession, Agent, AgentState, Event, Interaction, Team
from agents.tests.factories import event
from reporting import rollups
from reporting.models import Alert, DirtyInterval, KpiRollup

from .admin_forms import post_admin_form

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_with_data(admin_ada: Any, alice: Any) -> Client:
    services.ingest_events(
        [
            event("alice", type_, datetime(2026, 11, 20, 9, 0, n, tzinfo=UTC), **fields)
            for n, (type_, fields) in enumerate(
                [
                    ("agent.logged_in", {}),
                    ("interaction.started", {"interaction_id": "c1", "channel": "phone"}),
                    ("interaction.held", {"interaction_id": "c1"}),
                    ("interaction.resumed", {"interaction_id": "c1"}),
                    ("interaction.ended", {"interaction_id": "c1"}),
                    ("acw.ended", {"wrap_up_code": "resolved"}),
                ]
            )
        ]
    )
    client = Client()
    client.force_login(admin_ada)
    return client


def test_every_registered_model_has_working_admin_pages(admin_client_with_data: Client) -> None:
    for model in admin.site._registry:
        meta = model._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        response = admin_client_with_data.get(changelist)
        assert response.status_code == 200, changelist
        first = model.objects.first()
        if first is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[first.pk])
            assert admin_client_with_data.get(change).status_code == 200, change


def test_the_event_log_is_read_only_in_admin(admin_client_with_data: Client) -> None:
    add = admin_client_with_data.get(reverse("admin:agents_event_add"))
    assert add.status_code == 403
    page = admin_client_with_data.get(reverse("admin:agents_event_changelist") + "?q=adm-4")
    assert b"adm-4" in page.content
    assert b"interaction.ended" in page.content


def test_a_supervisor_cannot_open_admin(supervisor_sam: Any) -> None:
    client = Client()
    client.force_login(supervisor_sam)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302


# --- No write bypasses the services ---------------------------------------------------------


def admin_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def change_url(obj: Any) -> str:
    meta = obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])


def test_an_agent_added_in_admin_takes_its_first_event(
    admin_ada: Any, north: Team, api: APIClient
) -> None:
    response = post_admin_form(
        admin_client(admin_ada),
        reverse("admin:agents_agent_add"),
        external_id="a-1077",
        name="Nina Ode",
        team=str(north.pk),
    )
    assert response.status_code == 302, response.content
    agent = Agent.objects.get(external_id="a-1077")
    assert (agent.name, agent.team, agent.live.state) == ("Nina Ode", north, "offline")
    answer = api.post("/api/v1/events", event("a-1077", "agent.logged_in"), format="json")
    assert answer.status_code == 201, answer.content
    assert AgentState.objects.get(agent=agent).state == "available"


def test_an_agents_external_id_is_read_only_once_created(admin_ada: Any, alice: Agent) -> None:
    response = post_admin_form(admin_client(admin_ada), change_url(alice), external_id="other")
    assert response.status_code == 302
    assert Agent.objects.filter(external_id="alice").exists()
    assert not Agent.objects.filter(external_id="other").exists()


def test_a_move_in_admin_is_published_to_the_old_team_only_after_commit(
    admin_ada: Any,
    alice: Agent,
    south: Team,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    old_wall = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.team_group(alice.team_id), old_wall)

    def received() -> list[dict[str, Any]]:
        found = []
        while True:
            try:
                found.append(async_to_sync(_receive_now)(layer, old_wall))
            except TimeoutError:
                return found

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_admin_form(admin_client(admin_ada), change_url(alice), team=str(south.pk))
        assert response.status_code == 302
        assert received() == []  # nothing before the commit
    for callback in callbacks:
        callback()
    messages = received()
    assert [m["type"] for m in messages] == ["wall.agent_removed"]
    assert messages[0]["agent"] == "alice"
    assert Agent.objects.get(pk=alice.pk).team == south


async def _receive_now(layer: Any, channel: str) -> dict[str, Any]:
    return await asyncio.wait_for(layer.receive(channel), timeout=0.2)


def test_an_agent_with_events_cannot_be_deleted_in_admin(
    admin_client_with_data: Client, alice: Agent
) -> None:
    url = reverse("admin:agents_agent_delete", args=[alice.pk])
    response = admin_client_with_data.post(url, {"post": "yes"})
    assert response.status_code == 200
    assert b"protected" in response.content or b"Cannot delete" in response.content
    assert Agent.objects.filter(pk=alice.pk).exists()


def test_a_team_with_agents_cannot_be_deleted_in_admin(
    admin_ada: Any, north: Team, alice: Agent
) -> None:
    url = reverse("admin:agents_team_delete", args=[north.pk])
    response = admin_client(admin_ada).post(url, {"post": "yes"})
    assert response.status_code == 200
    assert Team.objects.filter(pk=north.pk).exists()


def test_the_rows_the_services_own_are_read_only_in_admin(
    admin_client_with_data: Client,
) -> None:
    alice = Agent.objects.get(external_id="alice")
    rollups.compute_rollups()
    rollups.mark_dirty(alice.pk, [timezone.now()])
    Alert.objects.create(
        kind="long_acw",
        team=alice.team,
        agent=alice,
        opened_at=timezone.now(),
        updated_at=timezone.now(),
        value=200,
        threshold=120,
        message="long",
    )
    owned = [Event, Interaction, AcwSession, Alert, KpiRollup, DirtyInterval]
    for model in owned:
        meta = model._meta
        name = f"admin:{meta.app_label}_{meta.model_name}"
        assert admin_client_with_data.get(reverse(f"{name}_add")).status_code == 403, name
        row = model.objects.first()
        if row is None:
            continue
        delete = admin_client_with_data.post(
            reverse(f"{name}_delete", args=[row.pk]), {"post": "yes"}
        )
        assert delete.status_code == 403, name
        change = admin_client_with_data.post(reverse(f"{name}_change", args=[row.pk]), {})
        assert change.status_code == 403, name
        assert model.objects.filter(pk=row.pk).exists()
    page = admin_client_with_data.get(change_url(alice))
    assert b'name="live-0-state"' not in page.content  # the live state is shown, not editable


def test_a_policy_moved_to_another_team_refreshes_both_teams_walls(
    admin_ada: Any, north: Team, south: Team, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    walls = {}
    for team in (north, south):
        walls[team.name] = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(events.team_group(team.pk), walls[team.name])
    policy = AcwPolicy.objects.create(team=north, channel="chat", seconds=60)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_admin_form(admin_client(admin_ada), change_url(policy), team=str(south.pk))
    assert response.status_code == 302
    for name, channel in walls.items():
        message = async_to_sync(_receive_now)(layer, channel)
        assert message["type"] == "wall.team_changed", name
