"""Publishing to the walls: after commit only, numbered per team, cheap on the pub/sub layer."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from channels.layers import get_channel_layer
from django.db import transaction
from redis.asyncio.connection import AbstractConnection

from agents import events
from agents.models import AgentState


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
    # publish here).
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
    assert elapsed < 1.0, f"499 publishes took {elapsed:.2f} s"
    seqs = [m["team_seq"] for m in subscriber.messages]
    assert len(seqs) == 500
    assert seqs == list(range(seqs[0], seqs[0] + 500))
    print(f"\n499 publishes: {elapsed * 1000:.0f} ms ({elapsed / 499 * 1000:.2f} ms each)")
