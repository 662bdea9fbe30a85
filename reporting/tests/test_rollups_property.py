"""Property: KPIs read from rollups equal the raw recomputation, whatever the arrival order.

Random event streams for a few agents (valid contract events), shuffled and partly duplicated,
go through ``ingest_event``, with rollup runs in between; before and after a final run,
``kpi_rows`` (rollups + dirty intervals + open ACWs) must equal ``kpi_rows_raw`` to the second,
in every grouping, with every field (timeouts, extensions, too-short ACWs ...), unfiltered and
filtered; ``acw_distribution`` (duration rollups) must equal ``acw_distribution_raw``; and the
coaching sums (``signals.period_cells`` / ``recent_sums``: the coaching rollups, whose day rows
place each ACW in its agent's day) must equal their raw recomputation. The
same holds after a set-based ``rebuild_range`` of the days, and for the team tables (read by every
grouping but ``agent`` once no bucket is dirty).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents import services as agent_services
from agents.models import AcwPolicy, Department, Team, WrapUpCode
from agents.tests.factories import event
from reporting import rollups, signals
from reporting.coaching import WITHOUT_INDEX
from reporting.queries import (
    GROUP_BYS,
    SUMMED,
    KpiFilter,
    KpiRow,
    Norms,
    acw_distribution,
    acw_distribution_raw,
    kpi_rows,
    kpi_rows_raw,
    site_day,
)

pytestmark = pytest.mark.django_db

# 23:30 in the site time zone (Asia/Kolkata, +05:30): streams cross a site midnight.
BASE = datetime(2026, 11, 19, 18, 0, tzinfo=UTC)
# In December: November is a closed month, read from month rollups over a long range.
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
AGENTS = [("p0", "North"), ("p1", "North"), ("p2", "South")]
# Norms for two of the three codes ("info" has none): rows with "info" have no expected ACW.
NORMS = Norms(admin={"sale": 40.0}, learned={"": 25.5})

gap = st.integers(min_value=0, max_value=900)
call = st.tuples(
    st.just("call"),
    gap,
    st.integers(min_value=1, max_value=1500),  # talk
    st.sampled_from([0, 0, 15, 200]),  # hold
    st.sampled_from(["ended", "timeout", "extended", "not_ready", "next"]),
    st.integers(min_value=1, max_value=240),  # ACW length (or time until the next step)
    st.sampled_from(["phone", "chat", "email"]),
    st.sampled_from(["", "sale", "info"]),
    st.sampled_from([[], [1], [1, 2]]),  # checklist steps ticked
)
pause = st.tuples(
    st.sampled_from(["break", "logout"]), gap, st.integers(min_value=1, max_value=1800)
)
streams = st.lists(
    st.lists(st.one_of(call, call, pause), min_size=1, max_size=6),
    min_size=len(AGENTS),
    max_size=len(AGENTS),
)


class _Rollback(Exception):
    pass


def _events(agent: str, steps: list[tuple[Any, ...]], ids: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    t = BASE

    def add(type_: str, at: datetime, **fields: Any) -> None:
        out.append(event(agent, type_, at, event_id=f"{agent}-{next(ids)}", **fields))

    add("agent.logged_in", t)
    for n, step in enumerate(steps):
        kind, wait = step[0], timedelta(seconds=step[1])
        t += wait
        if kind == "call":
            _, _, talk, hold, acw, acw_len, channel, code, ticked = step
            cid = {"interaction_id": f"{agent}-c{n}"}
            add("interaction.started", t, channel=channel, **cid)
            if hold:
                add("interaction.held", t + timedelta(seconds=1), **cid)
                add("interaction.resumed", t + timedelta(seconds=1 + hold), **cid)
            end = t + timedelta(seconds=talk + hold)
            add("interaction.ended", end, **cid)
            done = end + timedelta(seconds=acw_len)
            if acw == "ended":
                add(
                    "acw.ended",
                    done,
                    checklist=ticked,
                    **({"wrap_up_code": code} if code else {}),
                )
            elif acw == "extended":
                add("acw.extended", end + timedelta(seconds=acw_len / 2), seconds=25)
            elif acw == "not_ready":
                add("agent.not_ready", done, reason="break")
            t = done
        else:
            _, _, length = step
            if kind == "break":
                add("agent.not_ready", t, reason="lunch")
                add("agent.available", t + timedelta(seconds=length))
            else:
                add("agent.logged_out", t)
                add("agent.logged_in", t + timedelta(seconds=length))
            t += timedelta(seconds=length)
    return out


def _assert_rollups_match_raw(
    team_ids: list[int], ranges: list[tuple[datetime, datetime]], department_id: int
) -> None:
    # Every grouping unfiltered; filtered, one grouping of each kind (keys from a column,
    # a join, a time), so the test stays fast.
    filters: list[tuple[dict[str, Any], tuple[str, ...]]] = [
        ({}, GROUP_BYS),
        (
            {"channels": ["phone", "chat"], "department_ids": [department_id]},
            ("wrap_up_code", "department", "weekday_hour", "interval"),
        ),
    ]
    for start, end in ranges:
        for where, group_bys in filters:
            span = {"team_ids": team_ids, "start": start, "end": end, **where}
            for group_by in group_bys:
                # With the norms, each row's expected ACW too (summed in SQL from the rollups).
                for norms in (None, NORMS) if group_by not in WITHOUT_INDEX else (None,):
                    rolled = kpi_rows(**span, group_by=group_by, now=NOW, norms=norms)
                    raw = kpi_rows_raw(**span, group_by=group_by, now=NOW, norms=norms)
                    _assert_same_rows(rolled, raw, (start, end, group_by, where, norms))
            _assert_coaching_rollups_match_raw(KpiFilter.of(team_ids, **where), start, end)
            for bin_seconds in (1, 45):
                assert acw_distribution(
                    **span, bin_seconds=bin_seconds, now=NOW
                ) == acw_distribution_raw(**span, bin_seconds=bin_seconds), (
                    start,
                    end,
                    where,
                    bin_seconds,
                )


def _assert_same_rows(rolled: list[KpiRow], raw: list[KpiRow], where: tuple[Any, ...]) -> None:
    assert [(r.key, r.name, r.interactions) for r in rolled] == [
        (r.key, r.name, r.interactions) for r in raw
    ], where
    for a, b in zip(rolled, raw, strict=True):
        for name in (*SUMMED, "expected_acw_total"):
            assert getattr(a, name) == pytest.approx(getattr(b, name), abs=1e-6), (
                *where,
                a.key,
                name,
            )
        assert a.expected_interactions == b.expected_interactions, (*where, a.key)
        assert a.norm_acw_seconds == b.norm_acw_seconds


def _assert_coaching_rollups_match_raw(where: KpiFilter, start: datetime, end: datetime) -> None:
    """The coaching sums (reporting/signals.py) of the site days in [start, end) equal their
    recomputation from the raw rows, per agent × code × channel and per team × agent."""
    first, last = site_day(start), site_day(end - timedelta(microseconds=1))
    rolled = signals.period_cells(where, first, last, NOW)
    raw = signals.period_cells_raw(where, first, last, NOW)
    assert rolled.keys() == raw.keys(), (first, last, where)
    for key, values in rolled.items():
        assert values == pytest.approx(raw[key], abs=1e-6), (first, last, where, key)
    recent = signals.recent_sums(where, first, last, NOW)
    recent_raw = signals.recent_sums_raw(where, first, last)
    assert recent.closed.keys() == recent_raw.closed.keys(), (first, last, where)
    for team_agent, values in recent.closed.items():
        assert values == pytest.approx(recent_raw.closed[team_agent], abs=1e-6), team_agent
    assert recent.ticks.keys() == recent_raw.ticks.keys(), (first, last, where)
    for step, values in recent.ticks.items():
        assert values == pytest.approx(recent_raw.ticks[step], abs=1e-6), step


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=streams,
    data=st.data(),
    every=st.integers(min_value=1, max_value=12),
    window=st.tuples(st.integers(0, 40 * 3600), st.integers(1, 40 * 3600)),
)
def test_rollup_kpis_equal_raw_kpis_for_shuffled_duplicated_streams(
    django_settings: Any, steps: list[list[tuple[Any, ...]]], data: Any, every: int, window: Any
) -> None:
    ids = itertools.count()
    events = [
        e for (agent, _), s in zip(AGENTS, steps, strict=True) for e in _events(agent, s, ids)
    ]
    arrival = data.draw(st.permutations(events))
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=5))
    arrival = [*arrival, *repeats]
    start = BASE + timedelta(seconds=window[0])
    ranges = [
        (datetime(2026, 9, 30, 18, 30, tzinfo=UTC), NOW),  # October and November as months
        # The last 30 days: November 9 to 29 as weeks (once summed), the rest as days.
        (datetime(2026, 11, 2, 18, 30, tzinfo=UTC), datetime(2026, 12, 2, 18, 30, tzinfo=UTC)),
        (BASE - timedelta(days=1), BASE + timedelta(days=3)),  # whole site days
        (start, start + timedelta(seconds=window[1])),  # anywhere, any length
    ]
    try:
        with transaction.atomic():
            for external_id, team in AGENTS:
                agent_services.provision_agent(external_id, name=external_id, team_name=team)
            north = Team.objects.get(name="North")
            north.department = Department.objects.create(name="Sales")
            north.save(update_fields=["department"])
            WrapUpCode.objects.create(code="sale", label="Sale", expected_acw_seconds=40)
            AcwPolicy.objects.create(team=north, seconds=60, min_seconds=20, max_seconds=120)
            south = Team.objects.get(name="South")
            AcwPolicy.objects.create(team=south, channel="chat", mode="manual", seconds=0)
            # Every team (the site rows answer unfiltered intervals), "Unassigned" included.
            team_ids = list(Team.objects.values_list("pk", flat=True))
            statuses = []
            for n, raw in enumerate(arrival, start=1):
                statuses.append(agent_services.ingest_event(raw).status)
                if n % every == 0:
                    rollups.compute_rollups()  # late events then correct rolled-up intervals
            assert set(statuses) <= {"accepted", "duplicate"}
            sales = north.department_id
            assert sales is not None
            _assert_rollups_match_raw(team_ids, ranges, sales)  # dirty intervals read raw
            rollups.compute_rollups()
            _assert_rollups_match_raw(team_ids, ranges, sales)  # November read as days
            rollups.refresh_stale_buckets(now=NOW)  # November has ended: its month rows
            _assert_rollups_match_raw(team_ids, ranges, sales)  # everything from rollups
            # The set-based rebuild (SQL) writes the same rows as the incremental runs.
            rollups.rebuild_range(BASE.date() - timedelta(days=1), BASE.date() + timedelta(days=3))
            _assert_rollups_match_raw(team_ids, ranges, sales)
            raise _Rollback
    except _Rollback:
        pass


@pytest.fixture
def django_settings(settings: Any) -> Any:
    settings.TIME_ZONE = "Asia/Kolkata"
    return settings
