"""The one builder of events for tests and benchmarks, the fixed day the read API tests share,
and their API client helpers.

Every test module and bench script that needs an event dict gets it from ``event()``; modules
that count time their own way (offsets from a fixed base, clock times on a fixed day) turn their
time into a datetime and call it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from rest_framework.test import APIClient


def event(
    agent: str, type_: str, at: datetime | float = 0, *, event_id: Any = None, **fields: Any
) -> dict[str, Any]:
    """One event of ``type_`` for ``agent``, with a fresh unique ``event_id`` unless given
    (any value, even an invalid one, for validation tests).

    ``at`` is when it occurred: an aware datetime, or a number of seconds before now.
    ``fields`` are the type's own fields (``interaction_id``, ``channel``, ``reason`` ...).
    """
    occurred_at = at if isinstance(at, datetime) else timezone.now() - timedelta(seconds=at)
    return {
        "event_id": str(uuid.uuid4()) if event_id is None else event_id,
        "type": type_,
        "agent": agent,
        "occurred_at": occurred_at.isoformat(),
        **fields,
    }


# --- One fixed day ---------------------------------------------------------------------------
# The read API tests replay a day whose figures are computed by hand. Time stands still at NOW
# (the root conftest's ``frozen_now`` fixture), the afternoon of DAY, so the morning is past.

DAY = "2026-11-02"
NOW = datetime.fromisoformat(f"{DAY}T15:00:00+00:00")


def at(clock: str, day: str = DAY) -> datetime:
    """``clock`` (HH:MM:SS, UTC) on ``day`` (YYYY-MM-DD)."""
    return datetime.fromisoformat(f"{day}T{clock}+00:00")


def send(agent: str, type_: str, clock: str, day: str = DAY, **fields: Any) -> None:
    """Ingest one event at ``clock`` on ``day`` through ``ingest_event``; it must be accepted."""
    from agents import services

    result = services.ingest_event(event(agent, type_, at(clock, day), **fields))
    assert result.status == "accepted", result


def call(agent: str, cid: str, start: str, end: str, day: str = DAY, **fields: Any) -> None:
    """A phone interaction from ``start`` to ``end`` (clock times on ``day``), no ACW end."""
    send(agent, "interaction.started", start, day, interaction_id=cid, channel="phone", **fields)
    send(agent, "interaction.ended", end, day, interaction_id=cid)


def client_for(user: Any) -> APIClient:
    """An API client logged in as ``user`` (a session, as the pages use)."""
    client = APIClient()
    client.force_login(user)
    return client


def by_key(response: Any) -> dict[str, dict[str, Any]]:
    """A KPI answer's rows by their ``key``; the answer must be a 200."""
    assert response.status_code == 200, response.json()
    return {row["key"]: row for row in response.json()["rows"]}
