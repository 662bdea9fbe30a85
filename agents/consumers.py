"""The wall consumer: authenticate, subscribe to the user's teams, send a snapshot, forward."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from . import access, selectors
from .events import team_group


class WallConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not await database_sync_to_async(access.can_watch)(user):
            await self.close(code=4403)
            return
        self.seq = 0
        self.team_ids = await database_sync_to_async(access.visible_team_ids)(user)
        for team_id in self.team_ids:
            await self.channel_layer.group_add(team_group(team_id), self.channel_name)
        await self.accept()
        agents = await database_sync_to_async(selectors.agent_state_rows)(user)
        await self._send({"type": "snapshot", "agents": agents, "alerts": []})

    async def disconnect(self, code: int) -> None:
        for team_id in getattr(self, "team_ids", ()):
            await self.channel_layer.group_discard(team_group(team_id), self.channel_name)

    async def _send(self, frame: dict[str, Any]) -> None:
        self.seq += 1
        await self.send_json({**frame, "seq": self.seq})

    async def wall_agent(self, message: dict[str, Any]) -> None:
        await self._send({"type": "agent", "agent": message["agent"]})

    async def wall_agent_removed(self, message: dict[str, Any]) -> None:
        await self._send({"type": "agent_removed", "agent": message["agent"]})
