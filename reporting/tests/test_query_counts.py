"""A KPI request costs a bounded number of queries, whatever the period and the data.

The history comes from ``manage.py seed_history`` (also checked here: what it writes is what
the event log implies, and its rollups are what the raw rows give).
"""

from __future__ import annotations

import io
import math
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from agents import services
from agents.choices import AcwEndReason
from agents.models import (
    AcwSession,
    Agent,
    AgentState,
    ChecklistItem,
    Event,
    Interaction,
    Team,
    WrapUpCode,
)
from reporting.management.commands.seed_history import CHECKLIST
from reporting.models import DirtyInterval
from reporting.queries import (
    GROUP_BYS,
    SUMMED,
    acw_distribution,
    acw_distribution_raw,
    kpi_rows,
    kpi_rows_raw,
    shared_reads,
    site_day_bounds,
    site_today,
)

from .factories import call, ingest

pytestmark = pytest.mark.django_db

# Authentication and access (token, groups, teams, filter checks) and the KPI read itself
# (snapshot, dirty intervals, up to three rollup segments, raw edges, open ACWs, code norms).
MAX_QUERIES = 14


@pytest.fixture
def history(db: None) -> None:
    call_command("seed_history", agents=4, days=35, team_size=2, departments=2, calls=5)


def _queries(client: APIClient, url: str, params: dict[str, str]) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params)
        if response.streaming:
            b"".join(response.streaming_content)
    assert response.status_code == 200, response
    return len(captured)


def test_a_kpi_request_makes_a_bounded_number_of_queries(api: APIClient, history: None) -> None:
    last = site_today() - timedelta(days=1)
    for group_by in GROUP_BYS:
        counts = {}
        for days in (1, 7, 35):
            params = {"group_by": group_by, "from": str(last - timedelta(days=days - 1))}
            params["to"] = str(last)
            counts[days] = _queries(api, "/api/v1/kpis", params)
            filtered = {**params, "team": "Hist 01", "agent": "hist-0001", "channel": "phone"}
            assert _queries(api, "/api/v1/kpis", filtered) <= MAX_QUERIES, group_by
        assert max(counts.values()) <= MAX_QUERIES, (group_by, counts)
        # A longer period (more rollup rows, more days) does not mean more queries.
        assert counts[35] <= counts[7] + 1, (group_by, counts)


def test_a_csv_export_of_intervals_is_one_read(api: APIClient, history: None) -> None:
    last = site_today() - timedelta(days=1)
    params = {"group_by": "interval", "from": str(last - timedelta(days=34)), "to": str(last)}
    # Two months of 15-minute rows: on PostgreSQL one streamed read, as many queries as the
    # JSON (the second request: the first also reads what the site caches); elsewhere a month
    # at a time, still bounded.
    _queries(api, "/api/v1/kpis", params)
    json_queries = _queries(api, "/api/v1/kpis", params)
    csv_queries = _queries(api, "/api/v1/kpis", {**params, "format": "csv"})
    if connection.vendor == "postgresql":
        assert csv_queries == json_queries
    assert max(json_queries, csv_queries) <= MAX_QUERIES


def test_a_distribution_request_makes_a_bounded_number_of_queries(
    api: APIClient, history: None
) -> None:
    last = site_today() - timedelta(days=1)
    for days in (1, 35):
        params = {"from": str(last - timedelta(days=days - 1)), "to": str(last)}
        assert _queries(api, "/api/v1/kpis/distribution", params) <= MAX_QUERIES


def test_seeded_history_is_what_its_events_imply(history: None) -> None:
    agent = Agent.objects.get(external_id="hist-0002")
    before = sorted(
        Interaction.objects.filter(agent=agent).values_list(
            "interaction_id", "ended_at", "talk_seconds", "hold_seconds", "acw__duration_seconds"
        )
    )
    assert len(before) > 100  # 35 days of about 5 interactions
    assert Event.objects.filter(agent=agent).count() > 3 * len(before)
    services.replay_agent(agent.pk)  # the state machine from the event log alone
    after = sorted(
        Interaction.objects.filter(agent=agent).values_list(
            "interaction_id", "ended_at", "talk_seconds", "hold_seconds", "acw__duration_seconds"
        )
    )
    assert after == before
    assert AcwSession.objects.filter(agent=agent, end_reason="timeout").exists()
    assert AcwSession.objects.filter(agent=agent, extensions__gt=0).exists()


def test_seeded_rollups_equal_the_raw_rows(history: None) -> None:
    last = site_today() - timedelta(days=1)
    start, end = site_day_bounds(last - timedelta(days=34), last)
    team_ids = list(Agent.objects.values_list("team_id", flat=True).distinct())
    span: dict[str, Any] = {"team_ids": team_ids, "start": start, "end": end}
    for group_by in ("agent", "department", "wrap_up_code", "weekday_hour"):
        rolled = kpi_rows(**span, group_by=group_by)  # type: ignore[arg-type]
        raw = kpi_rows_raw(**span, group_by=group_by)  # type: ignore[arg-type]
        assert [r.key for r in rolled] == [r.key for r in raw]
        for a, b in zip(rolled, raw, strict=True):
            for name in SUMMED:
                assert getattr(a, name) == pytest.approx(getattr(b, name)), (a.key, name)
    assert acw_distribution(**span) == acw_distribution_raw(**span)


def test_seeded_acws_tick_the_site_checklist_and_fewer_steps_when_hurried(
    history: None,
) -> None:
    steps = list(ChecklistItem.objects.filter(team=None).order_by("position"))
    assert [s.label for s in steps] == [label for label, _ in CHECKLIST]
    ended = AcwSession.objects.filter(
        end_reason=AcwEndReason.AGENT_READY, wrap_up_code__in=["sale", "info"]
    )
    norms = dict(WrapUpCode.objects.values_list("code", "expected_acw_seconds"))
    ticks = {"unhurried": [0] * len(steps), "hurried": [0] * len(steps)}
    totals = {"unhurried": 0, "hurried": 0}
    for code, duration, checklist in ended.values_list(
        "wrap_up_code", "duration_seconds", "checklist"
    ):
        assert set(checklist) <= {s.pk for s in steps}
        kind = "hurried" if duration < norms[code] / 2 else "unhurried"
        if duration < norms[code] / 2 or duration >= norms[code]:
            totals[kind] += 1
            for n, step in enumerate(steps):
                ticks[kind][n] += step.pk in checklist
    assert min(totals.values()) >= 20, totals
    rates = {kind: [t / totals[kind] for t in ticks[kind]] for kind in ticks}
    # Each step about as often as CHECKLIST says after an ACW of at least the norm (within
    # three binomial standard deviations), the first step most often; after an ACW of less than
    # half the norm, well under half as many steps ticked.
    n = totals["unhurried"]
    for (_, share), rate in zip(CHECKLIST, rates["unhurried"], strict=True):
        assert rate == pytest.approx(share, abs=3 * math.sqrt(share * (1 - share) / n)), rates
    assert rates["unhurried"][0] == max(rates["unhurried"])
    assert sum(rates["hurried"]) < 0.5 * sum(rates["unhurried"]), rates
    # An ACW that timed out keeps the steps saved while it was open.
    timed_out = AcwSession.objects.filter(end_reason=AcwEndReason.TIMEOUT)
    assert timed_out.exclude(checklist=[]).count() > timed_out.count() / 4


def test_seeding_without_a_checklist_ticks_nothing(db: None) -> None:
    call_command("seed_history", agents=2, days=2, calls=5, checklist=0, stdout=io.StringIO())
    assert AcwSession.objects.count() > 10
    assert not AcwSession.objects.exclude(checklist=[]).exists()
    assert not ChecklistItem.objects.exists()


# The coaching list (docs/coaching.md §7): the reads above for its norms, the period's and the
# baseline's rollup plans, their cells folded per agent in one statement (with who the agents
# are), the recent window per team × agent, the checklist ticks, the teams, plus the page's own
# (session, user, filters).
MAX_COACHING_QUERIES = 20


def test_the_coaching_list_makes_the_same_number_of_queries_for_any_period_and_page(
    api: APIClient, client: Client, manager_maria: Any, history: None
) -> None:
    last = site_today() - timedelta(days=1)
    client.force_login(manager_maria)
    counts: dict[str, list[int]] = {}
    for url, reader, page in (
        ("/api/v1/coaching", api, {}),
        ("/kpis/coaching/", client, {}),
        ("/kpis/coaching/", client, {"page": "2"}),
    ):
        for days in (1, 7, 35):
            params = {"from": str(last - timedelta(days=days - 1)), "to": str(last), **page}
            reader.get(url, params)  # the learned norms are cached per period end
            with CaptureQueriesContext(connection) as captured:
                assert reader.get(url, params).status_code == 200
            sql = [q["sql"] for q in captured.captured_queries]
            counts.setdefault(url, []).append(len(sql))
            # With the rollups up to date, nothing is summed from raw interactions.
            assert [q for q in sql if 'FROM "agents_interaction"' in q and "GROUP BY" in q] == []
        assert len(set(counts[url])) == 1, counts
        assert counts[url][0] <= MAX_COACHING_QUERIES, counts


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_seeding_in_worker_processes_writes_the_same_history() -> None:
    """Each day has its own random stream: two worker processes write what one process does,
    and the live state is each agent's after its newest day."""
    for prefix, jobs in (("one", 1), ("two", 2)):
        call_command(
            "seed_history", agents=3, days=4, team_size=2, calls=4, prefix=prefix, jobs=jobs
        )

    def history(prefix: str) -> list[Any]:
        return sorted(
            Interaction.objects.filter(agent__external_id__startswith=f"{prefix}-").values_list(
                "ended_at", "talk_seconds", "hold_seconds", "acw__duration_seconds"
            )
        )

    assert len(history("one")) > 30
    assert history("two") == history("one")
    last_events = [
        sorted(
            AgentState.objects.filter(agent__external_id__startswith=prefix).values_list(
                "last_event_at", "state"
            )
        )
        for prefix in ("one-", "two-")
    ]
    assert last_events[0] == last_events[1] and None not in {at for at, _ in last_events[0]}


# The overview by agent: the session, the user, their groups and teams, the codes' admin
# norms; in one snapshot, each period's stale buckets and dirty intervals read once (the
# period and the previous one), the agent table, the open ACWs of each period, the previous
# period's team rows, the heat map, the trend, the histogram and its policy, the channels,
# the codes and their labels; the filters' departments and teams, and the user's own agent
# (the header). Outside a transaction the snapshot adds its SET TRANSACTION.
OVERVIEW_QUERIES = 23


def _overview_queries(client: Client, params: dict[str, str]) -> list[str]:
    client.get("/kpis/", params)  # the learned norms are cached per period end
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/kpis/", params).status_code == 200
    return [q["sql"] for q in captured.captured_queries]


def test_the_overview_by_agent_reads_what_its_figures_share_once(
    client: Client, manager_maria: Any, history: None
) -> None:
    last = site_today() - timedelta(days=1)
    client.force_login(manager_maria)
    counts = {}
    for days in (1, 35, 365):
        params = {"from": str(last - timedelta(days=days - 1)), "to": str(last)}
        sql = _overview_queries(client, params)
        counts[days] = len(sql)
        # The period and the previous one: which buckets lag and which intervals are dirty,
        # once each; a year's months and days of a table in one statement.
        assert len([q for q in sql if 'FROM "reporting_stalebucket"' in q]) == 2, days
        assert len([q for q in sql if 'FROM "reporting_dirtyinterval"' in q]) == 2, days
        assert len([q for q in sql if '"reporting_kpirollup"' in q]) == 1, days
        assert len([q for q in sql if 'FROM "reporting_teamacwdurationrollup"' in q]) == 1, days
        assert [q for q in sql if 'FROM "agents_interaction"' in q and "GROUP BY" in q] == []
    assert counts == dict.fromkeys(counts, OVERVIEW_QUERIES), counts


def test_reads_sharing_a_snapshot_give_the_figures_of_separate_reads(
    manager_maria: Any, history: None
) -> None:
    """Inside ``shared_reads()`` the stale buckets, dirty intervals and open ACWs are read once
    for every grouping; the figures are those each read gets on its own."""
    now = timezone.now()
    # An ACW still open and a dirty interval (not rolled up yet), for two agents.
    for agent in ("hist-0001", "hist-0003"):
        done = call(agent, f"{agent}-now-1", now - timedelta(minutes=40), talk=90, acw=25)
        open_acw = call(agent, f"{agent}-now-2", now - timedelta(seconds=50), talk=30, acw=None)
        assert set(ingest(*done, *open_acw)) == {"accepted"}
    assert DirtyInterval.objects.exists()
    assert AcwSession.objects.filter(ended_at__isnull=True).count() >= 2
    last = site_today()
    team_ids = list(Team.objects.values_list("pk", flat=True))
    periods = [site_day_bounds(last - timedelta(days=days - 1), last) for days in (1, 40, 400)]

    def read_all() -> list[Any]:
        out: list[Any] = []
        for start, end in periods:
            for group_by in GROUP_BYS:
                span: dict[str, Any] = {"team_ids": team_ids, "start": start, "end": end}
                rows = kpi_rows(**span, group_by=group_by, now=now)  # type: ignore[arg-type]
                out.append([(r.key, r.name, *(getattr(r, f) for f in SUMMED)) for r in rows])
            out.append(acw_distribution(team_ids=team_ids, start=start, end=end, now=now))
        return out

    apart = read_all()
    with shared_reads():
        together = read_all()
    assert together == apart
    assert "hist-0001" in [row[0] for row in apart[0]]  # today's rows, by agent
