"""Coaching signals (docs/coaching.md): ACW norms per wrap-up code, the mix-adjusted ACW index,
baselines, the coaching list and the checklist analysis.

Every figure over a period reads the rollups through ``reporting.queries`` (a bounded number
of queries on any period). Two signals need single interactions, which the rollups do not keep
(talk length, position in the shift, ticked checklist steps): they read the raw rows of the
last ``RECENT_DAYS`` days of the period only, which the page says.

The rules are pure functions of counts and sums (``high_index``, ``rate_is_high``,
``change_is_real`` ...), tested with hand-computed numbers; the constants below are the
thresholds the docs state.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import get_language, gettext

from agents.models import Agent, ChecklistItem, Team, WrapUpCode

from . import queries, signals
from .queries import (
    SUMMED,
    GroupBy,
    KpiFilter,
    KpiRow,
    Norms,
    site_day_bounds,
)
from .rollups import LATE_AFTER_HOURS
from .templatetags.kpi_format import format_duration, format_percent

# --- The rules' constants (docs/coaching.md) ------------------------------------------------

NORM_DAYS = 30
"""Unset norms are learned from the site's last 30 days (up to the period's last day)."""
LEARNED_CACHE_SECONDS = 300
"""How long learned norms are reused (per period end day, per process)."""
BASELINE_DAYS = 30
"""An agent's own baseline: the 30 days before the period."""
MIN_INTERACTIONS = 20
"""No signal from fewer interactions (or ACWs) than this: one call is never a pattern."""
MIN_GROUP = 10
"""Long calls / late in the shift: each side of the comparison needs this many ACWs."""
Z_ONE_SIDED = 1.645
"""The normal quantile of a one-sided 95 % bound."""
HIGH_INDEX = 1.2
"""An ACW index is high from 1.2 on (20 % above the mix's expected ACW) ..."""
MIN_CHANGE = 0.15
"""... and a change against a baseline counts from 15 % on, if it is more than noise."""
TOO_SHORT_RATE = 0.2
"""Too short "persistently": the lower bound of the too-short rate is at least 20 %."""
OFTEN_RATE = 0.25
"""Extends / times out "often": the lower bound of the rate is at least 25 %."""
RECENT_DAYS = 7
"""The long-call, late-in-the-shift and checklist sections read this many last days."""


@lru_cache(maxsize=256)
def _translated(language: str | None, message: str) -> str:
    return gettext(message)


@lru_cache(maxsize=1024)
def _percent(language: str | None, percent: int) -> str:
    return format_percent(percent / 100, digits=0)


class Words:
    """``gettext`` and whole percents in the language active when made, remembered per
    language: the coaching list words the same few sentences and numbers for every agent,
    thousands of times on a large site, and looking up the active language costs more than
    the sentence. ``coaching`` names one ``_``, so the sentences are still marked for
    translation where they are written."""

    def __init__(self) -> None:
        self.language = get_language()

    def __call__(self, message: str) -> str:
        return _translated(self.language, message)

    def percent(self, share: float) -> str:
        """``format_percent(share, digits=0)``."""
        return _percent(self.language, round(share * 100))


# --- Statistics -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """Count, mean and sample standard deviation of a set of ACW durations (seconds)."""

    n: int
    mean: float
    sd: float

    @classmethod
    def from_moments(cls, moments: tuple[int, float, float] | None) -> Stats:
        """From (count, Σ x, Σ x²) (the coaching rollups' sums)."""
        if not moments or not moments[0]:
            return cls(0, 0.0, 0.0)
        n, total, squares = moments
        mean = total / n
        if n < 2:
            return cls(n, mean, 0.0)
        return cls(n, mean, math.sqrt(max(0.0, (squares - n * mean * mean) / (n - 1))))


def wilson_lower(k: int, n: int, z: float = Z_ONE_SIDED) -> float:
    """The lower Wilson score bound of a rate k / n (one-sided 95 % with the default z)."""
    if not n:
        return 0.0
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


def rate_is_high(k: int, n: int, threshold: float) -> bool:
    """A rate is persistently high when there are at least ``MIN_INTERACTIONS`` cases and its
    lower Wilson bound reaches ``threshold`` (a few unlucky cases never do)."""
    return n >= MIN_INTERACTIONS and wilson_lower(k, n) >= threshold


def standard_error(sd: float, n: int, other_sd: float = 0.0, other_n: int = 0) -> float:
    """Welch's standard error of a difference of means (one mean when ``other_n`` is 0)."""
    se2 = sd * sd / n if n else math.inf
    if other_n:
        se2 += other_sd * other_sd / other_n
    return math.sqrt(se2)


def high_index(avg_acw: float, expected: float | None, stats: Stats) -> bool:
    """The ACW index (avg ÷ expected) is high: at least ``MIN_INTERACTIONS`` ACWs, index ≥
    ``HIGH_INDEX``, and the one-sided 95 % lower bound of the average,
    avg − 1.645 × sd / √n, still above the expected ACW."""
    if not expected or stats.n < MIN_INTERACTIONS:
        return False
    lower = avg_acw - Z_ONE_SIDED * standard_error(stats.sd, stats.n)
    return avg_acw / expected >= HIGH_INDEX and lower > expected


def change_is_real(now: Stats, expected: float, before: Stats) -> bool:
    """The average rose against a baseline by more than noise: both sides have at least
    ``MIN_INTERACTIONS`` ACWs, the rise is at least ``MIN_CHANGE`` of the baseline, and Welch's
    z = (now − expected) / √(sd_now² / n_now + sd_before² / n_before) is at least 1.645."""
    if now.n < MIN_INTERACTIONS or before.n < MIN_INTERACTIONS or expected <= 0:
        return False
    se = standard_error(now.sd, now.n, before.sd, before.n)
    rise = now.mean - expected
    if rise < MIN_CHANGE * expected:
        return False
    return se == 0 or rise / se >= Z_ONE_SIDED


# --- Norms and the ACW index ----------------------------------------------------------------


def site_norms(last_day: date, now: datetime | None = None) -> Norms:
    """The norms for a period ending on ``last_day``: admin-set ones (read every time, so an
    edit shows at once), else learned from every team's interactions of the ``NORM_DAYS`` site
    days up to ``last_day`` (cached ``LEARNED_CACHE_SECONDS``: a 30-day mean barely moves in
    that time, and every KPI request needs it)."""
    admin = {
        code: float(seconds)
        for code, seconds in WrapUpCode.objects.values_list("code", "expected_acw_seconds")
        if seconds is not None
    }
    key = f"coaching:learned-norms:{last_day.isoformat()}"
    cached = cache.get(key)
    if cached is None:
        start, end = site_day_bounds(last_day - timedelta(days=NORM_DAYS - 1), last_day)
        rows = queries.kpi_rows(
            team_ids=Team.objects.values_list("pk", flat=True),
            group_by="wrap_up_code",
            start=start,
            end=end,
            now=now,
        )
        total = KpiRow.total(rows)
        cached = (
            {row.key: row.avg_acw_seconds for row in rows if row.interactions},
            total.avg_acw_seconds if total.interactions else None,
        )
        cache.set(key, cached, LEARNED_CACHE_SECONDS)
    learned, fallback = cached
    return Norms(admin, learned, fallback)


# Groupings by time of day: their rows come from the 15-minute rollups, which do not keep the
# wrap-up code (the expected ACW would read every agent's 15-minute rows instead of the team
# tables); their rows carry no expected ACW and no index (docs/coaching.md).
WITHOUT_INDEX = ("interval", "weekday_hour")


def _index_norms(group_by: GroupBy, norms: Norms) -> Norms | None:
    return None if group_by in WITHOUT_INDEX else norms


def indexed_rows(
    *,
    group_by: GroupBy,
    start: datetime,
    end: datetime,
    where: KpiFilter,
    norms: Norms,
    now: datetime | None = None,
) -> list[KpiRow]:
    """``queries.kpi_rows`` with ``expected_acw_seconds`` and ``acw_index`` on every row
    (except ``WITHOUT_INDEX``): the expected ACW is summed with the other figures, in the
    same read."""
    return queries.kpi_rows(
        group_by=group_by,
        start=start,
        end=end,
        now=now,
        norms=_index_norms(group_by, norms),
        **where.arguments(),
    )


def iter_indexed_rows(
    *,
    group_by: GroupBy,
    first: date,
    last: date,
    where: KpiFilter,
    norms: Norms,
    now: datetime | None = None,
) -> Iterator[KpiRow]:
    """``queries.iter_kpi_rows`` with the ACW index (exports): read in the same chunks."""
    return queries.iter_kpi_rows(
        group_by=group_by,
        first=first,
        last=last,
        now=now,
        norms=_index_norms(group_by, norms),
        **where.arguments(),
    )


# --- Checklist and raw-row signals ----------------------------------------------------------


@dataclass
class StepFigures:
    """One checklist step in one group (team or agent): closed ACWs where it applied, how many
    had it ticked, and their ACW seconds with and without it."""

    acws: int = 0
    ticked: int = 0
    acw_with: float = 0.0
    acw_without: float = 0.0

    @property
    def ticked_share(self) -> float:
        return self.ticked / self.acws if self.acws else 0.0

    @property
    def avg_with(self) -> float | None:
        return self.acw_with / self.ticked if self.ticked else None

    @property
    def avg_without(self) -> float | None:
        missed = self.acws - self.ticked
        return self.acw_without / missed if missed else None


Moments = tuple[float, float, float]
"""(count, Σ seconds, Σ seconds²) of a set of ACWs."""


@dataclass
class RecentAgent:
    """An agent's closed ACWs of the recent window, for the long-call and late-shift signals
    (moments of all of them, of those after long calls and of those late in the shift) and
    their checklist completion."""

    closed: Moments = (0, 0.0, 0.0)
    long: Moments = (0, 0.0, 0.0)
    late: Moments = (0, 0.0, 0.0)
    steps_due: int = 0
    steps_ticked: int = 0

    def add(self, closed: Moments, long: Moments, late: Moments) -> None:
        self.closed, self.long, self.late = (
            _plus(self.closed, closed),
            _plus(self.long, long),
            _plus(self.late, late),
        )

    def split(self, by_long: bool) -> tuple[Stats, Stats] | None:
        """(Stats of the ACWs after long calls, or late in the shift; Stats of the others),
        when both sides have ``MIN_GROUP`` ACWs."""
        flagged = self.long if by_long else self.late
        if int(flagged[0]) < MIN_GROUP or int(self.closed[0] - flagged[0]) < MIN_GROUP:
            return None
        others = tuple(a - b for a, b in zip(self.closed, flagged, strict=True))
        sides = [Stats.from_moments((int(m[0]), m[1], m[2])) for m in (flagged, others)]
        return sides[0], sides[1]

    @property
    def checklist_completion(self) -> float | None:
        """Ticked steps ÷ steps that applied, over the agent's closed ACWs."""
        return self.steps_ticked / self.steps_due if self.steps_due else None


def _plus(a: Moments, b: Moments) -> Moments:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


@dataclass
class Recent:
    """What the recent window says, per team, agent and checklist step."""

    first: date
    last: date
    agents: dict[int, RecentAgent] = field(default_factory=dict)
    by_team: dict[tuple[int, int], StepFigures] = field(default_factory=dict)
    by_agent: dict[tuple[int, int], StepFigures] = field(default_factory=dict)
    steps: list[ChecklistItem] = field(default_factory=list)


def recent_window(first: date, last: date) -> tuple[date, date]:
    """The last ``RECENT_DAYS`` days of the period (the whole period if shorter)."""
    return max(first, last - timedelta(days=RECENT_DAYS - 1)), last


def recent_signals(where: KpiFilter, first: date, last: date, now: datetime) -> Recent:
    """What the closed ACWs of the interactions that ended in the recent window say, from the
    coaching rollups: per agent the ACWs after long calls and late in the shift, and the
    checklist steps ticked (per team and agent, with the ACW with and without each step)."""
    window_first, window_last = recent_window(first, last)
    recent = Recent(window_first, window_last)
    recent.steps = list(ChecklistItem.objects.filter(active=True).order_by("position", "pk"))
    sums = signals.recent_sums(where, window_first, window_last, now)
    ticks = _ticks_per_step(sums.ticks)
    applies: dict[int, list[int]] = {}
    for (team_id, agent_id), m in sums.closed.items():
        agent = recent.agents.setdefault(agent_id, RecentAgent())
        agent.add((m[0], m[1], m[2]), (m[3], m[4], m[5]), (m[6], m[7], m[8]))
        steps = applies.get(team_id)
        if steps is None:
            # A team's own steps apply to that team only.
            steps = applies[team_id] = [
                step.pk for step in recent.steps if step.team_id in (None, team_id)
            ]
        _add_steps(recent, agent, (team_id, agent_id), (int(m[0]), m[1]), steps, ticks)
    return recent


def _ticks_per_step(
    stored: dict[tuple[int, int, str], list[float]],
) -> dict[tuple[int, int, int], list[float]]:
    """The ticked steps per (team, agent, step id), of the steps as stored: a stored value that
    is not a step id is left out (each distinct value converted once: a site has a handful
    of steps, and thousands of team × agent × step sums)."""
    ids: dict[str, int | None] = {}
    ticks: dict[tuple[int, int, int], list[float]] = {}
    for (team_id, agent_id, step), values in stored.items():
        if step not in ids:
            ids[step] = _step_id(step)
        step_id = ids[step]
        if step_id is not None:
            had = ticks.setdefault((team_id, agent_id, step_id), [0, 0.0])
            had[0] += values[0]
            had[1] += values[1]
    return ticks


def _step_id(stored: Any) -> int | None:
    try:
        return int(stored)
    except (TypeError, ValueError):
        return None


def _add_steps(
    recent: Recent,
    agent: RecentAgent,
    key: tuple[int, int],
    closed: tuple[int, float],
    steps: list[int],
    ticks: dict[tuple[int, int, int], list[float]],
) -> None:
    """Each of ``steps`` (those that apply to the team) over the agent's closed ACWs in the
    team (``key``: team, agent): how many had it ticked, ACW seconds with and without it.
    Added in place: thousands of agents × steps on a large site."""
    team_id, agent_id = key
    n, total = closed
    for step in steps:
        done, with_seconds = ticks.get((team_id, agent_id, step), (0, 0.0))
        ticked, without = int(done), total - with_seconds
        agent.steps_due += n
        agent.steps_ticked += ticked
        for into, group in ((recent.by_team, (team_id, step)), (recent.by_agent, (agent_id, step))):
            figures = into.get(group)
            if figures is None:
                figures = into[group] = StepFigures()
            figures.acws += n
            figures.ticked += ticked
            figures.acw_with += with_seconds
            figures.acw_without += without


def grows(flagged: Stats, others: Stats) -> bool:
    """ACW grows in the flagged group (after long calls, late in the shift): its mean is at
    least ``MIN_CHANGE`` above the others' and Welch's z is at least 1.645."""
    if others.mean <= 0 or flagged.mean - others.mean < MIN_CHANGE * others.mean:
        return False
    se = standard_error(flagged.sd, flagged.n, others.sd, others.n)
    return se == 0 or (flagged.mean - others.mean) / se >= Z_ONE_SIDED


# --- The coaching list ----------------------------------------------------------------------


REASON_CODES = [
    "high_index",
    "above_team",
    "above_own_baseline",
    "too_short",
    "extends_often",
    "timeouts_often",
    "grows_after_long_calls",
    "grows_late_in_shift",
]
"""The rules of the coaching list, in the order an entry lists them."""


@dataclass(frozen=True)
class Reason:
    """Why an agent is on the coaching list: a rule (``code``), its numbers, a sentence."""

    code: str
    message: str
    value: float
    threshold: float

    def as_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict`` without its deep copy of every value (plain ones here)."""
        return {
            "code": self.code,
            "message": self.message,
            "value": self.value,
            "threshold": self.threshold,
        }


@dataclass
class Entry:
    agent: str
    name: str
    team: str
    row: KpiRow
    reasons: list[Reason] = field(default_factory=list)
    checklist_completion: float | None = None

    def as_dict(self) -> dict[str, Any]:
        expected = self.row.expected_acw_seconds
        index = self.row.acw_index
        return {
            "agent": self.agent,
            "name": self.name,
            "team": self.team,
            "interactions": self.row.interactions,
            "avg_acw_seconds": round(self.row.avg_acw_seconds, 3),
            "expected_acw_seconds": None if expected is None else round(expected, 3),
            "acw_index": None if index is None else round(index, 3),
            "too_short_rate": round(self.row.too_short_share, 4),
            "checklist_completion": (
                None if self.checklist_completion is None else round(self.checklist_completion, 4)
            ),
            "reasons": [r.code for r in self.reasons],
            "why": " ".join(r.message for r in self.reasons),
        }


ENTRY_FIELDS = list(Entry("", "", "", KpiRow("", "")).as_dict())
"""The coaching list's fields, in the API's and the CSV's order."""


def _s(seconds: float) -> str:
    return format_duration(seconds)


@dataclass
class Checklist:
    """The checklist analysis of a scope: the recent window's figures, and who its agents and
    teams are."""

    recent: Recent
    agents: dict[int, tuple[str, str, str]]
    """agent id → (external id, name, team name), for every agent with figures."""
    teams: dict[int, str]


@dataclass
class Coaching(Checklist):
    """The coaching list of a scope, and the checklist analysis behind it."""

    entries: list[Entry] = field(default_factory=list)


@dataclass
class Figures:
    """Per agent id, what the rules weigh: the period's row (with the expected ACW for the agent's
    mix; without talk and hold time, which the list does not show), the spread of their ACWs,
    the team's and their own baseline's ACW for the same codes and channels (``own_expected`` only for agents with a baseline), the baseline's
    spread; and who they are (``agents``: external id, name, team name, in external id
    order)."""

    agents: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    rows: dict[int, KpiRow] = field(default_factory=dict)
    stats: dict[int, Stats] = field(default_factory=dict)
    team_expected: dict[int, float] = field(default_factory=dict)
    own_expected: dict[int, float] = field(default_factory=dict)
    stats_before: dict[int, Stats] = field(default_factory=dict)


_MOMENTS = slice(signals.FIGURE_COLUMNS.index("durations"), len(signals.FIGURE_COLUMNS))
_ROW_SUMS = signals.FIGURE_COLUMNS[: _MOMENTS.start]
"""The ``KpiRow`` sums among the figures (talk and hold are not summed: left at 0)."""
assert set(_ROW_SUMS) <= set(SUMMED)


def _figures(where: KpiFilter, first: date, last: date, norms: Norms, now: datetime) -> Figures:
    """The agents' figures for the period and the ``BASELINE_DAYS`` before it, summed per
    agent in the database (``signals.agent_figures``)."""
    baseline = (first - timedelta(days=BASELINE_DAYS), first - timedelta(days=1))
    set_norms = {**norms.learned, **norms.admin}
    rows = signals.agent_figures(where, (first, last), baseline, set_norms, norms.fallback, now)
    out = Figures()
    width = len(signals.FIGURE_COLUMNS)
    for agent, *values in rows:
        sums, (expected, with_norm, team_total, own_total, *before) = values[:width], values[width:]
        *before, external_id, name, team = before
        out.agents[agent] = (external_id, name, team)
        row = KpiRow(external_id, name, **dict(zip(_ROW_SUMS, sums, strict=False)))
        row.expected_acw_total, row.expected_interactions = expected, int(with_norm)
        out.rows[agent] = row
        out.stats[agent] = _stats(sums[_MOMENTS])
        out.team_expected[agent] = team_total / row.interactions if row.interactions else 0
        if own_total is not None and row.interactions:
            out.own_expected[agent] = own_total / row.interactions
            out.stats_before[agent] = _stats(before[1:])
    return out


def _stats(moments: list[float]) -> Stats:
    n, total, squares = moments
    return Stats.from_moments((int(n), total, squares))


def coaching(where: KpiFilter, first: date, last: date, now: datetime | None = None) -> Coaching:
    """Who needs coaching in the period, and why (docs/coaching.md).

    Per agent: the ACW index against the site's norms; ACW against their own last
    ``BASELINE_DAYS`` days and against their team's average for the same codes and channels
    (mix-adjusted); too-short, extended and timeout rates; and in the recent window, ACW after
    long calls and late in the shift. Each reason needs ``MIN_INTERACTIONS`` and a confidence
    bound, so one long or short ACW never puts anyone on the list.
    """
    now = now or timezone.now()
    norms = site_norms(last, now)
    figures, recent = queries.side_by_side(
        lambda: _figures(where, first, last, norms, now),
        lambda: recent_signals(where, first, last, now),
    )

    _ = Words()
    window = _("last %(days)d days") % {"days": (recent.last - recent.first).days + 1}
    entries = []
    # In external id order: entries that sort alike keep it.
    for agent_id, (agent_key, name, team) in figures.agents.items():
        row = figures.rows[agent_id]
        reasons: list[Reason] = []
        stats = figures.stats[agent_id]
        index = row.acw_index
        expected = row.expected_acw_seconds
        if high_index(row.avg_acw_seconds, expected, stats):
            assert index is not None and expected is not None
            reasons.append(
                Reason(
                    "high_index",
                    _(
                        "ACW index %(index).2f: average ACW %(avg)s against %(expected)s "
                        "expected for the codes handled (%(n)d ACWs)."
                    )
                    % {
                        "index": index,
                        "avg": _s(row.avg_acw_seconds),
                        "expected": _s(expected),
                        "n": stats.n,
                    },
                    round(index, 3),
                    HIGH_INDEX,
                )
            )
        # Against the team's average for the same codes and channels (the agent included).
        team_expected = figures.team_expected[agent_id]
        if team_expected > 0 and high_index(row.avg_acw_seconds, team_expected, stats):
            reasons.append(
                Reason(
                    "above_team",
                    _(
                        "Average ACW %(avg)s against %(team)s for the team on the same codes "
                        "and channels (+%(pct)s)."
                    )
                    % {
                        "avg": _s(row.avg_acw_seconds),
                        "team": _s(team_expected),
                        "pct": _.percent(row.avg_acw_seconds / team_expected - 1),
                    },
                    round(row.avg_acw_seconds / team_expected, 3),
                    HIGH_INDEX,
                )
            )
        # Against the agent's own last 30 days, for the same mix.
        if agent_id in figures.own_expected:
            own_expected = figures.own_expected[agent_id]
            now_stats = Stats(stats.n, row.avg_acw_seconds, stats.sd)
            before_stats = figures.stats_before[agent_id]
            if change_is_real(now_stats, own_expected, before_stats):
                reasons.append(
                    Reason(
                        "above_own_baseline",
                        _(
                            "Average ACW %(avg)s against %(own)s in the %(days)d days before, "
                            "for the same codes and channels (+%(pct)s)."
                        )
                        % {
                            "avg": _s(row.avg_acw_seconds),
                            "own": _s(own_expected),
                            "days": BASELINE_DAYS,
                            "pct": _.percent(row.avg_acw_seconds / own_expected - 1),
                        },
                        round(row.avg_acw_seconds / own_expected, 3),
                        1 + MIN_CHANGE,
                    )
                )
        recent_agent = recent.agents.get(agent_id)
        completion = recent_agent.checklist_completion if recent_agent else None
        if rate_is_high(row.too_short, row.acw_count, TOO_SHORT_RATE):
            checklist = (
                _(" Checklist completion %(done)s.") % {"done": _.percent(completion)}
                if completion is not None
                else ""
            )
            reasons.append(
                Reason(
                    "too_short",
                    _(
                        "%(k)d of %(n)d ACWs shorter than the policy's minimum (%(rate)s): "
                        "a documentation risk."
                    )
                    % {
                        "k": row.too_short,
                        "n": row.acw_count,
                        "rate": _.percent(row.too_short_share),
                    }
                    + checklist,
                    round(row.too_short_share, 4),
                    TOO_SHORT_RATE,
                )
            )
        often = [
            ("extends_often", row.extended, _("Extended %(k)d of %(n)d ACWs (%(rate)s).")),
            (
                "timeouts_often",
                row.timeouts,
                _("%(k)d of %(n)d ACWs ran into the timeout (%(rate)s)."),
            ),
        ]
        for code, k, text in often:
            if rate_is_high(k, row.acw_count, OFTEN_RATE):
                share = k / row.acw_count
                message = text % {"k": k, "n": row.acw_count, "rate": _.percent(share)}
                reasons.append(Reason(code, message, round(share, 4), OFTEN_RATE))
        if recent_agent is not None:
            reasons += _recent_reasons(recent_agent, window, _)
        if reasons:
            entries.append(Entry(agent_key, name, team, row, reasons, completion))
    entries.sort(key=lambda e: (e.team, -len(e.reasons), e.name))
    return Coaching(recent, figures.agents, _team_names(where), entries)


def _team_names(where: KpiFilter) -> dict[int, str]:
    return dict(Team.objects.filter(pk__in=where.team_ids).values_list("pk", "name"))


def checklist(where: KpiFilter, first: date, last: date, now: datetime | None = None) -> Checklist:
    """The checklist analysis alone (its CSV): the recent window and the names of the agents
    in it, without the period's figures of every agent that the coaching list weighs (by far
    the larger read). Every agent with closed ACWs in the recent window has figures in the
    period, which holds the window, so the agents named are those ``coaching`` names."""
    recent = recent_signals(where, first, last, now or timezone.now())
    agents = {
        pk: (external_id, name, team)
        for pk, external_id, name, team in Agent.objects.filter(pk__in=recent.agents).values_list(
            "pk", "external_id", "name", "team__name"
        )
    }
    return Checklist(recent, agents, _team_names(where))


def _recent_reasons(agent: RecentAgent, window: str, _: Words) -> list[Reason]:
    """The long-call and late-in-the-shift reasons; ``window`` names the recent window."""
    out = []
    long_calls = agent.split(by_long=True)
    if long_calls and grows(*long_calls):
        flagged, others = long_calls
        out.append(
            Reason(
                "grows_after_long_calls",
                _(
                    "ACW after long calls %(long)s against %(other)s after the others "
                    "(%(n)d long calls, %(window)s)."
                )
                % {
                    "long": _s(flagged.mean),
                    "other": _s(others.mean),
                    "n": flagged.n,
                    "window": window,
                },
                round(flagged.mean / others.mean, 3),
                1 + MIN_CHANGE,
            )
        )
    late = agent.split(by_long=False)
    if late and grows(*late):
        flagged, others = late
        out.append(
            Reason(
                "grows_late_in_shift",
                _(
                    "ACW late in the shift %(late)s against %(other)s earlier "
                    "(more than %(hours)d h after the first call of the day, %(window)s)."
                )
                % {
                    "late": _s(flagged.mean),
                    "other": _s(others.mean),
                    "hours": LATE_AFTER_HOURS,
                    "window": window,
                },
                round(flagged.mean / others.mean, 3),
                1 + MIN_CHANGE,
            )
        )
    return out


# --- Checklist analysis rows ----------------------------------------------------------------

CHECKLIST_FIELDS = [
    "step",
    "team",
    "agent",
    "agent_name",
    "acws",
    "ticked",
    "ticked_share",
    "avg_acw_with_seconds",
    "avg_acw_without_seconds",
]


def checklist_rows(result: Checklist, *, per_agent: bool = True) -> list[dict[str, Any]]:
    """The checklist analysis, per step: one row per team, then (``per_agent``) one per agent."""
    recent = result.recent
    out = []

    def line(
        step: ChecklistItem, team: str, agent: tuple[str, str], f: StepFigures
    ) -> dict[str, Any]:
        return {
            "step": step.label,
            "team": team,
            "agent": agent[0],
            "agent_name": agent[1],
            "acws": f.acws,
            "ticked": f.ticked,
            "ticked_share": round(f.ticked_share, 4),
            "avg_acw_with_seconds": None if f.avg_with is None else round(f.avg_with, 3),
            "avg_acw_without_seconds": (None if f.avg_without is None else round(f.avg_without, 3)),
        }

    # Sorted once for every step (a step's rows keep this order).
    by_team = sorted(recent.by_team.items(), key=lambda i: result.teams.get(i[0][0], ""))
    by_agent = sorted(
        recent.by_agent.items() if per_agent else (),
        key=lambda i: result.agents.get(i[0][0], ("", "", ""))[1],
    )
    for step in recent.steps:
        for (team_id, step_id), figures in by_team:
            if step_id == step.pk:
                out.append(line(step, result.teams.get(team_id, ""), ("", ""), figures))
        for (agent_id, step_id), figures in by_agent:
            if step_id == step.pk and agent_id in result.agents:
                external_id, name, team = result.agents[agent_id]
                out.append(line(step, team, (external_id, name), figures))
    return out
