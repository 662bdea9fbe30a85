"""TV links (kiosk walls): who creates and revokes them, what they show, and that revoking one
closes the screens showing it. Driven through the pages and the real ASGI application."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import reverse

from acw_site.asgi import application
from agents import consumers, wall_links
from agents.models import WallLink
from agents.tests.test_consumers import DB, by_agent, frames_until_quiet
from agents.tests.test_wall_revocation import closed_code
from audit.models import AuditEntry


@pytest.fixture
def memory_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _screen(signed: str) -> WebsocketCommunicator:
    """A kiosk wall's socket: no session cookie, only the signed link."""
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    return WebsocketCommunicator(application, f"/ws/wall/link/{signed}/", headers=headers)


# --- Creating and revoking on the page ------------------------------------------------------


@pytest.mark.django_db
def test_a_supervisor_creates_a_link_for_the_teams_they_see_now(
    supervisor_sam: Any, north: Any, south: Any
) -> None:
    client = _client(supervisor_sam)
    answer = client.post(reverse("wall-links"), {"name": "Floor 2 TV"})
    assert answer.status_code == 302
    link = WallLink.objects.get()
    assert (link.name, link.created_by, link.revoked_at) == ("Floor 2 TV", supervisor_sam, None)
    assert list(link.teams.all()) == [north]
    page = client.get(reverse("wall-links")).content.decode()
    assert reverse("wall-kiosk", args=[wall_links.signed_key(link)]) in page
    # Taking a team on later does not widen an existing link: it shows what was chosen then.
    south.supervisors.add(supervisor_sam)
    assert wall_links.wall_link_rights(wall_links.signed_key(link)) == {north.pk}


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_a_link_without_a_proper_name_is_refused_with_a_message(
    supervisor_sam: Any, name: str
) -> None:
    answer = _client(supervisor_sam).post(reverse("wall-links"), {"name": name})
    assert answer.status_code == 400
    assert "at most 100 characters" in answer.content.decode()
    assert not WallLink.objects.exists()


@pytest.mark.django_db
def test_agents_may_not_create_links(agent_user_alice: Any) -> None:
    answer = _client(agent_user_alice).post(reverse("wall-links"), {"name": "TV"})
    assert answer.status_code == 403
    assert not WallLink.objects.exists()


@pytest.mark.django_db
def test_a_supervisor_revokes_their_own_links_only_and_an_admin_any(
    supervisor_sam: Any, manager_maria: Any, admin_ada: Any
) -> None:
    sams = wall_links.create_wall_link(supervisor_sam, "North TV")
    revoke = reverse("wall-link-revoke", args=[sams.pk])
    assert _client(manager_maria).post(revoke).status_code == 404
    sams.refresh_from_db()
    assert sams.is_active
    assert _client(supervisor_sam).post(revoke).status_code == 302
    sams.refresh_from_db()
    assert not sams.is_active and sams.revoked_by == supervisor_sam

    marias = wall_links.create_wall_link(manager_maria, "Lobby")
    answer = _client(admin_ada).post(reverse("wall-link-revoke", args=[marias.pk]))
    assert answer.status_code == 302
    marias.refresh_from_db()
    assert marias.revoked_by == admin_ada


@pytest.mark.django_db
def test_an_admin_revokes_links_from_the_admin_list(supervisor_sam: Any, admin_ada: Any) -> None:
    link = wall_links.create_wall_link(supervisor_sam, "North TV")
    answer = _client(admin_ada).post(
        reverse("admin:agents_walllink_changelist"),
        {"action": "revoke", "_selected_action": [link.pk]},
    )
    assert answer.status_code == 302
    link.refresh_from_db()
    assert link.revoked_by == admin_ada
    # The revocation is in the audit log under the admin (docs/audit.md).
    revoked = AuditEntry.objects.get(action="revoke_wall_link")
    assert (revoked.actor, revoked.object_id) == (admin_ada, str(link.pk))
    assert revoked.changes["revoked_by"] == [None, "ada"]


# --- The kiosk page -------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_kiosk_page_opens_without_a_login_and_carries_no_actions(
    supervisor_sam: Any, north: Any
) -> None:
    link = wall_links.create_wall_link(supervisor_sam, "North TV")
    signed = wall_links.signed_key(link)
    page = Client().get(reverse("wall-kiosk", args=[signed]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "North TV" in html
    assert f"/ws/wall/link/{signed}/" in html
    assert "csrfmiddlewaretoken" not in html  # nothing to post from a screen
    assert 'class="topnav"' not in html
    summary = Client().get(reverse("wall-kiosk-summary", args=[signed]))
    assert summary.status_code == 200
    assert "kpis" in summary.json()


@pytest.mark.django_db
def test_a_revoked_or_altered_link_opens_nothing(supervisor_sam: Any) -> None:
    link = wall_links.create_wall_link(supervisor_sam, "North TV")
    signed = wall_links.signed_key(link)
    altered = signed[:-1] + ("A" if signed[-1] != "A" else "B")
    forged = signed.split(":")[0] + ":" + "x" * 27
    for bad in (altered, forged, "not-a-link"):
        assert Client().get(reverse("wall-kiosk", args=[bad])).status_code == 404
        assert wall_links.wall_link_rights(bad) is None
    wall_links.revoke_wall_link(link, supervisor_sam)
    page = Client().get(reverse("wall-kiosk", args=[signed]))
    assert page.status_code == 404
    assert "This wall link is not valid" in page.content.decode()
    assert Client().get(reverse("wall-kiosk-summary", args=[signed])).status_code == 404


@pytest.mark.django_db
def test_a_link_of_a_deactivated_creator_opens_nothing(supervisor_sam: Any) -> None:
    link = wall_links.create_wall_link(supervisor_sam, "North TV")
    supervisor_sam.is_active = False
    supervisor_sam.save(update_fields=["is_active"])
    assert wall_links.wall_link_rights(wall_links.signed_key(link)) is None


# --- The kiosk socket -----------------------------------------------------------------------


@DB
@pytest.mark.asyncio
async def test_a_kiosk_socket_gets_its_links_teams_and_closes_when_the_link_is_revoked(
    memory_layer: None, supervisor_sam: Any, alice: Any, carol: Any
) -> None:
    link = await database_sync_to_async(wall_links.create_wall_link)(supervisor_sam, "North TV")
    signed = await database_sync_to_async(wall_links.signed_key)(link)
    screen = _screen(signed)
    connected, _ = await screen.connect()
    assert connected
    snapshot = await screen.receive_json_from(timeout=3)
    assert snapshot["type"] == "snapshot"
    assert sorted(by_agent(snapshot["agents"])) == ["alice"]  # carol is South's
    assert await frames_until_quiet(screen) == []

    await database_sync_to_async(wall_links.revoke_wall_link)(link, supervisor_sam)
    assert await closed_code(screen) == consumers.FORBIDDEN


@DB
@pytest.mark.asyncio
async def test_a_kiosk_socket_with_a_bad_link_is_refused(memory_layer: None) -> None:
    screen = _screen("not-a-link")
    connected, code = await screen.connect()
    assert not connected
    assert code == consumers.FORBIDDEN
