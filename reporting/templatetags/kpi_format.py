"""How the KPI pages write figures: durations as people read them, shares as percentages.

``1:02:45`` for an hour and more, ``3:05`` for minutes, ``42 s`` under a minute: never a raw
count of seconds. The same functions format the change against the previous period.
"""

from __future__ import annotations

from django import template

register = template.Library()

DASH = "–"
MINUS = "−"


def format_duration(seconds: float | None) -> str:
    """``42 s``, ``3:05`` or ``1:02:45`` (rounded to the second); ``–`` for no value."""
    if seconds is None:
        return DASH
    sign = MINUS if seconds < 0 else ""
    total = round(abs(seconds))
    if total < 60:
        return f"{sign}{total} s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}:{minutes:02d}:{secs:02d}"
    return f"{sign}{minutes}:{secs:02d}"


def format_percent(share: float | None, digits: int = 1) -> str:
    """A share (0.123) as ``12.3 %``; ``–`` for no value."""
    if share is None:
        return DASH
    value = round(share * 100, digits)
    text = f"{abs(value):.{digits}f} %"
    return (MINUS + text) if value < 0 else text


@register.filter
def duration(seconds: float | None) -> str:
    return format_duration(seconds)


@register.filter
def percent(share: float | None) -> str:
    return format_percent(share)


@register.filter
def count(value: int | None) -> str:
    """An integer with thin-space thousands (``12 345``), as the cards and tables show counts."""
    if value is None:
        return DASH
    return f"{value:,}".replace(",", "\u202f")


@register.filter
def get_item(mapping: dict | None, key: str) -> object:
    """``mapping[key]`` in a template (None when absent)."""
    return (mapping or {}).get(key)


def format_index(value: float | None) -> str:
    """An ACW index (average ÷ expected) with two decimals: ``1.25``; ``–`` for no value."""
    return DASH if value is None else f"{value:.2f}"


@register.filter
def index(value: float | None) -> str:
    return format_index(value)
