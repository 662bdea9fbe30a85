"""Period presets, the period before, and the intervals of a trend day: date arithmetic."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from reporting.pages import day_quarters
from reporting.periods import MAX_DAYS, Period, PeriodError, preset_period, resolve_period

# A Wednesday.
TODAY = date(2026, 3, 11)


@pytest.mark.parametrize(
    ("preset", "first", "last"),
    [
        ("today", date(2026, 3, 11), date(2026, 3, 11)),
        ("yesterday", date(2026, 3, 10), date(2026, 3, 10)),
        ("this_week", date(2026, 3, 9), date(2026, 3, 11)),
        ("last_7_days", date(2026, 3, 5), date(2026, 3, 11)),
        ("last_30_days", date(2026, 2, 10), date(2026, 3, 11)),
        ("this_month", date(2026, 3, 1), date(2026, 3, 11)),
        ("last_month", date(2026, 2, 1), date(2026, 2, 28)),
    ],
)
def test_each_preset_names_its_days(preset: str, first: date, last: date) -> None:
    period = preset_period(preset, TODAY)
    assert (period.first, period.last, period.preset) == (first, last, preset)


def test_last_month_in_january_is_december_of_the_year_before() -> None:
    period = preset_period("last_month", date(2027, 1, 3))
    assert (period.first, period.last) == (date(2026, 12, 1), date(2026, 12, 31))


def test_this_week_on_a_monday_is_that_day_alone() -> None:
    period = preset_period("this_week", date(2026, 3, 9))
    assert period.first == period.last == date(2026, 3, 9)


def test_the_previous_period_has_the_same_length_and_ends_the_day_before() -> None:
    period = preset_period("this_month", TODAY)  # 11 days
    before = period.previous()
    assert before.days == period.days == 11
    assert (before.first, before.last) == (date(2026, 2, 18), date(2026, 2, 28))
    today = preset_period("today", TODAY).previous()
    assert today.first == today.last == date(2026, 3, 10)


def test_a_preset_wins_over_dates_and_custom_dates_make_a_custom_period() -> None:
    assert resolve_period(TODAY, "yesterday", "2026-01-01", "2026-01-31").preset == "yesterday"
    period = resolve_period(TODAY, None, "2026-01-01", "2026-01-31")
    assert (period.first, period.last, period.preset) == (
        date(2026, 1, 1),
        date(2026, 1, 31),
        "custom",
    )
    assert resolve_period(TODAY, "custom", "2026-01-05", None) == Period(
        date(2026, 1, 5), date(2026, 1, 5), "custom"
    )


def test_nothing_asked_is_today() -> None:
    assert resolve_period(TODAY) == Period(TODAY, TODAY, "today")


@pytest.mark.parametrize(
    ("preset", "first", "last", "message"),
    [
        ("fortnight", None, None, "period:"),
        (None, "2026-13-01", None, "from:"),
        (None, "2026-03-01", "yesterday", "to:"),
        (None, "2026-03-02", "2026-03-01", "from: the first day must not be after"),
        (None, "2024-01-01", "2026-01-01", f"at most {MAX_DAYS} days"),
        (None, "0001-01-01", "0001-01-02", "years 1900"),
        ("custom", None, None, "from:"),
    ],
)
def test_a_bad_period_is_an_error_naming_the_parameter(
    preset: str | None, first: str | None, last: str | None, message: str
) -> None:
    with pytest.raises(PeriodError, match=message):
        resolve_period(TODAY, preset, first, last)


def test_a_year_including_a_leap_day_is_allowed() -> None:
    assert resolve_period(TODAY, None, "2028-01-01", "2028-12-31").days == MAX_DAYS


@pytest.mark.parametrize(
    ("day", "count", "repeated"),
    [
        (date(2026, 3, 29), 92, []),
        (date(2026, 10, 25), 100, ["02:00", "02:15", "02:30", "02:45"]),
        (date(2026, 6, 1), 96, []),
    ],
)
def test_a_trend_day_has_every_15_minute_interval_also_on_dst_days(
    settings: Any, day: date, count: int, repeated: list[str]
) -> None:
    settings.TIME_ZONE = "Europe/Paris"
    quarters = day_quarters(day)
    assert len(quarters) == count
    labels = [f"{q.astimezone(ZoneInfo('Europe/Paris')):%H:%M}" for q in quarters]
    assert sorted(label for label in set(labels) if labels.count(label) > 1) == repeated
    assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(quarters))
