"""Alerts: each condition opens one alert, it updates, resolves, and a supervisor acknowledges."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from agents.events import team_group
from agents.models import AcwPolicy, Agent, Team
from reporting import alerts, rollups
from reporting.models import Alert, AlertKind, AlertStatus
from reporting.selectors import open_alert_payloads

from .factories import call, event, ingest

pytestmark = pytest.mark.django_db


def manual_acw(team: Team, **thresholds: Any) -> AcwPolicy:
    """An untimed ACW policy; only the thresholds given raise alerts (0 disables one)."""
    off = {
        "target_avg_seconds": 0,
        "alert_acw_seconds": 0,
        "alert_acw_share": 0,
        "alert_not_ready_seconds": 0,
        "alert_concurrent_acw_share": 0,
        "alert_too_short_count": 0,
    }
    return AcwPolicy.objects.create(
        team=team, mode="manual", seconds=0, max_seconds=0, **{**off, **thresholds}
    )


def kinds() -> list[tuple[str, str, str | None]]:
    return sorted(
        (a.kind, a.status, a.agent.external_id if a.agent else None)
        for a in Alert.objects.select_related("agent")
    )


def test_a_long_acw_opens_an_alert_that_resolves_when_the_acw_ends(alice: Agent) -> None:
    manual_acw(alice.team, alert_acw_seconds=120)
    now = timezone.now()
    ingest(*call("alice", "c1", now - timedelta(seconds=400), talk=200, acw=None))
    changes = alerts.evaluate_alerts(now)
    assert kinds() == [(AlertKind.LONG_ACW, "open", "alice")]
    alert = Alert.objects.get(pk=changes.opened[0])
    assert (alert.value, alert.threshold) == (200, 120)
    assert "in ACW for 3 min 20 s" in alert.message

    alerts.evaluate_alerts(now + timedelta(seconds=10))
    alert.refresh_from_db()
    assert (alert.value, alert.status) == (210, "open")
    assert Alert.objects.count() == 1

    ingest(event("alice", "acw.ended", now + timedelta(seconds=15)))
    changes = alerts.evaluate_alerts(now + timedelta(seconds=20))
    alert.refresh_from_db()
    assert changes.resolved == [alert.pk]
    assert (alert.status, alert.resolved_at) == ("resolved", now + timedelta(seconds=20))
    assert open_alert_payloads({alice.team_id}) == []


def test_a_condition_that_returns_opens_a_new_alert(alice: Agent) -> None:
    manual_acw(alice.team, alert_not_ready_seconds=60)
    now = timezone.now()
    ingest(event("alice", "agent.not_ready", now - timedelta(seconds=100), reason="break"))
    alerts.evaluate_alerts(now)
    ingest(event("alice", "agent.available", now))
    alerts.evaluate_alerts(now)
    ingest(event("alice", "agent.not_ready", now + timedelta(seconds=1), reason="lunch"))
    alerts.evaluate_alerts(now + timedelta(seconds=90))
    assert kinds() == [
        (AlertKind.LONG_NOT_READY, "open", "alice"),
        (AlertKind.LONG_NOT_READY, "resolved", "alice"),
    ]


def test_only_one_unresolved_alert_per_kind_team_and_agent(alice: Agent, north: Team) -> None:
    now = timezone.now()
    fields = {"opened_at": now, "updated_at": now, "value": 1, "threshold": 1, "message": "x"}
    Alert.objects.create(kind=AlertKind.CONCURRENT_ACW, team=north, **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(kind=AlertKind.CONCURRENT_ACW, team=north, **fields)
    Alert.objects.create(kind=AlertKind.LONG_ACW, team=north, agent=alice, **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(kind=AlertKind.LONG_ACW, team=north, agent=alice, **fields)
    Alert.objects.update(status=AlertStatus.RESOLVED)
    Alert.objects.create(kind=AlertKind.LONG_ACW, team=north, agent=alice, **fields)


def test_too_many_agents_in_acw_at_once_is_a_team_alert(
    alice: Agent, bob: Agent, north: Team
) -> None:
    manual_acw(north, alert_concurrent_acw_share=0.5)
    now = timezone.now()
    ingest(event("alice", "agent.logged_in", now - timedelta(minutes=5)))
    ingest(*call("alice", "a", now - timedelta(seconds=60), talk=30, acw=None))
    ingest(event("bob", "agent.logged_in", now - timedelta(minutes=5)))
    alerts.evaluate_alerts(now)
    assert kinds() == []  # one agent in ACW out of two: 50 % is not above 50 %
    ingest(*call("bob", "b", now - timedelta(seconds=50), talk=30, acw=None))
    alerts.evaluate_alerts(now)
    alert = Alert.objects.get(kind=AlertKind.CONCURRENT_ACW)
    assert (alert.agent, alert.team, alert.value) == (None, north, 1.0)
    assert alert.message.startswith("2 of 2 logged-in agents in ACW")


def test_repeatedly_too_short_acws_open_an_alert_until_the_streak_breaks(
    alice: Agent, frozen_now: Any
) -> None:
    AcwPolicy.objects.create(team=alice.team, min_seconds=20, alert_too_short_count=3)
    now = timezone.now()
    t = now - timedelta(minutes=10)
    for n in range(3):
        ingest(*call("alice", f"s{n}", t + timedelta(minutes=n), talk=20, acw=3))
    alerts.evaluate_alerts(now)
    assert kinds() == [(AlertKind.TOO_SHORT_STREAK, "open", "alice")]
    ingest(*call("alice", "ok", t + timedelta(minutes=5), talk=20, acw=25))
    alerts.evaluate_alerts(now)
    assert kinds() == [(AlertKind.TOO_SHORT_STREAK, "resolved", "alice")]


def test_acw_share_today_and_team_average_use_the_kpis(
    alice: Agent, north: Team, frozen_now: Any
) -> None:
    AcwPolicy.objects.create(team=north, seconds=60, alert_acw_share=0.3, target_avg_seconds=30)
    now = timezone.now()
    start = now - timedelta(minutes=30)
    for n in range(3):
        ingest(*call("alice", f"c{n}", start + timedelta(minutes=3 * n), talk=60, acw=40))
    rollups.compute_rollups()
    alerts.evaluate_alerts(now)
    share = Alert.objects.get(kind=AlertKind.ACW_SHARE)
    assert (share.agent, share.value, share.threshold) == (alice, 0.4, 0.3)
    team = Alert.objects.get(kind=AlertKind.TEAM_AVG_ACW)
    assert (team.agent, team.value, team.threshold) == (None, 40, 30)


def test_open_alert_payloads_show_only_the_teams_asked_for(alice: Agent, carol: Agent) -> None:
    manual_acw(alice.team, alert_not_ready_seconds=60)
    manual_acw(carol.team, alert_not_ready_seconds=60)
    now = timezone.now()
    for agent in ("alice", "carol"):
        ingest(event(agent, "agent.not_ready", now - timedelta(seconds=100), reason="break"))
    alerts.evaluate_alerts(now)
    payloads = open_alert_payloads({alice.team_id})
    assert [p["agent"] for p in payloads] == ["alice"]
    assert set(payloads[0]) >= {
        "id",
        "kind",
        "status",
        "team",
        "agent",
        "message",
        "value",
        "threshold",
        "opened_at",
        "acknowledged_by",
    }
    assert (payloads[0]["team"], payloads[0]["acknowledged_by"]) == ("North", None)


def test_an_opened_alert_is_emailed_to_the_team_supervisors(
    settings: Any,
    supervisor_sam: Any,
    alice: Agent,
    mailoutbox: list,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.ALERT_EMAILS = True
    supervisor_sam.email = "sam@example.com"
    supervisor_sam.save()
    manual_acw(alice.team, alert_not_ready_seconds=60)
    now = timezone.now()
    ingest(event("alice", "agent.not_ready", now - timedelta(seconds=100), reason="break"))
    with django_capture_on_commit_callbacks(execute=True):
        alerts.evaluate_alerts(now)
    with django_capture_on_commit_callbacks(execute=True):
        alerts.evaluate_alerts(now + timedelta(seconds=10))  # an update is not mailed again
    assert [m.to for m in mailoutbox] == [["sam@example.com"]]
    assert "not ready for 1 min 40 s" in mailoutbox[0].body


@pytest.fixture
def not_ready_alerts(alice: Agent, carol: Agent) -> dict[str, Alert]:
    manual_acw(alice.team, alert_not_ready_seconds=60)
    manual_acw(carol.team, alert_not_ready_seconds=60)
    now = timezone.now()
    for agent in ("alice", "carol"):
        ingest(event(agent, "agent.not_ready", now - timedelta(seconds=100), reason="break"))
    alerts.evaluate_alerts(now)
    return {a.agent.external_id: a for a in Alert.objects.select_related("agent")}


def test_a_supervisor_acknowledges_an_alert_of_their_team(
    supervisor_sam: Any, not_ready_alerts: dict[str, Alert]
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(supervisor_sam)
    client.get("/kpis/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    url = f"/kpis/alerts/{not_ready_alerts['alice'].pk}/ack"
    assert client.post(url).status_code == 403  # no CSRF token
    response = client.post(url, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    body = json.loads(response.content)["alert"]
    assert (body["status"], body["acknowledged_by"], body["agent"]) == (
        "acknowledged",
        "sam",
        "alice",
    )
    assert client.post(url, HTTP_X_CSRFTOKEN=token).status_code == 200  # idempotent
    # Still acknowledged while the condition holds; resolved once it clears.
    alerts.evaluate_alerts(timezone.now())
    assert Alert.objects.get(pk=body["id"]).status == "acknowledged"
    ingest(event("alice", "agent.available", timezone.now()))
    alerts.evaluate_alerts(timezone.now())
    assert client.post(url, HTTP_X_CSRFTOKEN=token).status_code == 409


def test_a_supervisor_cannot_acknowledge_another_teams_alert(
    supervisor_sam: Any, agent_user_alice: Any, not_ready_alerts: dict[str, Alert]
) -> None:
    client = Client()
    url = f"/kpis/alerts/{not_ready_alerts['carol'].pk}/ack"
    assert client.post(url).status_code == 302  # to the login page
    client.force_login(supervisor_sam)
    assert client.post(url).status_code == 404
    assert client.get(url).status_code == 405
    client.force_login(agent_user_alice)
    assert client.post(f"/kpis/alerts/{not_ready_alerts['alice'].pk}/ack").status_code == 404
    assert not Alert.objects.filter(status="acknowledged").exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.asyncio
async def test_alert_changes_are_pushed_to_the_teams_walls(alice: Agent) -> None:
    await sync_to_async(manual_acw)(alice.team, alert_not_ready_seconds=60)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(team_group(alice.team_id), channel)
    now = timezone.now()
    await sync_to_async(ingest)(
        event("alice", "agent.not_ready", now - timedelta(seconds=100), reason="break")
    )
    await sync_to_async(alerts.evaluate_alerts)(now)
    message = await asyncio.wait_for(layer.receive(channel), 5)
    while message["type"] != "wall.alert":
        message = await asyncio.wait_for(layer.receive(channel), 5)
    assert (message["alert"]["kind"], message["alert"]["status"]) == ("long_not_ready", "open")
    await layer.group_discard(team_group(alice.team_id), channel)
