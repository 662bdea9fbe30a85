"""The walls' one subscription per server process: receive each message once, send it to many.

A wall socket has no channel of its own. The process's hub (one per event loop) subscribes to
each team group that at least one local wall shows, and to each user group of a local wall
(reference-counted by the walls that need it), reads every message once, and turns it into a
frame encoded once: every wall that shows the team gets the same text, behind its own ``seq``
(``WallConsumer.push``). docs/wall.md describes the frames; docs/design.md how they are kept.

Per team, the hub keeps what every wall of that team used to keep for itself:

- the numbering (``team_seq``, ``agents.events``): a number skipped and not turning up within
  ``GAP_GRACE_SECONDS`` means the layer dropped a message, and the team's walls resync;
- the coalescing: the first change after a quiet period goes out at once as an ``agent`` frame;
  changes in the next ``COALESCE_SECONDS`` are merged per agent into one ``agents`` frame;
- the per-agent ``version``: an older state published after a newer one is dropped.

Snapshots are read once per burst: walls that ask for the same teams while a read has not
started share it (``snapshot``); so do the rights reads of one session (``shared_read``). One
periodic check per process (``_check``) reads the team counters (a lost *last* message, a
counter gone backwards) and re-checks the rights of every wall, one read per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import redis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from . import events, selectors

if TYPE_CHECKING:
    from .consumers import WallConsumer

logger = logging.getLogger(__name__)

COALESCE_SECONDS = 0.05
# How long a skipped number may take to turn up before it counts as lost. Web processes (and
# threads) number their messages at commit and publish them a moment later, so consecutive
# numbers may arrive out of order, the more so on a loaded machine (ingest_event p99 of 80 to
# 480 ms in bench_wall at load average 6 to 17). A message really lost costs 0.5 s before its
# walls resync; a reordering taken for a loss would cost every wall of the team a snapshot.
GAP_GRACE_SECONDS = 0.5
# A jump of more numbers than this is not tracked number by number: the team resyncs.
MAX_TRACKED_GAP = 1000
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, OSError)


class Timing(Protocol):
    """Where the hub reads its periods (the consumer class; tests shorten them)."""

    seq_check_seconds: float
    rights_check_seconds: float


@dataclass(slots=True)
class Frame:
    """One frame for every wall of a team, encoded once.

    ``body`` is the JSON object without its opening brace: a wall sends ``{"seq": n, `` + body.
    ``team_seq`` is the highest team number the frame carries: a wall whose snapshot already
    holds it skips the frame. An ``agent_removed`` frame names the team the agent moved to
    (``moved_to``): a wall that shows that team keeps the agent.
    """

    team_id: int
    team_seq: int | None
    body: str
    moved_to: int | None = None
    kind: str = ""  # the frame's type, for the metrics


def encode(frame: dict[str, Any]) -> str:
    """A frame's JSON text without the opening brace (``Frame.body``)."""
    return json.dumps(frame)[1:]


@dataclass(slots=True)
class Snapshot:
    """A snapshot read once for a set of teams, shared by every wall that asked for it."""

    team_seqs: dict[int, int]
    body: str
    versions: dict[str, int]
    agent_teams: dict[str, int]


@dataclass(eq=False)
class _SharedRead:
    """A database read for several walls; they may join it until it starts (``started``)."""

    result: asyncio.Future[Any]
    started: bool = False


@dataclass(eq=False)
class TeamStream:
    """What the hub knows of one team's messages, and the local walls that show the team."""

    walls: set[WallConsumer] = field(default_factory=set)
    last: int | None = None
    missing: dict[int, float] = field(default_factory=dict)
    lost: bool = False
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending_seq: int | None = None
    window: asyncio.Task[None] | None = None


class WallHub:
    def __init__(self, layer: Any, timing: Timing) -> None:
        self.layer = layer
        self.timing = timing
        self.channel: str | None = None
        self.walls: set[WallConsumer] = set()
        self.teams: dict[int, TeamStream] = {}
        self.users: dict[int, set[WallConsumer]] = {}
        self.versions: dict[str, int] = {}
        self.agent_teams: dict[str, int] = {}
        self.reads: dict[Hashable, _SharedRead] = {}
        self.running_reads: set[asyncio.Task[None]] = set()
        self.subscriptions = asyncio.Lock()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.reader: asyncio.Task[None] | None = None
        self.checker: asyncio.Task[None] | None = None

    # --- Subscriptions ------------------------------------------------------------------------

    async def join(self, wall: WallConsumer) -> bool:
        """Subscribe (once per process) to the wall's teams and user; False if Redis is down.

        One retry: after a Redis restart, the layer's pub/sub connection in a process that had
        no wall subscribed (so nothing was reading from it) is still the dead one, and the
        first subscribe fails on it; redis-py reconnects for the next command.
        """
        async with self.subscriptions:
            for attempt in range(2):
                try:
                    await self._start()
                    await self._subscribe(wall.team_ids, wall.user_id)
                    break
                except REDIS_DOWN:
                    logger.info("wall subscribe failed (attempt %d)", attempt + 1, exc_info=True)
            else:
                with contextlib.suppress(*REDIS_DOWN):
                    await self._prune()
                return False
            self.walls.add(wall)
            self.users.setdefault(wall.user_id, set()).add(wall)
            for team_id in wall.team_ids:
                self.teams[team_id].walls.add(wall)
            return True

    async def retarget(self, wall: WallConsumer, team_ids: set[int]) -> None:
        """Move a wall to these teams (its rights changed)."""
        async with self.subscriptions:
            await self._subscribe(team_ids, wall.user_id)
            for team_id in wall.team_ids - team_ids:
                self.teams[team_id].walls.discard(wall)
            for team_id in team_ids:
                self.teams[team_id].walls.add(wall)
            wall.team_ids = team_ids
            await self._prune()

    async def leave(self, wall: WallConsumer) -> None:
        """Forget a wall; unsubscribe from what no local wall needs any more."""
        if wall not in self.walls:
            return
        async with self.subscriptions:
            self.walls.discard(wall)
            self.users.get(wall.user_id, set()).discard(wall)
            for stream in self.teams.values():
                stream.walls.discard(wall)
            try:
                await self._prune()
            except REDIS_DOWN:
                # Redis is down: its subscriptions went with it.
                logger.info("wall unsubscribe failed", exc_info=True)

    async def _subscribe(self, team_ids: Iterable[int], user_id: int) -> None:
        assert self.channel is not None
        if user_id not in self.users:
            await self.layer.group_add(events.user_group(user_id), self.channel)
            self.users[user_id] = set()
        for team_id in team_ids:
            if team_id not in self.teams:
                await self.layer.group_add(events.team_group(team_id), self.channel)
                self.teams[team_id] = TeamStream()

    async def _prune(self) -> None:
        """Unsubscribe from the groups no local wall needs; stop when no wall is left."""
        for team_id, stream in list(self.teams.items()):
            if not stream.walls:
                del self.teams[team_id]
                if stream.window is not None:
                    stream.window.cancel()
                if self.channel is not None:
                    await self.layer.group_discard(events.team_group(team_id), self.channel)
        for user_id, walls in list(self.users.items()):
            if not walls:
                del self.users[user_id]
                if self.channel is not None:
                    await self.layer.group_discard(events.user_group(user_id), self.channel)
        if not self.walls:
            self._stop()

    async def _start(self) -> None:
        if self.channel is None:
            self.channel = await self.layer.new_channel()
        if self.reader is None:
            self.reader = asyncio.create_task(self._read(self.channel))
            self.checker = asyncio.create_task(self._check())

    def _stop(self) -> None:
        for task in (self.reader, self.checker, *self.tasks):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        # Cancelling the reader ends the channel's subscription (the pub/sub layer's receive).
        self.reader = self.checker = self.channel = None
        self.tasks.clear()
        self.versions.clear()
        self.agent_teams.clear()

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # --- Layer messages -----------------------------------------------------------------------

    async def _read(self, channel: str) -> None:
        while self.reader is asyncio.current_task():
            try:
                message = await self.layer.receive(channel)
            except Exception:
                # Redis is down: the layer reconnects; the walls resync on the numbering.
                logger.warning("wall hub receive failed; retrying", exc_info=True)
                await asyncio.sleep(1)
                continue
            try:
                await self._dispatch(message)
            except Exception:
                logger.exception("wall message %r not handled", message.get("type"))

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "wall.rights":
            user_id = message.get("user_id")
            walls = self.users.get(user_id, set()) if user_id is not None else self.walls
            self._spawn(self.check_rights(walls, resync=False))
            return
        team_id, seq = message.get("team_id"), message.get("team_seq")
        stream = self.teams.get(team_id)  # type: ignore[arg-type]
        if stream is None or team_id is None or not self._is_new(stream, seq):
            # Not a team a local wall shows (still in flight after the last one left), or a
            # number already seen.
            return
        if kind == "wall.agent":
            await self._agent_changed(team_id, stream, message["agent"], seq)
        elif kind == "wall.agent_removed":
            await self._agent_removed(team_id, stream, message["agent"], seq)
        elif kind == "wall.alert":
            await self._flush(team_id, stream)
            frame = {"type": "alert", "alert": message["alert"]}
            await self._deliver(stream, Frame(team_id, seq, encode(frame), kind=frame["type"]))
        elif kind == "wall.team_changed":
            # Who may see the team, its name or its policies changed: every wall of the team
            # re-checks its user's rights and starts over from a snapshot.
            stream.pending.clear()
            self._spawn(self.check_rights(stream.walls, resync=True))
        if stream.missing or stream.lost:
            self._open_window(team_id, stream)

    async def _agent_changed(
        self, team_id: int, stream: TeamStream, payload: dict[str, Any], seq: int | None
    ) -> None:
        external_id, version = payload["agent"], payload.get("version", 0)
        if version < self.versions.get(external_id, 0):
            # An older state that another web process published after a newer one.
            return
        self.versions[external_id] = version
        self.agent_teams[external_id] = team_id
        stream.pending[external_id] = payload
        stream.pending_seq = max(stream.pending_seq or 0, seq or 0)
        if stream.window is None or stream.window.done():
            # Leading edge: a lone change goes out at once; followers are coalesced.
            await self._flush(team_id, stream)
        self._open_window(team_id, stream)

    async def _agent_removed(
        self, team_id: int, stream: TeamStream, external_id: str, seq: int | None
    ) -> None:
        now_in = self.agent_teams.get(external_id)
        moved_to = now_in if now_in is not None and now_in != team_id else None
        if moved_to is None:
            self.agent_teams.pop(external_id, None)
        stream.pending.pop(external_id, None)
        frame = {"type": "agent_removed", "agent": external_id}
        await self._deliver(
            stream, Frame(team_id, seq, encode(frame), moved_to, kind="agent_removed")
        )

    # --- Numbering ----------------------------------------------------------------------------

    def _is_new(self, stream: TeamStream, seq: int | None) -> bool:
        """Record ``team_seq`` and say whether the message is news for the team's walls."""
        if seq is None:
            return True
        if stream.last is None:
            stream.last = seq
            return True
        if seq <= stream.last:
            # Either a late arrival we were waiting for, or already seen.
            return stream.missing.pop(seq, None) is not None
        if seq - stream.last > MAX_TRACKED_GAP:
            stream.lost = True
        else:
            now = asyncio.get_running_loop().time()
            for skipped in range(stream.last + 1, seq):
                stream.missing[skipped] = now
        stream.last = seq
        return True

    def _lost_something(self, stream: TeamStream) -> bool:
        if stream.lost:
            return True
        if not stream.missing:
            return False
        oldest = min(stream.missing.values())
        return asyncio.get_running_loop().time() - oldest >= GAP_GRACE_SECONDS

    # --- Coalescing and delivery --------------------------------------------------------------

    def _open_window(self, team_id: int, stream: TeamStream) -> None:
        if stream.window is None or stream.window.done():
            stream.window = asyncio.create_task(self._run_window(team_id, stream))

    async def _run_window(self, team_id: int, stream: TeamStream) -> None:
        """Send what accumulated, every ``COALESCE_SECONDS``, until nothing is waiting."""
        while True:
            await asyncio.sleep(COALESCE_SECONDS)
            try:
                if self._lost_something(stream):
                    self._resync_team(
                        stream, f"team {team_id}: numbers {sorted(stream.missing)} lost"
                    )
                elif stream.pending:
                    await self._flush(team_id, stream)
                elif not stream.missing:
                    stream.window = None
                    return
            except Exception:
                logger.exception("wall window of team %s failed", team_id)
                stream.window = None
                return

    def _resync_team(self, stream: TeamStream, why: str, *, restart: bool = False) -> None:
        """A message of the team was lost: its walls start over from a fresh snapshot (which
        holds whatever was waiting). ``restart``: the numbering itself started over."""
        logger.info("wall resync of %d walls: %s", len(stream.walls), why)
        stream.missing.clear()
        stream.pending.clear()
        stream.pending_seq = None
        stream.lost = False
        if restart:
            stream.last = None
        for wall in stream.walls:
            wall.request_resync()

    async def _flush(self, team_id: int, stream: TeamStream) -> None:
        if not stream.pending:
            return
        agents = list(stream.pending.values())
        seq = stream.pending_seq
        stream.pending.clear()
        stream.pending_seq = None
        if len(agents) == 1:
            frame: dict[str, Any] = {"type": "agent", "agent": agents[0]}
        else:
            frame = {"type": "agents", "agents": agents}
        await self._deliver(stream, Frame(team_id, seq, encode(frame), kind=frame["type"]))

    async def _deliver(self, stream: TeamStream, frame: Frame) -> None:
        walls = list(stream.walls)
        for wall in walls:
            wall.push(frame)
        for wall in walls:
            try:
                await wall.drain()
            except Exception:
                # One socket's failure is not the others': it is closing, or resyncs later.
                logger.warning("wall send failed", exc_info=True)

    # --- Snapshots ----------------------------------------------------------------------------

    async def snapshot(self, team_ids: set[int]) -> Snapshot:
        """A snapshot of these teams read after this call (callers are subscribed already).

        Walls asking for the same teams share a read that has not started yet: its team
        counters are read after each of them subscribed, so each may rely on it.
        """
        teams = frozenset(team_ids)
        snapshot: Snapshot = await self.shared_read(
            ("snapshot", teams), lambda: _read_snapshot(teams)
        )
        for external_id, version in snapshot.versions.items():
            if version > self.versions.get(external_id, 0):
                self.versions[external_id] = version
            self.agent_teams.setdefault(external_id, snapshot.agent_teams[external_id])
        for team_id, seq in snapshot.team_seqs.items():
            stream = self.teams.get(team_id)
            if stream is not None and stream.last is None:
                stream.last = seq
        return snapshot

    async def shared_read(self, key: Hashable, read: Callable[[], Any]) -> Any:
        """``read()`` in the database thread, shared by the callers with the same ``key`` that
        come before it starts: each of them gets a read that began after it asked."""
        shared = self.reads.get(key)
        if shared is None or shared.started:
            shared = _SharedRead(asyncio.get_running_loop().create_future())
            self.reads[key] = shared
            # Not one of ``self.tasks``: a wall may be waiting for it while the hub stops.
            task = asyncio.ensure_future(self._run_read(key, shared, read))
            self.running_reads.add(task)
            task.add_done_callback(self.running_reads.discard)
        return await asyncio.shield(shared.result)

    async def _run_read(self, key: Hashable, shared: _SharedRead, read: Callable[[], Any]) -> None:
        def start_and_read() -> Any:
            shared.started = True  # from here on, nobody may join
            return read()

        try:
            value = await database_sync_to_async(start_and_read)()
        except Exception as error:
            shared.result.set_exception(error)
        else:
            shared.result.set_result(value)
        finally:
            if self.reads.get(key) is shared:
                del self.reads[key]
        # Retrieved by every waiter; mark it so a read nobody awaited logs nothing.
        shared.result.exception()

    # --- The periodic check -------------------------------------------------------------------

    async def check_rights(self, walls: Iterable[WallConsumer], *, resync: bool) -> None:
        """Re-read the rights behind these walls, once per session, and let each follow them."""
        by_session: dict[Hashable, list[WallConsumer]] = {}
        for wall in list(walls):
            by_session.setdefault(wall.rights_key, []).append(wall)
        for members in by_session.values():
            try:
                rights = await members[0].read_rights()
            except Exception:
                # The database is down: keep the walls until their users can be checked again.
                logger.warning("wall rights check failed", exc_info=True)
                continue
            # Together, so that the walls that resync share their snapshot.
            await asyncio.gather(
                *(wall.follow_rights(rights, resync=resync) for wall in members),
                return_exceptions=True,
            )

    async def _check(self) -> None:
        """One loop for the process: the team counters and every wall's rights.

        A counter that moved past what the hub received and stayed there means the *last*
        message was lost; one that went backwards means Redis restarted. Either way the team's
        walls resync. The same round re-checks rights: changes that pushed nothing (a shell, an
        expired session) reach open walls this way, and so do teams a user may newly see.
        """
        read = sync_to_async(events.team_seqs, thread_sensitive=False)
        previous: dict[int, int] = {}
        # Until stopped (``_stop``), even from within this loop (a wall closed by its rights).
        while self.checker is asyncio.current_task():
            timing = self.timing
            await asyncio.sleep(min(timing.seq_check_seconds, timing.rights_check_seconds))
            # What the hub had received before the read: messages keep arriving during it.
            received = {team_id: stream.last for team_id, stream in self.teams.items()}
            try:
                current = await read(set(received))
            except Exception:
                logger.warning("lost-message check failed", exc_info=True)
            else:
                for team_id, seq in current.items():
                    stream = self.teams.get(team_id)
                    last = received.get(team_id)
                    if stream is None or stream.last is None or last is None:
                        continue
                    if seq < last:
                        self._resync_team(
                            stream, f"team {team_id}: counter went back", restart=True
                        )
                    elif previous.get(team_id, 0) > stream.last:
                        self._resync_team(stream, f"team {team_id}: last message lost")
                previous = current
            for wall in list(self.walls):
                if wall.stale:
                    # A snapshot that failed (the database was down) is tried again.
                    wall.request_resync()
            await self.check_rights(self.walls, resync=False)


def _read_snapshot(team_ids: frozenset[int]) -> Snapshot:
    read = selectors.wall_snapshot(set(team_ids))
    body = encode({"type": "snapshot", "agents": read["agents"], "alerts": read["alerts"]})
    return Snapshot(
        team_seqs={team_id: int(seq) for team_id, seq in read["team_seqs"].items()},
        body=body,
        versions={agent["agent"]: agent["version"] for agent in read["agents"]},
        agent_teams=read["agent_teams"],
    )


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WallHub] = weakref.WeakKeyDictionary()


def hub_for(layer: Any, timing: Timing) -> WallHub:
    """The hub of the running event loop (one per server process) for this channel layer."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None or hub.layer is not layer:
        hub = _hubs[loop] = WallHub(layer, timing)
    return hub
