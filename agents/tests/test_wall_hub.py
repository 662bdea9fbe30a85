"""One subscription per process (``agents.wall_hub``): walls share it and the frames it encodes.

Each case runs on the in-memory layer and on the Redis pub/sub layer that production uses; on
Redis the subscription is counted by Redis itself (``PUBSUB NUMSUB``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import User

from agents import consumers, events
from agents.models import Team
from agents.tests.factories import event
from agents.tests.test_consumers import DB, by_agent, connected_wall, frames_until_quiet, ingest
from agents.tests.test_wall_revocation import closed_code

pytestmark = [pytest.mark.asyncio]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def layer(request: Any, settings: Any) -> str:
    if request.param == "memory":
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    else:
        assert "pubsub" in settings.CHANNEL_LAYERS["default"]["BACKEND"]
    return str(request.param)


@pytest.fixture
def supervisor_sue(south: Team) -> Any:
    """Supervises South (carol) only."""
    from django.contrib.auth.models import Group

    sue = User.objects.create_user("sue")
    sue.groups.add(Group.objects.get(name="Supervisors"))
    south.supervisors.add(sue)
    return sue


def subscribers(kind: str, group: str) -> int:
    """How many subscriptions the process holds on a group, as the layer itself sees them."""
    if kind == "memory":
        return len(get_channel_layer().groups.get(group, {}))  # type: ignore[union-attr]
    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    client = redis.Redis.from_url(config["hosts"][0]["address"])
    name = f"{config['prefix']}__group__{group}"
    return int(dict(client.pubsub_numsub(name))[name.encode()])


async def raw_frame(wall: Any) -> str:
    return str(await wall.receive_from(timeout=3))


@DB
async def test_two_walls_of_one_team_share_one_subscription_and_get_the_same_frame(
    layer: str, supervisor_sam: Any, manager_maria: Any, north: Team, alice: Any
) -> None:
    sam_wall, _ = await connected_wall(supervisor_sam)
    maria_wall, _ = await connected_wall(manager_maria)
    group = events.team_group(north.pk)
    assert subscribers(layer, group) == 1

    await ingest(event("alice", "agent.not_ready", reason="coaching"))
    sams, marias = await raw_frame(sam_wall), await raw_frame(maria_wall)
    assert sams == marias  # the same text: encoded once, both walls at seq 2
    frame = json.loads(sams)
    assert (frame["seq"], frame["type"], frame["agent"]["reason"]) == (2, "agent", "coaching")

    await sam_wall.disconnect()
    assert subscribers(layer, group) == 1  # Maria's wall still needs it
    await ingest(event("alice", "agent.available"))
    assert json.loads(await raw_frame(maria_wall))["agent"]["state"] == "available"
    await maria_wall.disconnect()
    assert subscribers(layer, group) == 0


@DB
async def test_a_wall_of_another_team_gets_none_of_its_frames(
    layer: str, supervisor_sam: Any, supervisor_sue: Any, alice: Any, carol: Any
) -> None:
    sam_wall, _ = await connected_wall(supervisor_sam)
    sue_wall, sue_snapshot = await connected_wall(supervisor_sue)
    assert [a["agent"] for a in sue_snapshot["agents"]] == ["carol"]

    await ingest(event("alice", "agent.logged_in"), event("alice", "agent.not_ready", reason="x"))
    sams = await frames_until_quiet(sam_wall)
    assert {a["agent"] for f in sams for a in f.get("agents", [f.get("agent")])} == {"alice"}
    assert await sue_wall.receive_nothing(timeout=0.4)
    await sam_wall.disconnect()
    await sue_wall.disconnect()


@DB
async def test_narrowing_one_wall_leaves_the_shared_team_to_the_others(
    layer: str,
    supervisor_sam: Any,
    manager_maria: Any,
    admin_ada: Any,
    south: Team,
    alice: Any,
    carol: Any,
) -> None:
    from agents.tests.test_wall_revocation import admin_change

    await database_sync_to_async(south.supervisors.add)(supervisor_sam)
    sam_wall, snapshot = await connected_wall(supervisor_sam)
    assert sorted(by_agent(snapshot["agents"])) == ["alice", "carol"]
    maria_wall, _ = await connected_wall(manager_maria)

    await database_sync_to_async(admin_change)(admin_ada, "agents_team", south.pk, supervisors=[])
    narrowed = await frames_until_quiet(sam_wall)
    assert [f["type"] for f in narrowed] == ["snapshot"]
    assert sorted(by_agent(narrowed[0]["agents"])) == ["alice"]
    # The team's change reaches Maria's wall as a snapshot too (its name and policies).
    assert [f["type"] for f in await frames_until_quiet(maria_wall)] == ["snapshot"]

    assert subscribers(layer, events.team_group(south.pk)) == 1  # for Maria
    await ingest(event("carol", "agent.not_ready", reason="lunch"))
    assert json.loads(await raw_frame(maria_wall))["agent"]["agent"] == "carol"
    assert await sam_wall.receive_nothing(timeout=0.4)
    await sam_wall.disconnect()
    await maria_wall.disconnect()


@DB
async def test_deactivation_closes_every_wall_of_the_user_and_only_theirs(
    layer: str, supervisor_sam: Any, manager_maria: Any, alice: Any
) -> None:
    first, _ = await connected_wall(supervisor_sam)
    second, _ = await connected_wall(supervisor_sam)
    maria_wall, _ = await connected_wall(manager_maria)

    def deactivate() -> None:
        User.objects.filter(pk=supervisor_sam.pk).update(is_active=False)
        events.recheck_rights_on_commit([supervisor_sam.pk])  # outside a transaction: now

    await database_sync_to_async(deactivate)()
    assert await closed_code(first) == consumers.FORBIDDEN
    assert await closed_code(second) == consumers.FORBIDDEN
    await ingest(event("alice", "agent.logged_in"))
    assert json.loads(await raw_frame(maria_wall))["agent"]["state"] == "available"
    await maria_wall.disconnect()
