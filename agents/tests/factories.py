"""Contract-shaped events stamped relative to now, shared by the wall and browser tests."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.utils import timezone


def event(agent: str, type_: str, seconds_ago: float = 0, **fields: Any) -> dict[str, Any]:
    """One event for ``agent`` that occurred ``seconds_ago`` seconds ago, with a fresh id."""
    at = timezone.now() - timedelta(seconds=seconds_ago)
    return {
        "event_id": str(uuid.uuid4()),
        "type": type_,
        "agent": agent,
        "occurred_at": at.isoformat(),
        **fields,
    }
