"""Rollups: what they hold, how late events correct them, and KPIs read from them."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from importlib import import_module
from io import StringIO
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from agents.models import AcwPolicy, AcwSession, Agent, Team
from reporting import rollups
from reporting.models import (
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
from reporting.queries import (
    KpiFilter,
    acw_duration_counts,
    kpi_rows,
    kpi_rows_raw,
    rollup_segments,
    site_day_bounds,
)

from .factories import call, event, ingest

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 11, 20, tzinfo=UTC)
NOON = DAY + timedelta(hours=12)


def kpis(team_ids: list[int], start: datetime, end: datetime, group_by: Any = "agent", **kw: Any):
    rolled = kpi_rows(team_ids=team_ids, group_by=group_by, start=start, end=end, **kw)
    raw = kpi_rows_raw(team_ids=team_ids, group_by=group_by, start=start, end=end, **kw)
    return [r.as_dict() for r in rolled], [r.as_dict() for r in raw]


def test_an_interaction_counts_in_the_15_minute_interval_it_ended_in(alice: Agent) -> None:
    ingest(*call("alice", "c1", NOON + timedelta(minutes=10), talk=400, acw=20, code="sale"))
    rollups.compute_rollups()
    row = TeamIntervalRollup.objects.get()
    # Started 12:10, ended 12:16:40: it belongs to 12:15–12:30.
    assert row.bucket_start == NOON + timedelta(minutes=15)
    assert (row.team_id, row.channel) == (alice.team_id, "phone")
    assert (row.interactions, row.talk_seconds, row.acw_seconds, row.acw_count) == (1, 400, 20, 1)
    day = KpiRollup.objects.get(grain=Grain.DAY)
    assert (day.bucket_start, day.bucket_end) == (DAY, DAY + timedelta(days=1))
    assert (day.agent_id, day.team_id, day.wrap_up_code) == (alice.pk, alice.team_id, "sale")
    assert (day.interactions, day.talk_seconds, day.acw_seconds) == (1, 400, 20)


def test_it_counts_timeouts_extensions_overruns_and_too_short_acws(alice: Agent) -> None:
    AcwPolicy.objects.create(team=alice.team, seconds=30, min_seconds=10)
    t = NOON
    ingest(*call("alice", "short", t, talk=60, acw=4))
    t += timedelta(minutes=2)
    extended = call("alice", "ext", t, talk=60, acw=None)
    ingest(*extended, event("alice", "acw.extended", t + timedelta(seconds=70), seconds=30))
    ingest(event("alice", "agent.not_ready", t + timedelta(seconds=200), reason="break"))
    rollups.compute_rollups()
    row = KpiRollup.objects.get(grain=Grain.DAY)
    assert (row.interactions, row.acw_count, row.too_short, row.timeouts) == (2, 2, 1, 1)
    assert (row.extensions, row.overruns) == (1, 1)
    assert row.acw_seconds == pytest.approx(4 + 60)  # the extended one timed out at 30 + 30 s


def test_it_keeps_channels_and_wrap_up_codes_apart(alice: Agent) -> None:
    ingest(*call("alice", "a", NOON, talk=30, acw=5, code="sale"))
    ingest(*call("alice", "b", NOON + timedelta(minutes=1), talk=30, acw=5, channel="chat"))
    ingest(*call("alice", "c", NOON + timedelta(minutes=2), talk=30, acw=5, code="sale"))
    rollups.compute_rollups()
    rows = KpiRollup.objects.filter(grain=Grain.DAY).values_list(
        "channel", "wrap_up_code", "interactions"
    )
    assert sorted(rows) == [("chat", "", 1), ("phone", "sale", 2)]
    intervals = TeamIntervalRollup.objects.values_list("channel", "interactions")
    assert sorted(intervals) == [("chat", 1), ("phone", 2)]


def test_a_late_event_marks_its_interval_dirty_and_the_next_run_corrects_it(
    alice: Agent,
) -> None:
    ingest(*call("alice", "c1", NOON, talk=100, acw=10))
    rollups.compute_rollups()
    assert not DirtyInterval.objects.exists()
    # A hold that happened during the call arrives late: talk and hold change in that interval.
    ingest(
        event("alice", "interaction.held", NOON + timedelta(seconds=20), interaction_id="c1"),
        event("alice", "interaction.resumed", NOON + timedelta(seconds=50), interaction_id="c1"),
    )
    assert DirtyInterval.objects.filter(bucket_start=NOON).exists()
    rolled, raw = kpis([alice.team_id], DAY, DAY + timedelta(days=1))
    assert rolled == raw and raw[0]["hold_seconds"] == 30
    assert rollups.compute_rollups() == 1
    for row in (KpiRollup.objects.get(grain=Grain.DAY), TeamIntervalRollup.objects.get()):
        assert (row.talk_seconds, row.hold_seconds) == (70, 30)
    assert kpis([alice.team_id], DAY, DAY + timedelta(days=1)) == (raw, raw)


def test_a_late_end_moves_an_interaction_to_another_interval_and_its_old_row_goes(
    alice: Agent,
) -> None:
    cid = {"interaction_id": "c1"}
    ingest(
        event("alice", "interaction.started", NOON, channel="phone", **cid),
        event("alice", "interaction.ended", NOON + timedelta(minutes=20), **cid),
    )
    rollups.compute_rollups()
    assert TeamIntervalRollup.objects.get().bucket_start == NOON + timedelta(minutes=15)
    # The agent had actually logged out at 12:05, which ended the call then (no ACW).
    ingest(event("alice", "agent.logged_out", NOON + timedelta(minutes=5)))
    rollups.compute_rollups()
    row = TeamIntervalRollup.objects.get()
    assert (row.bucket_start, row.interactions, row.acw_count) == (NOON, 1, 0)
    rolled, raw = kpis([alice.team_id], DAY, DAY + timedelta(days=1))
    assert rolled == raw


def test_day_rows_whose_keys_are_gone_are_removed_and_the_others_rewritten(alice: Agent) -> None:
    ingest(*call("alice", "c0", NOON - timedelta(hours=2), talk=30, acw=5))
    ingest(*call("alice", "c1", NOON, talk=60, acw=10, code="sale"))
    rollups.compute_rollups()
    day_rows = {"grain": Grain.DAY, "wrap_up_code": "sale"}
    assert KpiRollup.objects.filter(**day_rows, durations=1).exists()
    # The agent had logged out 30 s into the call: no ACW, no code, the same day.
    ingest(event("alice", "agent.logged_out", NOON + timedelta(seconds=30)))
    rollups.compute_rollups()
    assert not KpiRollup.objects.filter(**day_rows).exists()
    # The team day rows too (replaced in place by the refresh of the stale day).
    assert not TeamKpiRollup.objects.filter(**day_rows).exists()
    assert not TeamAcwDurationRollup.objects.filter(grain=Grain.DAY, seconds=10).exists()
    incremental = _every_rollup_row()
    rollups.rebuild_range(DAY.date(), DAY.date(), months=False)
    assert _every_rollup_row() == incremental


def test_an_open_acw_counts_its_elapsed_time_until_its_deadline(alice: Agent) -> None:
    AcwPolicy.objects.create(team=alice.team, mode="manual", seconds=0, max_seconds=0)
    start = NOON
    ingest(*call("alice", "c1", start, talk=60, acw=None))
    rollups.compute_rollups()
    end = start + timedelta(seconds=60)
    rolled, raw = kpis(
        [alice.team_id], DAY, DAY + timedelta(days=1), now=end + timedelta(seconds=25)
    )
    assert rolled == raw and rolled[0]["acw_seconds"] == 25
    assert KpiRollup.objects.get(grain=Grain.DAY).acw_seconds == 0  # open: never stored


def test_kpis_read_day_rows_for_whole_days_and_quarters_for_the_rest(
    alice: Agent, carol: Agent
) -> None:
    for day in range(3):
        base = DAY + timedelta(days=day, hours=9)
        ingest(*call("alice", f"a{day}", base, talk=100 + day, acw=10))
        ingest(*call("carol", f"c{day}", base + timedelta(hours=5), talk=50, acw=20 + day))
    rollups.compute_rollups()
    teams = [alice.team_id, carol.team_id]
    ranges = [
        (DAY, DAY + timedelta(days=3)),  # whole days
        (DAY + timedelta(hours=10), DAY + timedelta(days=2, hours=14, minutes=30)),  # partial
        (DAY + timedelta(hours=9, minutes=1), DAY + timedelta(hours=9, minutes=7)),  # < 15 min
        (DAY + timedelta(hours=9, seconds=5), DAY + timedelta(days=2, hours=23, seconds=7)),
    ]
    for start, end in ranges:
        for group_by in ("agent", "team"):
            rolled, raw = kpis(teams, start, end, group_by)
            assert rolled == raw, (start, end, group_by)
    rolled, _ = kpis(teams, DAY, DAY + timedelta(days=3), "team")
    assert [r["interactions"] for r in rolled] == [3, 3]


def test_kpis_only_show_the_teams_asked_for(alice: Agent, carol: Agent) -> None:
    ingest(*call("alice", "a", NOON, talk=10, acw=1), *call("carol", "c", NOON, talk=10, acw=1))
    rollups.compute_rollups()
    rolled, raw = kpis([carol.team_id], DAY, DAY + timedelta(days=1))
    assert [r["key"] for r in rolled] == ["carol"] and rolled == raw


def test_an_interaction_counts_for_the_team_it_ended_in(alice: Agent, south: Team) -> None:
    ingest(*call("alice", "c1", NOON, talk=10, acw=1))
    Agent.objects.filter(pk=alice.pk).update(team=south)
    ingest(*call("alice", "c2", NOON + timedelta(minutes=1), talk=20, acw=2))
    rollups.compute_rollups()
    rolled, raw = kpis([alice.team_id, south.pk], DAY, DAY + timedelta(days=1), "team")
    assert rolled == raw
    assert {r["key"]: r["interactions"] for r in rolled} == {"North": 1, "South": 1}


def test_day_rows_follow_the_site_time_zone(settings: Any, alice: Agent) -> None:
    settings.TIME_ZONE = "America/New_York"
    # 03:00 UTC on the 21st is still the 20th in New York.
    ingest(*call("alice", "late", DAY + timedelta(days=1, hours=3), talk=10, acw=1))
    rollups.compute_rollups()
    day = KpiRollup.objects.get(grain=Grain.DAY)
    start, end = site_day_bounds(DAY.date(), DAY.date())
    assert (day.bucket_start, day.bucket_end) == (start, end)
    assert start == DAY + timedelta(hours=5)
    rolled, raw = kpis([alice.team_id], start, end)
    assert rolled == raw and rolled[0]["interactions"] == 1


def test_the_rollup_run_is_idempotent(alice: Agent) -> None:
    ingest(*call("alice", "c1", NOON, talk=10, acw=1))
    rollups.compute_rollups()

    def rows() -> list[dict[str, Any]]:
        # Rows are rewritten (new ids, new computed_at): the same keys and sums.
        ordered = KpiRollup.objects.order_by("grain", "bucket_start").values()
        return [{k: v for k, v in r.items() if k not in ("id", "computed_at")} for r in ordered]

    before = rows()
    DirtyInterval.objects.create(agent=alice, bucket_start=NOON)
    assert rollups.compute_rollups() == 1
    assert rollups.compute_rollups() == 0
    assert rows() == before


def test_an_event_that_ends_nothing_marks_no_interval(alice: Agent) -> None:
    ingest(
        event("alice", "agent.logged_in", NOON),
        event("alice", "interaction.started", NOON, interaction_id="c", channel="chat"),
        event("alice", "interaction.held", NOON + timedelta(seconds=5), interaction_id="c"),
    )
    assert not DirtyInterval.objects.exists()


def test_rebuild_rollups_recomputes_history_from_a_date(alice: Agent) -> None:
    for day in range(3):
        ingest(*call("alice", f"c{day}", NOON + timedelta(days=day), talk=10, acw=1))
    rollups.compute_rollups()
    KpiRollup.objects.all().update(talk_seconds=999)  # damaged by hand
    call_command("rebuild_rollups", "--from", (DAY + timedelta(days=1)).date().isoformat())
    talk = dict(
        KpiRollup.objects.filter(grain=Grain.DAY).values_list("bucket_start", "talk_seconds")
    )
    assert talk == {DAY: 999, DAY + timedelta(days=1): 10, DAY + timedelta(days=2): 10}
    call_command("rebuild_rollups")
    days = KpiRollup.objects.exclude(grain__in=[Grain.MONTH, Grain.WEEK])
    assert set(days.values_list("talk_seconds", flat=True)) == {10}
    # The week (Monday 16 to Sunday 22 November) and month rows are sums of their (rebuilt)
    # days.
    for grain in (Grain.WEEK, Grain.MONTH):
        sums = KpiRollup.objects.filter(grain=grain).values_list("talk_seconds", flat=True)
        assert list(sums) == [30], grain


def test_the_rebuild_writes_agent_rows_in_the_order_of_their_key(alice: Agent, bob: Agent) -> None:
    """Rows go in in the order of their table's unique key, so that a period's rows lie together
    (a coaching list reads a month's day rows of every agent, and its baseline's weeks); the
    window functions of the coaching statement hand them over agent by agent."""
    for day in (0, 1, 4, 5):  # Friday 20 to Wednesday 25 November: two weeks
        for name in ("bob", "alice"):
            ingest(*call(name, f"{name}{day}", NOON + timedelta(days=day), talk=10, acw=1))
    if connection.vendor == "postgresql":
        # As on a year of rows: grouped by hashing, not by sorting (which would order them).
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_sort TO off")  # until the test's rollback
    call_command("rebuild_rollups", stdout=StringIO())
    for grain, n in ((Grain.DAY, 8), (Grain.WEEK, 4), (Grain.MONTH, 2)):
        rows = KpiRollup.objects.filter(grain=grain).order_by("id")
        keys = list(
            rows.values_list("bucket_start", "agent_id", "team_id", "channel", "wrap_up_code")
        )
        assert len(keys) == n, grain
        assert keys == sorted(keys), grain


def test_rebuild_rollups_in_a_pipe_prints_one_summary_line_and_no_progress(alice: Agent) -> None:
    ingest(*call("alice", "c1", NOON, talk=10, acw=1))
    out, err = StringIO(), StringIO()
    call_command("rebuild_rollups", "--from", DAY.date().isoformat(), stdout=out, stderr=err)
    assert err.getvalue() == ""
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Rebuilt "), lines
    assert "1 agent day rollup rows" in lines[0]


def test_team_rows_are_the_sums_of_the_agent_rows(alice: Agent, bob: Agent) -> None:
    ingest(*call("alice", "a1", NOON, talk=10, acw=5, code="sale"))
    ingest(*call("alice", "a2", NOON + timedelta(minutes=20), talk=20, acw=7, code="sale"))
    ingest(*call("bob", "b1", NOON + timedelta(minutes=1), talk=30, acw=9))
    rollups.compute_rollups()
    day = TeamKpiRollup.objects.get(grain=Grain.DAY, team=alice.team, wrap_up_code="sale")
    assert (day.interactions, day.talk_seconds, day.acw_seconds) == (2, 30, 12)
    quarters = TeamIntervalRollup.objects.filter(team=alice.team).order_by("bucket_start")
    assert [(q.bucket_start, q.interactions) for q in quarters] == [
        (NOON, 2),  # alice and bob (same team)
        (NOON + timedelta(minutes=15), 1),
    ]
    # The site rows: the team rows summed per 15 minutes (every team).
    site = SiteIntervalRollup.objects.order_by("bucket_start")
    assert [(q.bucket_start, q.interactions, q.talk_seconds) for q in site] == [
        (NOON, 2, 40),
        (NOON + timedelta(minutes=15), 1, 20),
    ]
    # November is summed into month rows once it has ended.
    rollups.refresh_stale_buckets(now=datetime(2026, 12, 1, 1, tzinfo=UTC))
    assert not StaleBucket.objects.exists()
    month = TeamKpiRollup.objects.get(grain=Grain.MONTH, team=bob.team, wrap_up_code="")
    assert (month.interactions, month.talk_seconds) == (1, 30)
    agent_month = KpiRollup.objects.get(grain=Grain.MONTH, agent=alice)
    assert (agent_month.interactions, agent_month.talk_seconds) == (2, 30)


def test_a_stale_team_bucket_is_read_from_the_agent_rows_until_refreshed(alice: Agent) -> None:
    ingest(*call("alice", "a1", NOON, talk=10, acw=5))
    rollups.compute_rollups()
    TeamKpiRollup.objects.all().update(talk_seconds=999)  # team rows behind the agent rows
    StaleBucket.objects.create(grain=Grain.DAY, bucket_start=DAY)
    for grain, start in ((Grain.MONTH, 1), (Grain.WEEK, 16)):
        StaleBucket.objects.get_or_create(
            grain=grain, bucket_start=datetime(2026, 11, start, tzinfo=UTC)
        )
    team_ids = [alice.team_id]
    start, end = site_day_bounds(DAY.date(), DAY.date())
    rolled, raw = kpis(team_ids, start, end, "team")
    assert rolled == raw and rolled[0]["talk_seconds"] == 10
    assert rollups.refresh_stale_buckets(now=datetime(2026, 12, 1, 1, tzinfo=UTC)) == 3
    assert set(TeamKpiRollup.objects.values_list("talk_seconds", flat=True)) == {10}
    assert not StaleBucket.objects.exists()


def test_a_stale_site_bucket_is_read_from_the_agent_rows_until_refreshed(alice: Agent) -> None:
    ingest(*call("alice", "a1", NOON, talk=10, acw=5))
    rollups.compute_rollups()
    SiteIntervalRollup.objects.all().update(talk_seconds=999)  # behind the agent rows
    StaleBucket.objects.create(grain=Grain.QUARTER, bucket_start=NOON)
    start, end = site_day_bounds(DAY.date(), DAY.date())
    every_team = list(Team.objects.values_list("pk", flat=True))  # the site rows answer
    rolled, raw = kpis(every_team, start, end, "interval")
    assert rolled == raw and rolled[0]["talk_seconds"] == 10
    assert rollups.refresh_stale_buckets(ended=False) == 1
    assert list(SiteIntervalRollup.objects.values_list("talk_seconds", flat=True)) == [10]
    SiteIntervalRollup.objects.all().update(talk_seconds=7)  # once fresh, they answer
    assert kpis(every_team, start, end, "interval")[0][0]["talk_seconds"] == 7
    assert kpis([alice.team_id], start, end, "interval")[0][0]["talk_seconds"] == 10


def test_a_month_is_read_as_days_until_its_rows_are_summed(alice: Agent) -> None:
    ingest(*call("alice", "a1", NOON, talk=10, acw=5))
    rollups.compute_rollups()
    rollups.refresh_stale_buckets(now=datetime(2026, 12, 1, 1, tzinfo=UTC))
    KpiRollup.objects.filter(grain=Grain.MONTH).update(talk_seconds=999)  # lagging month rows
    TeamKpiRollup.objects.filter(grain=Grain.MONTH).update(talk_seconds=999)
    StaleBucket.objects.create(grain=Grain.MONTH, bucket_start=datetime(2026, 11, 1, tzinfo=UTC))
    start, end = site_day_bounds(DAY.date() - timedelta(days=40), DAY.date() + timedelta(days=20))
    now = datetime(2026, 12, 15, tzinfo=UTC)
    for group_by in ("agent", "team"):
        rolled, raw = kpis([alice.team_id], start, end, group_by, now=now)
        assert rolled == raw and rolled[0]["talk_seconds"] == 10, group_by


def test_hour_and_duration_team_rows_are_sums_read_unless_a_bucket_lags(
    alice: Agent, bob: Agent
) -> None:
    ingest(*call("alice", "a1", NOON, talk=10, acw=5))
    ingest(*call("alice", "a2", NOON + timedelta(minutes=20), talk=20, acw=7))
    ingest(*call("bob", "b1", NOON + timedelta(hours=2), talk=30, acw=5))
    rollups.compute_rollups()
    rollups.refresh_stale_buckets(now=datetime(2026, 12, 1, 1, tzinfo=UTC))
    cells = TeamHourRollup.objects.values_list("grain", "weekday", "hour", "interactions")
    # 2026-11-20 is a Friday (ISO 5); alice and bob are in the same team.
    assert sorted(cells) == [
        (grain, 5, hour, n) for grain in ("day", "mon", "wk") for hour, n in ((12, 2), (14, 1))
    ]
    durations = TeamAcwDurationRollup.objects.values_list("grain", "seconds", "count")
    assert sorted(durations) == [
        (grain, seconds, n) for grain in ("day", "mon", "wk") for seconds, n in ((5, 2), (7, 1))
    ]
    # Team rows behind the agent rows are read while their bucket is fine ...
    TeamHourRollup.objects.update(interactions=99)
    TeamAcwDurationRollup.objects.update(count=50)
    team_ids = [alice.team_id]
    start, end = site_day_bounds(DAY.date(), DAY.date())
    rolled, raw = kpis(team_ids, start, end, "weekday_hour")
    assert [r["interactions"] for r in rolled] == [99, 99]
    counts = acw_duration_counts(KpiFilter.of(team_ids), start, end, NOON + timedelta(days=1))
    assert counts == {5: 50, 7: 50}
    # ... and not once one of their intervals is stale: the 15-minute and agent rows answer,
    # and the raw rows for the durations.
    StaleBucket.objects.create(grain=Grain.QUARTER, bucket_start=NOON)
    StaleBucket.objects.create(grain=Grain.DAY, bucket_start=DAY)
    rolled, raw = kpis(team_ids, start, end, "weekday_hour")
    assert rolled == raw and [r["interactions"] for r in rolled] == [2, 1]
    counts = acw_duration_counts(KpiFilter.of(team_ids), start, end, NOON + timedelta(days=1))
    assert counts == {5: 2, 7: 1}


def test_a_late_acw_in_an_ended_month_sends_its_day_alone_to_the_raw_rows(
    alice: Agent, bob: Agent
) -> None:
    october = datetime(2026, 10, 5, 12, tzinfo=UTC)  # a Monday
    for n, (days, acw) in enumerate(((0, 5), (7, 6), (21, 7))):
        ingest(*call("alice", f"a{n}", october + timedelta(days=days), talk=10, acw=acw))
    ingest(*call("bob", "b0", october, talk=10, acw=9))
    rollups.compute_rollups()
    rollups.refresh_stale_buckets(now=NOON)
    assert TeamAcwDurationRollup.objects.filter(grain=Grain.MONTH).count() == 4
    # bob's call of 19 October arrives late: its interval is dirty, the month's rows lag.
    ingest(*call("bob", "late", october + timedelta(days=14), talk=10, acw=30))
    # Team rows that answer show up ten times over.
    TeamAcwDurationRollup.objects.update(count=10)
    start, end = site_day_bounds(date(2026, 10, 1), date(2026, 10, 31))
    counts = acw_duration_counts(KpiFilter.of([alice.team_id]), start, end, NOON)
    # The month is read as its weeks and days, 19 October alone from the raw rows.
    assert counts == {5: 10, 6: 10, 7: 10, 9: 10, 30: 1}
    # Once rolled up, 19 October is counted again from the raw rows and the month summed from
    # its days (the others as they were left); then the month answers.
    rollups.compute_rollups()
    rollups.refresh_stale_buckets(now=NOON)
    month = TeamAcwDurationRollup.objects.filter(grain=Grain.MONTH)
    assert sorted(month.values_list("seconds", "count")) == [
        (5, 10),
        (6, 10),
        (7, 10),
        (9, 10),
        (30, 1),
    ]
    month.update(count=3)
    counts = acw_duration_counts(KpiFilter.of([alice.team_id]), start, end, NOON)
    assert counts == {5: 3, 6: 3, 7: 3, 9: 3, 30: 3}
    # One agent's histogram is read from that agent's raw rows.
    TeamAcwDurationRollup.objects.update(count=10)
    only_bob = KpiFilter.of([alice.team_id], agent_ids=[bob.pk])
    assert acw_duration_counts(only_bob, start, end, NOON) == {9: 1, 30: 1}


def _team_day_row_versions() -> dict[tuple[str, int, str, Any], str]:
    """Each team day row's version: PostgreSQL's ``xmin``, the transaction that last wrote it,
    keyed by table, team, channel and the column that tells the rows of these tests apart."""
    versions = {}
    with connection.cursor() as cursor:
        for model, column in (
            (TeamKpiRollup, "wrap_up_code"),
            (TeamHourRollup, "hour"),
            (TeamAcwDurationRollup, "seconds"),
        ):
            table = model._meta.db_table
            cursor.execute(
                f"SELECT team_id, channel, {column}, xmin::text FROM {table} WHERE grain = 'day'"
            )
            for team_id, channel, value, xmin in cursor.fetchall():
                versions[(table, team_id, channel, value)] = xmin
    return versions


def test_a_run_rewrites_only_the_team_day_rows_whose_sums_changed(alice: Agent, bob: Agent) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row versions (xmin) are PostgreSQL's")
    ingest(*call("alice", "a1", NOON, talk=10, acw=5, code="sale"))
    ingest(*call("bob", "b1", NOON + timedelta(hours=2), talk=30, acw=9))
    rollups.compute_rollups()
    before = _team_day_row_versions()
    assert len(before) == 6
    # The open interval recomputed with nothing new in it: no team day row is written.
    DirtyInterval.objects.create(agent=alice, bucket_start=NOON)
    DirtyInterval.objects.create(agent=bob, bucket_start=NOON + timedelta(hours=2))
    assert rollups.compute_rollups() == 2
    assert _team_day_row_versions() == before
    # A new call of bob's (same team as alice's) changes its code's, hour's and ACW
    # duration's rows only.
    ingest(*call("bob", "b2", NOON + timedelta(hours=2, minutes=5), talk=40, acw=9))
    rollups.compute_rollups()
    after = _team_day_row_versions()
    assert after.keys() == before.keys()
    team = bob.team_id
    assert {key for key in after if after[key] != before[key]} == {
        ("reporting_teamkpirollup", team, "phone", ""),
        ("reporting_teamhourrollup", team, "phone", 14),
        ("reporting_teamacwdurationrollup", team, "phone", 9),
    }
    assert TeamAcwDurationRollup.objects.get(grain=Grain.DAY, seconds=9).count == 2


def test_a_heat_map_of_a_day_before_whole_months_counts_each_interval_once(alice: Agent) -> None:
    ingest(*call("alice", "a1", datetime(2026, 10, 31, 10, tzinfo=UTC), talk=10, acw=5))
    ingest(*call("alice", "a2", NOON, talk=20, acw=7))
    rollups.compute_rollups()
    rollups.refresh_stale_buckets(now=datetime(2026, 12, 1, 1, tzinfo=UTC))
    # October 31st from its day rows, November from its month rows, nothing from both.
    start, end = site_day_bounds(date(2026, 10, 31), date(2026, 11, 30))
    now = datetime(2026, 12, 15, tzinfo=UTC)
    rolled, raw = kpis([alice.team_id], start, end, "weekday_hour", now=now)
    assert rolled == raw and sum(r["interactions"] for r in rolled) == 2


def _every_rollup_row() -> list[list[dict[str, Any]]]:
    """Every row of every rollup table, but for the row ids and ``computed_at`` (a rebuild
    writes new ones), in a stable order."""
    tables = rollups._ROLLUP_TABLES  # every table a rebuild writes
    return [
        sorted(
            (
                {k: v for k, v in row.items() if k not in ("id", "computed_at")}
                for row in model.objects.values()
            ),
            key=lambda row: sorted(row.items()),
        )
        for model in tables
    ]


REBUILDS = {
    "range": lambda day: rollups.rebuild_range(day - timedelta(days=1), day + timedelta(days=2)),
    "all": lambda day: rollups.rebuild_all(),
}


@pytest.mark.parametrize("rebuild", REBUILDS)
@pytest.mark.parametrize(
    ("time_zone", "noon"),
    [
        ("UTC", NOON),
        # The day the clocks go back: 25 hours, 100 quarters.
        ("Europe/Brussels", datetime(2026, 10, 25, 11, tzinfo=UTC)),
    ],
)
def test_a_set_based_rebuild_writes_exactly_what_the_incremental_runs_wrote(
    settings: Any, alice: Agent, bob: Agent, rebuild: str, time_zone: str, noon: datetime
) -> None:
    settings.TIME_ZONE = time_zone
    for n in range(6):
        at = noon + timedelta(hours=n * 7, minutes=n) - timedelta(hours=11)
        ingest(*call("alice", f"a{n}", at, talk=10.25 + n, acw=n + 1, code=["", "sale"][n % 2]))
        ingest(*call("bob", f"b{n}", at, talk=20 + n, acw=None if n == 5 else n + 0.5))
    rollups.compute_rollups()
    rollups.refresh_stale_buckets(now=datetime(2026, 12, 1, 1, tzinfo=UTC))  # ended months
    incremental = _every_rollup_row()
    assert all(incremental[:6])  # (no checklists ticked)
    KpiRollup.objects.update(talk_seconds=999)  # damaged by hand
    REBUILDS[rebuild](noon.date())
    assert _every_rollup_row() == incremental


def test_a_full_rebuild_leaves_the_tables_as_the_migrations_made_them(alice: Agent) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("fresh tables are swapped in on PostgreSQL only")
    ingest(*call("alice", "c1", NOON, talk=10, acw=1))
    rollups.compute_rollups()
    before = _schema()
    assert rollups.rebuild_all() == 1
    assert _schema() == before
    assert KpiRollup.objects.filter(grain=Grain.DAY, talk_seconds=10).count() == 1
    # The identity goes on from the new rows.
    rollups.compute_rollups()
    DirtyInterval.objects.create(agent=alice, bucket_start=NOON)
    assert rollups.compute_rollups() == 1


def test_an_interaction_ending_a_microsecond_before_a_quarter_counts_in_the_one_before(
    alice: Agent, bob: Agent
) -> None:
    # 12:10 + 299.999999 s ends at 12:14:59.999999, 12:10 + 300 s at 12:15:00 exactly.
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's date functions round a time to the millisecond")
    ingest(*call("alice", "c1", NOON + timedelta(minutes=10), talk=299.999999, acw=1))
    ingest(*call("bob", "c2", NOON + timedelta(minutes=10), talk=300, acw=1))
    for rebuild in (rollups.compute_rollups, rollups.rebuild_all):
        rebuild()
        starts = TeamIntervalRollup.objects.values_list("bucket_start", "interactions")
        assert sorted(starts) == [(NOON, 1), (NOON + timedelta(minutes=15), 1)]


def test_a_full_rebuild_joins_the_raw_rows_once_for_the_four_tables_counted_from_them(
    alice: Agent, bob: Agent
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the raw rows are read once on PostgreSQL only")
    ingest(*call("alice", "c1", NOON, talk=10, acw=4, code="sale"))
    ingest(*call("alice", "c2", NOON + timedelta(minutes=3), talk=20, acw=6, code="sale"))
    ingest(*call("bob", "c3", NOON, talk=30, acw=8, channel="chat"))
    with CaptureQueriesContext(connection) as captured:
        assert rollups.rebuild_all() == 2
    joins = [q["sql"] for q in captured if '"agents_acwsession"' in q["sql"]]
    assert len(joins) == 1 and joins[0].startswith("CREATE TEMPORARY TABLE"), joins
    from_raw = [q["sql"].split(" (")[0] for q in captured if "rollup_raw_rows i" in q["sql"]]
    assert from_raw == [
        f'INSERT INTO "reporting_{name}rollup_fresh"'
        for name in ("kpi", "checklist", "teamacwduration", "teaminterval")
    ]
    day = KpiRollup.objects.get(grain=Grain.DAY, agent=alice)
    assert (day.interactions, day.talk_seconds, day.acw_seconds) == (2, 30, 10)
    assert (day.acw_count, day.wrap_up_code) == (2, "sale")
    # 4 and 6 s: a sum of 10, of squares 16 + 36.
    assert (day.durations, day.duration_sum, day.duration_squares) == (2, 10, 52)
    bob_day = KpiRollup.objects.get(grain=Grain.DAY, agent=bob)
    assert (bob_day.channel, bob_day.talk_seconds, bob_day.duration_sum) == ("chat", 30, 8)
    intervals = TeamIntervalRollup.objects.values_list("channel", "interactions", "talk_seconds")
    assert sorted(intervals) == [("chat", 1, 30), ("phone", 2, 30)]
    durations = TeamAcwDurationRollup.objects.filter(grain=Grain.DAY)
    assert sorted(durations.values_list("channel", "seconds", "count")) == [
        ("chat", 8, 1),
        ("phone", 4, 1),
        ("phone", 6, 1),
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('rollup_raw_rows')")
        assert cursor.fetchone() == (None,)  # dropped once read


def test_a_full_rebuild_keeps_the_sessions_statistics_target(alice: Agent) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    ingest(*call("alice", "c1", NOON, talk=10, acw=1))
    with connection.cursor() as cursor:
        cursor.execute("SET default_statistics_target = 77")
        try:
            rollups.rebuild_all()
            cursor.execute("SHOW default_statistics_target")
            assert cursor.fetchone() == ("77",)
        finally:
            cursor.execute("RESET default_statistics_target")


def test_every_rollup_foreign_key_leads_an_index(alice: Agent) -> None:
    # A cascading delete of an agent or a team finds its rollup rows through an index: the
    # agent's own index where the (agent, grain, bucket) one leads with it, else its own.
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL catalog")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k.conrelid::regclass::text, a.attname FROM pg_constraint k "
            "JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] "
            "WHERE k.contype = 'f' AND k.conrelid::regclass::text LIKE 'reporting_%%rollup' "
            "AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = k.conrelid "
            "AND i.indkey[0] = k.conkey[1])"
        )
        assert cursor.fetchall() == []
        cursor.execute(
            "SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = i.indkey[0] WHERE i.indrelid = 'reporting_kpirollup'::regclass "
            "AND a.attname = 'agent_id'"
        )
        assert cursor.fetchone() == (1,)  # (agent, grain, bucket start) alone


def _schema() -> list[Any]:
    """Tables, columns, indexes, constraints and sequences of the rollup tables, by name."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.relkind, "
            "ARRAY(SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || "
            "  ' ' || a.attnotnull || ' ' || a.attidentity::text FROM pg_attribute a "
            "  WHERE a.attrelid = c.oid AND a.attnum > 0 ORDER BY a.attnum), "
            "ARRAY(SELECT k.conname || ' ' || pg_get_constraintdef(k.oid) FROM pg_constraint k "
            "  WHERE k.conrelid = c.oid ORDER BY k.conname), "
            "ARRAY(SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "  WHERE i.indrelid = c.oid ORDER BY 1), "
            "pg_get_serial_sequence(c.relname, 'id') "
            "FROM pg_class c WHERE c.relname LIKE 'reporting_%%rollup' AND c.relkind = 'r' "
            "ORDER BY c.relname"
        )
        return cursor.fetchall()


def test_the_daily_close_recomputes_yesterday(alice: Agent) -> None:
    ingest(*call("alice", "c1", NOON, talk=10, acw=1))
    rollups.compute_rollups()
    KpiRollup.objects.all().delete()
    assert rollups.close_day(DAY.date()) == 1
    assert KpiRollup.objects.filter(grain=Grain.DAY, interactions=1).exists()


@pytest.mark.parametrize("max_ranges", [1, 200])
def test_many_dirty_agents_read_from_raw_rows_give_the_same_kpis(
    alice: Agent, bob: Agent, monkeypatch: Any, max_ranges: int
) -> None:
    # Day 1 rolled up; then both agents get calls on days 1 to 3 that the rollups have not
    # seen: the dirty agents of a day are read raw in one range (200), or, past the limit of
    # distinct ranges, the whole period is read raw (1).
    from reporting import queries

    for n, agent in enumerate(("alice", "bob")):
        ingest(*call(agent, f"old{n}", NOON, talk=10, acw=5))
    rollups.compute_rollups()
    for day in range(3):
        for agent in ("alice", "bob"):
            at = NOON + timedelta(days=day, hours=1)
            ingest(*call(agent, f"new{agent}{day}", at, talk=20, acw=7))
    monkeypatch.setattr(queries, "MAX_RAW_RANGES", max_ranges)
    start, end = DAY, DAY + timedelta(days=3)
    rolled, raw = kpis([alice.team_id], start, end, now=NOON + timedelta(days=4))
    assert rolled == raw
    assert [(r["key"], r["interactions"], r["acw_seconds"]) for r in rolled] == [
        ("alice", 4, 26.0),
        ("bob", 4, 26.0),
    ]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="planner statistics: PostgreSQL")
def test_fresh_statistics_cover_the_teams_and_agents_the_rollups_join(alice: Agent) -> None:
    # A bulk load's teams, never analysed (autovacuum may be off), read as two rows to the
    # planner: it then loops over every team through the team index.
    with connection.cursor() as cursor:
        rollups.analyze()
        cursor.execute(
            "SELECT relname, reltuples FROM pg_class WHERE relname IN (%s, %s, %s)",
            [Team._meta.db_table, Agent._meta.db_table, "agents_department"],
        )
        estimates = dict(cursor.fetchall())
    assert estimates[Team._meta.db_table] == Team.objects.count() > 0
    assert estimates[Agent._meta.db_table] == Agent.objects.count() > 0
    assert estimates["agents_department"] >= 0


# 2026-11-30 is a Monday: the weeks before it start on 2 November and every Monday after.
MONDAY = datetime(2026, 11, 30, 12, tzinfo=UTC)


def test_a_period_is_tiled_with_whole_ended_weeks_between_its_months_and_days(db: Any) -> None:
    def tiles(first: date, last: date, **stale: int) -> list[tuple[str, date, date]]:
        for grain, day in stale.items():
            StaleBucket.objects.create(
                grain=grain, bucket_start=datetime(2026, 11, day, tzinfo=UTC)
            )
        start, end = site_day_bounds(first, last)
        out = [
            (grain, s.date(), e.date()) for grain, (s, e) in rollup_segments(start, end, now=MONDAY)
        ]
        StaleBucket.objects.all().delete()
        return out

    nov = {n: date(2026, 11, n) for n in range(1, 31)}
    # The last 30 days: Saturday 31 October and Sunday 1 November as days, then four weeks;
    # November has not ended, so it is no month.
    assert tiles(date(2026, 10, 31), nov[29]) == [
        (Grain.WEEK, nov[2], nov[30]),
        (Grain.DAY, date(2026, 10, 31), nov[2]),
    ]
    # A week listed as stale (not summed since a late change) is read as its days.
    assert tiles(date(2026, 10, 31), nov[29], wk=16) == [
        (Grain.WEEK, nov[2], nov[16]),
        (Grain.WEEK, nov[23], nov[30]),
        (Grain.DAY, date(2026, 10, 31), nov[2]),
        (Grain.DAY, nov[16], nov[23]),
    ]
    # October as a month; the week from Monday 28 September straddles it, so its days
    # before October are read as days; nor is the current week (from today) read as a week.
    assert tiles(date(2026, 9, 28), nov[30]) == [
        (Grain.MONTH, date(2026, 10, 1), nov[1]),
        (Grain.WEEK, nov[2], nov[30]),
        (Grain.DAY, date(2026, 9, 28), date(2026, 10, 1)),
        (Grain.DAY, nov[1], nov[2]),
        (Grain.DAY, nov[30], date(2026, 12, 1)),
    ]


def test_week_rows_are_sums_of_their_days_read_unless_stale_or_dirty(
    alice: Agent, bob: Agent
) -> None:
    # Three weeks: Friday 13, Wednesday 18 and Monday 23 November, two agents.
    for n, day in enumerate((13, 18, 23)):
        noon = datetime(2026, 11, day, 12, tzinfo=UTC)
        ingest(*call("alice", f"a{n}", noon, talk=10 + n, acw=5, code="sale"))
        ingest(*call("bob", f"b{n}", noon + timedelta(hours=3), talk=20, acw=7 + n))
    rollups.compute_rollups()
    rollups.refresh_stale_buckets(now=MONDAY)
    week = datetime(2026, 11, 16, tzinfo=UTC)
    agent_week = KpiRollup.objects.get(grain=Grain.WEEK, bucket_start=week, agent=alice)
    assert (agent_week.bucket_end, agent_week.talk_seconds) == (week + timedelta(days=7), 11)
    for model in (TeamKpiRollup, TeamHourRollup, TeamAcwDurationRollup):
        assert model.objects.filter(grain=Grain.WEEK, bucket_start=week).exists(), model
    team_ids = [alice.team_id, bob.team_id]
    start, end = site_day_bounds(date(2026, 11, 13), date(2026, 11, 29))
    for group_by in ("agent", "team", "wrap_up_code", "weekday_hour"):
        rolled, raw = kpis(team_ids, start, end, group_by, now=MONDAY)
        assert rolled == raw, group_by
    # The week rows are what is read ...
    KpiRollup.objects.filter(grain=Grain.WEEK, bucket_start=week, agent=alice).update(
        talk_seconds=999
    )
    rolled, raw = kpis(team_ids, start, end, "agent", now=MONDAY)
    assert rolled[0]["talk_seconds"] == 999 + 10 + 12
    # ... but not those of a week listed as stale, nor an agent-week holding a dirty interval.
    StaleBucket.objects.create(grain=Grain.WEEK, bucket_start=week)
    assert kpis(team_ids, start, end, "agent", now=MONDAY)[0] == raw
    StaleBucket.objects.all().delete()
    DirtyInterval.objects.create(agent=alice, bucket_start=week + timedelta(days=2, hours=12))
    assert kpis(team_ids, start, end, "agent", now=MONDAY)[0] == raw
    # The next run sums the week again from its days.
    rollups.compute_rollups()
    rollups.refresh_stale_buckets(now=MONDAY)
    assert (
        KpiRollup.objects.get(grain=Grain.WEEK, bucket_start=week, agent=alice).talk_seconds == 11
    )


# --- The full rebuild on two connections (outside a transaction) ----------------------------


def _history(*, n: int = 6) -> None:
    """Two agents' calls over three days, some ACWs with checklist ticks."""
    for k in range(n):
        at = NOON + timedelta(hours=k * 7, minutes=k) - timedelta(hours=11)
        ingest(*call("alice", f"a{k}", at, talk=10.25 + k, acw=k + 1, code=["", "sale"][k % 2]))
        ingest(*call("bob", f"b{k}", at, talk=20 + k, acw=None if k == 5 else k + 0.5))
    AcwSession.objects.filter(interaction__interaction_id__in=["a1", "b2"]).update(
        checklist=["1", "3"]
    )


def _fresh_tables_left() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relname LIKE '%%\\_fresh'")
        return [name for (name,) in cursor.fetchall()]


def _in_a_thread(work: Any) -> None:
    """``work()`` on another connection (committed by it), as another process would."""

    def run() -> None:
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_full_rebuild_outside_a_transaction_fills_the_tables_on_two_connections_alike(
    alice: Agent, bob: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    _history()
    with transaction.atomic():  # the caller's transaction: one connection
        assert rollups.rebuild_all() == 6
    on_one = _every_rollup_row()
    assert all(on_one)  # every table has rows
    schema = _schema()
    KpiRollup.objects.update(talk_seconds=999)  # damaged by hand
    threads = set()
    fill = rollups._fill_stream

    def spy(*args: Any) -> Any:
        threads.add(threading.get_ident())
        return fill(*args)

    read_once = rollups._raw_rows_read_once
    temporary: dict[str, bool] = {}

    @contextmanager
    def spy_read_once(start: datetime, end: datetime, into: Any) -> Any:
        with read_once(start, end, into):
            temporary[min(m.__name__ for m in into)] = rollups._raw_table.get() is not None
            yield

    monkeypatch.setattr(rollups, "_fill_stream", spy)
    monkeypatch.setattr(rollups, "_raw_rows_read_once", spy_read_once)
    assert rollups.rebuild_all() == 6
    assert len(threads - {threading.get_ident()}) == len(rollups._STREAMS) == 2
    # The raw rows go into a temporary table only on the connection that reads them three
    # times (checklists, team durations, team intervals), not for the agent day rows alone.
    assert temporary == {"ChecklistRollup": True, "KpiRollup": False}
    assert _every_rollup_row() == on_one
    assert _schema() == schema
    assert _fresh_tables_left() == []
    # Every table is in exactly one stream.
    assert sorted(m.__name__ for s in rollups._STREAMS for m in s) == sorted(
        m.__name__ for m in rollups._ROLLUP_TABLES
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_interaction_committed_after_the_snapshot_stays_dirty_and_is_rolled_up_next(
    alice: Agent, bob: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    _history()
    DirtyInterval.objects.all().delete()
    StaleBucket.objects.create(grain=Grain.DAY, bucket_start=DAY)  # before the snapshot
    late = NOON + timedelta(hours=2)
    fill = rollups._fill_streams

    def with_a_write_after_the_snapshot(*args: Any) -> Any:
        _in_a_thread(lambda: ingest(*call("alice", "late", late, talk=42, acw=3)))
        _in_a_thread(lambda: StaleBucket.objects.create(grain=Grain.QUARTER, bucket_start=late))
        return fill(*args)

    monkeypatch.setattr(rollups, "_fill_streams", with_a_write_after_the_snapshot)
    assert rollups.rebuild_all() == 6  # without the late call
    assert not KpiRollup.objects.filter(talk_seconds=42).exists()
    assert DirtyInterval.objects.filter(agent=alice, bucket_start=late).exists()
    # The stale mark of the snapshot is gone, the one written since kept.
    assert list(StaleBucket.objects.values_list("grain", "bucket_start")) == [(Grain.QUARTER, late)]
    rollups.compute_rollups()
    rollups.refresh_stale_buckets(now=datetime(2026, 12, 1, 1, tzinfo=UTC))  # ended months
    assert TeamIntervalRollup.objects.filter(bucket_start=late, talk_seconds=42).count() == 1
    incremental = _every_rollup_row()
    with transaction.atomic():
        assert rollups.rebuild_all() == 6
    assert _every_rollup_row() == incremental


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_failing_leaves_the_old_tables_and_no_fresh_table(
    alice: Agent, bob: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    _history()
    rollups.compute_rollups()
    before = _every_rollup_row()
    schema = _schema()

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("duration months failed")

    monkeypatch.setattr(rollups, "_insert_team_durations", fail)
    with pytest.raises(RuntimeError, match="duration months failed"):
        rollups.rebuild_all()
    assert _every_rollup_row() == before
    assert _schema() == schema
    assert _fresh_tables_left() == []
    # A fresh table left by a run that crashed is dropped by the next run.
    monkeypatch.undo()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE reporting_kpirollup_fresh (x integer)")
    assert rollups.rebuild_all() == 6
    assert _fresh_tables_left() == []


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_failing_cancels_the_other_one(
    alice: Agent, bob: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    _history()
    rollups.compute_rollups()
    before = _every_rollup_row()
    sleeping = threading.Event()

    def sleep(*args: Any, **kwargs: Any) -> None:  # in the KPI stream
        sleeping.set()
        rollups._execute("SELECT pg_sleep(60)", [])

    def fail(*args: Any, **kwargs: Any) -> None:  # in the other stream
        assert sleeping.wait(30)
        time.sleep(0.5)  # (into the statement)
        raise RuntimeError("checklist rows failed")

    monkeypatch.setattr(rollups, "_insert_sums", sleep)
    monkeypatch.setattr(rollups, "checklist_day_sql", fail)
    began = time.monotonic()
    with pytest.raises(RuntimeError, match="checklist rows failed"):
        rollups.rebuild_all()
    assert time.monotonic() - began < 30
    assert _every_rollup_row() == before
    assert _fresh_tables_left() == []


def test_the_migration_marks_every_week_with_day_rows_stale(alice: Agent) -> None:
    ingest(*call("alice", "a1", NOON, talk=10, acw=5))  # the week of Monday 16 November
    ingest(*call("alice", "a2", NOON + timedelta(days=4), talk=10, acw=5))  # of 23 November
    rollups.compute_rollups()
    StaleBucket.objects.all().delete()
    import_module("reporting.migrations.0014_week_rows").mark_weeks_stale(apps, None)
    marks = StaleBucket.objects.values_list("grain", "bucket_start")
    assert sorted(marks) == [(Grain.WEEK, datetime(2026, 11, day, tzinfo=UTC)) for day in (16, 23)]


def test_the_minute_run_leaves_an_ended_week_and_month_to_the_daily_close(alice: Agent) -> None:
    ingest(*call("alice", "a1", NOON, talk=10, acw=5))  # the week of Monday 16 November
    rollups.compute_rollups()  # today November and that week have ended
    week, month = datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    for grain, start in ((Grain.WEEK, week), (Grain.MONTH, month)):
        assert StaleBucket.objects.filter(grain=grain, bucket_start=start).exists()
        assert not KpiRollup.objects.filter(grain=grain).exists()
    # Read after both have ended, the week alone and the whole month: as days meanwhile.
    after = datetime(2026, 12, 1, 12, tzinfo=UTC)
    for first, last in (
        (date(2026, 11, 16), date(2026, 11, 22)),
        (month.date(), date(2026, 11, 30)),
    ):
        start, end = site_day_bounds(first, last)
        rolled, raw = kpis([alice.team_id], start, end, "agent", now=after)
        assert rolled == raw and rolled[0]["talk_seconds"] == 10
    rollups.close_day(date(2026, 11, 29))
    assert not StaleBucket.objects.filter(grain__in=[Grain.WEEK, Grain.MONTH]).exists()
    assert KpiRollup.objects.get(grain=Grain.WEEK, bucket_start=week).talk_seconds == 10
    assert KpiRollup.objects.get(grain=Grain.MONTH, bucket_start=month).talk_seconds == 10
