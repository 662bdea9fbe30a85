"""The wall consumer: authenticate, subscribe to the user's teams, send a snapshot, forward.

docs/wall.md describes the frames. The teams come from the user on the server (``access``),
never from the client. Frames carry a per-connection ``seq``. Work per message is a few
dictionary operations: the database reads are the snapshot, on connect and on resync, and a small
check of the user's rights every ``SEQ_CHECK_SECONDS`` (one sync thread per server process:
docs/design.md, traps of the stack).

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
from importlib import import_module
from types import SimpleNamespace
from typing import Any

import redis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model

from acw_site import metrics

from . import access, events, selectors, wall_links

logger = logging.getLogger(__name__)

COALESCE_SECONDS = 0.05
GAP_GRACE_SECONDS = 0.2
SEQ_CHECK_SECONDS = 10.0
TRY_AGAIN_LATER = 1013  # WebSocket close code (RFC 6455 registry): a service is down for now
# Rights are re-checked when a change is pushed (``events.recheck_rights_on_commit``) and at
# least this often, for changes made where nothing pushes (a shell, a bulk update, an expired
# or deleted session).
RIGHTS_CHECK_SECONDS = 60.0
# Close code for a wall whose user may no longer watch (as for a refused connection).
FORBIDDEN = 4403


def _rights(user: Any) -> set[int] | None:
    """The teams ``user`` may watch, or None if the wall is not for them."""
    if user is None or not access.can_watch(user):
        return None
    return access.visible_team_ids(user)


_watch_rights = database_sync_to_async(_rights)
_link_owner = database_sync_to_async(wall_links.wall_link_owner)


def _link(scope: dict[str, Any]) -> str | None:
    """The signed key of a kiosk wall (``/ws/wall/link/<key>/``); None for a user's wall."""
    return scope.get("url_route", {}).get("kwargs", {}).get("link")


@database_sync_to_async
def _rights_now(scope: dict[str, Any]) -> set[int] | None:
    """The rights of the socket's user as they are now, read afresh from the database.

    The session is re-read too (not the copy loaded at connect), so a logout elsewhere, a
    password change or a deactivation ends the wall like it ends the user's pages. A kiosk
    wall's rights are its link's: none once it is revoked (``wall_links``).
    """
    link = _link(scope)
    if link is not None:
        return wall_links.wall_link_rights(link)
    session = scope.get("session")
    if session is not None and session.session_key:
        fresh = import_module(settings.SESSION_ENGINE).SessionStore(session.session_key)
        return _rights(auth.get_user(SimpleNamespace(session=fresh)))  # type: ignore[arg-type]
    # No session (a scope built without one): the user as loaded at connect, read afresh.
    user_id = getattr(scope.get("user"), "pk", None)
    if user_id is None:
        return None
    return _rights(get_user_model().objects.filter(pk=user_id, is_active=True).first())


class WallConsumer(AsyncJsonWebsocketConsumer):
    # Overridable in tests to exercise the periodic checks quickly.
    seq_check_seconds = SEQ_CHECK_SECONDS
    rights_check_seconds = RIGHTS_CHECK_SECONDS

    async def connect(self) -> None:
        user = self.scope.get("user")
        link = _link(self.scope)
        if link is not None:
            # A kiosk wall: its link's teams; told of a revocation through its creator's group.
            owner = await _link_owner(link)
            owner_id, team_ids = owner if owner is not None else (None, None)
        else:
            owner_id = getattr(user, "pk", None)
            team_ids = await _watch_rights(user) if user is not None else None
        if team_ids is None:
            await self.close(code=FORBIDDEN)
            return
        self.team_ids: set[int] = team_ids
        self.closed = False
        self.seq = 0
        self.team_seq: dict[int, int] = {}
        self.missing: dict[tuple[int, int], float] = {}
        self.pending: dict[str, dict[str, Any]] = {}
        self.agent_teams: dict[str, int] = {}
        self.versions: dict[str, int] = {}
        self.lock = asyncio.Lock()
        self.window: asyncio.Task[None] | None = None
        # Subscribe first, then read the counters and the snapshot: nothing falls in between.
        assert owner_id is not None  # a wall with teams has a user (or a link's creator)
        self.user_group = events.user_group(owner_id)
        subscribed = await self._subscribe()
        await self.accept()
        metrics.WALL_CONNECTIONS.inc()
        self.counted = True  # disconnect takes it off again
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
        self.rights_watcher: asyncio.Task[None] = asyncio.create_task(self._watch_rights())

    async def _subscribe(self) -> bool:
        """Join the user's group and team groups; False if Redis cannot be reached.

        One retry: after a Redis restart, the layer's pub/sub connection in a process that had
        no wall subscribed (so nothing was reading from it) is still the dead one, and the
        first subscribe fails on it; redis-py reconnects for the next command.
        """
        for attempt in range(2):
            try:
                # The user's own group carries "your rights changed" (events.recheck_rights...).
                await self.channel_layer.group_add(self.user_group, self.channel_name)
                for team_id in self.team_ids:
                    await self.channel_layer.group_add(
                        events.team_group(team_id), self.channel_name
                    )
                return True
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                logger.info("wall subscribe failed (attempt %d)", attempt + 1, exc_info=True)
        return False

    async def disconnect(self, code: int) -> None:
        if getattr(self, "counted", False):
            metrics.WALL_CONNECTIONS.dec()
        for name in ("window", "watcher", "rights_watcher"):
            task = getattr(self, name, None)
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        try:
            if hasattr(self, "user_group"):
                await self.channel_layer.group_discard(self.user_group, self.channel_name)
            for team_id in getattr(self, "team_ids", ()):
                await self.channel_layer.group_discard(
                    events.team_group(team_id), self.channel_name
                )
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            # Redis is down: its subscriptions went with it.
            logger.info("wall unsubscribe failed", exc_info=True)

    # --- Rights -------------------------------------------------------------------------------

    async def _recheck_rights(self) -> None:
        """Close the wall if its user may no longer watch; narrow or widen it to their teams."""
        async with self.lock:
            await self._follow_rights(resync=False)

    async def _watch_rights(self) -> None:
        while True:
            await asyncio.sleep(self.rights_check_seconds)
            try:
                await self._recheck_rights()
            except Exception:
                # The database is down: keep the wall until its user can be checked again.
                logger.warning("wall rights check failed", exc_info=True)

    async def wall_rights(self, message: dict[str, Any]) -> None:
        """Pushed by ``events.recheck_rights_on_commit`` when the user's rights changed."""
        await self._recheck_rights()

    # --- Frames -------------------------------------------------------------------------------

    async def _send(self, frame: dict[str, Any]) -> None:
        """Send one frame with the next ``seq``; callers hold ``self.lock`` (frame order)."""
        self.seq += 1
        await self.send_json({**frame, "seq": self.seq})
        metrics.WALL_FRAMES.labels(frame["type"]).inc()

    async def _send_snapshot(self) -> None:
        if self.seq:  # not the wall's first frame: a resync
            metrics.WALL_RESYNCS.inc()
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
        if team_id is not None and team_id not in self.team_ids:
            # Still in flight when the wall was narrowed to fewer teams.
            return False
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
        """Resync when a team's counter moved past us and stayed there, or went backwards, or
        when the teams the user may see changed."""
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
                    await self._follow_rights(resync=False)
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

    async def wall_team_changed(self, message: dict[str, Any]) -> None:
        """A team this wall shows changed in admin: re-check what the user may see (a
        supervisor taken off the team stops receiving it now, not at their next reconnect),
        and start over from a snapshot (the team's new name, its agents' colour points)."""
        async with self.lock:
            self._is_new(message)
            await self._follow_rights(resync=True)

    async def _follow_rights(self, *, resync: bool) -> None:
        """Subscribe to the teams the user may see now; a snapshot if they changed (or asked);
        close the wall if its user may no longer watch.

        Callers hold ``self.lock``. The user and session are read afresh (``_rights_now``), so
        a deactivation or a logout elsewhere ends the wall. Run on a pushed change
        (``wall.rights``, ``wall.team_changed``) and by the periodic checks, which is also how
        a team the user may newly see (a new team for a manager) reaches an open wall.
        """
        team_ids = await _rights_now(self.scope)
        if self.closed:
            return
        if team_ids is None:
            self.closed = True
            await self.close(code=FORBIDDEN)
            return
        if team_ids == self.team_ids and not resync:
            return
        for team_id in self.team_ids - team_ids:
            await self.channel_layer.group_discard(events.team_group(team_id), self.channel_name)
        for team_id in team_ids - self.team_ids:
            await self.channel_layer.group_add(events.team_group(team_id), self.channel_name)
        self.team_ids = team_ids
        # The snapshot replaces the wall's whole view: tiles of a team no longer seen go.
        await self._send_snapshot()

    async def wall_alert(self, message: dict[str, Any]) -> None:
        async with self.lock:
            if not self._is_new(message):
                return
            await self._flush()
            await self._send({"type": "alert", "alert": message["alert"]})
            if self.missing:
                self._open_window()
