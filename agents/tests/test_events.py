"""Publishing to the walls: after commit only, numbered per team, cheap on the pub/sub layer."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from redis.asyncio.connection import AbstractConnection
from rest_framework.test import APIClient

from agents import events, selectors, services
from agents.models import AcwPolicy, AgentState
from agents.tests.factories import event


def test_agent_payload_shows_only_the_fields_of_the_current_state(alice: Any) -> None:
    live = AgentState.objects.select_related("agent__team").get(agent=alice)
    live.state, live.reason, live.interaction_id = "available", "break", "c1"
    payload = events.agent_payload(live)
    assert payload["agent"] == "alice"
    assert payload["team"] == "North"
    assert payload["reason"] is None
    assert payload["interaction_id"] is None
    assert payload["acw_deadline"] is None


def test_nothing_is_published_before_the_transaction_commits(
    north: Any, django_capture_on_commit_callbacks: Any
) -> None:
    before = events.team_seqs({north.pk})[north.pk]
    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        events.broadcast_on_commit([(north.pk, {"type": "wall.agent", "agent": {}})])
    assert len(callbacks) == 1
    assert events.team_seqs({north.pk})[north.pk] == before
    callbacks[0]()
    assert events.team_seqs({north.pk})[north.pk] == before + 1


def test_team_seqs_is_zero_for_a_team_never_published_to() -> None:
    assert events.team_seqs({987_654_321}) == {987_654_321: 0}
    assert events.team_seqs(set()) == {}


class _Subscriber(threading.Thread):
    """A wall stand-in on its own event loop, subscribed to one team's group on Redis."""

    def __init__(self, team_id: int, expected: int) -> None:
        super().__init__(daemon=True)
        self.team_id, self.expected = team_id, expected
        self.ready = threading.Event()
        self.messages: list[dict[str, Any]] = []

    def run(self) -> None:
        asyncio.run(self._collect())

    async def _collect(self) -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(events.team_group(self.team_id), channel)
        self.ready.set()
        while len(self.messages) < self.expected:
            self.messages.append(await asyncio.wait_for(layer.receive(channel), 10))
        await layer.group_discard(events.team_group(self.team_id), channel)


def test_500_publishes_from_sync_code_share_one_connection_and_arrive_in_order(
    monkeypatch: Any,
) -> None:
    # docs/design.md, traps of the stack: async_to_sync(group_send) from a plain thread ran a new
    # event loop per call, and the pub/sub layer opened a Redis connection per loop (1.5 ms per
    # publish here). Publishes now go through the process's synchronous client: no event loop,
    # no asyncio connection at all.
    assert "pubsub" in get_channel_layer().__class__.__module__
    team_id = 900_000 + int(time.time()) % 10_000
    subscriber = _Subscriber(team_id, expected=500)
    subscriber.start()
    assert subscriber.ready.wait(5)
    events._publish(team_id, {"type": "wall.agent", "agent": {"warm": True}})  # opens the loop
    connects = []
    original = AbstractConnection.connect

    async def counting_connect(self: AbstractConnection) -> None:
        if not self.is_connected:
            connects.append(threading.current_thread().name)
        await original(self)

    monkeypatch.setattr(AbstractConnection, "connect", counting_connect)
    failures = events.publish_failures()
    start = time.perf_counter()
    for n in range(499):
        events._publish(team_id, {"type": "wall.agent", "agent": {"n": n}})
    elapsed = time.perf_counter() - start
    subscriber.join(10)
    assert events.publish_failures() == failures
    assert len(connects) <= 1, f"{len(connects)} new Redis connections for 499 publishes"
    print(f"\n499 publishes took {elapsed:.2f} s")  # the speed is the benchmarks' job
    seqs = [m["team_seq"] for m in subscriber.messages]
    assert len(seqs) == 500
    assert seqs == list(range(seqs[0], seqs[0] + 500))
    print(f"\n499 publishes: {elapsed * 1000:.0f} ms ({elapsed / 499 * 1000:.2f} ms each)")


@pytest.mark.parametrize("last", [0, 126, 127, 255, 65_535, 2**32 - 1, 2**32])
def test_a_message_is_numbered_and_published_in_one_round_trip_as_the_layer_serialises_it(
    last: int,
) -> None:
    # The script appends the number to the serialised message: each size of msgpack integer
    # (one byte up to 127, then 0xcc, 0xcd, 0xce, 0xcf forms) must come out as the layer writes it.
    layer = get_channel_layer()
    team_id = 800_000 + int(time.time() * 1000) % 100_000
    client = events._redis()
    client.set(events.TEAM_SEQ_KEY.format(team_id=team_id), last)
    subscriber = client.pubsub()
    subscriber.subscribe(events._pubsub_channel(events.team_group(team_id)))
    assert subscriber.get_message(timeout=2)["type"] == "subscribe"
    message = {"type": "wall.agent", "agent": {"agent": "alice", "reason": None, "version": 3}}
    calls = []
    original = redis.Redis.execute_command

    def counting(self: redis.Redis, *args: Any, **options: Any) -> Any:
        calls.append(args[0])
        return original(self, *args, **options)

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(redis.Redis, "execute_command", counting)
            events._publish_all([(team_id, message), (team_id, {"type": "wall.team_changed"})])
        received = [subscriber.get_message(timeout=2) for _ in range(2)]
        numbered = events.team_seqs({team_id})
    finally:
        subscriber.close()
        client.delete(events.TEAM_SEQ_KEY.format(team_id=team_id))
    assert calls == ["EVALSHA"] or calls == ["EVALSHA", "SCRIPT LOAD", "EVALSHA"]
    assert [m["data"] for m in received] == [
        layer.serialize({**message, "team_id": team_id, "team_seq": last + 1}),
        layer.serialize({"type": "wall.team_changed", "team_id": team_id, "team_seq": last + 2}),
    ]
    assert numbered == {team_id: last + 2}


# --- The colour points of an ACW tile (the page resolves no policy) -------------------------


def _payload(agent: Any) -> dict[str, Any]:
    live = AgentState.objects.select_related("agent__team").get(agent=agent)
    return events.agent_payload(live)


def _in_acw(agent: str, ended_ago: float) -> datetime:
    """Put ``agent`` in the ACW after a phone call that ended ``ended_ago`` seconds ago."""
    ended = timezone.now() - timedelta(seconds=ended_ago)
    end = {
        **event(agent, "interaction.ended", interaction_id="c1"),
        "occurred_at": ended.isoformat(),
    }
    for raw in (
        event(agent, "agent.logged_in", ended_ago + 70),
        event(agent, "interaction.started", ended_ago + 60, interaction_id="c1", channel="phone"),
        end,
    ):
        assert services.ingest_event(raw).status == "accepted"
    return ended


def test_a_timed_acw_is_amber_in_the_last_quarter_and_red_at_the_deadline(alice: Any) -> None:
    AcwPolicy.objects.create(team=alice.team, channel="phone", seconds=40)
    ended = _in_acw("alice", 5)
    payload = _payload(alice)
    assert payload["acw_deadline"] == (ended + timedelta(seconds=40)).isoformat()
    assert payload["acw_red_at"] == payload["acw_deadline"]
    assert payload["acw_amber_at"] == (ended + timedelta(seconds=30)).isoformat()
    assert payload["acw_overrun"] is False


def test_a_short_timer_still_warns_5_seconds_ahead(alice: Any) -> None:
    AcwPolicy.objects.create(team=alice.team, channel="", seconds=12)
    ended = _in_acw("alice", 1)
    assert _payload(alice)["acw_amber_at"] == (ended + timedelta(seconds=7)).isoformat()


def test_an_extended_acw_is_overrun_and_red_from_its_original_timer(alice: Any) -> None:
    ended = _in_acw("alice", 5)
    assert services.ingest_event(event("alice", "acw.extended")).status == "accepted"
    payload = _payload(alice)
    assert payload["acw_deadline"] == (ended + timedelta(seconds=60)).isoformat()
    assert payload["acw_red_at"] == (ended + timedelta(seconds=30)).isoformat()
    assert payload["acw_overrun"] is True


def test_a_running_acw_keeps_the_timer_it_started_with(alice: Any) -> None:
    ended = _in_acw("alice", 5)
    AcwPolicy.objects.create(team=alice.team, channel="", seconds=90)  # edited meanwhile
    assert _payload(alice)["acw_red_at"] == (ended + timedelta(seconds=30)).isoformat()


def test_an_untimed_acw_is_red_at_the_current_long_acw_alert_threshold(alice: Any) -> None:
    policy = AcwPolicy.objects.create(team=alice.team, mode="manual", alert_acw_seconds=100)
    ended = _in_acw("alice", 5)
    payload = _payload(alice)
    assert payload["acw_deadline"] is None
    assert (payload["acw_amber_at"], payload["acw_overrun"]) == (None, False)
    assert payload["acw_red_at"] == (ended + timedelta(seconds=100)).isoformat()
    policy.alert_acw_seconds = 0  # the alert turned off: the wall's tiers alone colour it
    policy.save()
    assert _payload(alice)["acw_red_at"] is None


def test_outside_acw_there_are_no_colour_points(alice: Any) -> None:
    assert services.ingest_event(event("alice", "agent.logged_in")).status == "accepted"
    payload = _payload(alice)
    assert (payload["acw_amber_at"], payload["acw_red_at"], payload["acw_overrun"]) == (
        None,
        None,
        False,
    )


def test_the_api_and_the_wall_snapshot_carry_the_same_colour_points(
    alice: Any, bob: Any, manager_maria: Any
) -> None:
    AcwPolicy.objects.create(team=alice.team, channel="phone", mode="manual")
    _in_acw("alice", 5)
    client = APIClient()
    client.force_authenticate(manager_maria)
    api_rows = client.get("/api/v1/agents/state").json()["agents"]
    snapshot = selectors.wall_snapshot({alice.team_id})["agents"]
    assert api_rows == snapshot
    assert by_agent_id(api_rows)["alice"]["acw_red_at"] is not None


def by_agent_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["agent"]: row for row in rows}


def test_colour_points_cost_no_query_per_agent(north: Any, manager_maria: Any) -> None:
    # Untimed ACWs need the current policy: one load for all agents, not one per agent.
    AcwPolicy.objects.create(team=north, channel="phone", mode="manual")

    def state_rows_queries(n: int) -> int:
        for i in range(n):
            services.provision_agent(f"m{i}", name=f"M {i}", team_name="North")
            _in_acw(f"m{i}", 5)
        with CaptureQueriesContext(connection) as queries:
            rows = selectors.agent_state_rows(manager_maria)
        assert all(row["acw_red_at"] for row in rows)
        return len(queries)

    selectors.agent_state_rows(manager_maria)  # the user's groups are read once, then cached
    assert state_rows_queries(1) == state_rows_queries(3)
