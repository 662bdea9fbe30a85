"""The wall consumer: authenticate, join the process's hub, send a snapshot, forward frames.

docs/wall.md describes the frames. The teams come from the user on the server (``access``),
never from the client. A wall has no channel-layer subscription of its own: the process's hub
(``agents.wall_hub``) receives each team's messages once, numbers-checks and coalesces them per
team, and hands every wall of the team the same encoded frame (``push``). The wall adds its own
``seq`` and sends. The database reads are the snapshot (shared by the walls that ask at the same
time), on connect and on resync, and the rights check (one read per session, every
``SEQ_CHECK_SECONDS`` and when a change is pushed). A kiosk wall (``/ws/wall/link/<key>/``)
has no user: its rights are its signed link's (``wall_links``), read the same way, and a
revocation reaches it through its creator's group.

A wall sends in order from its outbox (``drain``). While a snapshot is being read the outbox
waits; once it is sent, the frames whose changes the snapshot already holds are skipped. An
outbox that grows past ``OUTBOX_LIMIT`` (a socket that does not keep up) is dropped and replaced
by a fresh snapshot, never by unbounded memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model

from acw_site import metrics

from . import access, wall_hub, wall_links
from .wall_hub import COALESCE_SECONDS, GAP_GRACE_SECONDS, Frame

__all__ = ["COALESCE_SECONDS", "GAP_GRACE_SECONDS", "WallConsumer"]

logger = logging.getLogger(__name__)

SEQ_CHECK_SECONDS = 10.0
TRY_AGAIN_LATER = 1013  # WebSocket close code (RFC 6455 registry): a service is down for now
# Rights are re-checked when a change is pushed (``events.recheck_rights_on_commit``) and by
# the hub's periodic check, at least this often, for changes made where nothing pushes (a
# shell, a bulk update, an expired or deleted session).
RIGHTS_CHECK_SECONDS = 60.0
# Close code for a wall whose user may no longer watch (as for a refused connection).
FORBIDDEN = 4403
# Frames waiting for one socket before it is given a fresh snapshot instead.
OUTBOX_LIMIT = 500
# A channel-layer alias that is not configured: Channels then gives the consumer no channel
# (no subscription per socket); the hub holds the process's one subscription.
NO_CHANNEL = "wall-hub-only"


def _rights(user: Any) -> set[int] | None:
    """The teams ``user`` may watch, or None if the wall is not for them."""
    if user is None or not access.can_watch(user):
        return None
    return access.visible_team_ids(user)


def _link(scope: dict[str, Any]) -> str | None:
    """The signed key of a kiosk wall (``/ws/wall/link/<key>/``); None for a user's wall."""
    return scope.get("url_route", {}).get("kwargs", {}).get("link")


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


class WallConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = NO_CHANNEL
    # Read by the hub at every round; overridable in tests to exercise the checks quickly.
    seq_check_seconds = SEQ_CHECK_SECONDS
    rights_check_seconds = RIGHTS_CHECK_SECONDS

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.hub = wall_hub.hub_for(get_channel_layer(), type(self))
        link = _link(self.scope)
        owner_id: int | None = None
        team_ids: set[int] | None = None
        if link is not None:
            # A kiosk wall: its link's teams; told of a revocation through its creator's group.
            self.rights_key: tuple[Any, Any] = ("link", link)
            owner = await self.hub.shared_read(
                ("owner", self.rights_key), lambda: wall_links.wall_link_owner(link)
            )
            if owner is not None:
                owner_id, team_ids = owner
        else:
            session = self.scope.get("session")
            # Walls of one session share their rights reads (many walls connecting at once).
            self.rights_key = (getattr(session, "session_key", None), getattr(user, "pk", None))
            owner_id = self.rights_key[1]
            if user is not None and owner_id is not None:
                team_ids = await self.hub.shared_read(
                    ("rights", self.rights_key), lambda: _rights(user)
                )
        if team_ids is None or owner_id is None:
            await self.close(code=FORBIDDEN)
            return
        self.team_ids: set[int] = set(team_ids)
        self.user_id: int = owner_id  # the user's (or the link creator's) group
        self.closed = False
        self.seq = 0
        self.floor: dict[int, int] = {}  # per team, the last number the snapshot holds
        self.outbox: deque[Frame] = deque()
        self.paused = True  # until the first snapshot is sent
        self.draining = False
        self.stale = False
        self.resyncer: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()
        # Subscribe first, then read the counters and the snapshot: nothing falls in between.
        subscribed = await self.hub.join(self)
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
            await self._close(TRY_AGAIN_LATER)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "counted", False):
            self.counted = False
            metrics.WALL_CONNECTIONS.dec()
        self.closed = True
        resyncer = getattr(self, "resyncer", None)
        if resyncer is not None and resyncer is not asyncio.current_task():
            resyncer.cancel()
        if hasattr(self, "hub"):
            await self.hub.leave(self)

    async def _close(self, code: int) -> None:
        self.closed = True
        self.outbox.clear()
        await self.hub.leave(self)
        await self.close(code=code)

    # --- Frames (called by the hub) -----------------------------------------------------------

    def push(self, frame: Frame) -> None:
        """Queue a frame of the hub's; ``drain`` sends it."""
        if len(self.outbox) >= OUTBOX_LIMIT:
            # Not keeping up: what waits is replaced by a fresh snapshot.
            self.outbox.clear()
            self.request_resync()
            return
        self.outbox.append(frame)

    def _wants(self, frame: Frame) -> bool:
        if frame.team_id not in self.team_ids:
            # Still in flight when the wall was narrowed to fewer teams.
            return False
        if frame.moved_to is not None and frame.moved_to in self.team_ids:
            # Moved between two teams this wall shows: the agent frame already moved it.
            return False
        return frame.team_seq is None or frame.team_seq > self.floor.get(frame.team_id, 0)

    async def drain(self) -> None:
        """Send what waits in the outbox, in order (one drainer at a time)."""
        if self.draining or self.paused or self.closed:
            return
        self.draining = True
        try:
            while self.outbox and not self.paused:
                frame = self.outbox.popleft()
                if self._wants(frame):
                    await self._send_body(frame.body, frame.kind)
        finally:
            self.draining = False

    async def _send_body(self, body: str, kind: str) -> None:
        self.seq += 1
        await self.send(text_data=f'{{"seq": {self.seq}, {body}')
        metrics.WALL_FRAMES.labels(kind).inc()

    async def _send_snapshot(self) -> None:
        """Send a fresh snapshot, then what arrived meanwhile; callers hold ``self.lock``."""
        self.paused = True
        snapshot = await self.hub.snapshot(self.team_ids)
        if self.closed:
            return
        self.floor = {team_id: snapshot.team_seqs.get(team_id, 0) for team_id in self.team_ids}
        if self.seq:  # not the wall's first frame: a resync
            metrics.WALL_RESYNCS.inc()
        await self._send_body(snapshot.body, "snapshot")
        self.paused = False
        await self.drain()

    def request_resync(self) -> None:
        """Start over from a fresh snapshot soon (a lost message, an outbox overflow)."""
        self.stale = True
        if self.resyncer is None or self.resyncer.done():
            self.resyncer = asyncio.create_task(self._resync())

    async def _resync(self) -> None:
        async with self.lock:
            while self.stale and not self.closed:
                self.stale = False
                try:
                    await self._send_snapshot()
                except Exception:
                    # The database is down: the hub's next check tries again.
                    logger.warning("wall resync failed", exc_info=True)
                    self.stale = True
                    return

    # --- Rights (called by the hub) -----------------------------------------------------------

    async def read_rights(self) -> set[int] | None:
        """The user's rights read afresh (``_rights_now``), once for the walls of a session."""
        rights = await self.hub.shared_read(("rights", self.rights_key), self._read_rights_now)
        return None if rights is None else set(rights)

    def _read_rights_now(self) -> set[int] | None:
        return _rights_now(self.scope)

    async def follow_rights(self, team_ids: set[int] | None, *, resync: bool) -> None:
        """Follow the teams the user may see now; a snapshot if they changed (or asked); close
        the wall if its user may no longer watch.

        ``team_ids`` come from ``read_rights``: the user and session read afresh, so a
        deactivation or a logout elsewhere ends the wall. Called on a pushed change
        (``wall.rights``, ``wall.team_changed``) and by the hub's periodic check, which is also
        how a team the user may newly see (a new team for a manager) reaches an open wall.
        """
        async with self.lock:
            if self.closed:
                return
            if team_ids is None:
                await self._close(FORBIDDEN)
                return
            if team_ids == self.team_ids and not resync:
                return
            if team_ids != self.team_ids:
                await self.hub.retarget(self, set(team_ids))
            # The snapshot replaces the wall's whole view: tiles of a team no longer seen go.
            self.stale = False
            await self._send_snapshot()
