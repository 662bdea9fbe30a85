"""The KPI pages' periods: presets (today, last 7 days, last month ...) and the period before.

Pure date arithmetic, no ORM and no clock: the caller passes the site's today
(``queries.site_today()``), so every rule here is unit-tested alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from django.utils.formats import date_format
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

# The longest period a page shows: a year, and a leap year's extra day.
MAX_DAYS = 366

PRESETS: dict[str, StrOrPromise] = {
    "today": _("Today"),
    "yesterday": _("Yesterday"),
    "this_week": _("This week"),
    "last_7_days": _("Last 7 days"),
    "last_30_days": _("Last 30 days"),
    "this_month": _("This month"),
    "last_month": _("Last month"),
    "custom": _("Custom"),
}


class PeriodError(ValueError):
    """A period the pages cannot show; the message is written for the person who asked."""


@dataclass(frozen=True)
class Period:
    """The site days ``first`` to ``last``, both included."""

    first: date
    last: date
    preset: str = "custom"

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def is_one_day(self) -> bool:
        return self.first == self.last

    @property
    def label(self) -> str:
        # Day and month names in the page's language (Django's date formats).
        if self.is_one_day:
            return date_format(self.first, "D d M Y")
        return f"{date_format(self.first, 'd M Y')} – {date_format(self.last, 'd M Y')}"

    def previous(self) -> Period:
        """The period of the same length that ends the day before this one starts.

        "This month" on the 10th compares with the 10 days before the 1st, not with the whole
        previous month: a change is only meaningful between periods of equal length.
        """
        last = self.first - timedelta(days=1)
        return Period(last - timedelta(days=self.days - 1), last, "custom")


def _month_start(day: date) -> date:
    return day.replace(day=1)


def preset_period(preset: str, today: date) -> Period:
    """The period a preset names, seen on ``today`` (``custom`` is not a preset here)."""
    if preset == "today":
        return Period(today, today, preset)
    if preset == "yesterday":
        yesterday = today - timedelta(days=1)
        return Period(yesterday, yesterday, preset)
    if preset == "this_week":
        # ISO weeks start on Monday, as contact-center schedules and the heat map do.
        return Period(today - timedelta(days=today.weekday()), today, preset)
    if preset == "last_7_days":
        return Period(today - timedelta(days=6), today, preset)
    if preset == "last_30_days":
        return Period(today - timedelta(days=29), today, preset)
    if preset == "this_month":
        return Period(_month_start(today), today, preset)
    if preset == "last_month":
        last = _month_start(today) - timedelta(days=1)
        return Period(_month_start(last), last, preset)
    raise PeriodError(gettext("Unknown period %r.") % preset)


def _parse_day(raw: str, name: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise PeriodError(gettext("%s: write the date as YYYY-MM-DD.") % name) from None


def resolve_period(
    today: date, preset: str | None = None, first: str | None = None, last: str | None = None
) -> Period:
    """The period a page's query string asks for.

    A preset wins; without one, ``from``/``to`` make a custom period (a missing ``to`` is the
    same day as ``from``, a missing ``from`` the same as ``to``); with nothing, today.
    """
    if preset and preset != "custom":
        if preset not in PRESETS:
            raise PeriodError(gettext("period: choose one of %s.") % ", ".join(PRESETS))
        return preset_period(preset, today)
    if not first and not last:
        if preset == "custom":
            raise PeriodError(
                gettext("from: choose the first and the last day of a custom period.")
            )
        return preset_period("today", today)
    first_day = _parse_day(first, "from") if first else None
    last_day = _parse_day(last, "to") if last else None
    first_day = first_day or last_day
    last_day = last_day or first_day
    assert first_day is not None and last_day is not None
    if first_day > last_day:
        raise PeriodError(gettext("from: the first day must not be after the last."))
    period = Period(first_day, last_day, "custom")
    if period.days > MAX_DAYS:
        raise PeriodError(gettext("to: choose at most %s days.") % MAX_DAYS)
    # Outside these years a day boundary in some time zone is not a valid datetime.
    if first_day.year < 1900 or last_day.year > 9998:
        raise PeriodError(gettext("from: choose days between the years 1900 and 9998."))
    return period
