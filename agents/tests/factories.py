"""The one builder of events for tests and benchmarks: events as a telephony system posts them.

Every test module and bench script that needs an event dict gets it from ``event()``; modules
that count time their own way (offsets from a fixed base, clock times on a fixed day) turn their
time into a datetime and call it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone


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
