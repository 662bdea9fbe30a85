"""Interactions as event sequences for reporting tests (they enter through ``ingest_event`` only).

``event`` is the test suite's one event builder (``agents.tests.factories``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from agents import services
from agents.tests.factories import event

__all__ = ["call", "event", "ingest"]


def ingest(*events: dict[str, Any]) -> list[str]:
    return [services.ingest_event(e).status for e in events]


def call(
    agent: str,
    cid: str,
    start: datetime,
    talk: float,
    acw: float | None,
    *,
    channel: str = "phone",
    hold: float = 0.0,
    code: str = "",
) -> list[dict[str, Any]]:
    """An interaction of ``talk`` seconds (``hold`` of them on hold), then ``acw`` seconds of
    ACW ended by the agent (None: the ACW is left to its timer)."""
    events = [event(agent, "interaction.started", start, interaction_id=cid, channel=channel)]
    if hold:
        events.append(
            event(agent, "interaction.held", start + timedelta(seconds=1), interaction_id=cid)
        )
        events.append(
            event(
                agent,
                "interaction.resumed",
                start + timedelta(seconds=1 + hold),
                interaction_id=cid,
            )
        )
    end = start + timedelta(seconds=talk + hold)
    events.append(event(agent, "interaction.ended", end, interaction_id=cid))
    if acw is not None:
        fields = {"wrap_up_code": code} if code else {}
        events.append(event(agent, "acw.ended", end + timedelta(seconds=acw), **fields))
    return events
