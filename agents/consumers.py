"""The wall consumer: authenticate, subscribe to the user's teams, send a snapshot, forward.

docs/wall.md describes the frames. The teams come from the user on the server (``access``),
never from the client. Frames carry a per-connection ``seq``. Work per message is a few
dictionary operations: the only database read is the snapshot, on connect and on resync (one
sync thread per server process: docs/design.md, traps of the stack).

Lost messages. Every layer message carries ``team_id``/``team_seq`` (``agents.events``). The
consumer remembers, per team, the last number it has seen; the snapshot starts from the numbers
read just before it. A number that is skipped and does not turn up within ``GAP_GRACE_SECONDS``
(two web processes may publish a team's consecutive numbers slightly out of order) means the
layer dropped a message: the consumer sends a fresh snapshot. A periodic check of the team
counters catches a lost *last* message, and a counter that went backwards (Redis restarted).

Coalescing. The first change after a quiet period goes out at once as an ``agent`` frame;
changes arriving in the next ``COALESCE_SECONDS`` are merged per agent and sent as one
``agents`` frame (or ``agent`` if only one agent changed), so a burst costs one frame per window.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from . import access, events, selectors

logger = logging.getLogger(__name__)

COALESCE_SECONDS = 0.05
GAP_GRACE_SECONDS = 0.2
SEQ_CHECK_SECONDS = 10.0
TRY_AGAIN_LATER = 1013  # WebSocket close code (RFC 6455 registry): a service is down for now


@database_sync_to_async
def _watch_rights(user: Any) -> set[int] | None:
    """The teams ``user`` may watch, or None if the wall is not for them."""
    if not access.can_watch(user):
        return None
    return access.visible_team_ids(user)


class WallConsumer(AsyncJsonWebsocketConsumer):
    # Overridable in tests to exercise the periodic lost-message check quickly.
    seq_check_seconds = SEQ_CHECK_SECONDS

    async def connect(self) -> None:
        user = self.scope.get("user")
        team_ids = await _watch_rights(user) if user is not None else None
        if team_ids is None:
            await self.close(code=4403)
            return
        self.team_ids: set[int] = team_ids
        self.seq = 0
        self.team_seq: dict[int, int] = {}
        self.missing: dict[tuple[int, int], float] = {}
        self.pending: dict[str, dict[str, Any]] = {}
        self.agent_teams: dict[str, int] = {}
        self.versions: dict[str, int] = {}
        self.lock = asyncio.Lock()
        self.window: asyncio.Task[None] | None = None
        # Subscribe first, then read the counters and the snapshot: nothing falls in between.
        subscribed = await self._subscribe()
        await self.accept()
        if subscribed:
            try:
                async with self.lock:
                    await self._send_snapshot()
            except Exception:
                logger.warning("wall snapshot failed; asking the browser to retry", exc_info=True)
                subscribed = False
        if not subscribed:
            # Redis or the database is down: "try again later", never a 500 handshake. The
            # page reconnects with backoff and gets a fresh snapshot then.
            await self.close(code=TRY_AGAIN_LATER)
            return
        self.watcher: asyncio.Task[None] = asyncio.create_task(self._watch_counters())

    async def _subscribe(self) -> bool:
        """Join the user's team groups; False if Redis cannot be reached.

        One retry: after a Redis restart, the layer's pub/sub connection in a process that had
        no wall subscribed (so nothing was reading from it) is still the dead one, and the
        first subscribe fails on it; redis-py reconnects for the next command.
        """
        for attempt in range(2):
            try:
                for team_id in self.team_ids:
                    await self.channel_layer.group_add(
                        events.team_group(team_id), self.channel_name
                    )
                return True
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                logger.info("wall subscribe failed (attempt %d)", attempt + 1, exc_info=True)
        return False

    async def disconnect(self, code: int) -> None:
        for task in (getattr(self, "window", None), getattr(self, "watcher", None)):
            if task is not None:
                task.cancel()
        try:
            for team_id in getattr(self, "team_ids", ()):
                await self.channel_layer.group_discard(
                    events.team_group(team_id), self.channel_name
                )
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            # Redis is down: its subscriptions went with it.
            logger.info("wall unsubscribe failed", exc_info=True)

    # --- Frames -------------------------------------------------------------------------------

    async def _send(self, frame: dict[str, Any]) -> None:
        """Send one frame with the next ``seq``; callers hold ``self.lock`` (frame order)."""
        self.seq += 1
        await self.send_json({**frame, "seq": self.seq})

    async def _send_snapshot(self) -> None:
        snapshot = await database_sync_to_async(selectors.wall_snapshot)(self.team_ids)
        self.team_seq = {team_id: int(seq) for team_id, seq in snapshot["team_seqs"].items()}
        self.agent_teams = snapshot["agent_teams"]
        self.versions = {agent["agent"]: agent["version"] for agent in snapshot["agents"]}
        self.missing.clear()
        # The snapshot supersedes whatever was waiting to be sent.
        self.pending.clear()
        await self._send(
            {"type": "snapshot", "agents": snapshot["agents"], "alerts": snapshot["alerts"]}
        )

    async def _flush(self) -> None:
        if not self.pending:
            return
        agents = list(self.pending.values())
        self.pending.clear()
        if len(agents) == 1:
            await self._send({"type": "agent", "agent": agents[0]})
        else:
            await self._send({"type": "agents", "agents": agents})

    # --- Sequence bookkeeping -----------------------------------------------------------------

    def _is_new(self, message: dict[str, Any]) -> bool:
        """Record ``team_seq`` and say whether the message is news for this wall."""
        team_id, seq = message.get("team_id"), message.get("team_seq")
        if team_id is None or seq is None:
            return True
        last = self.team_seq.get(team_id, 0)
        if seq <= last:
            # Either a late arrival we were waiting for, or already in the snapshot.
            return self.missing.pop((team_id, seq), None) is not None
        now = asyncio.get_running_loop().time()
        for skipped in range(last + 1, seq):
            self.missing[(team_id, skipped)] = now
        self.team_seq[team_id] = seq
        return True

    def _lost_something(self) -> bool:
        if not self.missing:
            return False
        oldest = min(self.missing.values())
        return asyncio.get_running_loop().time() - oldest >= GAP_GRACE_SECONDS

    def _open_window(self) -> None:
        if self.window is None or self.window.done():
            self.window = asyncio.create_task(self._run_window())

    async def _run_window(self) -> None:
        """Send what accumulated, every ``COALESCE_SECONDS``, until nothing is waiting."""
        while True:
            await asyncio.sleep(COALESCE_SECONDS)
            async with self.lock:
                try:
                    if self._lost_something():
                        await self._send_snapshot()
                    elif self.pending:
                        await self._flush()
                    elif not self.missing:
                        self.window = None
                        return
                except Exception:
                    # The database is down mid-resync: the next change or check tries again.
                    logger.warning("wall resync failed", exc_info=True)
                    self.window = None
                    return

    async def _watch_counters(self) -> None:
        """Resync when a team's counter moved past us and stayed there, or went backwards."""
        read = sync_to_async(events.team_seqs, thread_sensitive=False)
        previous: dict[int, int] = {}
        while True:
            await asyncio.sleep(self.seq_check_seconds)
            try:
                current = await read(self.team_ids)
                async with self.lock:
                    stale = any(
                        previous.get(team_id, 0) > self.team_seq.get(team_id, 0)
                        or seq < self.team_seq.get(team_id, 0)
                        for team_id, seq in current.items()
                    )
                    if stale:
                        await self._send_snapshot()
            except Exception:
                # Redis or the database is down: the next round tries again.
                logger.warning("lost-message check failed", exc_info=True)
                continue
            previous = current

    # --- Layer messages (``events`` names them wall.*) ----------------------------------------

    async def wall_agent(self, message: dict[str, Any]) -> None:
        async with self.lock:
            if not self._is_new(message):
                return
            payload = message["agent"]
            version = payload.get("version", 0)
            if version < self.versions.get(payload["agent"], 0):
                # An older state that another web process published after a newer one.
                return
            self.versions[payload["agent"]] = version
            if message.get("team_id") is not None:
                self.agent_teams[payload["agent"]] = message["team_id"]
            self.pending[payload["agent"]] = payload
            if self.window is None or self.window.done():
                # Leading edge: a lone change goes out at once; followers are coalesced.
                await self._flush()
            self._open_window()

    async def wall_agent_removed(self, message: dict[str, Any]) -> None:
        async with self.lock:
            if not self._is_new(message):
                return
            external_id, team_id = message["agent"], message.get("team_id")
            now_in = self.agent_teams.get(external_id)
            if now_in is not None and now_in != team_id and now_in in self.team_ids:
                # Moved between two teams this wall shows: the agent frame already moved it.
                return
            self.agent_teams.pop(external_id, None)
            self.pending.pop(external_id, None)
            await self._send({"type": "agent_removed", "agent": external_id})
            if self.missing:
                self._open_window()

    async def wall_alert(self, message: dict[str, Any]) -> None:
        async with self.lock:
            if not self._is_new(message):
                return
            await self._flush()
            await self._send({"type": "alert", "alert": message["alert"]})
            if self.missing:
                self._open_window()
