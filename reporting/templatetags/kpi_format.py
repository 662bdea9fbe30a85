"""How the KPI pages write figures: durations as people read them, shares as percentages.

``1:02:45`` for an hour and more, ``3:05`` for minutes, ``42 s`` under a minute: never a raw
count of seconds. The same functions format the change against the previous period. Durations read
the same in every language; shares and counts use the page language's decimal and thousands
separators (``12.3 %`` in English, ``12,3 %`` in French and Dutch; docs/i18n.md).
"""

from __future__ import annotations

from django import template
from django.utils.formats import number_format

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
    """A share (0.123) as ``12.3 %`` (``12,3 %`` in French and Dutch); ``–`` for no value."""
    if share is None:
        return DASH
    value = round(share * 100, digits)
    text = f"{number_format(abs(value), digits, use_l10n=True)} %"
    return (MINUS + text) if value < 0 else text


def format_count(value: int | None) -> str:
    """An integer with the language's thousands separator (``12,345``, fr ``12 345``, nl
    ``12.345``); ``–`` for no value."""
    if value is None:
        return DASH
    return number_format(value, use_l10n=True, force_grouping=True)


def signed_number(value: float, digits: int) -> str:
    """``+1.5`` / ``−1.5`` (a true minus sign), with the language's decimal separator."""
    text = number_format(abs(value), digits or None, use_l10n=True)
    return ("+" if value >= 0 else MINUS) + text


@register.filter
def duration(seconds: float | None) -> str:
    return format_duration(seconds)


@register.filter
def percent(share: float | None) -> str:
    return format_percent(share)


@register.filter
def count(value: int | None) -> str:
    """An integer as the cards and tables show counts (``format_count``)."""
    return format_count(value)


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
