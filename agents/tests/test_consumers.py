"""The wall's WebSocket (docs/wall.md), driven through the real ASGI application.

Fast tests use the in-memory channel layer; the ``integration`` ones use what production uses:
the Redis pub/sub layer and, for the multi-process test, two daphne servers.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.urls import reverse

from acw_site.asgi import application
from agents import consumers, events, services
from agents.models import Team
from agents.tests.admin_forms import post_admin_form
from agents.tests.factories import event

ROOT = Path(__file__).resolve().parents[2]
DB = pytest.mark.django_db(transaction=True, serialized_rollback=True)
pytestmark = [pytest.mark.asyncio]


@pytest.fixture
def memory_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


async def open_wall(user: Any | None, origin: str = "http://127.0.0.1") -> WebsocketCommunicator:
    headers = [(b"origin", origin.encode()), (b"host", b"127.0.0.1")]
    if user is not None:
        cookie = await database_sync_to_async(session_cookie)(user)
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return WebsocketCommunicator(application, "/ws/wall/", headers=headers)


async def connected_wall(user: Any) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    wall = await open_wall(user)
    connected, _ = await wall.connect()
    assert connected
    snapshot = await wall.receive_json_from(timeout=3)
    assert snapshot["type"] == "snapshot"
    return wall, snapshot


async def ingest(*raw: dict[str, Any]) -> None:
    def run() -> None:
        for one in raw:
            assert services.ingest_event(one).status == "accepted"

    await database_sync_to_async(run)()


def by_agent(agents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["agent"]: a for a in agents}


async def frames_until_quiet(wall: WebsocketCommunicator, quiet: float = 0.4) -> list[dict]:
    """Every frame until none arrives for ``quiet`` seconds (without cancelling the app)."""
    frames = []
    while not await wall.receive_nothing(timeout=quiet):
        frames.append(await wall.receive_json_from())
    return frames


# --- Who may connect ------------------------------------------------------------------------


@DB
async def test_it_refuses_anonymous_users(memory_layer: None) -> None:
    wall = await open_wall(None)
    connected, _ = await wall.connect()
    assert not connected


@DB
async def test_it_refuses_agent_users(memory_layer: None, agent_user_alice: Any) -> None:
    wall = await open_wall(agent_user_alice)
    connected, _ = await wall.connect()
    assert not connected


@DB
async def test_it_refuses_another_origin(memory_layer: None, supervisor_sam: Any) -> None:
    wall = await open_wall(supervisor_sam, origin="http://evil.example")
    connected, _ = await wall.connect()
    assert not connected


# --- Snapshot and deltas --------------------------------------------------------------------


@DB
async def test_a_supervisor_gets_a_snapshot_of_their_teams_only(
    memory_layer: None, supervisor_sam: Any, alice: Any, bob: Any, carol: Any
) -> None:
    wall, snapshot = await connected_wall(supervisor_sam)
    assert snapshot["seq"] == 1
    assert sorted(by_agent(snapshot["agents"])) == ["alice", "bob"]
    assert snapshot["alerts"] == []
    await wall.disconnect()


@DB
async def test_a_manager_sees_every_team(
    memory_layer: None, manager_maria: Any, alice: Any, carol: Any
) -> None:
    wall, snapshot = await connected_wall(manager_maria)
    assert sorted(by_agent(snapshot["agents"])) == ["alice", "carol"]
    await wall.disconnect()


@DB
async def test_a_state_change_arrives_as_an_agent_frame_with_the_next_seq(
    memory_layer: None, supervisor_sam: Any, alice: Any
) -> None:
    wall, _ = await connected_wall(supervisor_sam)
    await ingest(event("alice", "agent.logged_in"))
    frame = await wall.receive_json_from(timeout=2)
    assert frame["type"] == "agent"
    assert frame["seq"] == 2
    assert frame["agent"]["agent"] == "alice"
    assert frame["agent"]["state"] == "available"
    await ingest(event("alice", "agent.not_ready", reason="break"))
    frame = await wall.receive_json_from(timeout=2)
    assert frame["seq"] == 3
    assert frame["agent"]["reason"] == "break"
    await wall.disconnect()


@DB
async def test_a_supervisor_never_receives_another_teams_agent(
    memory_layer: None, supervisor_sam: Any, alice: Any, carol: Any
) -> None:
    wall, _ = await connected_wall(supervisor_sam)
    await ingest(event("carol", "agent.logged_in"), event("carol", "agent.not_ready", reason="x"))
    await ingest(event("alice", "agent.logged_in"))
    frames = await frames_until_quiet(wall)
    seen = [a["agent"] for f in frames for a in ([f["agent"]] if "agent" in f else f["agents"])]
    assert seen == ["alice"]
    await wall.disconnect()


@DB
async def test_snapshot_plus_applied_deltas_equals_a_fresh_snapshot(
    memory_layer: None, supervisor_sam: Any, alice: Any, bob: Any
) -> None:
    wall, snapshot = await connected_wall(supervisor_sam)
    shown = by_agent(snapshot["agents"])
    rng = random.Random(7)
    script = []
    for n, name in enumerate(["alice", "bob"] * 6):
        t = 60 - n * 4
        script.append(event(name, "agent.logged_in", t))
        script.append(
            event(
                name,
                "interaction.started",
                t - 1,
                interaction_id=f"{name}{n}",
                channel=rng.choice(["phone", "chat", "email"]),
            )
        )
        if rng.random() < 0.6:
            script.append(event(name, "interaction.ended", t - 2, interaction_id=f"{name}{n}"))
        if rng.random() < 0.3:
            script.append(event(name, "acw.extended", t - 2.5))
        if rng.random() < 0.3:
            script.append(event(name, "agent.not_ready", t - 3, reason="break"))
    for one in script:
        await ingest(one)
    seq = snapshot["seq"]
    for frame in await frames_until_quiet(wall):
        assert frame["seq"] == seq + 1
        seq = frame["seq"]
        if frame["type"] == "snapshot":
            shown = by_agent(frame["agents"])
        for agent in [frame["agent"]] if frame["type"] == "agent" else frame.get("agents", []):
            shown[agent["agent"]] = agent
    await wall.disconnect()
    _, fresh = await connected_wall(supervisor_sam)
    assert shown == by_agent(fresh["agents"])
    assert {a["state"] for a in shown.values()} != {"offline"}


@DB
async def test_a_burst_of_changes_is_coalesced_into_agents_frames(
    memory_layer: None, supervisor_sam: Any, north: Team
) -> None:
    from agents.models import Agent, AgentState

    def make_agents() -> None:
        for n in range(30):
            agent = Agent.objects.create(external_id=f"a{n}", name=f"A {n}", team=north)
            AgentState.objects.create(agent=agent)

    await database_sync_to_async(make_agents)()
    wall, _ = await connected_wall(supervisor_sam)
    await ingest(*[event(f"a{n}", "agent.logged_in") for n in range(30)])
    frames = await frames_until_quiet(wall)
    changed = [a for f in frames for a in ([f["agent"]] if f["type"] == "agent" else f["agents"])]
    assert {a["agent"] for a in changed} == {f"a{n}" for n in range(30)}
    assert all(a["state"] == "available" for a in changed)
    print(f"\n30 changes in a burst → {len(frames)} frames: {[f['type'] for f in frames]}")
    assert len(frames) < 30
    assert any(f["type"] == "agents" and len(f["agents"]) > 1 for f in frames)
    assert [f["seq"] for f in frames] == list(range(2, 2 + len(frames)))
    await wall.disconnect()


@DB
async def test_a_lost_message_makes_the_server_send_a_fresh_snapshot(
    memory_layer: None, supervisor_sam: Any, north: Team, alice: Any
) -> None:
    wall, _ = await connected_wall(supervisor_sam)
    # A number handed out for a message that never arrives: what a dropped publish looks like.
    events._redis().incr(events.TEAM_SEQ_KEY.format(team_id=north.pk))
    await ingest(event("alice", "agent.logged_in"))
    frames = await frames_until_quiet(wall, quiet=1.0)
    assert [f["type"] for f in frames] == ["agent", "snapshot"]
    assert frames[1]["seq"] == frames[0]["seq"] + 1
    assert by_agent(frames[1]["agents"])["alice"]["state"] == "available"
    # After the resync the numbering continues normally: no second snapshot.
    await ingest(event("alice", "agent.not_ready", reason="lunch"))
    assert [f["type"] for f in await frames_until_quiet(wall)] == ["agent"]
    await wall.disconnect()


@DB
async def test_numbers_arriving_slightly_out_of_order_do_not_force_a_resync(
    memory_layer: None, supervisor_sam: Any, north: Team, alice: Any, bob: Any
) -> None:
    # Two web processes may take consecutive numbers and publish them in the other order.
    wall, snapshot = await connected_wall(supervisor_sam)
    shown = by_agent(snapshot["agents"])
    base = events._redis().incrby(events.TEAM_SEQ_KEY.format(team_id=north.pk), 0)
    layer = get_channel_layer()
    group = events.team_group(north.pk)
    for name, seq in [("alice", base + 2), ("bob", base + 1)]:
        agent = {**shown[name], "state": "available"}
        message = {"type": "wall.agent", "agent": agent, "team_id": north.pk, "team_seq": seq}
        await layer.group_send(group, message)
        await asyncio.sleep(consumers.COALESCE_SECONDS * 2)  # later than one window
    frames = await frames_until_quiet(wall, quiet=0.6)
    assert "snapshot" not in [f["type"] for f in frames]
    changed = [a for f in frames for a in ([f["agent"]] if f["type"] == "agent" else f["agents"])]
    assert sorted(a["agent"] for a in changed) == ["alice", "bob"]
    await wall.disconnect()


@DB
async def test_an_older_state_published_after_a_newer_one_is_dropped(
    memory_layer: None, supervisor_sam: Any, north: Team, alice: Any
) -> None:
    # Process A commits version v+1, process B then commits v+2, but B publishes first.
    wall, snapshot = await connected_wall(supervisor_sam)
    shown = by_agent(snapshot["agents"])["alice"]
    base = events._redis().incrby(events.TEAM_SEQ_KEY.format(team_id=north.pk), 0)
    newer = {**shown, "state": "not_ready", "reason": "break", "version": shown["version"] + 2}
    older = {**shown, "state": "available", "version": shown["version"] + 1}
    group, layer = events.team_group(north.pk), get_channel_layer()
    for agent, seq in [(newer, base + 1), (older, base + 2)]:
        message = {"type": "wall.agent", "agent": agent, "team_id": north.pk, "team_seq": seq}
        await layer.group_send(group, message)
        await asyncio.sleep(consumers.COALESCE_SECONDS * 2)
    frames = await frames_until_quiet(wall, quiet=0.4)
    shown_states = [a["state"] for f in frames for a in f.get("agents", [f.get("agent")])]
    assert shown_states == ["not_ready"]
    await wall.disconnect()


@DB
async def test_a_message_already_in_the_snapshot_is_not_sent_again(
    memory_layer: None, supervisor_sam: Any, north: Team, alice: Any
) -> None:
    wall, snapshot = await connected_wall(supervisor_sam)
    base = events._redis().incrby(events.TEAM_SEQ_KEY.format(team_id=north.pk), 0)
    stale = {**by_agent(snapshot["agents"])["alice"], "state": "not_ready"}
    message = {"type": "wall.agent", "agent": stale, "team_id": north.pk, "team_seq": base}
    await get_channel_layer().group_send(events.team_group(north.pk), message)
    assert await wall.receive_nothing(timeout=0.4)
    await wall.disconnect()


@DB
async def test_a_lost_last_message_is_caught_by_the_periodic_counter_check(
    memory_layer: None, supervisor_sam: Any, north: Team, alice: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(consumers.WallConsumer, "seq_check_seconds", 0.2)
    wall, _ = await connected_wall(supervisor_sam)
    events._redis().incr(events.TEAM_SEQ_KEY.format(team_id=north.pk))
    frame = await wall.receive_json_from(timeout=2)
    assert frame["type"] == "snapshot"
    assert frame["seq"] == 2
    await wall.disconnect()


@DB
async def test_an_agent_moved_to_a_team_the_supervisor_does_not_see_is_removed(
    memory_layer: None, supervisor_sam: Any, alice: Any, south: Team
) -> None:
    wall, _ = await connected_wall(supervisor_sam)
    await database_sync_to_async(services.provision_agent)(
        "alice", name="Alice Martin", team_name="South"
    )
    frames = await frames_until_quiet(wall)
    assert frames == [{"type": "agent_removed", "seq": 2, "agent": "alice"}]
    await wall.disconnect()


@DB
async def test_an_agent_moved_between_two_visible_teams_stays_on_the_wall(
    memory_layer: None, manager_maria: Any, alice: Any, south: Team
) -> None:
    wall, _ = await connected_wall(manager_maria)
    await database_sync_to_async(services.provision_agent)(
        "alice", name="Alice Martin", team_name="South"
    )
    frames = await frames_until_quiet(wall)
    assert [f["type"] for f in frames] == ["agent"]
    assert frames[0]["agent"]["team"] == "South"
    await wall.disconnect()


# --- Changes made in admin ------------------------------------------------------------------


async def in_admin(user: Any, url: str, **changes: Any) -> int:
    """Post the real admin form at ``url`` with ``changes``, as ``user``; the status code."""

    def run() -> int:
        client = Client()
        client.force_login(user)
        return post_admin_form(client, url, **changes).status_code

    return await database_sync_to_async(run)()


@DB
async def test_an_agent_moved_in_admin_leaves_the_old_teams_wall(
    memory_layer: None, supervisor_sam: Any, admin_ada: Any, alice: Any, south: Team
) -> None:
    wall, snapshot = await connected_wall(supervisor_sam)
    assert [a["agent"] for a in snapshot["agents"]] == ["alice"]
    url = reverse("admin:agents_agent_change", args=[alice.pk])
    assert await in_admin(admin_ada, url, team=str(south.pk)) == 302
    frames = await frames_until_quiet(wall)
    assert frames == [{"type": "agent_removed", "seq": 2, "agent": "alice"}]
    await wall.disconnect()


@DB
async def test_an_agent_deleted_in_admin_leaves_the_wall(
    memory_layer: None, supervisor_sam: Any, admin_ada: Any, alice: Any
) -> None:
    wall, _ = await connected_wall(supervisor_sam)
    url = reverse("admin:agents_agent_delete", args=[alice.pk])

    def delete() -> int:
        client = Client()
        client.force_login(admin_ada)
        return client.post(url, {"post": "yes"}).status_code

    assert await database_sync_to_async(delete)() == 302
    frames = await frames_until_quiet(wall)
    assert frames == [{"type": "agent_removed", "seq": 2, "agent": "alice"}]
    await wall.disconnect()


@DB
async def test_a_team_renamed_in_admin_reaches_its_walls_as_a_fresh_snapshot(
    memory_layer: None, supervisor_sam: Any, admin_ada: Any, alice: Any, north: Team
) -> None:
    wall, _ = await connected_wall(supervisor_sam)
    url = reverse("admin:agents_team_change", args=[north.pk])
    assert await in_admin(admin_ada, url, name="Nord") == 302
    frames = await frames_until_quiet(wall)
    assert [(f["type"], f["seq"]) for f in frames] == [("snapshot", 2)]
    assert [a["team"] for a in frames[0]["agents"]] == ["Nord"]
    await wall.disconnect()


@DB
async def test_a_supervisor_taken_off_a_team_in_admin_stops_seeing_it_at_once(
    memory_layer: None, supervisor_sam: Any, admin_ada: Any, alice: Any, north: Team
) -> None:
    wall, _ = await connected_wall(supervisor_sam)
    url = reverse("admin:agents_team_change", args=[north.pk])
    assert await in_admin(admin_ada, url, supervisors=[]) == 302
    frames = await frames_until_quiet(wall)
    assert [(f["type"], f["agents"]) for f in frames] == [("snapshot", [])]
    await ingest(event("alice", "agent.logged_in"))
    assert await wall.receive_nothing(timeout=0.4)
    await wall.disconnect()


@DB
async def test_a_policy_edited_in_admin_refreshes_the_teams_walls(
    memory_layer: None, supervisor_sam: Any, admin_ada: Any, alice: Any, north: Team
) -> None:
    wall, _ = await connected_wall(supervisor_sam)
    url = reverse("admin:agents_acwpolicy_add")
    assert await in_admin(admin_ada, url, team=str(north.pk), alert_acw_seconds="600") == 302
    frames = await frames_until_quiet(wall)
    assert [f["type"] for f in frames] == ["snapshot"]
    await wall.disconnect()


@DB
async def test_a_managers_wall_follows_an_agent_to_a_team_created_meanwhile(
    memory_layer: None, manager_maria: Any, alice: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(consumers.WallConsumer, "seq_check_seconds", 0.2)
    wall, _ = await connected_wall(manager_maria)
    await database_sync_to_async(services.provision_agent)(
        "alice", name="Alice Martin", team_name="West"
    )
    frames = await frames_until_quiet(wall, quiet=0.8)
    assert frames[-1]["type"] == "snapshot"
    assert [(a["agent"], a["team"]) for a in frames[-1]["agents"]] == [("alice", "West")]
    await ingest(event("alice", "agent.logged_in"))  # and the new team's changes arrive live
    frame = await wall.receive_json_from(timeout=2)
    assert (frame["type"], frame["agent"]["state"]) == ("agent", "available")
    await wall.disconnect()


@DB
async def test_a_supervisor_given_a_team_sees_it_without_reconnecting(
    memory_layer: None, supervisor_sam: Any, carol: Any, south: Team, monkeypatch: Any
) -> None:
    monkeypatch.setattr(consumers.WallConsumer, "seq_check_seconds", 0.2)
    wall, snapshot = await connected_wall(supervisor_sam)
    assert snapshot["agents"] == []
    await database_sync_to_async(south.supervisors.add)(supervisor_sam)
    frame = await wall.receive_json_from(timeout=2)
    assert frame["type"] == "snapshot"
    assert [a["agent"] for a in frame["agents"]] == ["carol"]
    await wall.disconnect()


@DB
async def test_alert_changes_are_forwarded_to_the_teams_walls(
    memory_layer: None, supervisor_sam: Any, north: Team, south: Team
) -> None:
    wall, _ = await connected_wall(supervisor_sam)
    alert = {"id": 7, "kind": "long_acw", "agent": "alice", "team": "North"}

    def publish() -> None:
        events._publish_all([(south.pk, {"type": "wall.alert", "alert": {**alert, "id": 8}})])
        events._publish_all([(north.pk, {"type": "wall.alert", "alert": alert})])

    await database_sync_to_async(publish)()
    frames = await frames_until_quiet(wall)
    assert frames == [{"type": "alert", "seq": 2, "alert": alert}]
    await wall.disconnect()


@DB
async def test_the_snapshot_carries_the_open_alerts_of_the_users_teams_only(
    memory_layer: None, supervisor_sam: Any, alice: Any, carol: Any
) -> None:
    from reporting.alerts import evaluate_alerts

    await ingest(
        event("alice", "agent.not_ready", 1200, reason="break"),
        event("carol", "agent.not_ready", 1200, reason="break"),
    )
    await database_sync_to_async(evaluate_alerts)()
    wall, snapshot = await connected_wall(supervisor_sam)
    assert [(a["kind"], a["agent"]) for a in snapshot["alerts"]] == [("long_not_ready", "alice")]
    await wall.disconnect()


# --- On the real Redis layer ----------------------------------------------------------------


@pytest.mark.integration
@DB
async def test_an_idle_socket_on_redis_still_receives_a_push_after_7_seconds(
    supervisor_sam: Any, alice: Any
) -> None:
    # redis-py 8 defaults socket_timeout to 5 s; the layer must not drop an idle wall
    # (docs/design.md, traps of the stack).
    assert "pubsub" in settings.CHANNEL_LAYERS["default"]["BACKEND"]
    wall, _ = await connected_wall(supervisor_sam)
    await asyncio.sleep(7)
    await ingest(event("alice", "agent.logged_in"))
    frame = await wall.receive_json_from(timeout=3)
    assert frame["type"] == "agent"
    assert frame["agent"]["state"] == "available"
    await wall.disconnect()


@pytest.mark.integration
@DB
async def test_snapshot_and_deltas_on_the_redis_layer(supervisor_sam: Any, alice: Any) -> None:
    wall, _ = await connected_wall(supervisor_sam)
    await ingest(event("alice", "agent.logged_in"))
    frame = await wall.receive_json_from(timeout=2)
    assert frame["agent"]["state"] == "available"  # within the 2 s receive (speed: bench/)
    await wall.disconnect()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_env() -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["DEBUG"] = "1"
    return env


@pytest.fixture
def two_servers() -> Iterator[list[int]]:
    """Two daphne processes serving the ASGI application against the test database."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("the multi-process test needs PostgreSQL")
    ports = [_free_port(), _free_port()]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "acw_site.asgi:application",
            ],
            cwd=ROOT,
            env=_server_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port in ports:
            _wait_for_port(port)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


def _wait_for_port(port: int, timeout: float = 20) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


@pytest.mark.integration
@DB
async def test_an_event_posted_to_one_process_reaches_a_wall_on_another(
    two_servers: list[int], supervisor_sam: Any, alice: Any, api_token: str
) -> None:
    import urllib.request

    import websockets

    wall_port, api_port = two_servers
    cookie = await database_sync_to_async(session_cookie)(supervisor_sam)
    async with websockets.connect(
        f"ws://127.0.0.1:{wall_port}/ws/wall/",
        origin=f"http://127.0.0.1:{wall_port}",
        additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"},
    ) as ws:
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert snapshot["type"] == "snapshot"
        body = json.dumps(event("alice", "agent.not_ready", reason="training")).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{api_port}/api/v1/events",
            data=body,
            headers={"Authorization": f"Bearer {api_token}", "Content-Type": "application/json"},
        )
        start = time.monotonic()
        status = await asyncio.to_thread(lambda: urllib.request.urlopen(request).status)
        assert status == 201
        frame = json.loads(await asyncio.wait_for(ws.recv(), 3))
        latency = time.monotonic() - start
        print(f"\nAPI on one process → wall on another: {latency * 1000:.0f} ms")
        assert frame["type"] == "agent"
        assert frame["agent"]["reason"] == "training"  # latency is measured by bench/bench_wall
