"""What every adapter shares: the output type, refusals, ids and time parsing.

An adapter is a pure translation: a platform record (plus, where the platform needs it, stored
adapter state) in, events of our ingestion API (README, "The event API") out. No ORM, so each
adapter is unit-tested without a database; ``integrations.services`` feeds the output to
``agents.services.ingest_events``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_ID = 100  # event_id and agent are 1–100 characters in the ingestion API


class RecordRefused(Exception):
    """A record the adapter cannot translate; ``str()`` names the field and the problem."""


@dataclass
class Translated:
    """The events one platform record implies, in the order they happened."""

    events: list[dict[str, Any]] = field(default_factory=list)
    # external id → display name, for agents created on first sight.
    names: dict[str, str] = field(default_factory=dict)


def derive_id(prefix: str, *parts: str) -> str:
    """A repeatable event id from the platform's own ids: a redelivery gives the same id.

    Readable when it fits in 100 characters, else the prefix and a hash of the whole.
    """
    readable = ":".join((prefix, *parts))
    if len(readable) <= MAX_ID:
        return readable
    return f"{prefix}:h:{hashlib.sha256(readable.encode()).hexdigest()[:64]}"


def event(
    event_id: str, type_: str, agent: str, occurred_at: datetime, **fields: Any
) -> dict[str, Any]:
    """One event as the ingestion API takes it; fields given as None are left out."""
    body = {
        "event_id": event_id,
        "type": type_,
        "agent": agent,
        "occurred_at": occurred_at.isoformat(),
    }
    body.update({key: value for key, value in fields.items() if value is not None})
    return body


def parse_iso(value: Any, name: str) -> datetime:
    """An ISO 8601 instant that must carry its offset (``Z`` included)."""
    if not isinstance(value, str):
        raise RecordRefused(f"{name}: must be an ISO 8601 timestamp string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RecordRefused(f"{name}: not an ISO 8601 timestamp: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise RecordRefused(f"{name}: has no UTC offset: {value[:40]!r}")
    return parsed.astimezone(UTC)


def parse_epoch(value: Any, name: str, *, millis: bool = False) -> datetime:
    """Seconds (or milliseconds) since the epoch, as a decimal string or a number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RecordRefused(f"{name}: not a number: {str(value)[:40]!r}") from None
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        raise RecordRefused(f"{name}: not a valid time: {str(value)[:40]!r}")
    try:
        return datetime.fromtimestamp(number / 1000 if millis else number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise RecordRefused(f"{name}: out of range: {str(value)[:40]!r}") from None


def text(value: Any, name: str, *, required: bool = True, limit: int = MAX_ID) -> str:
    """A non-empty string field (cut to ``limit`` characters), or "" when optional and absent."""
    if value is None or value == "":
        if required:
            raise RecordRefused(f"{name}: is required")
        return ""
    if not isinstance(value, str):
        raise RecordRefused(f"{name}: must be a string")
    if required and len(value) > limit:
        raise RecordRefused(f"{name}: longer than {limit} characters")
    return value[:limit]
