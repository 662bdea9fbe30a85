"""``manage.py seed_demo``: the demo contact center, its logins and its history."""

from __future__ import annotations

from datetime import datetime, timedelta
from io import StringIO
from itertools import pairwise
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from agents import simulation
from agents.management.commands.seed_demo import DEMO_PASSWORD, history_events
from agents.models import (
    AcwPolicy,
    AcwSession,
    Agent,
    ApiToken,
    ChecklistItem,
    Event,
    Interaction,
    Team,
    WrapUpCode,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # Five demo logins per seed: the production hasher would make these tests seconds slower.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_it_creates_every_role_policy_mode_code_checklist_and_a_history() -> None:
    before = timezone.now()
    output = seed("--days", "1", "--agents", "2", "--shift-hours", "2", "--seed", "3")

    assert set(Team.objects.values_list("name", flat=True)) >= {"North", "South", "Digital"}
    assert Agent.objects.filter(team__name__in=["North", "South", "Digital"]).count() == 6
    alice = Agent.objects.get(external_id="alice")
    assert (alice.name, alice.team.name, alice.user.username) == ("Alice Martin", "North", "alice")

    users = {user.username: user for user in User.objects.all()}
    assert users["admin"].is_superuser and users["admin"].is_staff
    assert list(users["sam"].supervised_teams.values_list("name", flat=True)) == ["North"]
    assert set(users["sue"].supervised_teams.values_list("name", flat=True)) == {"South", "Digital"}
    assert users["sam"].groups.filter(name="Supervisors").exists()
    assert users["maria"].groups.filter(name="Managers").exists()
    for username in ("admin", "sam", "sue", "maria", "alice"):
        assert users[username].check_password(DEMO_PASSWORD)

    modes = set(AcwPolicy.objects.filter(team__isnull=False).values_list("mode", flat=True))
    assert modes == {"timed", "timed_strict", "manual", "none"}
    north = AcwPolicy.objects.get(team__name="North", channel="phone")
    assert (north.seconds, north.min_seconds, north.wrap_up_required) == (30, 10, True)
    assert AcwPolicy.objects.get(team__name="South", channel="").allow_extension

    assert WrapUpCode.objects.filter(expected_acw_seconds__gt=0).count() >= 5
    assert WrapUpCode.objects.filter(code__in=["resolved", "escalated", "complaint"]).count() == 3
    for team in ("North", "South", "Digital"):
        assert ChecklistItem.objects.filter(team__name=team).count() >= 3

    token = output.split("API token 'demo' (shown once): ")[1].split()[0]
    assert ApiToken.objects.get(name="demo").token_hash == ApiToken.hash(token)

    events = Event.objects.all()
    assert events.exists()
    assert set(events.values_list("source", flat=True)) == {"seed"}
    assert max(events.values_list("occurred_at", flat=True)) < before
    assert Interaction.objects.count() > 10
    assert AcwSession.objects.exclude(duration_seconds=None).count() > 10
    assert "6 agents" in output and "interactions" in output


def test_if_empty_changes_nothing_on_a_second_run() -> None:
    seed("--days", "0", "--agents", "1")

    def snapshot() -> dict[str, Any]:
        return {
            "teams": list(Team.objects.values_list("name", flat=True)),
            "agents": list(Agent.objects.values_list("external_id", "name", "team_id")),
            "users": list(User.objects.values_list("username", "password")),
            "policies": list(AcwPolicy.objects.values()),
            "codes": list(WrapUpCode.objects.values()),
            "checklists": list(ChecklistItem.objects.values()),
            "tokens": ApiToken.objects.count(),
            "events": Event.objects.count(),
        }

    first = snapshot()
    output = seed("--if-empty", "--days", "1", "--agents", "3")
    assert output.strip() == "Demo data already present"
    assert snapshot() == first


def test_history_is_reproducible_per_seed_in_time_order_and_ends_with_logged_in_agents() -> None:
    seed("--days", "0", "--agents", "1")
    agents = simulation.load_agents()
    now = timezone.now()
    events = history_events(agents, days=2, seed=5, now=now)
    assert events == history_events(agents, days=2, seed=5, now=now)

    times = [datetime.fromisoformat(e["occurred_at"]) for e in events]
    assert all(a <= b for a, b in pairwise(times))
    assert times[-1] < now
    # Yesterday's shift ends with a logout; today's is still running at "now".
    yesterday = {
        e["type"] for e, t in zip(events, times, strict=True) if t < now - timedelta(hours=12)
    }
    assert {"agent.logged_in", "agent.logged_out"} <= yesterday
    last_type = {e["agent"]: e["type"] for e in events}
    assert "agent.logged_out" not in last_type.values()


def test_a_second_run_keeps_the_history_and_refreshes_the_set_up() -> None:
    seed("--days", "1", "--agents", "1", "--shift-hours", "1")
    events = Event.objects.count()
    AcwPolicy.objects.filter(team__name="North").update(seconds=99)
    User.objects.filter(username="sam").update(password="")

    output = seed("--days", "1", "--agents", "1", "--shift-hours", "1")
    assert Event.objects.count() == events
    assert "History kept for 3 agents" in output
    assert AcwPolicy.objects.get(team__name="North", channel="phone").seconds == 30
    assert User.objects.get(username="sam").check_password(DEMO_PASSWORD)


def test_the_demo_history_puts_someone_on_the_coaching_list() -> None:
    from reporting.coaching import coaching
    from reporting.queries import KpiFilter, site_day

    seed("--days", "1", "--agents", "4", "--shift-hours", "8", "--seed", "3")
    ended = Interaction.objects.exclude(ended_at=None).values_list("ended_at", flat=True)
    first, last = site_day(min(ended)), site_day(max(ended))
    result = coaching(KpiFilter.of(Team.objects.values_list("pk", flat=True)), first, last)
    # The long-ACW and forgetful personas meet the rules (docs/coaching.md).
    assert {entry.agent for entry in result.entries} & {"a-1001", "a-1003", "a-2003", "a-2005"}
