"""Retention (ACW_RETENTION_DAYS): old events, notes and contact ids go; every KPI stays."""

from __future__ import annotations

import io
import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from rest_framework.test import APIClient

from agents import retention, services
from agents.models import AcwSession, Agent, Event, HoldPeriod, Interaction
from agents.tasks import purge_expired_data_task
from reporting import rollups
from reporting.queries import kpi_rows_raw, site_day

pytestmark = pytest.mark.django_db

DAYS = 30
NOTE = "Customer Jane Doe, card ending 4242: call back"
_ids = itertools.count(1)


def _ingest(agent: str, at: datetime, type_: str, **fields: Any) -> None:
    result = services.ingest_event(
        {
            "event_id": f"r-{next(_ids)}",
            "type": type_,
            "agent": agent,
            "occurred_at": at.isoformat(),
            **fields,
        }
    )
    assert result.status == "accepted", result


def _a_working_day(agent: str, start: datetime) -> None:
    """Three interactions: one with hold, a note and a code; a timeout; an extension."""

    def at(seconds: int) -> datetime:
        return start + timedelta(seconds=seconds)

    day = start.date().isoformat()
    _ingest(agent, at(0), "agent.logged_in")
    _ingest(agent, at(60), "interaction.started", interaction_id=f"{day}-1", channel="phone")
    _ingest(agent, at(120), "interaction.held", interaction_id=f"{day}-1")
    _ingest(agent, at(150), "interaction.resumed", interaction_id=f"{day}-1")
    _ingest(agent, at(300), "interaction.ended", interaction_id=f"{day}-1")
    _ingest(agent, at(320), "acw.ended", wrap_up_code="resolved", note=NOTE)
    _ingest(agent, at(400), "interaction.started", interaction_id=f"{day}-2", channel="chat")
    _ingest(agent, at(700), "interaction.ended", interaction_id=f"{day}-2")  # times out
    _ingest(agent, at(800), "interaction.started", interaction_id=f"{day}-3", channel="email")
    _ingest(agent, at(900), "interaction.ended", interaction_id=f"{day}-3")
    _ingest(agent, at(905), "acw.extended", seconds=30)
    _ingest(agent, at(940), "acw.ended", note="sent the form")
    _ingest(agent, at(1000), "agent.logged_out")


def _morning(days_ago: int) -> datetime:
    day = (timezone.now() - timedelta(days=days_ago)).date()
    return datetime.fromisoformat(f"{day.isoformat()}T09:00:00+00:00")


@pytest.fixture
def history(alice: Agent, carol: Agent) -> dict[str, Any]:
    """Two purged days and one recent day for alice (North) and carol (South), rolled up."""
    for days_ago in (40, 35, 1):
        for agent in ("alice", "carol"):
            _a_working_day(agent, _morning(days_ago))
    rollups.compute_rollups()
    return {"old_from": site_day(_morning(40)), "old_to": site_day(_morning(35))}


def _kpis(client: APIClient, history: dict[str, Any]) -> dict[str, Any]:
    answers = {}
    for group_by in ("agent", "team"):
        response = client.get(
            "/api/v1/kpis",
            {"group_by": group_by, "from": history["old_from"], "to": history["old_to"]},
        )
        assert response.status_code == 200
        answers[group_by] = response.json()["rows"]
    start = datetime.fromisoformat(f"{history['old_from']}T00:00:00+00:00")
    end = datetime.fromisoformat(f"{history['old_to']}T00:00:00+00:00") + timedelta(days=1)
    teams = list(Agent.objects.values_list("team_id", flat=True))
    answers["raw"] = [
        row.as_dict()
        for row in kpi_rows_raw(team_ids=teams, group_by="agent", start=start, end=end)
    ]
    return answers


def test_kpis_of_a_purged_period_come_out_identical(
    settings: Any, history: dict[str, Any], api: APIClient
) -> None:
    before = _kpis(api, history)
    assert before["agent"] and before["agent"][0]["interactions"] == 6
    rows_before = (Interaction.objects.count(), AcwSession.objects.count())
    old = Event.objects.filter(occurred_at__lt=_morning(30))
    old_count = old.count()

    settings.ACW_RETENTION_DAYS = DAYS
    report = retention.purge_expired()
    assert report is not None
    # Each agent keeps one anchor (logged out: its projection names no open row).
    assert (report.events, report.agents) == (old_count - 2, 2)
    assert list(old.values_list("type", "history_anchor")) == [("agent.logged_out", True)] * 2
    assert _kpis(api, history) == before
    assert (Interaction.objects.count(), AcwSession.objects.count()) == rows_before

    # Recomputed from what is left, they are still the same.
    call_command("replay_events", stderr=io.StringIO(), stdout=io.StringIO())
    call_command("rebuild_rollups", stderr=io.StringIO(), stdout=io.StringIO())
    assert _kpis(api, history) == before


def test_notes_and_contact_ids_older_than_the_period_are_erased(
    settings: Any, history: dict[str, Any]
) -> None:
    horizon = _morning(30)
    settings.ACW_RETENTION_DAYS = DAYS
    report = retention.purge_expired()
    assert report is not None and (report.notes, report.contact_ids) == (8, 12)

    assert not AcwSession.objects.filter(ended_at__lt=horizon).exclude(note="").exists()
    assert not Interaction.objects.filter(ended_at__lt=horizon).exclude(interaction_id="").exists()
    assert not Event.objects.filter(occurred_at__lt=horizon, data__has_key="note").exists()
    # The recent day keeps them.
    assert AcwSession.objects.filter(ended_at__gte=horizon, note=NOTE).count() == 2
    assert Interaction.objects.filter(ended_at__gte=horizon).exclude(interaction_id="").count() == 6
    # The rows of the purged days keep what the KPIs need.
    old = AcwSession.objects.filter(ended_at__lt=horizon)
    assert old.filter(wrap_up_code="resolved").count() == 4
    assert old.filter(end_reason="timeout").count() == 4
    assert old.filter(extensions=1).count() == 4


def test_a_second_run_purges_nothing_and_batches_change_nothing(
    settings: Any, history: dict[str, Any]
) -> None:
    settings.ACW_RETENTION_DAYS = DAYS
    dry = retention.purge_expired(dry_run=True)
    assert Event.objects.filter(occurred_at__lt=_morning(30), history_anchor=True).count() == 0
    first = retention.purge_expired(batch_size=3)
    again = retention.purge_expired()
    assert dry is not None and first is not None and again is not None
    assert (dry.events, dry.notes, dry.contact_ids) == (
        first.events,
        first.notes,
        first.contact_ids,
    )
    assert first.events > 3  # several batches per agent
    assert (again.events, again.notes, again.contact_ids) == (0, 0, 0)


def test_an_interaction_open_across_the_horizon_keeps_what_a_late_event_needs(
    settings: Any, bob: Agent
) -> None:
    horizon = timezone.now() - timedelta(days=DAYS)

    def at(minutes: int) -> datetime:
        return horizon + timedelta(minutes=minutes)

    _ingest("bob", at(-180), "agent.logged_in")
    _ingest("bob", at(-120), "interaction.started", interaction_id="long", channel="phone")
    _ingest("bob", at(-60), "interaction.held", interaction_id="long")
    _ingest("bob", at(-30), "interaction.resumed", interaction_id="long")
    _ingest("bob", at(60), "interaction.ended", interaction_id="long")
    settings.ACW_RETENTION_DAYS = DAYS
    report = retention.purge_expired(now=horizon + timedelta(days=DAYS))
    assert report is not None and report.events == 2  # logged_in and held
    kept = Event.objects.filter(occurred_at__lt=horizon).order_by("occurred_at")
    assert [(e.type, e.history_anchor) for e in kept] == [
        ("interaction.started", False),  # opened the interaction still open at the horizon
        ("interaction.resumed", True),
    ]
    assert all("interaction_id" not in e.data for e in kept)
    assert HoldPeriod.objects.get().start_event_id is None

    # A late hold after the horizon replays from the anchor: the purged hold still counts.
    _ingest("bob", at(10), "interaction.held", interaction_id="long")
    _ingest("bob", at(20), "interaction.resumed", interaction_id="long")
    interaction = Interaction.objects.get()
    assert interaction.hold_seconds == pytest.approx(30 * 60 + 10 * 60)
    assert interaction.talk_seconds == pytest.approx(180 * 60 - interaction.hold_seconds)
    assert HoldPeriod.objects.count() == 2
    # And a full replay from the anchor gives the same rows.
    services.replay_agent(bob.pk)
    assert Interaction.objects.get().hold_seconds == pytest.approx(40 * 60)
    assert AcwSession.objects.get().interaction_id == interaction.pk


def test_with_retention_on_an_event_older_than_the_period_is_refused(
    settings: Any, alice: Agent
) -> None:
    old = {
        "event_id": "too-old",
        "type": "agent.logged_in",
        "agent": "alice",
        "occurred_at": (timezone.now() - timedelta(days=DAYS + 1)).isoformat(),
    }
    settings.ACW_RETENTION_DAYS = DAYS
    result = services.ingest_event(old)
    assert (result.status, result.error) == (
        "rejected",
        f"occurred_at: older than the retention period of {DAYS} days",
    )
    settings.ACW_RETENTION_DAYS = 0
    assert services.ingest_event(old).status == "accepted"


def test_after_the_period_is_raised_an_event_before_an_anchor_is_still_refused(
    settings: Any, history: dict[str, Any]
) -> None:
    settings.ACW_RETENTION_DAYS = DAYS
    retention.purge_expired()
    settings.ACW_RETENTION_DAYS = 60
    result = services.ingest_event(
        {
            "event_id": "inside-the-purged-days",
            "type": "agent.logged_in",
            "agent": "alice",
            "occurred_at": (_morning(35) + timedelta(seconds=500)).isoformat(),  # before the anchor
        }
    )
    assert result.status == "rejected"
    assert result.error and "retention purge" in result.error
    assert not Event.objects.filter(event_id="inside-the-purged-days").exists()


def test_retention_is_off_by_default(settings: Any, history: dict[str, Any]) -> None:
    assert settings.ACW_RETENTION_DAYS == 0
    count = Event.objects.count()
    assert retention.purge_expired() is None
    assert purge_expired_data_task.delay().get() is None
    assert Event.objects.count() == count
    with pytest.raises(CommandError, match="retention is off"):
        call_command("purge_expired_data")


def test_the_nightly_task_is_scheduled_with_an_expiry_and_purges(
    settings: Any, history: dict[str, Any]
) -> None:
    entry = PeriodicTask.objects.get(task="agents.tasks.purge_expired_data_task")
    assert entry.enabled and entry.expire_seconds and entry.crontab is not None
    settings.ACW_RETENTION_DAYS = DAYS
    purged = purge_expired_data_task.delay().get()
    assert purged == 50  # 2 agents × 2 days × 13 events, but 2 anchors
    assert purge_expired_data_task.delay().get() == 0


def test_the_command_shows_progress_and_has_a_dry_run(
    settings: Any, history: dict[str, Any]
) -> None:
    settings.ACW_RETENTION_DAYS = DAYS
    total = Event.objects.count()
    out, err = io.StringIO(), io.StringIO()
    call_command("purge_expired_data", "--dry-run", stdout=out, stderr=err)
    assert "Would purge 50 events of 2 agents, 8 notes and 12 contact ids" in out.getvalue()
    assert Event.objects.count() == total

    out, err = io.StringIO(), io.StringIO()
    call_command("purge_expired_data", "--batch-size", "5", stdout=out, stderr=err)
    assert "Purged 50 events of 2 agents" in out.getvalue()
    # Not a terminal: one summary line per step, no bar (acw_site.progress).
    assert "agents: 2 agents in " in err.getvalue() and "events: 50 rows in " in err.getvalue()
    assert "\r" not in err.getvalue()
    assert Event.objects.count() == total - 50
