"""ACW notes: read by the agent who wrote them, their team's supervisors and admins only.

Every place a note could show is checked: admin (the ACW, the event, search), the read APIs
(token and session, JSON and CSV), the wall and KPI pages, the wall's snapshot.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from agents import access, selectors, services
from agents.access import IntegrationUser
from agents.models import AcwSession, Agent, Event, Team
from agents.tests.factories import event

pytestmark = pytest.mark.django_db

NOTE = "Customer Jane Doe asked about card 4242"


@pytest.fixture
def noted_acw(alice: Agent, agent_user_alice: User) -> AcwSession:
    """Alice writes a note on her wrap-up page, the one place notes are written by people."""
    services.ingest_events(
        [
            event("alice", "agent.logged_in", 20),
            event("alice", "interaction.started", 15, interaction_id="c-1", channel="phone"),
            event("alice", "interaction.ended", 5, interaction_id="c-1"),
        ]
    )
    client = Client()
    client.force_login(agent_user_alice)
    response = client.post(
        reverse("my-ready"), json.dumps({"note": NOTE}), content_type="application/json"
    )
    assert response.status_code == 200
    return AcwSession.objects.get(note=NOTE)


@pytest.fixture
def sue(south: Team) -> User:
    """Supervises South only."""
    from conftest import _user

    user = _user("sue", "Supervisors")
    south.supervisors.add(user)
    return user


@pytest.fixture
def staff_stan(db: None) -> User:
    """Staff with view rights on ACWs and events in admin, but not an admin."""
    stan = User.objects.create_user("stan", is_staff=True)
    stan.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_acwsession", "view_event"])
    )
    return stan


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_rule_names_who_may_read_an_agents_notes(
    alice: Agent,
    agent_user_alice: User,
    supervisor_sam: User,
    sue: User,
    manager_maria: User,
    admin_ada: User,
    staff_stan: User,
) -> None:
    readers = {
        "the agent": agent_user_alice,
        "their supervisor": supervisor_sam,
        "an admin": admin_ada,
    }
    others = {
        "another team's supervisor": sue,
        "a manager": manager_maria,
        "staff who is not an admin": staff_stan,
        "an integration token": IntegrationUser("telephony"),
    }
    for who, user in readers.items():
        assert access.can_read_notes(user, alice), who
    for who, user in others.items():
        assert not access.can_read_notes(user, alice), who
    admin_ada.is_active = False
    assert not access.can_read_notes(admin_ada, alice)


def _admin_pages(client: Client, acw: AcwSession) -> dict[str, str]:
    ended = Event.objects.get(type="acw.ended")
    pages = {
        "acw": reverse("admin:agents_acwsession_change", args=[acw.pk]),
        "event": reverse("admin:agents_event_change", args=[ended.pk]),
        "search": reverse("admin:agents_acwsession_changelist") + "?q=4242",
    }
    answers = {}
    for name, url in pages.items():
        response = client.get(url)
        assert response.status_code == 200, name
        answers[name] = response.content.decode()
        if name == "search":
            answers["found"] = str(response.context["cl"].result_count)
    return answers


def test_admins_read_notes_in_admin(noted_acw: AcwSession, admin_ada: User) -> None:
    pages = _admin_pages(_client(admin_ada), noted_acw)
    assert NOTE in pages["acw"]
    assert NOTE in pages["event"]
    assert pages["found"] == "1"


def test_staff_who_are_not_admins_do_not_see_notes_in_admin(
    noted_acw: AcwSession, staff_stan: User
) -> None:
    pages = _admin_pages(_client(staff_stan), noted_acw)
    for name, page in pages.items():
        assert NOTE not in page, name
    assert "(hidden)" in pages["event"]
    assert pages["found"] == "0"


def test_no_read_api_carries_a_note(
    noted_acw: AcwSession, api: APIClient, manager_maria: User, supervisor_sam: User
) -> None:
    session = APIClient()
    session.force_login(manager_maria)
    own_supervisor = APIClient()
    own_supervisor.force_login(supervisor_sam)
    for client in (api, session, own_supervisor):
        for url in (
            "/api/v1/agents/state",
            "/api/v1/kpis",
            "/api/v1/kpis?group_by=team",
        ):
            response = client.get(url)
            assert response.status_code == 200, url
            assert "4242" not in response.content.decode(), url


def test_no_wall_or_kpi_page_carries_a_note(
    noted_acw: AcwSession,
    supervisor_sam: User,
    manager_maria: User,
    bob: Agent,
) -> None:
    bob_login = User.objects.create_user("bob-login")
    bob.user = bob_login
    bob.save(update_fields=["user"])
    for user, urls in (
        (supervisor_sam, ["/", "/wall/summary"]),
        (manager_maria, ["/", "/wall/summary", "/kpis/"]),
        (bob_login, ["/me/", "/me/state"]),
    ):
        client = _client(user)
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, (user, url)
            assert "4242" not in response.content.decode(), (user, url)
    snapshot = selectors.wall_snapshot(access.visible_team_ids(manager_maria))
    assert "4242" not in json.dumps(snapshot, default=str)
