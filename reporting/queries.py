"""KPI definitions (docs/api.md), each written once and used by the API, pages, alerts and
exports.

An interaction counts in the period in which it ended, for the team its agent belonged to
when it ended (``Interaction.team``). ``acw_seconds`` is the time from the interaction's end to
the close of the ACW that followed it (``AcwSession.interaction``); an ACW still open counts the
time elapsed so far (at most to its deadline, where the system closes it).

``kpi_rows()`` reads the rollups (``reporting.models.KpiRollup`` and the team tables): month,
week and day rows for whole site days in the range, the 15-minute team rows for the rest, the
raw rows for whatever the rollups cannot answer exactly (intervals marked dirty since their last
rollup, 15-minute intervals where agents are named or codes grouped, and range edges that are
not on a 15-minute boundary), plus the open ACWs. ``kpi_rows_raw()`` computes the same figures from the
raw rows alone; it is the reference the rollups are tested against. ``acw_distribution()`` and
``acw_distribution_raw()`` do the same for the histogram of ACW durations
(``reporting.models.TeamAcwDurationRollup``).

Rows are grouped by one of ``GROUP_BYS`` (see ``KpiRow.key``) and filtered by ``KpiFilter``;
``reporting.params`` turns a request's query string into both, scoped to what the user may see.
"""

from __future__ import annotations

import heapq
import itertools
import math
import operator
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar, copy_context
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce
from json.encoder import encode_basestring
from typing import Any, Literal, TypeVar, get_args
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import DatabaseError, connection, transaction
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    DateTimeField,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    IntegerField,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Extract, Floor, Greatest
from django.utils import timezone

from agents.models import AcwSession, Agent, Channel, Interaction, Team, WrapUpCode

from .models import (
    DirtyInterval,
    Grain,
    KpiRollup,
    SiteIntervalRollup,
    StaleBucket,
    TeamAcwDurationRollup,
    TeamHourRollup,
    TeamIntervalRollup,
    TeamKpiRollup,
)

GroupBy = Literal[
    "agent", "team", "department", "channel", "wrap_up_code", "day", "interval", "weekday_hour"
]
GROUP_BYS: tuple[str, ...] = get_args(GroupBy)
TIME_GROUPS = frozenset({"day", "interval", "weekday_hour"})
"""Groupings whose key is a time: rows of different keys never share an interaction."""

QUARTER = timedelta(minutes=15)

# Beyond this many distinct raw ranges (a long backlog of dirty intervals, e.g. after the
# worker was down), one raw query over the whole period is cheaper than a huge OR of ranges.
MAX_RAW_RANGES = 200


@dataclass
class KpiRow:
    """The KPIs of one group of interactions (those that ended in the period).

    ``key`` identifies the group (``group_by``): the agent's external id, the team's name, the
    department's name (``""``: teams without one), the channel, the wrap-up code (``""``: none
    given), the site day ``YYYY-MM-DD``, the 15-minute interval's start (ISO 8601 with the site
    offset), or ``"D-HH"`` (ISO weekday 1-7 and hour of the site time zone). ``name`` is what a
    person reads (agent or team name, channel label, wrap-up code label ...).

    Stored measures (sums over the group's interactions):

    - ``interactions``: interactions that ended in the period.
    - ``talk_seconds``: start to end minus hold; ``hold_seconds``: between held and resumed.
    - ``acw_seconds``: from each interaction's end to the close of its ACW (an open ACW: the time
      elapsed so far, up to its deadline).
    - ``acw_count``: ACW sessions that followed those interactions (open ones included).
    - ``timeouts``: ACWs the system closed at their deadline (reason ``timeout``).
    - ``extended``: ACWs extended at least once (open ones included).
    - ``too_short``: closed ACWs shorter than their policy's minimum, where it sets one.
    - ``norm_acw_seconds``: wrap-up code rows only: the code's expected ACW (None if not set).
    - ``expected_acw_total`` / ``expected_interactions``: the sum of the interactions' expected
      ACW for their codes, and how many interactions had one (``kpi_rows`` given the norms of
      ``reporting.coaching``; 0 elsewhere): the mix-adjusted expected ACW and the ACW index
      follow.
    """

    key: str
    name: str
    interactions: int = 0
    talk_seconds: float = 0.0
    hold_seconds: float = 0.0
    acw_seconds: float = 0.0
    acw_count: int = 0
    timeouts: int = 0
    extended: int = 0
    too_short: int = 0
    norm_acw_seconds: float | None = None
    expected_acw_total: float = 0.0
    expected_interactions: int = 0

    @property
    def expected_acw_seconds(self) -> float | None:
        """The ACW expected for this call mix = Σ over codes (count × code's expected ACW) ÷
        interactions; None unless every interaction had an expected ACW (docs/coaching.md)."""
        if not self.interactions or self.expected_interactions != self.interactions:
            return None
        return self.expected_acw_total / self.interactions

    @property
    def acw_index(self) -> float | None:
        """ACW index = average ACW ÷ expected ACW for the mix (1.0: as expected)."""
        expected = self.expected_acw_seconds
        return self.avg_acw_seconds / expected if expected else None

    @property
    def handle_seconds(self) -> float:
        return self.talk_seconds + self.hold_seconds + self.acw_seconds

    @property
    def avg_acw_seconds(self) -> float:
        """Average ACW per interaction = acw_seconds / interactions (all handled interactions)."""
        return self.acw_seconds / self.interactions if self.interactions else 0.0

    @property
    def aht_seconds(self) -> float:
        """AHT = (talk + hold + ACW) / interactions."""
        return self.handle_seconds / self.interactions if self.interactions else 0.0

    @property
    def acw_share(self) -> float:
        """ACW share of handle time = ACW / (talk + hold + ACW)."""
        return self.acw_seconds / self.handle_seconds if self.handle_seconds else 0.0

    @property
    def avg_talk_seconds(self) -> float:
        """Talk part of AHT = talk_seconds / interactions."""
        return self.talk_seconds / self.interactions if self.interactions else 0.0

    @property
    def avg_hold_seconds(self) -> float:
        """Hold part of AHT = hold_seconds / interactions."""
        return self.hold_seconds / self.interactions if self.interactions else 0.0

    @property
    def timeout_share(self) -> float:
        """Timeouts % = timeouts / acw_count."""
        return self.timeouts / self.acw_count if self.acw_count else 0.0

    @property
    def extended_share(self) -> float:
        """Extended % = extended / acw_count."""
        return self.extended / self.acw_count if self.acw_count else 0.0

    @property
    def too_short_share(self) -> float:
        """Too-short % = too_short / acw_count."""
        return self.too_short / self.acw_count if self.acw_count else 0.0

    def add(self, other: KpiRow) -> None:
        """Add ``other``'s stored measures (``SUMMED`` and the expected ACW's two sums) to this
        row; the ratios follow from them. Spelled out: it runs once per group and code."""
        self.interactions += other.interactions
        self.talk_seconds += other.talk_seconds
        self.hold_seconds += other.hold_seconds
        self.acw_seconds += other.acw_seconds
        self.acw_count += other.acw_count
        self.timeouts += other.timeouts
        self.extended += other.extended
        self.too_short += other.too_short
        self.expected_acw_total += other.expected_acw_total
        self.expected_interactions += other.expected_interactions

    @classmethod
    def total(cls, rows: Iterable[KpiRow], key: str = "total", name: str = "Total") -> KpiRow:
        """The row of all ``rows`` together (e.g. a page's headline figures)."""
        out = cls(key, name)
        for row in rows:
            out.add(row)
        return out

    def values(self, *, norm: bool = False) -> tuple[Any, ...]:
        """The API's row (docs/api.md) as values in its field order (``row_fields``), rounded
        as the API writes them; ``norm``: wrap-up code rows."""
        expected, index = self.expected_acw_seconds, self.acw_index
        return (
            self.key,
            self.name,
            self.interactions,
            round(self.talk_seconds, 3),
            round(self.hold_seconds, 3),
            round(self.acw_seconds, 3),
            round(self.avg_acw_seconds, 3),
            round(self.aht_seconds, 3),
            round(self.acw_share, 4),
            self.acw_count,
            self.timeouts,
            self.extended,
            self.too_short,
            *((self.norm_acw_seconds,) if norm else ()),
            None if expected is None else round(expected, 3),
            None if index is None else round(index, 3),
        )

    def as_dict(self, *, norm: bool = False) -> dict[str, Any]:
        """The API's row (docs/api.md), in its field order; ``norm``: wrap-up code rows."""
        return dict(zip(_ROW_FIELDS[norm], self.values(norm=norm), strict=True))

    def as_json(self, *, norm: bool = False) -> str:
        """``as_dict`` as JSON text, exactly as the API's JSON renderer writes it (compact,
        UTF-8 kept), without the dict: a year of 15-minute rows is 35,000 of them."""
        return self._formatted(_ROW_JSON[norm], encode_basestring, _json_number, norm=norm)

    def as_csv(self, *, norm: bool = False) -> str:
        """``values`` as a CSV line (None as an empty cell), exactly as ``csv.writer`` writes
        it, with one ``%``-format: only the key and the name may need quotes."""
        return self._formatted(_ROW_CSV[norm], _csv_text, _csv_number, norm=norm)

    def _formatted(
        self,
        template: str,
        text: Callable[[str], str],
        number: Callable[[float | None], Any],
        *,
        norm: bool,
    ) -> str:
        """``values`` through one ``%``-format: the key and the name through ``text``, the
        values that may be null through ``number``."""
        key, name, *numbers, expected, index = self.values(norm=norm)
        if norm:
            numbers[-1] = number(numbers[-1])
        return template % (text(key), text(name), *numbers, number(expected), number(index))


def _json_number(value: float | None) -> float | str:
    """A value that may be null, for a ``%s`` slot of ``_ROW_JSON``."""
    return "null" if value is None else value


def _csv_number(value: float | None) -> float | str:
    return "" if value is None else value


# What makes ``csv.writer`` (the excel dialect, minimal quoting) quote a text.
_CSV_SPECIAL = frozenset(',"\r\n')


def _csv_text(text: str) -> str:
    """A text cell as ``csv.writer`` writes it: in quotes, its quotes doubled, when it holds a
    comma, a quote or a line break."""
    if _CSV_SPECIAL.isdisjoint(text):
        return text
    return '"' + text.replace('"', '""') + '"'


SUMMED = (
    "interactions",
    "talk_seconds",
    "hold_seconds",
    "acw_seconds",
    "acw_count",
    "timeouts",
    "extended",
    "too_short",
)
"""The stored measures of a ``KpiRow``: every other figure is computed from them."""


_ROW_FIELDS = {
    norm: (
        "key",
        "name",
        "interactions",
        "talk_seconds",
        "hold_seconds",
        "acw_seconds",
        "avg_acw_seconds",
        "aht_seconds",
        "acw_share",
        "acw_count",
        "timeouts",
        "extended",
        "too_short",
        *(("norm_acw_seconds",) if norm else ()),
        "expected_acw_seconds",
        "acw_index",
    )
    for norm in (False, True)
}
# A row's JSON object with a ``%s`` slot per value: numbers as json.dumps writes them (``%s``
# of an int or a float is its repr), strings and null filled in by ``KpiRow.as_json``; only
# the fields that may be null are looked at one by one.
_ROW_JSON = {
    norm: "{" + ",".join(f'"{name}":%s' for name in names) + "}"
    for norm, names in _ROW_FIELDS.items()
}


# A row's CSV line: a ``%s`` slot per value (see ``_ROW_JSON``), the excel dialect's "\r\n".
_ROW_CSV = {norm: ",".join(["%s"] * len(names)) + "\r\n" for norm, names in _ROW_FIELDS.items()}


def row_fields(group_by: str) -> list[str]:
    """The field names of a row for ``group_by``, in the JSON order (the CSV header)."""
    return list(_ROW_FIELDS[group_by == "wrap_up_code"])


def rows_json(rows: Iterable[KpiRow], group_by: str) -> bytes:
    """``{"rows": [...]}`` of the API for ``rows`` (``KpiRow.as_json``), as UTF-8: the same
    bytes as DRF's JSON renderer gives for the dicts, which also escapes U+2028 and U+2029
    (line separators JavaScript does not accept in a string)."""
    norm = group_by == "wrap_up_code"
    text = '{"rows":[' + ",".join(row.as_json(norm=norm) for row in rows) + "]}"
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


# --- What one interaction contributes -------------------------------------------------------

RAW_FIELDS = (
    "agent_id",
    "team_id",
    "channel",
    "ended_at",
    "talk_seconds",
    "hold_seconds",
    "acw__ended_at",
    "acw__duration_seconds",
    "acw__wrap_up_code",
    "acw__extensions",
    "acw__end_reason",
    "acw__overrun",
    "acw__too_short",
)
"""What the measures of one ended interaction are computed from (``Measures.add_interaction``)."""


@dataclass
class Measures:
    """What a rollup row adds up. ACW measures count closed ACWs only (see ``KpiRollup``); an
    open ACW is added at query time (``_add_open_acws``)."""

    interactions: int = 0
    talk_seconds: float = 0.0
    hold_seconds: float = 0.0
    acw_seconds: float = 0.0
    acw_count: int = 0
    extensions: int = 0
    extended: int = 0
    timeouts: int = 0
    overruns: int = 0
    too_short: int = 0

    def add_interaction(self, row: dict[str, Any]) -> None:
        """One ended interaction (``RAW_FIELDS``) and, if closed, its ACW."""
        self.interactions += 1
        self.talk_seconds += row["talk_seconds"]
        self.hold_seconds += row["hold_seconds"]
        if row["acw__ended_at"] is not None:
            self.acw_seconds += row["acw__duration_seconds"] or 0.0
            self.acw_count += 1
            self.extensions += row["acw__extensions"] or 0
            self.extended += bool(row["acw__extensions"])
            self.timeouts += row["acw__end_reason"] == "timeout"
            self.overruns += bool(row["acw__overrun"])
            self.too_short += bool(row["acw__too_short"])

    def add(self, other: Measures | dict[str, Any]) -> None:
        for name in MEASURES:
            value = getattr(other, name) if isinstance(other, Measures) else other[name]
            setattr(self, name, getattr(self, name) + value)


MEASURES = tuple(f.name for f in fields(Measures))


def acw_whole_seconds(row: Mapping[str, Any]) -> int | None:
    """An interaction's ACW in the histogram: whole seconds rounded down; None while the ACW is
    open (its length is not known yet) or when there was none."""
    if row["acw__ended_at"] is None or row["acw__duration_seconds"] is None:
        return None
    return max(0, math.floor(row["acw__duration_seconds"]))


# --- Intervals ------------------------------------------------------------------------------


def site_tz() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def bucket_end(grain: str, start: datetime) -> datetime:
    """The end of the ``grain`` bucket starting at ``start``."""
    if grain == Grain.QUARTER:
        return start + QUARTER
    if grain == Grain.MONTH:
        return site_month_bounds(site_day(start))[1]
    if grain == Grain.WEEK:
        return site_week_bounds(site_day(start))[1]
    day = site_day(start)
    return site_day_bounds(day, day)[1]


def site_day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[start of ``first``, start of the day after ``last``) in the site time zone."""
    tz = site_tz()
    start = datetime.combine(first, time.min, tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz)
    return start, end


def site_month_bounds(day: date) -> tuple[datetime, datetime]:
    """[start of the site month holding ``day``, start of the next month)."""
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return site_day_bounds(first, following - timedelta(days=1))


def site_week_bounds(day: date) -> tuple[datetime, datetime]:
    """[start of the Monday of the site week holding ``day``, start of the next Monday)."""
    monday = day - timedelta(days=day.weekday())
    return site_day_bounds(monday, monday + timedelta(days=6))


def site_today(now: datetime | None = None) -> date:
    return timezone.localdate(now or timezone.now(), site_tz())


def site_day(moment: datetime) -> date:
    """The site-time-zone date of an instant."""
    return timezone.localdate(moment, site_tz())


def quarter_start(moment: datetime) -> datetime:
    """The start (UTC) of the 15-minute interval holding ``moment``.

    Every real time-zone offset is a multiple of 15 minutes, so these intervals also tile each
    site day exactly, and day rollups are sums of 15-minute ones.
    """
    utc = moment.astimezone(UTC)
    # UTC minutes 0, 15, 30 and 45 are the epoch's quarters (no float arithmetic: a year of
    # 15-minute rows keys 35,000 of them).
    return utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)


def quarter_ceil(moment: datetime) -> datetime:
    start = quarter_start(moment)
    return start if start == moment else start + QUARTER


def _first_midnight_at_or_after(moment: datetime) -> datetime:
    day = site_day(moment)
    midnight, next_midnight = site_day_bounds(day, day)
    return midnight if midnight == moment else next_midnight


def _last_midnight_at_or_before(moment: datetime) -> datetime:
    day = site_day(moment)
    return site_day_bounds(day, day)[0]


def open_acw_elapsed(started_at: datetime, deadline: datetime | None, now: datetime) -> float:
    """Seconds an ACW still open has lasted at ``now`` (the system closes it at its deadline)."""
    end = min(now, deadline) if deadline is not None else now
    return max(0.0, (end - started_at).total_seconds())


# --- Filters and groups ---------------------------------------------------------------------


@dataclass(frozen=True)
class KpiFilter:
    """Which interactions a KPI query reads (all conditions together).

    ``team_ids`` is always given: the teams the user may see (``agents.access``), possibly
    narrowed by a team or department filter; an interaction counts for the team its agent
    belonged to when it ended. The others are optional narrowing filters.
    """

    team_ids: tuple[int, ...]
    agent_ids: tuple[int, ...] | None = None
    channels: tuple[str, ...] | None = None
    department_ids: tuple[int, ...] | None = None
    every_team: bool = False
    """``team_ids`` are every team (a reader who sees them all, no team chosen): the condition
    on the team is then only that there is one, so the database reads a period's rows through
    the indexes on the period instead of every team's rows through the team index
    (docs/benchmarks.md)."""

    @classmethod
    def of(
        cls,
        team_ids: Iterable[int],
        agent_ids: Iterable[int] | None = None,
        channels: Iterable[str] | None = None,
        department_ids: Iterable[int] | None = None,
        every_team: bool = False,
    ) -> KpiFilter:
        return cls(
            tuple(team_ids),
            tuple(agent_ids) if agent_ids is not None else None,
            tuple(channels) if channels is not None else None,
            tuple(department_ids) if department_ids is not None else None,
            every_team,
        )

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``kpi_rows``, ``acw_distribution``, ... that read it: its
        fields, under their own names."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def q(self, prefix: str = "") -> Q:
        """The condition on ``Interaction`` or a rollup table (same names),
        or through a relation to one (``prefix``, e.g. ``"interaction__"``)."""
        if self.every_team:
            q = Q(**{f"{prefix}team_id__isnull": False})
        else:
            q = Q(**{f"{prefix}team_id__in": self.team_ids})
        if self.agent_ids is not None:
            q &= Q(**{f"{prefix}agent_id__in": self.agent_ids})
        if self.channels is not None:
            q &= Q(**{f"{prefix}channel__in": self.channels})
        if self.department_ids is not None:
            q &= Q(**{f"{prefix}team__department_id__in": self.department_ids})
        return q


# The columns a group's key comes from, on the rollups and on raw interactions.
_ROLLUP_GROUP_FIELDS: dict[str, tuple[str, ...]] = {
    "agent": ("agent__external_id", "agent__name"),
    "team": ("team__name",),
    "department": ("team__department__name",),
    "channel": ("channel",),
    "wrap_up_code": ("wrap_up_code",),
    "day": ("bucket_start",),
    "interval": ("bucket_start",),
    "weekday_hour": ("bucket_start",),
}
_RAW_GROUP_FIELDS: dict[str, tuple[str, ...]] = {
    **_ROLLUP_GROUP_FIELDS,
    "wrap_up_code": ("acw__wrap_up_code",),
    "day": ("ended_at",),
    "interval": ("ended_at",),
    "weekday_hour": ("ended_at",),
}
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
NO_DEPARTMENT = "No department"
NO_CODE = "No wrap-up code"


def group_fields(group_by: str, *, raw: bool = False) -> tuple[str, ...]:
    """The columns a group's key comes from, on the rollups or (``raw``) on interactions."""
    return (_RAW_GROUP_FIELDS if raw else _ROLLUP_GROUP_FIELDS)[group_by]


def group_key(group_by: str, values: Sequence[Any], tz: ZoneInfo | None = None) -> tuple[str, str]:
    """(key, name) of the group of an interaction or rollup row, from its group columns;
    ``tz``: the site time zone, from a caller that keys many rows (reading the setting costs
    more than the rest of an interval's key)."""
    first = values[0]
    if group_by == "agent":
        return first, values[1]
    if group_by in ("team", "channel"):
        return first, str(Channel(first).label) if group_by == "channel" else first
    if group_by == "department":
        return first or "", first or NO_DEPARTMENT
    if group_by == "wrap_up_code":
        return first or "", first or NO_CODE
    # A time: the interaction's end, or the start of the rollup interval holding it.
    if group_by == "interval":
        return interval_key(quarter_start(first).astimezone(tz or site_tz()))
    local = first.astimezone(tz or site_tz())
    if group_by == "day":
        day = local.date().isoformat()
        return day, day
    return weekday_hour_key(local.isoweekday(), local.hour)


def interval_key(start: datetime) -> tuple[str, str]:
    """(key, name) of a 15-minute interval from its start in the site time zone: the ISO text,
    and its date and time sliced from it rather than formatted again."""
    key = start.isoformat()
    return key, f"{key[:10]} {key[11:16]}"


def weekday_hour_key(weekday: int, hour: int) -> tuple[str, str]:
    """(key, name) of a heat-map cell: ISO weekday 1-7 and hour 0-23 of the site time zone."""
    return f"{weekday}-{hour:02d}", f"{_WEEKDAYS[weekday - 1]} {hour:02d}:00"


def _sort_key(group_by: str) -> Any:
    if group_by == "interval":
        # By instant: in the hour a DST change repeats, "+01:00" keys follow "+02:00" ones.
        return lambda row: datetime.fromisoformat(row.key)
    return lambda row: row.key


def _row(rows: dict[str, KpiRow], group_by: str, values: Sequence[Any], tz: ZoneInfo) -> KpiRow:
    key, name = group_key(group_by, values, tz)
    row = rows.get(key)
    if row is None:
        row = rows[key] = KpiRow(key, name)
    return row


# --- KPI rows -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Norms:
    """The expected ACW per interaction for each wrap-up code ("" = no code given).

    ``admin``: set on the code in admin; ``learned``: the site's mean ACW per interaction of
    that code over its last days (acw_seconds ÷ interactions, like the average ACW;
    ``reporting.coaching.site_norms``); ``fallback``: the site's mean over all codes in that
    window, for a code with neither.
    """

    admin: dict[str, float] = field(default_factory=dict)
    learned: dict[str, float] = field(default_factory=dict)
    fallback: float | None = None

    def expected(self, code: str) -> float | None:
        if code in self.admin:
            return self.admin[code]
        return self.learned.get(code, self.fallback)

    def per_code(self) -> dict[str, float]:
        """The expected ACW of every code that has its own (admin or learned)."""
        return {**self.learned, **self.admin}

    def source(self, code: str) -> str:
        if code in self.admin:
            return "admin"
        return "learned" if code in self.learned else "site"


_ROLLUP_SUMS = {
    "s_interactions": Sum("interactions"),
    "s_talk": Sum("talk_seconds"),
    "s_hold": Sum("hold_seconds"),
    "s_acw": Sum("acw_seconds"),
    "s_acw_count": Sum("acw_count"),
    "s_timeouts": Sum("timeouts"),
    "s_extended": Sum("extended"),
    "s_too_short": Sum("too_short"),
}


def _add_rollup_sums(
    rows: dict[str, KpiRow], group_by: str, rollups: QuerySet[Any], norms: Norms | None = None
) -> None:
    """Add the sums of ``rollups`` (rows of any rollup table) per group of ``group_by``, and
    with ``norms`` the expected ACW's two sums (``_expected_sums``)."""
    if group_by == "weekday_hour":
        # Summed per cell by the database: a year of 15-minute rows is 168 cells.
        tz = site_tz()
        cells = rollups.annotate(
            c_weekday=_bucket_part("isodow", tz), c_hour=_bucket_part("hour", tz)
        )
        _add_cell_sums(rows, cells, "c_weekday", "c_hour")
        return
    if group_by == "interval" and connection.vendor == "postgresql":
        for _, summed in _interval_sums(rollups):
            row = rows.get(summed.key)
            if row is None:
                rows[summed.key] = summed
            else:
                row.add(summed)
        return
    columns = group_fields(group_by)
    width = len(columns)
    sums = {**_ROLLUP_SUMS, **(_expected_sums(norms) if norms else {})}
    end = width + len(_ROLLUP_SUMS)
    groups: Iterable[Sequence[Any]]
    if group_by == "agent":
        groups = _agent_sums(rollups, sums)
    else:
        groups = rollups.values(*columns).annotate(**sums).values_list(*columns, *sums)
    tz = site_tz()
    for r in groups:
        row = _row(rows, group_by, r[:width], tz)
        _add_sums(row, r[width:end])
        if norms:
            expected_total, expected_interactions = r[end:]
            row.expected_acw_total += expected_total or 0.0
            row.expected_interactions += expected_interactions or 0


def _agent_sums(rollups: QuerySet[Any], sums: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(external id, name, ``sums``...) of ``rollups`` per agent: summed per agent id, and the
    agent's external id and name joined to the sums. Grouping by the agent's two text columns
    joined to every rollup row took 20-80 % longer (a month of 1,000 agents' day rows: 263,000
    rows through a hash join, then hashed on two strings; docs/benchmarks.md)."""
    try:
        sql, params = rollups.values("agent_id").annotate(**sums).order_by().query.sql_with_params()
    except EmptyResultSet:
        return []
    names = ", ".join(f"g.{name}" for name in sums)
    agents = connection.ops.quote_name(Agent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT a.external_id, a.name, {names} FROM ({sql}) g "
            f"JOIN {agents} a ON a.id = g.agent_id",
            params,
        )
        return cursor.fetchall()


# Rows fetched at a time from a streamed statement (``_interval_sums``).
STREAM_CHUNK_ROWS = 2000


def _interval_sums(rollups: QuerySet[Any]) -> Iterator[tuple[int, KpiRow]]:
    """The sums of ``rollups`` (PostgreSQL) per 15-minute interval, in order, each with its
    start in seconds since the epoch, streamed: a year is 15,000 to 35,000 rows.

    Grouped by the bucket column itself, and its epoch seconds taken of the groups: grouping by
    the epoch computed for each of a year's 384,000 15-minute team rows made the statement a
    quarter slower. The database gives the epoch seconds: parsing a year of timestamps cost
    more than keying and summing their rows."""
    tz = site_tz()
    grouped = rollups.values("bucket_start").annotate(**_ROLLUP_SUMS).order_by()
    sql, params = grouped.query.sql_with_params()
    sums = ", ".join(f"g.{name}" for name in _ROLLUP_SUMS)
    starts = (
        f"SELECT date_part('epoch', g.bucket_start)::bigint, {sums} "
        f"FROM ({sql}) g ORDER BY g.bucket_start"
    )
    for seconds, *r in _streamed(starts, params):
        row = KpiRow(*interval_key(datetime.fromtimestamp(seconds, tz)))
        _add_sums(row, r)
        yield seconds, row


def _streamed(sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
    """The rows of ``sql`` through a server-side cursor (PostgreSQL), ``STREAM_CHUNK_ROWS`` at
    a time, as psycopg gives them: a sum of integers is a Python int, of floats a float, what
    Django's converters (6 a row of sums, a third of the time of a year of 15-minute rows in
    Python) would have made of them."""
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(STREAM_CHUNK_ROWS):
            yield from chunk


def _add_cell_sums(rows: dict[str, KpiRow], cells: QuerySet[Any], weekday: str, hour: str) -> None:
    """Add the sums of rollup rows ``cells`` per heat-map cell, their ``weekday`` and ``hour``
    (column or annotation names)."""
    sums = cells.values(weekday, hour).annotate(**_ROLLUP_SUMS)
    for cell_weekday, cell_hour, *r in sums.values_list(weekday, hour, *_ROLLUP_SUMS):
        key, name = weekday_hour_key(cell_weekday, cell_hour)
        _add_sums(rows.setdefault(key, KpiRow(key, name)), r)


# The parts ``_bucket_part`` reads, as Django's ``Extract`` names them (other databases).
_EXTRACT_PARTS = {"isodow": "iso_week_day", "hour": "hour"}


def _bucket_part(part: Literal["isodow", "hour"], tz: ZoneInfo) -> Any:
    """A part of a rollup row's ``bucket_start`` in ``tz``, as an integer computed by the
    database. On PostgreSQL with ``date_part``: the ``EXTRACT`` that Django's ``Extract``
    writes returns a numeric there, which made a year's heat map (380,000 15-minute team rows
    put in their cells) about a third slower."""
    if connection.vendor != "postgresql":
        return Extract("bucket_start", _EXTRACT_PARTS[part], tzinfo=tz)
    local = Func(
        Value(tz.key), F("bucket_start"), function="timezone", output_field=DateTimeField()
    )
    return Cast(
        Func(Value(part), local, function="date_part", output_field=FloatField()),
        BigIntegerField(),
    )


def _expected_sums(norms: Norms) -> dict[str, Any]:
    """The aggregates of ``KpiRow.expected_acw_total`` and ``expected_interactions`` over
    rollup rows: each row's interactions × its code's expected ACW, the norms written into
    the statement as a ``CASE`` (one row back per group, not one per group and code)."""
    per_code = norms.per_code()
    otherwise = Cast(Value(norms.fallback), FloatField())
    norm = (
        Case(
            *(
                When(wrap_up_code=code, then=Cast(Value(v), FloatField()))
                for code, v in per_code.items()
            ),
            default=otherwise,
            output_field=FloatField(),
        )
        if per_code
        else otherwise
    )
    counted: Any = F("interactions")
    if norms.fallback is None:
        counted = Case(
            When(wrap_up_code__in=list(per_code), then=F("interactions")),
            default=Value(0),
            output_field=IntegerField(),
        )
    return {
        "s_expected_total": Sum(
            ExpressionWrapper(F("interactions") * norm, output_field=FloatField())
        ),
        "s_expected_interactions": Sum(counted),
    }


def _add_sums(row: KpiRow, r: Sequence[Any]) -> None:
    """Add one group's sums (in ``_ROLLUP_SUMS`` order) to ``row``."""
    interactions, talk, hold, acw, acw_count, timeouts, extended, too_short = r
    row.interactions += interactions or 0
    row.talk_seconds += talk or 0.0
    row.hold_seconds += hold or 0.0
    row.acw_seconds += acw or 0.0
    row.acw_count += acw_count or 0
    row.timeouts += timeouts or 0
    row.extended += extended or 0
    row.too_short += too_short or 0


def _add_raw(
    rows: dict[str, KpiRow],
    group_by: str,
    interactions: QuerySet[Interaction],
    norms: Norms | None = None,
) -> None:
    """Add ended ``interactions`` one by one, with ``Measures.add_interaction`` as the rollups
    do (so both paths count exactly alike); with ``norms``, their expected ACW per code."""
    columns = group_fields(group_by, raw=True)
    measures: dict[tuple[Any, ...], Measures] = defaultdict(Measures)
    names = list(dict.fromkeys((*columns, *RAW_FIELDS)))
    for r in interactions.filter(ended_at__isnull=False).values(*names).iterator():
        code = (r["acw__wrap_up_code"] or "") if norms else ""
        measures[(*(r[f] for f in columns), code)].add_interaction(r)
    tz = site_tz()
    for (*group, code), m in measures.items():
        row = _row(rows, group_by, group, tz)
        row.add(KpiRow("", "", **{name: getattr(m, name) for name in SUMMED}))
        if norms:
            add_expected(row, code, m.interactions, norms)


def add_expected(row: KpiRow, code: str, interactions: int, norms: Norms) -> None:
    """Count ``interactions`` of ``code`` into ``row``'s expected ACW."""
    expected = norms.expected(code)
    if expected is not None:
        row.expected_acw_total += interactions * expected
        row.expected_interactions += interactions


def _add_open_acws(
    rows: dict[str, KpiRow],
    group_by: str,
    where: KpiFilter,
    start: datetime,
    end: datetime,
    now: datetime,
) -> None:
    """An ACW still open counts in its interaction's row with the time elapsed so far."""
    for key, elapsed, extensions in _open_acws(group_by, where, start, end, now):
        # A row is missing only if its interaction ended after the rows were read.
        if key in rows:
            _add_open_acw(rows[key], elapsed, extensions)


def _add_open_acw(row: KpiRow, elapsed: float, extensions: int) -> None:
    row.acw_seconds += elapsed
    row.acw_count += 1
    row.extended += bool(extensions)


def _open_acws(
    group_by: str, where: KpiFilter, start: datetime, end: datetime, now: datetime
) -> Iterator[tuple[str, float, int]]:
    """(key of its row, time elapsed so far, extensions) of each ACW still open whose
    interaction ended in [start, end). Inside ``shared_reads()`` read once for every
    grouping (``_OPEN_ACW_COLUMNS``)."""
    wanted = _open_acw_columns(group_by)
    columns = _OPEN_ACW_COLUMNS if _shared.get() is not None else wanted

    def read() -> list[tuple[Any, ...]]:
        # From the few open ACWs to their interactions (a join), never the other way: a year
        # of interactions is millions of rows.
        still_open = AcwSession.objects.filter(
            where.q("interaction__"),
            ended_at__isnull=True,
            interaction__ended_at__gte=start,
            interaction__ended_at__lt=end,
        )
        return list(still_open.values_list("started_at", "deadline", "extensions", *columns))

    at = [columns.index(column) for column in wanted]
    for started_at, deadline, extensions, *values in _once(("open_acws", where, start, end), read):
        key = group_key(group_by, [values[i] for i in at])[0]
        yield key, open_acw_elapsed(started_at, deadline, now), extensions


def _open_acw_columns(group_by: str) -> tuple[str, ...]:
    """The columns of an open ACW (``AcwSession``) that key its row of ``group_by``."""
    return tuple(
        "wrap_up_code" if f == "acw__wrap_up_code" else f"interaction__{f}"
        for f in group_fields(group_by, raw=True)
    )


# Those of every grouping: what ``shared_reads()`` reads once.
_OPEN_ACW_COLUMNS = tuple(dict.fromkeys(c for g in GROUP_BYS for c in _open_acw_columns(g)))


def _add_code_norms(rows: dict[str, KpiRow]) -> None:
    codes = WrapUpCode.objects.filter(code__in=[key for key in rows if key])
    for code in codes.only("code", "label", "expected_acw_seconds"):
        row = rows[code.code]
        row.name = code.label or code.code
        if code.expected_acw_seconds is not None:
            row.norm_acw_seconds = float(code.expected_acw_seconds)


def _finish(rows: dict[str, KpiRow], group_by: str) -> list[KpiRow]:
    if group_by == "wrap_up_code":
        _add_code_norms(rows)
    return sorted(rows.values(), key=_sort_key(group_by))


def _as_filter(
    team_ids: Iterable[int],
    agent_ids: Iterable[int] | None,
    channels: Iterable[str] | None,
    department_ids: Iterable[int] | None,
    every_team: bool = False,
) -> KpiFilter:
    return KpiFilter.of(team_ids, agent_ids, channels, department_ids, every_team)


def kpi_rows_raw(
    *,
    team_ids: Iterable[int],
    group_by: GroupBy,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    agent_ids: Iterable[int] | None = None,
    channels: Iterable[str] | None = None,
    department_ids: Iterable[int] | None = None,
    every_team: bool = False,
    norms: Norms | None = None,
) -> list[KpiRow]:
    """KPIs per group for interactions that ended in [start, end), from raw rows only (with
    ``norms``: and their expected ACW)."""
    now = now or timezone.now()
    where = _as_filter(team_ids, agent_ids, channels, department_ids, every_team)
    ended = Interaction.objects.filter(where.q(), ended_at__gte=start, ended_at__lt=end)
    rows: dict[str, KpiRow] = {}
    _add_raw(rows, group_by, ended, norms)
    _add_open_acws(rows, group_by, where, start, end, now)
    return _finish(rows, group_by)


@contextmanager
def consistent_read() -> Iterator[None]:
    """One snapshot for the several reads of a KPI query (PostgreSQL, outside a transaction).

    Without it a rollup run committing between two reads could make an interval count twice
    or not at all; inside a caller's transaction the caller decides.
    """
    if not _postgresql_outside_a_transaction():
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _postgresql_outside_a_transaction() -> bool:
    """This connection is PostgreSQL's and in no transaction: a read may open its own, and
    another connection sees what this one sees."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


_T = TypeVar("_T")
_U = TypeVar("_U")


def side_by_side(first: Callable[[], _T], second: Callable[[], _U]) -> tuple[_T, _U]:
    """``(first(), second())`` for two reads that do not need one snapshot: ``second`` runs in
    a thread on a connection of its own (from the pool, given back when it ends) while
    ``first`` runs on this one, so that a request waits for the longer of them instead of
    their sum (the coaching list's period figures and its recent window, docs/benchmarks.md).
    One after the other where another connection would not see what this one sees: on SQLite,
    and inside a transaction (a test's, or a caller's own reads); and when the pool has no
    second connection to give (every one busy, or a pool of one): then ``second`` runs on this
    connection after ``first``. The thread runs in a copy of this context (the active language
    and time zone). An error is raised once both have ended: ``first``'s, else ``second``'s."""
    if not _postgresql_outside_a_transaction():
        return first(), second()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kpi-read") as pool:
        later = pool.submit(copy_context().run, _on_own_connection, second)
        result = first()
        try:
            return result, later.result()
        except _NoConnection:
            pass
    return result, second()


class _NoConnection(Exception):
    """The thread of ``side_by_side`` could not have a connection of its own."""


def _on_own_connection(read: Callable[[], _U]) -> _U:
    try:
        try:
            connection.ensure_connection()
        except DatabaseError as error:
            raise _NoConnection from error
        return read()
    finally:
        connection.close()


# What the reads inside ``shared_reads()`` have read once, by (what, period, ...).
_shared: ContextVar[dict[tuple[Any, ...], Any] | None] = ContextVar(
    "kpi_shared_reads", default=None
)


@contextmanager
def shared_reads() -> Iterator[None]:
    """One snapshot (``consistent_read``) for all the KPI reads inside, which read what the
    reads of one period have in common only once: the buckets whose sums lag
    (``StaleBucket``), the dirty intervals and the open ACWs. A page reads the same period
    six or seven times (table, cards, trend, heat map, histogram, channels, codes), and each
    read asked all three again in its own transaction (docs/benchmarks.md). For read-only
    code: a write inside would not be seen by the reads after it."""
    if _shared.get() is not None:
        yield
        return
    with consistent_read():
        token = _shared.set({})
        try:
            yield
        finally:
            _shared.reset(token)


def _once(key: tuple[Any, ...], read: Callable[[], _T]) -> _T:
    """``read()``, or inside ``shared_reads()`` what it gave the first time for ``key``."""
    shared = _shared.get()
    if shared is None:
        return read()
    if key not in shared:
        shared[key] = read()
    result: _T = shared[key]
    return result


@dataclass(frozen=True)
class _Plan:
    """How a period is read: rollup segments per grain, and raw ranges for every agent."""

    months: tuple[datetime, datetime] | None
    days: list[tuple[datetime, datetime]]
    quarters: list[tuple[datetime, datetime]]
    raw_edges: list[tuple[datetime, datetime]]
    weeks: list[tuple[datetime, datetime]] = field(default_factory=list)

    def segments(self) -> list[tuple[str, tuple[datetime, datetime]]]:
        out: list[tuple[str, tuple[datetime, datetime]]] = []
        if self.months:
            out.append((Grain.MONTH, self.months))
        out += [(Grain.WEEK, segment) for segment in self.weeks]
        out += [(Grain.DAY, segment) for segment in self.days]
        return out + [(Grain.QUARTER, segment) for segment in self.quarters]


def rollup_segments(
    start: datetime, end: datetime, now: datetime | None = None
) -> list[tuple[str, tuple[datetime, datetime]]]:
    """(grain, [start, end)) of the rollup rows that tile the site days [start, end), as
    ``kpi_rows`` reads them: whole months that have ended and are summed, then whole weeks,
    then days."""
    stale = _stale_buckets(start, end)
    return _plan(start, end, now or timezone.now(), stale=stale).segments()


def _plan(
    start: datetime,
    end: datetime,
    now: datetime,
    *,
    finest: str = Grain.MONTH,
    stale: Iterable[tuple[str, datetime]] = (),
) -> _Plan:
    """The coarsest rollups that tile [start, end): months inside, then weeks in what the
    months leave, then days, then 15-minute intervals, then raw rows at edges off a 15-minute
    boundary. ``finest``: the coarsest grain a grouping may use (day keys cannot come from
    weeks or months, hours not from days).

    Only months and weeks that ended before today are read as such: the current ones' rows
    change all day, and one dirty interval would send a whole agent-month to the raw rows.
    They are summed once they have ended (listed in ``stale`` until then, then read as days).
    """
    stale_months = [s for grain, s in stale if grain == Grain.MONTH]
    first, last = quarter_ceil(start), quarter_start(end)
    if first >= last:
        return _Plan(None, [], [], [(start, end)])
    edges = [r for r in ((start, first), (last, end)) if r[0] < r[1]]
    day_start, day_end = _first_midnight_at_or_after(first), _last_midnight_at_or_before(last)
    if finest == Grain.QUARTER or day_start >= day_end:
        return _Plan(None, [], [(first, last)], edges)
    quarters = [r for r in ((first, day_start), (day_end, last)) if r[0] < r[1]]
    month_start = _first_month_start_at_or_after(day_start)
    today = site_day(now)
    month_end = _last_month_start_at_or_before(min(day_end, site_day_bounds(today, today)[0]))
    # Nor months whose rows are not summed yet (``StaleBucket``): their days answer.
    month_end = min([month_end, *(s for s in stale_months if month_start <= s < month_end)])
    if finest == Grain.DAY:
        return _Plan(None, [(day_start, day_end)], quarters, edges)
    months: tuple[datetime, datetime] | None = None
    days = [(day_start, day_end)]
    if month_start < month_end:
        months = (month_start, month_end)
        days = [r for r in ((day_start, month_start), (month_end, day_end)) if r[0] < r[1]]
    today_start = site_day_bounds(today, today)[0]
    stale_weeks = {s for grain, s in stale if grain == Grain.WEEK}
    weeks, days = _weeks_of(days, today_start, stale_weeks)
    return _Plan(months, days, quarters, edges, weeks)


def _weeks_of(
    days: list[tuple[datetime, datetime]], today_start: datetime, stale_weeks: set[datetime]
) -> tuple[list[tuple[datetime, datetime]], list[tuple[datetime, datetime]]]:
    """(weeks, days): the whole weeks inside the day segments ``days`` that ended by
    ``today_start`` and are summed (not in ``stale_weeks``), adjacent ones joined, and the
    days left around them."""
    weeks: list[tuple[datetime, datetime]] = []
    left: list[tuple[datetime, datetime]] = []
    for start, end in days:
        cursor = start
        week_start, following = site_week_bounds(site_day(start))
        if week_start != start:
            week_start = following
        while True:
            week_end = site_week_bounds(site_day(week_start))[1]
            if week_end > min(end, today_start):
                break
            if week_start not in stale_weeks:
                if cursor < week_start:
                    left.append((cursor, week_start))
                if weeks and weeks[-1][1] == week_start:
                    weeks[-1] = (weeks[-1][0], week_end)
                else:
                    weeks.append((week_start, week_end))
                cursor = week_end
            week_start = week_end
        if cursor < end:
            left.append((cursor, end))
    return weeks, left


def _first_month_start_at_or_after(midnight: datetime) -> datetime:
    start, following = site_month_bounds(site_day(midnight))
    return start if start == midnight else following


def _last_month_start_at_or_before(midnight: datetime) -> datetime:
    return site_month_bounds(site_day(midnight))[0]


_FINEST = {"day": Grain.DAY, "interval": Grain.QUARTER, "weekday_hour": Grain.QUARTER}


def _rollups(
    model: type[Any],
    grain: str,
    segment: tuple[datetime, datetime],
    where: KpiFilter,
    dirty: list[tuple[int, datetime, datetime]],
) -> QuerySet[Any]:
    """The rollup rows of ``grain`` in ``segment``, except those the raw rows answer for.

    A row is used only if none of its agent's 15-minute intervals inside it is dirty.
    ``dirty`` (``_dirty_ranges``, read in the same snapshot) names exactly those rows: each
    range is one row's bucket of the grain read there. Excluding them by key instead of a
    correlated subquery keeps a long period a plain index range scan.
    """
    rows = model.objects.filter(
        where.q(), grain=grain, bucket_start__gte=segment[0], bucket_start__lt=segment[1]
    )
    for (bucket, _), agent_ids in dirty_by_range(dirty).items():
        if segment[0] <= bucket < segment[1]:
            rows = rows.exclude(bucket_start=bucket, agent_id__in=agent_ids)
    return rows.order_by()


DirtyRange = tuple[int, datetime, datetime]
"""(agent id, start, end): a bucket of one agent the rollups cannot answer."""


def day_rollups(
    model: type[Any],
    where: KpiFilter,
    start: datetime,
    end: datetime,
    now: datetime,
    *,
    months: bool = True,
) -> tuple[list[QuerySet[Any]], list[DirtyRange]]:
    """The rows of an agent table of day (and, with ``months``, month) rows that answer the
    whole site days [start, end) where they are up to date, and the (agent, day or month)
    ranges left to the raw rows: those holding a dirty interval. Same plan, stale-month and
    dirty rules as ``kpi_rows``; call inside ``consistent_read()``."""
    stale = _stale_buckets(start, end) if months else set()
    plan = _plan(start, end, now, finest=Grain.MONTH if months else Grain.DAY, stale=stale)
    assert not plan.quarters and not plan.raw_edges, "whole site days only"
    dirty = _dirty_ranges(plan, start, end)
    return [
        _rollups(model, grain, segment, where, dirty) for grain, segment in plan.segments()
    ], dirty


def _team_level(group_by: str, where: KpiFilter) -> bool:
    """Whether the team tables answer: groups and filters that do not name agents."""
    return group_by != "agent" and where.agent_ids is None


def _whole_site(where: KpiFilter) -> bool:
    """Whether ``where`` reads every interaction: every team, no other filter (the site rows
    answer, ``SiteIntervalRollup``)."""
    if (where.agent_ids, where.channels, where.department_ids) != (None, None, None):
        return False
    return where.every_team or not Team.objects.exclude(pk__in=where.team_ids).exists()


def _team_rollups(
    by_code: bool, grain: str, segment: tuple[datetime, datetime], where: KpiFilter
) -> QuerySet[Any] | None:
    """The team rows of ``grain`` in ``segment``, or None where no team table has them
    (15-minute team rows have no wrap-up code: ``by_code``, rows per code or with the expected
    ACW, read the agent rows there)."""
    in_segment = Q(where.q(), bucket_start__gte=segment[0], bucket_start__lt=segment[1])
    if grain == Grain.QUARTER:
        if by_code:
            return None
        return TeamIntervalRollup.objects.filter(in_segment).order_by()
    return TeamKpiRollup.objects.filter(in_segment, grain=grain).order_by()


def _busy(
    grain: str,
    segment: tuple[datetime, datetime],
    dirty: list[DirtyRange],
    stale: set[tuple[str, datetime]],
) -> list[datetime]:
    """The buckets of ``grain`` in ``segment`` whose team rows may lag behind the agent rows
    (dirty or stale): read from their agent rows (and raw rows) instead."""
    return sorted(
        {s for _, s, _ in dirty if segment[0] <= s < segment[1]}
        | {s for g, s in stale if g == grain and segment[0] <= s < segment[1]}
    )


def _team_hour_buckets(
    start: datetime,
    end: datetime,
    now: datetime,
    stale: set[tuple[str, datetime]],
    dirty: list[DirtyRange],
) -> list[tuple[str, datetime, datetime]]:
    """(grain, start, end) of the whole site days, weeks and months of [start, end) the hour
    rows (``TeamHourRollup``) answer, in time order: the months, weeks and days of ``_plan``,
    but none holding a dirty interval or a stale day or interval (its 15-minute rows answer).
    A late change to an ended month or week marks it stale too, so its days answer until it is
    summed."""
    plan = _plan(start, end, now, stale=stale)
    buckets: list[tuple[str, datetime, datetime]] = []
    if plan.months:
        month = plan.months[0]
        while month < plan.months[1]:
            following = site_month_bounds(site_day(month))[1]
            buckets.append((Grain.MONTH, month, following))
            month = following
    for week_start, weeks_end in plan.weeks:
        while week_start < weeks_end:
            following = site_week_bounds(site_day(week_start))[1]
            buckets.append((Grain.WEEK, week_start, following))
            week_start = following
    for day_start, day_end in plan.days:
        for n in range((site_day(day_end) - site_day(day_start)).days):
            day = site_day(day_start) + timedelta(days=n)
            buckets.append((Grain.DAY, *site_day_bounds(day, day)))
    # A stale month or week is not read as such (``_plan``); its start does not hold back its
    # first day.
    busy = sorted(
        {s for _, s, _ in dirty} | {s for g, s in stale if g not in (Grain.MONTH, Grain.WEEK)}
    )
    return sorted((b for b in buckets if not _any_in(busy, b[1], b[2])), key=_bucket_start)


def _bucket_start(bucket: tuple[str, datetime, datetime]) -> datetime:
    return bucket[1]


def _any_in(starts: list[datetime], start: datetime, end: datetime) -> bool:
    """Whether one of the sorted ``starts`` lies in [start, end)."""
    i = bisect_left(starts, start)
    return i < len(starts) and starts[i] < end


def _add_team_hours(
    rows: dict[str, KpiRow], where: KpiFilter, buckets: list[tuple[str, datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    """Add the heat-map cells of the hour rows of ``buckets`` (``_team_hour_buckets``, one
    query); returns the time ranges they stand for, in order."""
    ranges = _merged(buckets)
    if ranges:
        in_buckets = reduce(
            operator.or_,
            (Q(grain=g, bucket_start__gte=s, bucket_start__lt=e) for g, s, e in ranges),
        )
        hours = TeamHourRollup.objects.filter(where.q(), in_buckets).order_by()
        _add_cell_sums(rows, hours, "weekday", "hour")
    return [(s, e) for _, s, e in ranges]


def _outside(segment: tuple[datetime, datetime], covered: list[tuple[datetime, datetime]]) -> Q:
    """The rows of ``segment`` whose ``bucket_start`` is in none of the ``covered`` ranges
    (in order, inside ``segment``): ranges the indexes serve, or none at all."""
    gaps, start = [], segment[0]
    for covered_start, covered_end in covered:
        if start < covered_start:
            gaps.append((start, covered_start))
        start = max(start, covered_end)
    if start < segment[1]:
        gaps.append((start, segment[1]))
    if not gaps:
        return Q(pk__in=[])
    return reduce(operator.or_, (Q(bucket_start__gte=s, bucket_start__lt=e) for s, e in gaps))


def _merged(buckets: list[tuple[str, datetime, datetime]]) -> list[tuple[str, datetime, datetime]]:
    """``buckets`` (in order) with adjacent ones of the same grain joined: a year of days is
    one condition, not 365."""
    out: list[tuple[str, datetime, datetime]] = []
    for grain, start, end in buckets:
        if out and out[-1][0] == grain and out[-1][2] == start:
            out[-1] = (grain, out[-1][1], end)
        else:
            out.append((grain, start, end))
    return out


def _stale_buckets(start: datetime, end: datetime) -> set[tuple[str, datetime]]:
    """(grain, start) of the buckets in [start, end) whose sums lag (``StaleBucket``)."""

    def read() -> set[tuple[str, datetime]]:
        stale = StaleBucket.objects.filter(bucket_start__gte=start, bucket_start__lt=end)
        return set(stale.values_list("grain", "bucket_start"))

    return _once(("stale", start, end), read)


def _dirty_ranges(
    plan: _Plan, start: datetime, end: datetime
) -> list[tuple[int, datetime, datetime]]:
    """(agent, start, end) ranges the rollups cannot answer: dirty intervals, or their whole
    day, week or month where a day, week or month rollup would have been used."""
    ranges: set[tuple[int, datetime, datetime]] = set()
    first = quarter_start(start)

    def read() -> list[tuple[int, datetime]]:
        marks = DirtyInterval.objects.filter(bucket_start__gte=first, bucket_start__lt=end)
        return list(marks.values_list("agent_id", "bucket_start"))

    for agent_id, bucket in _once(("dirty", first, end), read):
        if plan.months and plan.months[0] <= bucket < plan.months[1]:
            ranges.add((agent_id, *site_month_bounds(site_day(bucket))))
        elif any(s <= bucket < e for s, e in plan.weeks):
            ranges.add((agent_id, *site_week_bounds(site_day(bucket))))
        elif any(s <= bucket < e for s, e in plan.days):
            day = site_day(bucket)
            ranges.add((agent_id, *site_day_bounds(day, day)))
        elif any(s <= bucket < e for s, e in plan.quarters):
            ranges.add((agent_id, bucket, bucket + QUARTER))
    return sorted(ranges)


def dirty_by_range(
    dirty: list[tuple[int, datetime, datetime]],
) -> dict[tuple[datetime, datetime], list]:
    """The dirty agents per range: at a busy moment most agents are dirty in the same day."""
    agents: dict[tuple[datetime, datetime], list[int]] = defaultdict(list)
    for agent_id, s, e in dirty:
        agents[(s, e)].append(agent_id)
    return agents


def _raw_ranges(
    plan: _Plan,
    dirty: list[tuple[int, datetime, datetime]],
    intervals: list[tuple[datetime, datetime]],
) -> Q | None:
    """The raw rows that answer for the edges of ``plan`` off a 15-minute boundary, its
    15-minute ``intervals`` without rollup rows (every agent), and the agents' ``dirty``
    ranges elsewhere (those in 15-minute segments are inside ``intervals``: an interval holding
    a dirty one lags in the team rows)."""
    raw = [
        Q(ended_at__gte=s, ended_at__lt=e) for s, e in [*plan.raw_edges, *joined_ranges(intervals)]
    ]
    raw += [
        Q(agent_id__in=agent_ids, ended_at__gte=s, ended_at__lt=e)
        for (s, e), agent_ids in dirty_by_range(dirty).items()
        if not any(q_start <= s < q_end for q_start, q_end in plan.quarters)
    ]
    return reduce(operator.or_, raw) if raw else None


def kpi_rows(
    *,
    team_ids: Iterable[int],
    group_by: GroupBy,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    agent_ids: Iterable[int] | None = None,
    channels: Iterable[str] | None = None,
    department_ids: Iterable[int] | None = None,
    every_team: bool = False,
    norms: Norms | None = None,
) -> list[KpiRow]:
    """KPIs per group (``group_by``) for interactions that ended in [start, end) and match the
    filters, exact up to ``now``; ordered by key (intervals by their instant). With ``norms``,
    each row's expected ACW too (``KpiRow.expected_acw_seconds``; not for groupings by time of
    day, whose 15-minute team rows have no wrap-up code).

    Same figures as ``kpi_rows_raw``, read mostly from the rollups (see the module docstring):
    a bounded number of queries whatever the length of the period.
    """
    now = now or timezone.now()
    where = _as_filter(team_ids, agent_ids, channels, department_ids, every_team)
    rows: dict[str, KpiRow] = {}
    with consistent_read():
        read = _Read.of(group_by, start, end, now)
        if read.too_dirty:
            return kpi_rows_raw(
                team_ids=where.team_ids,
                group_by=group_by,
                start=start,
                end=end,
                now=now,
                agent_ids=where.agent_ids,
                channels=where.channels,
                department_ids=where.department_ids,
                every_team=where.every_team,
                norms=norms,
            )
        # The heat map's whole days and months from the hour rows, its other intervals below.
        by_hour = None
        if group_by == "weekday_hour" and _team_level(group_by, where):
            by_hour = _add_team_hours(
                rows, where, _team_hour_buckets(start, end, now, read.stale, read.dirty)
            )
        if group_by == "interval" and connection.vendor == "postgresql":
            return list(_interval_rows(where, read, start, end, now, norms))
        segments: list[QuerySet[Any]] = []
        intervals: list[tuple[datetime, datetime]] = []
        for grain, segment in read.plan.segments():
            reads, raw = _segment_rollups(group_by, where, grain, segment, read, norms, by_hour)
            segments += reads
            intervals += raw
        for rollups in _per_table(segments):
            _add_rollup_sums(rows, group_by, rollups, norms)
        _add_raw_ranges(rows, group_by, where, read, norms, intervals)
        _add_open_acws(rows, group_by, where, start, end, now)
    return _finish(rows, group_by)


def _per_table(reads: list[QuerySet[Any]]) -> list[QuerySet[Any]]:
    """``reads`` of the same table as one statement, their conditions joined by OR: the
    segments of a plan hold no row in common, and a year's months, days and the days before
    the first month were three statements on each table, each grouping its rows again."""
    tables: dict[type[Any], QuerySet[Any]] = {}
    for rows in reads:
        tables[rows.model] = tables[rows.model] | rows if rows.model in tables else rows
    return list(tables.values())


@dataclass(frozen=True)
class _Read:
    """How ``kpi_rows`` reads [start, end): its plan, the buckets whose sums lag
    (``_stale_buckets``) and the ranges the raw rows answer (``_dirty_ranges``), read in the
    query's snapshot."""

    plan: _Plan
    stale: set[tuple[str, datetime]]
    dirty: list[DirtyRange]

    @classmethod
    def of(cls, group_by: str, start: datetime, end: datetime, now: datetime) -> _Read:
        stale = _stale_buckets(start, end)
        finest = _FINEST.get(group_by, Grain.MONTH)
        plan = _plan(start, end, now, finest=finest, stale=stale)
        return cls(plan, stale, _dirty_ranges(plan, start, end))

    @property
    def too_dirty(self) -> bool:
        """Whether one raw query over the period is cheaper (``MAX_RAW_RANGES``)."""
        return len(dirty_by_range(self.dirty)) > MAX_RAW_RANGES


def _segment_rollups(
    group_by: str,
    where: KpiFilter,
    grain: str,
    segment: tuple[datetime, datetime],
    read: _Read,
    norms: Norms | None,
    by_hour: list[tuple[datetime, datetime]] | None = None,
) -> tuple[list[QuerySet[Any]], list[tuple[datetime, datetime]]]:
    """The rollup rows that answer ``segment`` of a ``kpi_rows`` plan (its team rows where a
    team table has them, and the agent rows of the buckets whose team rows may lag behind; all
    agent rows elsewhere; the first is the long one), and the ranges of it the raw rows answer
    for every agent: 15-minute intervals have no agent rows, so the raw rows answer for those
    the team rows cannot (the whole segment where agents are named or codes grouped, else the
    intervals whose team rows lag). Team rows inside ``by_hour`` (the spans the heat map read
    from the hour rows) are left out."""
    by_code = group_by == "wrap_up_code" or norms is not None
    team_level = _team_level(group_by, where)
    team_rows = _team_rollups(by_code, grain, segment, where) if team_level else None
    if team_rows is None:
        if grain == Grain.QUARTER:
            return [], [segment]
        return [_rollups(KpiRollup, grain, segment, where, read.dirty)], []
    if group_by == "interval" and grain == Grain.QUARTER and _whole_site(where):
        team_rows = SiteIntervalRollup.objects.filter(
            bucket_start__gte=segment[0], bucket_start__lt=segment[1]
        ).order_by()
    busy = _busy(grain, segment, read.dirty, read.stale)
    team_rows = team_rows.exclude(bucket_start__in=busy)
    if by_hour is not None:
        team_rows = team_rows.filter(_outside(segment, by_hour))
    if not busy:
        return [team_rows], []
    if grain == Grain.QUARTER:
        return [team_rows], [(start, start + QUARTER) for start in busy]
    agent_rows = _rollups(KpiRollup, grain, segment, where, read.dirty)
    return [team_rows, agent_rows.filter(bucket_start__in=busy)], []


def _add_raw_ranges(
    rows: dict[str, KpiRow],
    group_by: str,
    where: KpiFilter,
    read: _Read,
    norms: Norms | None,
    intervals: list[tuple[datetime, datetime]],
) -> None:
    """Add the raw rows of what the rollups of ``read`` cannot answer (``_raw_ranges``), and
    of the 15-minute ``intervals`` the team rows do not answer (``_segment_rollups``)."""
    raw = _raw_ranges(read.plan, read.dirty, intervals)
    if raw is not None:
        _add_raw(rows, group_by, Interaction.objects.filter(where.q()).filter(raw), norms)


def _interval_rows(
    where: KpiFilter,
    read: _Read,
    start: datetime,
    end: datetime,
    now: datetime,
    norms: Norms | None,
) -> Iterator[KpiRow]:
    """``kpi_rows(group_by="interval")`` yielded in order without holding the period's rows
    (PostgreSQL): the long statement of each rollup segment streamed (``_interval_sums``) and
    merged in order with the few other rows (busy buckets, raw rows), the open ACWs added on
    the way. Call inside ``consistent_read()``."""
    streams: list[Iterable[tuple[float, KpiRow]]] = []
    others: dict[str, KpiRow] = {}
    intervals: list[tuple[datetime, datetime]] = []
    for grain, segment in read.plan.segments():
        reads, raw = _segment_rollups("interval", where, grain, segment, read, norms)
        intervals += raw
        if reads:
            long, *short = reads
            streams.append(_interval_sums(long))
            for rollups in short:
                _add_rollup_sums(others, "interval", rollups, norms)
    _add_raw_ranges(others, "interval", where, read, norms, intervals)
    by_instant = operator.itemgetter(0)
    streams.append(sorted(((_instant(row), row) for row in others.values()), key=by_instant))
    open_acws: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for key, elapsed, extensions in _open_acws("interval", where, start, end, now):
        open_acws[key].append((elapsed, extensions))
    for _, same in itertools.groupby(heapq.merge(*streams, key=by_instant), key=by_instant):
        (_, row), *more = same
        for _, other in more:
            row.add(other)
        for elapsed, extensions in open_acws.get(row.key, ()):
            _add_open_acw(row, elapsed, extensions)
        yield row


def _instant(row: KpiRow) -> float:
    """Seconds since the epoch of an interval row's start (the order of ``_interval_sums``)."""
    return datetime.fromisoformat(row.key).timestamp()


# How much of a period one query of ``iter_kpi_rows`` reads when rows are per time.
CHUNK_DAYS = 31


def iter_kpi_rows(
    *,
    team_ids: Iterable[int],
    group_by: GroupBy,
    first: date,
    last: date,
    now: datetime | None = None,
    agent_ids: Iterable[int] | None = None,
    channels: Iterable[str] | None = None,
    department_ids: Iterable[int] | None = None,
    every_team: bool = False,
    norms: Norms | None = None,
) -> Iterator[KpiRow]:
    """``kpi_rows`` for the site days ``first`` to ``last``, yielded in order, for exports.

    Rows per day or 15-minute interval are never all in memory at once: 15-minute rows come
    from one statement streamed through a server-side cursor (``_interval_rows``; PostgreSQL),
    day rows (and 15-minute rows elsewhere, or when the raw rows answer the period) are read a
    month at a time (no interaction counts in two such rows, so the chunks add up to the whole).
    Other groupings have at most one row per agent, team, code ... and come in one read.
    """
    filters: dict[str, Any] = {
        "team_ids": list(team_ids),
        "now": now or timezone.now(),
        "agent_ids": agent_ids,
        "channels": channels,
        "department_ids": department_ids,
        "every_team": every_team,
        "norms": norms,
    }
    if group_by == "interval" and connection.vendor == "postgresql":
        start, end = site_day_bounds(first, last)
        where = _as_filter(filters["team_ids"], agent_ids, channels, department_ids, every_team)
        with consistent_read():
            read = _Read.of(group_by, start, end, filters["now"])
            if not read.too_dirty:
                yield from _interval_rows(where, read, start, end, filters["now"], norms)
                return
    per_time = group_by in ("day", "interval")
    chunk = CHUNK_DAYS if per_time else (last - first).days + 1
    day = first
    while day <= last:
        chunk_last = min(last, day + timedelta(days=chunk - 1))
        start, end = site_day_bounds(day, chunk_last)
        yield from kpi_rows(group_by=group_by, start=start, end=end, **filters)
        day = chunk_last + timedelta(days=1)


# --- ACW distribution -----------------------------------------------------------------------


def distribution_from_counts(counts: dict[int, int], bin_seconds: int) -> dict[str, Any]:
    """The histogram and percentiles of ACW durations given as {whole seconds: count}.

    Bins of ``bin_seconds`` cover 0 to the longest ACW (``from`` inclusive, ``to`` exclusive);
    ``count`` is the sum of the bins. ``p50`` / ``p90`` are nearest-rank percentiles of the
    durations in whole seconds (rounded down): the smallest s such that at least 50 % (90 %)
    of the ACWs lasted less than s + 1 seconds; None when there is no ACW.
    """
    total = sum(counts.values())
    if not total:
        return {"count": 0, "bin_seconds": bin_seconds, "bins": [], "p50": None, "p90": None}
    longest = max(counts)
    bins = [0] * (longest // bin_seconds + 1)
    for seconds, n in counts.items():
        bins[seconds // bin_seconds] += n

    def percentile(p: int) -> int:
        rank = math.ceil(p * total / 100)  # integer maths: 90 % of 10 is exactly 9
        seen = 0
        for seconds in sorted(counts):
            seen += counts[seconds]
            if seen >= rank:
                return seconds
        return longest

    return {
        "count": total,
        "bin_seconds": bin_seconds,
        "bins": [
            {"from": i * bin_seconds, "to": (i + 1) * bin_seconds, "count": n}
            for i, n in enumerate(bins)
        ],
        "p50": percentile(50),
        "p90": percentile(90),
    }


def _add_raw_durations(counts: dict[int, int], interactions: QuerySet[Interaction]) -> None:
    """Add the closed ACWs of ``interactions`` to ``counts`` (``acw_whole_seconds``, in Python:
    the reference)."""
    for r in interactions.filter(ended_at__isnull=False, acw__isnull=False).values(
        "acw__ended_at", "acw__duration_seconds"
    ):
        seconds = acw_whole_seconds(r)
        if seconds is not None:
            counts[seconds] = counts.get(seconds, 0) + 1


def acw_distribution_raw(
    *,
    team_ids: Iterable[int],
    start: datetime,
    end: datetime,
    bin_seconds: int = 10,
    agent_ids: Iterable[int] | None = None,
    channels: Iterable[str] | None = None,
    department_ids: Iterable[int] | None = None,
    every_team: bool = False,
) -> dict[str, Any]:
    """``acw_distribution`` from the raw rows only (the reference for the rollups)."""
    where = _as_filter(team_ids, agent_ids, channels, department_ids, every_team)
    counts: dict[int, int] = {}
    ended = Interaction.objects.filter(where.q(), ended_at__gte=start, ended_at__lt=end)
    _add_raw_durations(counts, ended)
    return distribution_from_counts(counts, bin_seconds)


def acw_distribution(
    *,
    team_ids: Iterable[int],
    start: datetime,
    end: datetime,
    bin_seconds: int = 10,
    now: datetime | None = None,
    agent_ids: Iterable[int] | None = None,
    channels: Iterable[str] | None = None,
    department_ids: Iterable[int] | None = None,
    every_team: bool = False,
) -> dict[str, Any]:
    """The durations of the closed ACWs that followed interactions ended in [start, end)
    (docs/api.md): ``{"count", "bin_seconds", "bins": [{"from", "to", "count"}], "p50",
    "p90"}`` (see ``distribution_from_counts``). An ACW still open has no duration yet and is
    not counted. Read from the team duration rollups (``acw_duration_counts``).
    """
    where = _as_filter(team_ids, agent_ids, channels, department_ids, every_team)
    counts = acw_duration_counts(where, start, end, now or timezone.now())
    return distribution_from_counts(counts, bin_seconds)


def acw_duration_counts(
    where: KpiFilter, start: datetime, end: datetime, now: datetime
) -> dict[int, int]:
    """How many closed ACWs lasted each whole second, for the interactions that ended in
    [start, end) and match ``where``.

    The team duration rows (``TeamAcwDurationRollup``) answer for the months, weeks and days of
    the period whose rows are up to date: neither stale nor holding a dirty interval of any
    agent (a lagging month or week is read as its weeks and days, ``_lagging_plan``). The raw
    rows answer for the rest: the lagging days, the 15-minute intervals and edges off a site
    day, and a filter that names agents (there are no agent duration rows: a year of one agent
    is about 10,000 raw rows, read through its index). Both are grouped by the database.
    """
    counts: dict[int, int] = {}
    with consistent_read():
        if where.agent_ids is not None:
            raw = [(start, end)]
        else:
            plan, dirty, stale = _lagging_plan(start, end, now)
            raw = [*plan.raw_edges, *plan.quarters]
            reads = []
            for grain, segment in plan.segments():
                if grain == Grain.QUARTER:
                    continue
                busy = _busy(grain, segment, dirty, stale)
                raw += [(s, bucket_end(grain, s)) for s in busy]
                reads.append(
                    TeamAcwDurationRollup.objects.filter(
                        where.q(),
                        grain=grain,
                        bucket_start__gte=segment[0],
                        bucket_start__lt=segment[1],
                    ).exclude(bucket_start__in=busy)
                )
            for rows in _per_table(reads):
                for r in rows.order_by().values("seconds").annotate(n=Sum("count")):
                    counts[r["seconds"]] = counts.get(r["seconds"], 0) + r["n"]
        if raw:
            ended = reduce(
                operator.or_, [Q(ended_at__gte=s, ended_at__lt=e) for s, e in joined_ranges(raw)]
            )
            _count_raw_durations(counts, Interaction.objects.filter(where.q(), ended))
    return counts


def _lagging_plan(
    start: datetime, end: datetime, now: datetime
) -> tuple[_Plan, list[DirtyRange], set[tuple[str, datetime]]]:
    """``_plan`` of [start, end) in which no month or week holds a dirty interval or is stale:
    those are read as their weeks and days (a late change to an ended month leaves its other
    days to the rollups); with its dirty ranges and the stale buckets."""
    stale = _stale_buckets(start, end)
    lagging = set(stale)
    while True:
        plan = _plan(start, end, now, stale=lagging)
        dirty = _dirty_ranges(plan, start, end)
        coarse = {
            (grain, s)
            for grain, segment in plan.segments()
            if grain in (Grain.MONTH, Grain.WEEK)
            for s in _busy(grain, segment, dirty, set())
        }
        if not coarse:
            return plan, dirty, stale
        lagging |= coarse


def joined_ranges(
    ranges: Iterable[tuple[datetime, datetime]],
) -> list[tuple[datetime, datetime]]:
    """``ranges`` sorted, those that meet or overlap joined into one."""
    out: list[tuple[datetime, datetime]] = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(e, out[-1][1]))
        else:
            out.append((s, e))
    return out


def _count_raw_durations(counts: dict[int, int], interactions: QuerySet[Interaction]) -> None:
    """Add the closed ACWs of ``interactions`` to ``counts``, grouped by the database: whole
    seconds rounded down, never below 0 (``acw_whole_seconds``)."""
    seconds = Greatest(
        Value(0), Cast(Floor("acw__duration_seconds"), IntegerField()), output_field=IntegerField()
    )
    closed = interactions.filter(
        ended_at__isnull=False,
        acw__ended_at__isnull=False,
        acw__duration_seconds__isnull=False,
    )
    for r in closed.order_by().values(s=seconds).annotate(n=Count("pk")):
        counts[r["s"]] = counts.get(r["s"], 0) + r["n"]
