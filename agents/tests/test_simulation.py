"""The traffic model (``agents.simulation``) and the live ``simulate`` command."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from io import StringIO
from itertools import pairwise
from pathlib import Path
from statistics import mean
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from agents import services
from agents.management.commands.simulate import DEFAULT_RATE, LOGIN_WITHIN
from agents.models import AcwPolicy, AcwSession, Agent, AgentState, Event, Interaction, Team
from agents.policies import Policies
from agents.simulation import (
    PERSONAS,
    SimAgent,
    StartState,
    generate,
    roster,
)
from agents.states import PolicySpec
from agents.tests import factories

START = datetime.fromisoformat("2026-11-25T08:00:00+00:00")
ROOT = Path(__file__).resolve().parents[2]

# Pure tests: North phone timed 30 s without extension, South timed 45 s with extension,
# e-mail time-boxed with no early exit.
POLICIES = {
    (1, "phone"): PolicySpec(mode="timed", seconds=30, min_seconds=10, allow_extension=False),
    (2, "phone"): PolicySpec(mode="timed", seconds=45, max_seconds=180),
    (2, "email"): PolicySpec(mode="manual", seconds=0, allow_extension=False),
    (3, "chat"): PolicySpec(mode="timed", seconds=60, max_seconds=240),
    (3, "email"): PolicySpec(mode="timed_strict", seconds=120, extension_step_seconds=60),
    (3, "other"): PolicySpec(mode="none"),
}


def policy_for(team_id: int, channel: str) -> PolicySpec:
    return POLICIES.get((team_id, channel), PolicySpec())


def demo_agents(per_team: int = 8) -> list[SimAgent]:
    team_ids = {"North": 1, "South": 2, "Digital": 3}
    return [
        SimAgent(entry.external_id, team_ids[entry.team], entry.team, PERSONAS[entry.persona])
        for entry in roster(per_team)
    ]


def events_for(agents: list[SimAgent], seed: int, hours: float, **kwargs: Any) -> list[dict]:
    options = {"start": START, "end": START + timedelta(hours=hours), "policy_for": policy_for}
    return list(generate(agents, random.Random(seed), id_prefix="t", **{**options, **kwargs}))


def at(event: dict) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


# --- The model, without a database ----------------------------------------------------------


def test_it_is_deterministic_for_a_seed() -> None:
    first = events_for(demo_agents(3), seed=7, hours=2)
    assert first == events_for(demo_agents(3), seed=7, hours=2)
    assert first != events_for(demo_agents(3), seed=8, hours=2)


def test_each_agents_events_are_in_time_order_and_the_stream_is_merged_in_order() -> None:
    events = events_for(demo_agents(), seed=1, hours=3)
    times = [at(e) for e in events]
    assert times == sorted(times)
    by_agent: dict[str, list[datetime]] = defaultdict(list)
    for event, moment in zip(events, times, strict=True):
        by_agent[event["agent"]].append(moment)
    for moments in by_agent.values():
        assert all(a < b for a, b in pairwise(moments))
    assert len({e["event_id"] for e in events}) == len(events)


def test_a_bounded_timeline_stops_before_its_end_unless_agents_log_out() -> None:
    end = START + timedelta(hours=1)
    events = events_for(demo_agents(2), seed=3, hours=1)
    assert max(at(e) for e in events) < end
    with_logout = events_for(demo_agents(2), seed=3, hours=1, log_out_at_end=True)
    last = {e["agent"]: e["type"] for e in with_logout}
    assert set(last.values()) == {"agent.logged_out"}


def test_offline_agents_log_in_first_and_open_work_is_finished() -> None:
    agents = [
        SimAgent("off", 1, "North", PERSONAS["steady"]),
        SimAgent(
            "busy",
            1,
            "North",
            PERSONAS["steady"],
            start=StartState(state="on_interaction", interaction_id="call-9", channel="phone"),
        ),
    ]
    events = events_for(agents, seed=5, hours=0.5)
    first = {}
    for event in events:
        first.setdefault(event["agent"], event)
    assert first["off"]["type"] == "agent.logged_in"
    assert (first["busy"]["type"], first["busy"]["interaction_id"]) == (
        "interaction.ended",
        "call-9",
    )


def test_under_timed_strict_nobody_ends_the_acw() -> None:
    agents = [SimAgent(f"d{i}", 3, "Digital", PERSONAS["steady"]) for i in range(4)]
    strict = PolicySpec(mode="timed_strict", seconds=60)
    events = events_for(agents, seed=2, hours=3, policy_for=lambda team_id, channel: strict)
    types = Counter(e["type"] for e in events)
    assert types["interaction.ended"] > 10
    assert types["acw.ended"] == 0


def test_rate_compresses_talk_but_not_acw() -> None:
    def durations(rate: float) -> tuple[float, float]:
        agents = [SimAgent(f"n{i}", 1, "North", PERSONAS["steady"]) for i in range(6)]
        events = events_for(agents, seed=4, hours=4 / rate, rate=rate)
        started: dict[str, datetime] = {}
        ended: dict[str, datetime] = {}
        talk, acw = [], []
        for event in events:
            if event["type"] == "interaction.started":
                started[event["agent"]] = at(event)
            elif event["type"] == "interaction.ended" and event["agent"] in started:
                ended[event["agent"]] = at(event)
                talk.append((at(event) - started.pop(event["agent"])).total_seconds())
            elif event["type"] == "acw.ended" and event["agent"] in ended:
                acw.append((at(event) - ended.pop(event["agent"])).total_seconds())
        return mean(talk), mean(acw)

    talk_1, acw_1 = durations(1)
    talk_8, acw_8 = durations(8)
    assert 200 < talk_1 < 450  # phone: lognormal, mean about five minutes
    assert talk_8 < talk_1 / 4
    assert acw_8 > acw_1 * 0.6


def test_the_default_rate_keeps_a_wall_of_24_agents_busy() -> None:
    live = {"rate": DEFAULT_RATE, "stagger_breaks": True, "login_within": LOGIN_WITHIN}
    events = events_for(demo_agents(), seed=9, hours=0.25, **live)
    per_second = len(events) / (15 * 60)
    assert per_second >= 0.4  # a change every second or two, timeouts not even counted


# --- The model against the real ingestion service -------------------------------------------


@pytest.fixture
def floor(db: None) -> list[SimAgent]:
    """Three teams with one policy mode each and agents with every habit, in the database."""
    teams = {name: Team.objects.create(name=name) for name in ("North", "South", "Digital")}
    AcwPolicy.objects.create(
        team=teams["North"], channel="phone", seconds=30, min_seconds=10, allow_extension=False
    )
    AcwPolicy.objects.create(team=teams["South"], channel="", seconds=45, max_seconds=180)
    AcwPolicy.objects.create(team=teams["South"], channel="email", mode="manual", seconds=0)
    AcwPolicy.objects.create(
        team=teams["Digital"], channel="email", mode="timed_strict", seconds=90
    )
    cast = [
        ("n-long", "North", "long_acw"),
        ("n-forget", "North", "forgetful"),
        ("s-extend", "South", "extender"),
        ("s-quick", "South", "quick"),
        ("d-steady", "Digital", "steady"),
    ]
    agents = []
    for external_id, team, persona in cast:
        services.provision_agent(external_id, name=external_id, team_name=team)
        agents.append(SimAgent(external_id, teams[team].pk, team, PERSONAS[persona]))
    return agents


def test_every_generated_event_is_accepted_and_every_interaction_gets_its_acw(
    floor: list[SimAgent],
) -> None:
    now = timezone.now()
    events = list(
        generate(
            floor,
            random.Random(11),
            start=now - timedelta(hours=4),
            end=now,
            policy_for=Policies.load().spec,
            id_prefix="prop",
        )
    )
    results = services.ingest_events(events, source="simulator")
    assert Counter(r.status for r in results) == {"accepted": len(events)}

    ended = Interaction.objects.filter(end_reason="ended")
    assert ended.count() > 20
    assert not ended.filter(acw__isnull=True).exists()
    acws = AcwSession.objects.all()
    assert acws.filter(end_reason="timeout").exists()
    assert acws.filter(extensions__gt=0).exists()
    assert acws.filter(end_reason="agent_ready").exclude(wrap_up_code="").exists()
    assert not acws.filter(policy_violation__contains="early_exit").exists()


# --- The simulate command -------------------------------------------------------------------


@pytest.mark.django_db
def test_simulate_sends_live_events_and_stops_after_its_duration(
    alice: Agent, bob: Agent, carol: Agent
) -> None:
    out = StringIO()
    before = timezone.now()
    call_command("simulate", "--duration", "2", "--rate", "60", "--seed", "1", stdout=out)
    sent = Event.objects.filter(source="simulator")
    assert set(
        sent.filter(type="agent.logged_in").values_list("agent__external_id", flat=True)
    ) == {
        "alice",
        "bob",
        "carol",
    }
    assert sent.exclude(type__startswith="agent.").exists()
    assert sent.filter(occurred_at__lt=before).count() == 0
    # A clean stop logs the floor out.
    assert set(AgentState.objects.values_list("state", flat=True)) == {"offline"}
    assert "simulate stopped" in out.getvalue()
    assert "0 not accepted" in out.getvalue()


@pytest.mark.django_db
def test_simulate_logs_out_agents_left_from_an_earlier_run_where_they_stopped(alice: Agent) -> None:
    long_ago = timezone.now() - timedelta(hours=3)
    services.ingest_event(
        factories.event(
            "alice", "interaction.started", long_ago, interaction_id="old", channel="phone"
        )
    )
    call_command("simulate", "--duration", "1", "--rate", "60", stdout=StringIO())
    old = Interaction.objects.get(interaction_id="old")
    assert (old.end_reason, old.ended_at) == ("logout", long_ago + timedelta(minutes=1))
    assert Event.objects.filter(agent=alice, type="agent.logged_in", source="simulator").exists()


@pytest.mark.django_db
def test_simulate_limits_itself_to_the_first_agents(alice: Agent, bob: Agent, carol: Agent) -> None:
    call_command("simulate", "--duration", "1", "--rate", "60", "--agents", "1", stdout=StringIO())
    simulated = set(
        Event.objects.filter(source="simulator").values_list("agent__external_id", flat=True)
    )
    assert len(simulated) == 1


def _test_database_url() -> str:
    url = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(url._replace(path="/" + settings.DATABASES["default"]["NAME"]))


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_simulate_exits_cleanly_on_sigterm(alice: Agent, carol: Agent) -> None:
    if connection.vendor != "postgresql" or not os.environ.get("DATABASE_URL"):
        pytest.skip("a second process needs a shared database (PostgreSQL)")
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "DEBUG": "1"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "simulate", "--rate", "60", "--seed", "3"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not Event.objects.filter(source="simulator").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the simulator sent nothing"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "simulate stopped" in stdout
    assert set(AgentState.objects.values_list("state", flat=True)) == {"offline"}
