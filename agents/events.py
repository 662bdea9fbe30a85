"""The wall's messages: group names, every message envelope, and the one place that publishes.

Every message a wall receives through the channel layer is built here (``agent_changed``,
``agent_removed``, ``alert_changed``); docs/wall.md describes the frames the browser gets.
Snapshot and deltas use the same ``agent_payload()`` (``agents.serializers``, which the API
renders with too), so a reconnecting wall shows exactly what a live one shows. ``broadcast_on_commit()`` is the only function that sends to the channel
layer, and it sends only after the transaction commits: a push that is rolled back would show
supervisors a state that never existed. A failed publish (Redis down) is logged and counted,
never raised — the event is already stored, and walls catch up by resync.

Every message carries ``team_id`` and ``team_seq``, a per-team number from a Redis counter taken
as the message is sent (one Lua script numbers and publishes a batch in one round trip). The layer may drop messages silently (pub/sub during a Redis
blip, a full channel): a wall consumer that sees a hole in a team's numbers knows it missed
something and sends its browser a fresh snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, cast

import msgpack
import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from channels_redis.serializers import MsgPackSerializer
from django.conf import settings
from django.db import transaction

from acw_site import metrics
from acw_site.redis_keys import redis_key

from .models import AgentState
from .policies import Policies
from .serializers import agent_payload

logger = logging.getLogger(__name__)

# Under the deployment's Redis prefix (a deploy-time setting, read once).
TEAM_SEQ_KEY = redis_key("team-seq", "{team_id}")
PUBLISH_FAILURES_KEY = "publish_failures"
_counters: dict[str, int] = {PUBLISH_FAILURES_KEY: 0}

Message = dict[str, Any]


def team_group(team_id: int) -> str:
    """The channel-layer group of one team's walls."""
    return f"wall.team.{team_id}"


def user_group(user_id: int) -> str:
    """The channel-layer group of one user's open walls (told when their rights change)."""
    return f"wall.user.{user_id}"


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    # A publish that takes longer than the timeout is abandoned (and counted): the caller is a
    # request or a task that has already committed, and walls recover lost messages by resync.
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def publish_failures() -> int:
    """How many publishes failed in this process (exposed for health checks and tests)."""
    return _counters[PUBLISH_FAILURES_KEY]


def team_seqs(team_ids: Iterable[int]) -> dict[int, int]:
    """The last ``team_seq`` handed out for each team (0 for a team never published to).

    A wall reads these *before* it reads its snapshot: every message numbered up to them was
    committed before the snapshot was read, so the snapshot already contains it.
    """
    ids = sorted(team_ids)
    if not ids:
        return {}
    values = _redis().mget([TEAM_SEQ_KEY.format(team_id=team_id) for team_id in ids])
    return {team_id: int(value or 0) for team_id, value in zip(ids, values, strict=True)}


def _pubsub_channel(group: str) -> str:
    """The Redis channel on which the pub/sub layer's subscribers receive ``group``'s messages
    (channels_redis: the layer's prefix, ``__group__``, the group)."""
    config = cast(dict[str, Any], settings.CHANNEL_LAYERS["default"]["CONFIG"])
    prefix = config.get("prefix", "asgi")
    return f"{prefix}__group__{group}"


def _group_send(sends: list[tuple[str, Message]]) -> None:
    """Send each ``(group, message)``, in order.

    On the pub/sub layer (production), every message is published through this process's
    synchronous Redis client, all of them in one pipelined round trip, serialised as the layer
    does: the layer's own ``group_send`` awaits one PUBLISH after the other, and from sync code
    it needs an event loop to run on, each call a hop to another thread and back.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    if isinstance(layer, RedisPubSubChannelLayer):
        pipe = _redis().pipeline(transaction=False)
        for group, message in sends:
            pipe.publish(_pubsub_channel(group), layer.serialize(message))
        pipe.execute()
        return

    # Other layers (the in-memory one in tests) are bound to the caller's event loop: when
    # called from a sync thread inside an async server, async_to_sync runs on that loop.
    async def send_all() -> None:
        for group, message in sends:
            await layer.group_send(group, message)

    async_to_sync(send_all)()


# Numbers each message and publishes it, in one round trip for a whole batch. KEYS: the teams'
# counters; ARGV, two per message: its pub/sub channel, and the message serialised by the layer
# with ``team_seq`` as its last value, that value's bytes left off (``_without_last_value``).
# ``cmsgpack.pack`` writes an integer as msgpack does (the shortest form), so each message
# published is byte for byte what the layer would have serialised with its number in it.
NUMBER_AND_PUBLISH = """
for i, key in ipairs(KEYS) do
    local seq = redis.call('INCR', key)
    redis.call('PUBLISH', ARGV[2 * i - 1], ARGV[2 * i] .. cmsgpack.pack(seq))
end
return #KEYS
"""


@lru_cache(maxsize=1)
def _number_and_publish(client: redis.Redis) -> Any:
    """The script, registered with this client (loaded into Redis on its first use)."""
    return client.register_script(NUMBER_AND_PUBLISH)


def _splices_numbers(layer: Any) -> bool:
    """Whether the layer's messages are plain msgpack, which the script can append a number to
    (neither encrypted nor prefixed: the site's configuration)."""
    if not isinstance(layer, RedisPubSubChannelLayer):
        return False
    serializer = layer._serializer
    return (
        isinstance(serializer, MsgPackSerializer)
        and serializer.crypter is None
        and not serializer.random_prefix_length
    )


def _without_last_value(message: Message) -> bytes:
    """``message`` as the layer serialises it, but for the bytes of its last value, a 0 (one
    byte in msgpack), which the script replaces with the team's number."""
    return cast(bytes, msgpack.packb(message))[:-1]


def _publish_all(pending: list[tuple[int, Message]]) -> None:
    try:
        layer = get_channel_layer()
        if _splices_numbers(layer):
            client = _redis()
            keys: list[str] = []
            args: list[str | bytes] = []
            for team_id, message in pending:
                keys.append(TEAM_SEQ_KEY.format(team_id=team_id))
                args.append(_pubsub_channel(team_group(team_id)))
                args.append(_without_last_value({**message, "team_id": team_id, "team_seq": 0}))
            _number_and_publish(client)(keys=keys, args=args)
            return
        # One round trip numbers the whole batch; a number is taken even if the send below
        # fails, which is what makes the loss visible to the walls.
        pipe = _redis().pipeline(transaction=False)
        for team_id, _ in pending:
            pipe.incr(TEAM_SEQ_KEY.format(team_id=team_id))
        seqs = pipe.execute()
        _group_send(
            [
                (team_group(team_id), {**message, "team_id": team_id, "team_seq": seq})
                for (team_id, message), seq in zip(pending, seqs, strict=True)
            ]
        )
    except Exception:
        _counters[PUBLISH_FAILURES_KEY] += len(pending)
        metrics.PUBLISH_FAILURES.inc(len(pending))
        teams = sorted({team_id for team_id, _ in pending})
        logger.warning("publish to teams %s failed; walls will resync", teams, exc_info=True)


def _publish(team_id: int, message: Message) -> None:
    """Number and send one message to a team's walls now (callers normally want on-commit)."""
    _publish_all([(team_id, message)])


def broadcast_on_commit(messages: Iterable[tuple[int, Message]]) -> None:
    """Send ``(team_id, message)`` pairs to the walls once the current transaction commits."""
    pending = list(messages)
    if not pending:
        return
    transaction.on_commit(lambda: _publish_all(pending))


def recheck_rights_on_commit(user_ids: Iterable[int | None]) -> None:
    """After commit, tell these users' open walls to re-check what they may see.

    Called by whatever changes a user's teams, role or activation. Not numbered like team
    messages: a lost one is covered by the walls' own periodic re-check.
    """
    sends = [
        (user_group(user_id), {"type": "wall.rights", "user_id": user_id})
        for user_id in sorted({user_id for user_id in user_ids if user_id is not None})
    ]
    if not sends:
        return

    def send() -> None:
        try:
            _group_send(sends)
        except Exception:
            _counters[PUBLISH_FAILURES_KEY] += len(sends)
            logger.warning(
                "rights re-check push failed; walls re-check on their own", exc_info=True
            )

    transaction.on_commit(send)


def agent_changed(live: AgentState, policies: Policies | None = None) -> tuple[int, Message]:
    """The message telling a team's walls that one agent's live state changed."""
    return live.agent.team_id, {"type": "wall.agent", "agent": agent_payload(live, policies)}


def agent_removed(team_id: int, external_id: str) -> tuple[int, Message]:
    """The message telling a team's walls that an agent left the team."""
    return team_id, {"type": "wall.agent_removed", "agent": external_id}


def team_changed(team_id: int) -> tuple[int, Message]:
    """The message telling a team's walls to start over from a fresh snapshot: the team was
    renamed (every tile shows it), or who may see it or its ACW policies changed."""
    return team_id, {"type": "wall.team_changed"}


def alert_changed(team_id: int, alert: dict[str, Any]) -> tuple[int, Message]:
    """The message telling a team's walls that an alert opened, changed or resolved.

    ``alert`` is built by ``reporting.selectors.alert_payload()``: alerts are reporting's rows,
    and reporting builds on agents, so only the envelope is made here.
    """
    return team_id, {"type": "wall.alert", "alert": alert}
