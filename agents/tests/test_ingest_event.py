"""The one ingestion function: storage, idempotency, ordering, replays, timeouts, policies."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from agents import services
from agents.models import AcwPolicy, AcwSession, Agent, AgentState, Event, Interaction, Team
from agents.policies import Policies
from agents.tests import factories
from reporting.queries import kpi_rows

BASE = timezone.now().replace(microsecond=0) - timedelta(hours=2)


def event(agent: str, type_: str, offset: float, *, base: datetime = BASE, **fields: Any) -> dict:
    """An event ``offset`` seconds after ``base`` (the factories' builder)."""
    return factories.event(agent, type_, base + timedelta(seconds=offset), **fields)


def ingest(*events: dict) -> list[str]:
    return [services.ingest_event(e).status for e in events]


def call(agent: str, cid: str, start: float, end: float, *, base: datetime = BASE) -> list[dict]:
    return [
        event(agent, "interaction.started", start, base=base, interaction_id=cid, channel="phone"),
        event(agent, "interaction.ended", end, base=base, interaction_id=cid),
    ]


def live(agent: str) -> AgentState:
    return AgentState.objects.get(agent__external_id=agent)


pytestmark = pytest.mark.django_db


def test_it_stores_and_applies_an_event(alice: Agent) -> None:
    assert ingest(event("alice", "agent.logged_in", 0)) == ["accepted"]
    assert Event.objects.filter(agent=alice, type="agent.logged_in").count() == 1
    state = live("alice")
    assert (state.state, state.since) == ("available", BASE)


def test_it_ignores_a_duplicate_event_id(alice: Agent) -> None:
    first = event("alice", "agent.not_ready", 0, reason="break")
    assert ingest(first, dict(first)) == ["accepted", "duplicate"]
    assert Event.objects.count() == 1


def test_a_duplicate_may_spell_the_same_instant_with_another_offset(alice: Agent) -> None:
    first = event("alice", "agent.logged_in", 0)
    again = {**first, "occurred_at": BASE.astimezone(timezone.get_fixed_timezone(90)).isoformat()}
    again["unknown_extra"] = "ignored"
    assert ingest(first, again) == ["accepted", "duplicate"]


def test_an_offset_beyond_what_the_database_reads_is_stored_as_its_instant(alice: Agent) -> None:
    far = BASE.astimezone(timezone.get_fixed_timezone(19 * 60 + 12)).isoformat()
    assert ingest(event("alice", "agent.logged_in", 0) | {"occurred_at": far}) == ["accepted"]
    assert Event.objects.get(agent=alice).occurred_at == BASE


def test_an_event_id_reused_with_other_content_is_a_conflict(alice: Agent) -> None:
    first = event("alice", "agent.not_ready", 0, reason="break")
    result = services.ingest_event({**first, "reason": "lunch"}) if ingest(first) else None
    assert result is not None and result.status == "conflict"
    assert "event_id" in (result.error or "")
    assert live("alice").reason == "break"


def test_an_unknown_agent_is_created_in_team_unassigned(db: None) -> None:
    assert ingest(event("new-42", "agent.logged_in", 0)) == ["accepted"]
    agent = Agent.objects.get(external_id="new-42")
    assert (agent.name, agent.team.name) == ("new-42", "Unassigned")


def test_an_invalid_event_is_rejected_and_nothing_is_stored(db: None) -> None:
    result = services.ingest_event({"event_id": "x", "type": "agent.logged_in", "agent": "a"})
    assert result.status == "rejected"
    assert result.error is not None and result.error.startswith("occurred_at")
    assert not Event.objects.exists()


def test_a_call_then_acw_yields_one_interaction_and_one_acw(alice: Agent) -> None:
    ingest(
        event("alice", "agent.logged_in", 0),
        *call("alice", "c1", 10, 100),
        event("alice", "acw.ended", 120, wrap_up_code="resolved", note="done"),
    )
    interaction = Interaction.objects.get()
    acw = AcwSession.objects.get()
    assert (interaction.talk_seconds, interaction.team_id) == (90, alice.team_id)
    assert acw.interaction_id == interaction.pk
    assert (acw.duration_seconds, acw.end_reason, acw.wrap_up_code) == (
        20,
        "agent_ready",
        "resolved",
    )
    assert live("alice").state == "available"


def test_an_end_that_arrives_before_its_start_makes_one_correct_interaction(alice: Agent) -> None:
    login, started, ended = event("alice", "agent.logged_in", 0), *call("alice", "c1", 10, 70)
    assert ingest(login, ended) == ["accepted", "accepted"]
    assert not Interaction.objects.exists()
    assert ingest(started) == ["accepted"]
    interaction = Interaction.objects.get()
    assert (interaction.started_at, interaction.ended_at) == (
        BASE + timedelta(seconds=10),
        BASE + timedelta(seconds=70),
    )
    acw = AcwSession.objects.get()
    assert acw.started_at == BASE + timedelta(seconds=70)
    assert acw.end_reason == "timeout"  # 2 hours ago, 30 s site default


def test_the_live_state_reflects_the_newest_event_never_an_older_one(alice: Agent) -> None:
    ingest(event("alice", "agent.logged_in", 100))
    ingest(event("alice", "agent.not_ready", 50, reason="break"))
    state = live("alice")
    assert (state.state, state.since) == ("available", BASE + timedelta(seconds=100))


def test_events_at_the_same_instant_apply_in_arrival_order(alice: Agent) -> None:
    results = services.ingest_events(
        [event("alice", "agent.not_ready", 5, reason="break"), event("alice", "agent.available", 5)]
    )
    assert [r.status for r in results] == ["accepted", "accepted"]
    assert live("alice").state == "available"


def test_a_late_event_before_a_timeout_reopens_the_acw(alice: Agent) -> None:
    base = timezone.now() - timedelta(seconds=60)
    ingest(
        event("alice", "agent.logged_in", 0, base=base),
        *call("alice", "c1", 1, 20, base=base),
    )
    acw = AcwSession.objects.get()
    assert acw.end_reason == "timeout"  # deadline base+50 has passed
    assert live("alice").state == "available"
    # An extension the agent asked for before the deadline arrives now.
    ingest(event("alice", "acw.extended", 45, base=base, seconds=120))
    acw = AcwSession.objects.get()
    assert acw.ended_at is None
    assert acw.deadline == base + timedelta(seconds=170)
    state = live("alice")
    assert (state.state, state.acw_deadline, state.acw_extensions) == ("acw", acw.deadline, 1)


def test_it_times_out_acw_at_its_deadline(alice: Agent) -> None:
    base = timezone.now() - timedelta(seconds=5)
    ingest(*call("alice", "c1", 0, 1, base=base))
    state = live("alice")
    deadline = base + timedelta(seconds=31)
    assert (state.state, state.acw_deadline) == ("acw", deadline)
    assert services.expire_acw(alice.pk, now=deadline - timedelta(seconds=1)) is False
    assert services.expire_acw(alice.pk, now=deadline + timedelta(seconds=2)) is True
    acw = AcwSession.objects.get()
    assert (acw.end_reason, acw.ended_at, acw.duration_seconds) == ("timeout", deadline, 30)
    state = live("alice")
    assert (state.state, state.since) == ("available", deadline)
    assert services.expire_acw(alice.pk, now=deadline + timedelta(seconds=3)) is False


def test_an_extension_wins_over_a_pending_timeout(alice: Agent) -> None:
    base = timezone.now() - timedelta(seconds=5)
    ingest(*call("alice", "c1", 0, 1, base=base), event("alice", "acw.extended", 2, base=base))
    first_deadline = base + timedelta(seconds=31)
    assert services.expire_acw(alice.pk, now=first_deadline + timedelta(seconds=1)) is False
    assert live("alice").acw_deadline == first_deadline + timedelta(seconds=30)


def test_the_sweep_closes_every_overdue_acw(alice: Agent, bob: Agent) -> None:
    base = timezone.now() - timedelta(seconds=5)
    ingest(*call("alice", "a1", 0, 1, base=base), *call("bob", "b1", 0, 2, base=base))
    assert services.expire_due_acws(now=base + timedelta(seconds=60)) == 2
    assert set(AcwSession.objects.values_list("end_reason", flat=True)) == {"timeout"}
    assert services.expire_due_acws(now=base + timedelta(seconds=60)) == 0


def test_policies_resolve_team_channel_then_team_then_site(alice: Agent, carol: Agent) -> None:
    north = alice.team
    AcwPolicy.objects.create(team=north, channel="", mode="timed", seconds=45)
    AcwPolicy.objects.create(team=north, channel="chat", mode="manual")
    AcwPolicy.objects.create(team=None, channel="email", mode="none")
    lookup = Policies.load().spec
    assert lookup(north.pk, "chat").mode == "manual"
    assert lookup(north.pk, "phone").seconds == 45
    assert lookup(carol.team_id, "email").mode == "none"
    assert (lookup(carol.team_id, "phone").mode, lookup(carol.team_id, "phone").seconds) == (
        "timed",
        30,
    )


def test_an_interaction_counts_for_the_team_at_its_end(alice: Agent) -> None:
    ingest(event("alice", "interaction.started", 0, interaction_id="c1", channel="chat"))
    south = Team.objects.create(name="Elsewhere")
    services.provision_agent("alice", name="Alice Martin", team_name=south.name)
    ingest(event("alice", "interaction.ended", 30, interaction_id="c1"))
    assert Interaction.objects.get().team == south


# --- Out-of-order arrival: the same day, shuffled, gives the same history ------------------


DAY_BASE = BASE - timedelta(days=1)


def a_day(agent: str, rng: random.Random) -> list[dict]:
    """A plausible shift: calls with holds, ACWs ended, extended or timed out, breaks."""
    t = 0.0

    def at(type_: str, offset: float, **fields: Any) -> dict:
        return event(agent, type_, offset, base=DAY_BASE, **fields)

    events = [at("agent.logged_in", t)]
    for n in range(25):
        t += rng.randint(1, 40)
        if rng.random() < 0.15:
            events.append(at("agent.not_ready", t, reason=rng.choice(["break", "lunch"])))
            t += rng.randint(60, 600)
            events.append(at("agent.available", t))
            t += rng.randint(1, 30)
        cid = f"{agent}-call-{n}"
        channel = rng.choice(["phone", "chat", "email"])
        events.append(at("interaction.started", t, interaction_id=cid, channel=channel))
        if rng.random() < 0.3:
            t += rng.randint(10, 100)
            events.append(at("interaction.held", t, interaction_id=cid))
            t += rng.randint(5, 60)
            events.append(at("interaction.resumed", t, interaction_id=cid))
        t += rng.randint(30, 400)
        events.append(at("interaction.ended", t, interaction_id=cid))
        fate = rng.random()
        if fate < 0.2:
            t += rng.randint(5, 25)
            events.append(at("acw.extended", t))
            t += rng.randint(5, 50)
            events.append(at("acw.ended", t, wrap_up_code="resolved"))
        elif fate < 0.8:
            t += rng.randint(2, 28)
            events.append(at("acw.ended", t, wrap_up_code="sale"))
        else:
            t += 40  # forgot: the ACW times out
    events.append(at("agent.logged_out", t + 5))
    return events


def history(agent: str) -> dict[str, Any]:
    interactions = list(
        Interaction.objects.filter(agent__external_id=agent)
        .order_by("started_at")
        .values_list(
            "interaction_id",
            "channel",
            "started_at",
            "ended_at",
            "end_reason",
            "talk_seconds",
            "hold_seconds",
        )
    )
    acws = list(
        AcwSession.objects.filter(agent__external_id=agent)
        .order_by("started_at")
        .values_list(
            "started_at",
            "deadline",
            "ended_at",
            "end_reason",
            "extensions",
            "wrap_up_code",
            "duration_seconds",
        )
    )
    state = live(agent)
    return {
        "interactions": [(i[0].split("-call-")[1], *i[1:]) for i in interactions],
        "acws": acws,
        "live": (state.state, state.reason, state.since),
    }


def test_a_shuffled_day_gives_the_same_history_and_kpis_as_in_order(north: Team) -> None:
    rng = random.Random(7)
    ordered = a_day("inorder", rng)
    rng = random.Random(7)
    shuffled = a_day("shuffled", rng)
    random.Random(99).shuffle(shuffled)
    for agent in ("inorder", "shuffled"):
        services.provision_agent(agent, name="Same Person", team_name="North")
    assert set(r.status for r in services.ingest_events(ordered)) == {"accepted"}
    assert set(r.status for r in services.ingest_events(shuffled)) == {"accepted"}
    # Duplicates on top of the shuffle change nothing.
    assert {r.status for r in services.ingest_events(shuffled[:20])} == {"duplicate"}

    expected, actual = history("inorder"), history("shuffled")
    assert len(expected["interactions"]) == 25
    assert actual == expected
    rows = kpi_rows(team_ids=[north.pk], group_by="agent", start=DAY_BASE, end=timezone.now())
    by_agent = {row.key: row.as_dict() for row in rows}
    assert {k: v for k, v in by_agent["shuffled"].items() if k != "key"} == {
        k: v for k, v in by_agent["inorder"].items() if k != "key"
    }


# --- Real concurrency (PostgreSQL: row locks and the unique index) -------------------------


def _in_threads(work: list[Any]) -> list[Any]:
    barrier = threading.Barrier(len(work))
    results: list[Any] = [None] * len(work)

    def run(index: int, item: Any) -> None:
        try:
            barrier.wait()
            results[index] = item()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(work)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks need PostgreSQL (CI runs it)"
)


@postgres_only
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_concurrent_posts_of_one_event_give_one_accepted_one_duplicate(db: None) -> None:
    services.provision_agent("dana", name="Dana", team_name="North")
    for attempt in range(5):
        raw = event("dana", "agent.not_ready", attempt, reason="break")
        statuses = _in_threads([lambda raw=raw: services.ingest_event(raw).status] * 2)
        assert sorted(statuses) == ["accepted", "duplicate"]
    assert Event.objects.count() == 5


def _transaction_status_after_each_statement(work: Any) -> list[str]:
    statuses: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        statuses.append(connection.connection.info.transaction_status.name)
        return result

    with connection.execute_wrapper(record):
        work()
    return statuses


@postgres_only
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_event_is_committed_by_its_write_unless_the_caller_holds_a_transaction(
    db: None,
) -> None:
    services.provision_agent("kim", name="Kim", team_name="North")
    raw = event("kim", "agent.not_ready", 10, reason="break")
    # The lock, then the write, which ends the transaction: no COMMIT round trip of its own.
    assert _transaction_status_after_each_statement(lambda: services.ingest_event(raw)) == [
        "INTRANS",
        "IDLE",
    ]
    assert Event.objects.filter(event_id=raw["event_id"]).exists()
    assert AgentState.objects.get(agent__external_id="kim").state == "not_ready"

    def in_a_transaction() -> None:
        with transaction.atomic():
            services.ingest_event(event("kim", "agent.available", 5))
            transaction.set_rollback(True)

    # Inside the caller's transaction the write commits nothing: the caller decides.
    assert _transaction_status_after_each_statement(in_a_transaction)[-1] == "INTRANS"
    assert AgentState.objects.get(agent__external_id="kim").state == "not_ready"


@postgres_only
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_one_event_id_posted_for_two_agents_at_once_is_stored_once(db: None) -> None:
    # Two agents' locks do not serialise the two posts: the unique index does.
    services.provision_agent("ida", name="Ida", team_name="North")
    services.provision_agent("jon", name="Jon", team_name="North")
    for attempt in range(5):
        twins = [
            event(agent, "agent.not_ready", attempt, event_id=f"shared-{attempt}", reason="break")
            for agent in ("ida", "jon")
        ]
        statuses = _in_threads([lambda raw=raw: services.ingest_event(raw).status for raw in twins])
        assert sorted(statuses) == ["accepted", "conflict"]
    assert Event.objects.filter(event_id__startswith="shared-").count() == 5


@postgres_only
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_events_of_one_agent_give_the_in_order_history(db: None) -> None:
    services.provision_agent("erin", name="Erin", team_name="North")
    services.provision_agent("frank", name="Frank", team_name="North")
    day = a_day("erin", random.Random(3))[:40]
    twin = a_day("frank", random.Random(3))[:40]
    assert {r.status for r in services.ingest_events(twin)} == {"accepted"}
    chunks = [day[i::4] for i in range(4)]
    _in_threads([lambda chunk=chunk: services.ingest_events(chunk) for chunk in chunks])
    assert Event.objects.filter(agent__external_id="erin").count() == 40
    assert history("erin") == history("frank")


def test_replaying_an_agent_rebuilds_the_same_history(north: Team) -> None:
    services.provision_agent("gil", name="Gil", team_name="North")
    services.ingest_events(a_day("gil", random.Random(11)))
    before = history("gil")
    Interaction.objects.filter(agent__external_id="gil").update(talk_seconds=0)
    assert history("gil") != before
    count = services.replay_agent(Agent.objects.get(external_id="gil").pk)
    assert count == Event.objects.filter(agent__external_id="gil").count()
    assert history("gil") == before


def test_replaying_an_agent_marks_the_intervals_its_old_rows_counted_in(north: Team) -> None:
    from reporting.models import DirtyInterval
    from reporting.rollups import compute_rollups

    services.provision_agent("hal", name="Hal", team_name="North")
    services.ingest_events(a_day("hal", random.Random(5)))
    # A row as an older, wrong projection left it: ended in another interval, already rolled up.
    wrong = Interaction.objects.filter(agent__external_id="hal").earliest("started_at")
    moved = wrong.ended_at + timedelta(hours=30)
    Interaction.objects.filter(pk=wrong.pk).update(ended_at=moved)
    compute_rollups()
    DirtyInterval.objects.all().delete()
    services.replay_agent(Agent.objects.get(external_id="hal").pk)
    marked = set(DirtyInterval.objects.values_list("bucket_start", flat=True))
    assert any(start <= moved < start + timedelta(minutes=15) for start in marked)


def test_the_live_version_grows_only_when_what_walls_show_changes(alice: Agent) -> None:
    ingest(event("alice", "agent.logged_in", 0))
    first = live("alice").version
    ingest(event("alice", "acw.ended", 1))  # fits nothing: no visible change
    assert live("alice").version == first
    ingest(event("alice", "agent.not_ready", 2, reason="break"))
    assert live("alice").version == first + 1
