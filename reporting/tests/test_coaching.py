"""Coaching signals end to end: events in, the ACW index on the KPI API and pages, the coaching
list (page, CSV, API), the checklist analysis and the persistent too-short alert
(docs/coaching.md). Every expected number is computed by hand in the test."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone, translation

from agents.models import AcwPolicy, Agent, ChecklistItem, WrapUpCode
from agents.tests.factories import by_key, client_for
from reporting import rollups, signals
from reporting.alerts import current_conditions
from reporting.coaching import checklist, checklist_rows, coaching
from reporting.models import AlertKind, ChecklistRollup
from reporting.queries import KpiFilter, site_today, site_tz

from .factories import call, event, ingest

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _afternoon(db: None) -> Iterator[None]:
    """Today at 15:00 (site time), and a site policy whose timer (700 s) lets each ACW last as
    long as the test says, with a 10 s minimum for the too-short rules."""
    AcwPolicy.objects.filter(team=None, channel="").update(
        seconds=700, max_seconds=700, min_seconds=10
    )
    with time_machine.travel(datetime.combine(site_today(), time(15), site_tz()), tick=True):
        yield


def _at(hour: int, minute: int = 0, days_ago: int = 0) -> datetime:
    day = site_today() - timedelta(days=days_ago)
    return datetime.combine(day, time(hour, minute), site_tz())


def calls(
    agent: str,
    acws: list[float],
    *,
    code: str = "",
    start: datetime | None = None,
    talk: float = 60,
    every: int = 3,
    checklist: list[list[int]] | None = None,
) -> None:
    """One call every ``every`` minutes from ``start`` (8:00 today), with these ACW lengths."""
    start = start or _at(8)
    events: list[dict[str, Any]] = []
    for i, acw in enumerate(acws):
        begin = start + timedelta(minutes=every * i)
        cid = f"{agent}-{begin:%j%H%M}-{i}"
        if checklist is None:
            events += call(agent, cid, begin, talk=talk, acw=acw, code=code)
        else:
            events += call(agent, cid, begin, talk=talk, acw=None)
            end = begin + timedelta(seconds=talk + acw)
            events.append(event(agent, "acw.ended", end, checklist=checklist[i]))
    assert set(ingest(*events)) == {"accepted"}


def _kpis(user: Any, **params: str) -> dict[str, dict[str, Any]]:
    return by_key(client_for(user).get("/api/v1/kpis", params))


# --- The ACW index on /api/v1/kpis ------------------------------------------------------------


def test_the_api_rows_carry_the_mix_adjusted_expected_acw_and_the_index(
    manager_maria: Any, alice: Agent, carol: Agent
) -> None:
    WrapUpCode.objects.create(code="sale", label="Sale", expected_acw_seconds=40)
    calls("alice", [50, 70], code="sale")
    calls("alice", [30], start=_at(9))
    calls("carol", [10], start=_at(9))
    # Uncoded: learned from the site's last 30 days = (30 + 10) ÷ 2 = 20 s.
    # alice: expected (2 × 40 + 1 × 20) ÷ 3 = 33.333 s; average 150 ÷ 3 = 50 s; index 1.5.
    rows = _kpis(manager_maria, group_by="agent")
    assert rows["alice"]["expected_acw_seconds"] == 33.333
    assert rows["alice"]["acw_index"] == 1.5
    assert rows["carol"]["expected_acw_seconds"] == 20.0 and rows["carol"]["acw_index"] == 0.5
    # Team North = alice alone; the §4b fields are unchanged.
    north = _kpis(manager_maria, group_by="team")["North"]
    assert (north["interactions"], north["avg_acw_seconds"], north["acw_index"]) == (3, 50.0, 1.5)
    codes = _kpis(manager_maria, group_by="wrap_up_code")
    assert codes["sale"]["norm_acw_seconds"] == 40.0
    assert codes["sale"]["acw_index"] == 1.5  # 60 ÷ 40
    assert codes[""]["norm_acw_seconds"] is None and codes[""]["acw_index"] == 1.0


def test_an_unset_norm_is_learned_as_the_sites_mean_for_that_code(
    manager_maria: Any, alice: Agent, bob: Agent
) -> None:
    WrapUpCode.objects.create(code="info", label="Info", expected_acw_seconds=None)
    calls("alice", [20, 40], code="info")
    calls("bob", [90], code="info", start=_at(10))
    # Learned: (20 + 40 + 90) ÷ 3 = 50 s for "info"; alice 30 ÷ 50 = 0.6, bob 90 ÷ 50 = 1.8.
    rows = _kpis(manager_maria, group_by="agent")
    assert rows["alice"]["expected_acw_seconds"] == 50.0 and rows["alice"]["acw_index"] == 0.6
    assert rows["bob"]["acw_index"] == 1.8
    assert _kpis(manager_maria, group_by="wrap_up_code")["info"]["norm_acw_seconds"] is None


def test_the_kpi_csv_has_the_added_columns_after_the_contracts(
    manager_maria: Any, alice: Agent
) -> None:
    calls("alice", [30, 30])
    response = client_for(manager_maria).get("/api/v1/kpis", {"format": "csv"})
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert lines[0][-3:] == ["too_short", "expected_acw_seconds", "acw_index"]
    assert lines[1][-2:] == ["30.0", "1.0"]


# --- The coaching list ------------------------------------------------------------------------


def test_a_site_with_no_norm_yet_gets_an_empty_list_not_an_error(
    manager_maria: Any, client: Client
) -> None:
    """No wrap-up code has a norm (none set, nothing to learn from): the figures statement
    takes the fallback for every cell, and the list is simply empty."""
    body = client_for(manager_maria).get("/api/v1/coaching", {"to": ""})
    assert body.status_code == 200 and body.json()["entries"] == []
    client.force_login(manager_maria)
    assert client.get("/kpis/coaching/").status_code == 200


def test_a_persistently_long_acw_puts_the_agent_on_the_list_with_the_numbers(
    manager_maria: Any, alice: Agent, bob: Agent
) -> None:
    WrapUpCode.objects.create(code="sale", label="Sale", expected_acw_seconds=30)
    calls("alice", [60] * 20, code="sale")  # index 2.0 over 20 ACWs
    calls("bob", [30] * 19 + [600], code="sale", start=_at(11))  # one spike: 58.5 s average
    body = client_for(manager_maria).get("/api/v1/coaching").json()
    by_agent = {e["agent"]: e for e in body["entries"]}
    assert "bob" not in by_agent, "one long ACW is not a pattern"
    alice_entry = by_agent["alice"]
    assert alice_entry["acw_index"] == 2.0 and alice_entry["expected_acw_seconds"] == 30.0
    (reason,) = [r for r in alice_entry["reasons"] if r["code"] == "high_index"]
    assert reason["value"] == 2.0 and reason["threshold"] == 1.2
    assert "ACW index 2.00" in reason["message"] and "1:00" in reason["message"]


def test_too_short_acws_are_a_documentation_risk_with_the_checklist_completion(
    manager_maria: Any, alice: Agent
) -> None:
    step = ChecklistItem.objects.create(label="Update the CRM record")
    # 20 ACWs of 5 s (< 10 s minimum), the step ticked on 5 of them: completion 25 %.
    calls("alice", [5] * 20, checklist=[[step.pk]] * 5 + [[]] * 15)
    (entry,) = client_for(manager_maria).get("/api/v1/coaching").json()["entries"]
    assert entry["too_short_rate"] == 1.0 and entry["checklist_completion"] == 0.25
    (reason,) = [r for r in entry["reasons"] if r["code"] == "too_short"]
    assert "20 of 20 ACWs" in reason["message"] and "25 %" in reason["message"]


def test_the_list_is_worded_in_the_language_active_for_each_list(alice: Agent) -> None:
    calls("alice", [5] * 20)
    where, today = KpiFilter.of([alice.team_id]), site_today()
    for language, words in (
        ("fr", "20 ACW sur 20 plus courts"),
        ("en", "20 of 20 ACWs shorter"),
        ("fr", "20 ACW sur 20 plus courts"),
    ):
        with translation.override(language):
            (entry,) = coaching(where, today, today).entries
        (reason,) = [r for r in entry.reasons if r.code == "too_short"]
        assert words in reason.message and "(100 %)" in reason.message, language


def test_an_agent_above_their_own_last_30_days_is_flagged(manager_maria: Any, alice: Agent) -> None:
    calls("alice", [30] * 20, start=_at(9, days_ago=10))
    calls("alice", [45] * 20)
    body = client_for(manager_maria).get("/api/v1/coaching").json()
    (entry,) = body["entries"]
    (reason,) = [r for r in entry["reasons"] if r["code"] == "above_own_baseline"]
    # Same (uncoded, phone) mix: expected 30 s from the baseline; 45 ÷ 30 = 1.5.
    assert reason["value"] == 1.5
    assert "45 s against 30 s" in reason["message"]


def test_an_agent_above_the_team_for_the_same_codes_and_channels_is_flagged(
    manager_maria: Any, alice: Agent, bob: Agent
) -> None:
    calls("alice", [90] * 20)
    calls("bob", [30] * 60, start=_at(9))
    # Team mean (uncoded, phone): (20 × 90 + 60 × 30) ÷ 80 = 45 s; alice 90 ÷ 45 = 2.0.
    entries = {
        e["agent"]: e for e in client_for(manager_maria).get("/api/v1/coaching").json()["entries"]
    }
    (reason,) = [r for r in entries["alice"]["reasons"] if r["code"] == "above_team"]
    assert reason["value"] == 2.0
    assert "above_team" not in [r["code"] for r in entries.get("bob", {"reasons": []})["reasons"]]


def test_frequent_extensions_and_timeouts_are_reasons(manager_maria: Any, alice: Agent) -> None:
    AcwPolicy.objects.filter(team=None, channel="").update(seconds=20, max_seconds=300)
    events: list[dict[str, Any]] = []
    for i in range(20):
        begin = _at(8) + timedelta(minutes=3 * i)
        end = begin + timedelta(seconds=60)
        cid = f"t{i}"
        events += call("alice", cid, begin, talk=60, acw=None)
        # Extended at 15 s, then left to the (extended) timer: every ACW extended and timed out.
        events.append(event("alice", "acw.extended", end + timedelta(seconds=15)))
    ingest(*events)
    (entry,) = client_for(manager_maria).get("/api/v1/coaching").json()["entries"]
    codes = [r["code"] for r in entry["reasons"]]
    assert "extends_often" in codes and "timeouts_often" in codes


def test_acw_that_grows_after_long_calls_is_a_reason(manager_maria: Any, alice: Agent) -> None:
    # 30 short calls (60 s) with 30 s of ACW, 10 long ones (600 s) with 60 s.
    calls("alice", [30] * 30, talk=60)
    calls("alice", [60] * 10, talk=600, every=12, start=_at(10))
    (entry,) = client_for(manager_maria).get("/api/v1/coaching").json()["entries"]
    (reason,) = [r for r in entry["reasons"] if r["code"] == "grows_after_long_calls"]
    assert reason["value"] == 2.0  # 60 ÷ 30
    assert "grows_late_in_shift" not in [r["code"] for r in entry["reasons"]]


def test_a_long_call_is_long_for_its_own_day(manager_maria: Any, alice: Agent) -> None:
    # Yesterday: 30 calls of 60 s with 30 s of ACW, 10 of 300 s with 60 s: the 300 s calls rank
    # 30 ÷ 39 = 0.77 > 0.75 among that day's calls, so they are long. Today: 40 calls of 600 s
    # with 30 s, all of one length, so none is long (over the two days together the 300 s calls
    # would rank 30 ÷ 79 = 0.38, and the 600 s ones 40 ÷ 79 = 0.51: no long call at all).
    calls("alice", [30] * 30, talk=60, start=_at(8, days_ago=1))
    calls("alice", [60] * 10, talk=300, every=6, start=_at(10, days_ago=1))
    calls("alice", [30] * 40, talk=600, every=12, start=_at(6))
    period = {"from": str(site_today() - timedelta(days=1)), "to": str(site_today())}
    (entry,) = client_for(manager_maria).get("/api/v1/coaching", period).json()["entries"]
    (reason,) = [r for r in entry["reasons"] if r["code"] == "grows_after_long_calls"]
    assert reason["value"] == 2.0  # 60 ÷ 30: the 10 long calls against 30 + 40 others
    assert "(10 long calls, last 2 days)" in reason["message"]


def test_acw_that_grows_late_in_the_shift_is_a_reason(manager_maria: Any, alice: Agent) -> None:
    calls("alice", [30] * 20, start=_at(7))
    calls("alice", [50] * 10, start=_at(13, 30))  # more than 6 h after the first call
    (entry,) = client_for(manager_maria).get("/api/v1/coaching").json()["entries"]
    (reason,) = [r for r in entry["reasons"] if r["code"] == "grows_late_in_shift"]
    assert reason["value"] == pytest.approx(50 / 30, abs=1e-3)


# --- Visibility, errors, CSV ------------------------------------------------------------------


def test_a_supervisor_sees_only_their_teams_on_the_coaching_page_and_api(
    client: Client, supervisor_sam: Any, alice: Agent, carol: Agent
) -> None:
    calls("alice", [5] * 20)
    calls("carol", [5] * 20)
    client.force_login(supervisor_sam)
    page = client.get("/kpis/coaching/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Alice Martin" in html and "Carol Dubois" not in html
    assert 'href="/kpis/agents/alice/' in html
    assert client.get("/kpis/coaching/", {"team": "South"}).status_code == 400
    assert client.get("/kpis/coaching/", {"csv": "nonsense"}).status_code == 400
    api = client_for(supervisor_sam)
    assert [e["agent"] for e in api.get("/api/v1/coaching").json()["entries"]] == ["alice"]
    assert api.get("/api/v1/coaching", {"team": "South"}).status_code == 400
    assert api.get("/api/v1/coaching", {"from": "2020-13-01"}).status_code == 400


def test_the_coaching_page_lists_the_worst_first_a_page_at_a_time_keeping_the_filters(
    client: Client, manager_maria: Any, alice: Agent, carol: Agent, monkeypatch: Any
) -> None:
    calls("alice", [5] * 20)  # too short: one rule
    calls("carol", [30] * 20, start=_at(9, days_ago=10))
    # Against her own 30 s and the site's learned (100 + 600 + 1800) ÷ 60 s: two rules.
    calls("carol", [90] * 20)
    api = client_for(manager_maria).get("/api/v1/coaching").json()["entries"]
    assert [(e["agent"], len(e["reasons"])) for e in api] == [("alice", 1), ("carol", 2)]
    monkeypatch.setattr("reporting.pages.TABLE_PAGE_SIZE", 1)
    client.force_login(manager_maria)
    url = "/kpis/coaching/?period=today&channel=phone"
    first = client.get(url).content.decode()
    assert re.findall(r'<tr data-key="([^"]+)"', first) == ["carol"]
    assert 'href="?period=today&amp;channel=phone&amp;page=2"' in first
    second = client.get(url + "&page=2").content.decode()
    assert re.findall(r'<tr data-key="([^"]+)"', second) == ["alice"]
    assert "Rows 2–2 of 2" in second
    # The CSV has every entry, in the API's order.
    export = client.get(url + "&csv=coaching")
    rows = csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode()))
    assert [r["agent"] for r in rows] == ["alice", "carol"]


def test_agent_users_may_not_open_the_coaching_page(client: Client, agent_user_alice: Any) -> None:
    client.force_login(agent_user_alice)
    assert client.get("/kpis/coaching/").status_code == 403
    assert client_for(agent_user_alice).get("/api/v1/coaching").status_code == 403


def test_the_coaching_list_downloads_as_a_streamed_csv(
    client: Client, manager_maria: Any, alice: Agent
) -> None:
    calls("alice", [5] * 20)
    client.force_login(manager_maria)
    response = client.get("/kpis/coaching/", {"csv": "coaching"})
    assert response.streaming and response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["agent"], r["too_short_rate"], r["reasons"]) for r in rows] == [
        ("alice", "1.0", "too_short")
    ]
    api = client_for(manager_maria).get("/api/v1/coaching", {"format": "csv"})
    assert b"".join(api.streaming_content).decode().splitlines()[0].startswith("agent,name,team")


def test_an_open_acw_counts_in_its_interactions_cell_with_the_time_so_far(alice: Agent) -> None:
    calls("alice", [30, 50], code="sale")  # 8:00 and 8:03, closed: 80 s of ACW
    # Ended at 14:59; its ACW is still open (no code yet: the cell of code "").
    assert set(ingest(*call("alice", "alice-open", _at(14, 58), talk=60, acw=None))) == {"accepted"}
    rollups.compute_rollups()
    now = timezone.now()
    where = KpiFilter.of([alice.team_id])
    cells = signals.period_cells(where, site_today(), site_today(), now)
    figures = {key: dict(zip(signals.PERIOD_COLUMNS, v, strict=True)) for key, v in cells.items()}
    sale, still_open = figures[(alice.pk, "sale", "phone")], figures[(alice.pk, "", "phone")]
    assert (sale["interactions"], sale["acw_count"], sale["acw_seconds"]) == (2, 2, 80)
    assert (still_open["interactions"], still_open["acw_count"]) == (1, 1)
    elapsed = (now - _at(14, 59)).total_seconds()
    assert still_open["acw_seconds"] == pytest.approx(elapsed, abs=1)
    raw = signals.period_cells_raw(where, site_today(), site_today(), now)
    assert cells.keys() == raw.keys()
    for key, values in cells.items():
        assert values == pytest.approx(raw[key]), key
    # The coaching list's figures count it too.
    yesterday = site_today() - timedelta(days=1)
    (row,) = signals.agent_figures(
        where, (site_today(), site_today()), (yesterday, yesterday), {}, 60.0, now
    )
    sums = dict(zip(signals.FIGURE_COLUMNS, row[1:], strict=False))
    assert (row[0], sums["interactions"], sums["acw_count"]) == (alice.pk, 3, 3)
    assert sums["acw_seconds"] == pytest.approx(80 + elapsed, abs=1)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_recent_window_is_read_on_a_connection_of_its_own_with_the_same_list(
    alice: Agent, bob: Agent
) -> None:
    """Outside a transaction the coaching list reads its recent window (the checklist ticks,
    the ACWs after long calls) on a second connection while the period's figures are read on
    the request's; inside one it reads both on the request's. The lists are the same."""
    step = ChecklistItem.objects.create(label="Update the CRM record")
    calls("alice", [5] * 20, checklist=[[step.pk]] * 5 + [[]] * 15)
    calls("bob", [30] * 30, talk=60, start=_at(9))
    calls("bob", [60] * 10, talk=600, every=12, start=_at(11))
    rollups.compute_rollups()
    where, today, now = KpiFilter.of([alice.team_id, bob.team_id]), site_today(), timezone.now()
    statements: list[str] = []

    def record(execute: Any, sql: str, *args: Any) -> Any:
        statements.append(sql)
        return execute(sql, *args)

    def listed() -> list[dict[str, Any]]:
        statements.clear()
        with connection.execute_wrapper(record):
            result = coaching(where, today, today, now)
        return [entry.as_dict() for entry in result.entries]

    beside = listed()
    checklist_table = ChecklistRollup._meta.db_table
    assert not any(checklist_table in sql for sql in statements), "read on this connection"
    assert any("WITH cells AS" in sql for sql in statements)
    with transaction.atomic():
        alone = listed()
    assert any(checklist_table in sql for sql in statements)
    assert beside == alone
    by_agent = {entry["agent"]: entry for entry in beside}
    assert by_agent["alice"]["checklist_completion"] == 0.25
    assert "grows_after_long_calls" in by_agent["bob"]["reasons"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_without_a_second_connection_to_be_had_the_list_reads_its_recent_window_on_its_own(
    alice: Agent,
) -> None:
    """A pool with one connection (or every one busy): the recent window waits for a second
    connection as long as the pool lets it, then is read on the request's, not lost."""
    pool = connection.pool
    if pool is None:
        pytest.skip("needs PostgreSQL with a connection pool (DATABASE_URL)")
    step = ChecklistItem.objects.create(label="Update the CRM record")
    calls("alice", [5] * 20, checklist=[[step.pk]] * 5 + [[]] * 15)
    rollups.compute_rollups()
    where, today, now = KpiFilter.of([alice.team_id]), site_today(), timezone.now()
    with transaction.atomic():
        alone = [entry.as_dict() for entry in coaching(where, today, today, now).entries]
    connection.close()
    # Every idle connection taken, and room for one more: the request's.
    held = [pool.getconn() for _ in range(pool.get_stats()["pool_available"])]
    sizes = (pool.min_size, pool.max_size)
    pool.resize(pool.min_size, pool.get_stats()["pool_size"] + 1)
    try:
        short = [entry.as_dict() for entry in coaching(where, today, today, now).entries]
    finally:
        connection.close()
        for held_connection in held:
            pool.putconn(held_connection)
        pool.resize(*sizes)
    assert short == alone
    assert short[0]["checklist_completion"] == 0.25


# --- Checklist analysis -----------------------------------------------------------------------


def test_the_checklist_analysis_counts_ticks_and_acw_with_and_without_each_step(
    client: Client, manager_maria: Any, alice: Agent, bob: Agent, carol: Agent
) -> None:
    crm = ChecklistItem.objects.create(label="Update the CRM record")
    north_only = ChecklistItem.objects.create(label="Book the callback", team=alice.team)
    # alice: CRM ticked on the 40 s and 60 s ACWs (with: 50 s), not on 20 s and 30 s (25 s).
    calls(
        "alice",
        [40, 60, 20, 30],
        checklist=[[crm.pk, north_only.pk], [crm.pk], [], []],
    )
    calls("carol", [10, 10], checklist=[[crm.pk], [crm.pk]], start=_at(9))
    client.force_login(manager_maria)
    response = client.get("/kpis/coaching/", {"csv": "checklist"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    got = {(r["step"], r["team"], r["agent"]): r for r in rows}
    alice_crm = got[("Update the CRM record", "North", "alice")]
    assert (alice_crm["acws"], alice_crm["ticked"], alice_crm["ticked_share"]) == ("4", "2", "0.5")
    assert (alice_crm["avg_acw_with_seconds"], alice_crm["avg_acw_without_seconds"]) == (
        "50.0",
        "25.0",
    )
    south_crm = got[("Update the CRM record", "South", "")]
    assert (south_crm["ticked_share"], south_crm["avg_acw_without_seconds"]) == ("1.0", "")
    # A team's own step applies to that team only.
    assert ("Book the callback", "South", "") not in got
    assert got[("Book the callback", "North", "")]["ticked"] == "1"
    page = client.get("/kpis/coaching/").content.decode()
    assert "Update the CRM record" in page and "Book the callback" in page
    # The CSV reads the recent window alone: its rows are those of the coaching list's analysis.
    where = KpiFilter.of([alice.team_id, carol.team_id])
    today = site_today()
    whole = checklist_rows(coaching(where, today, today))
    assert checklist_rows(checklist(where, today, today)) == whole
    assert [(r["step"], r["team"], r["agent"], r["acws"]) for r in rows] == [
        (r["step"], r["team"], r["agent"], str(r["acws"])) for r in whole
    ]


def test_the_page_lists_the_checklist_per_agent_for_one_team_only(
    client: Client, manager_maria: Any, alice: Agent, carol: Agent
) -> None:
    crm = ChecklistItem.objects.create(label="Update the CRM record")
    calls("alice", [40, 60], checklist=[[crm.pk], []])
    calls("carol", [10, 10], checklist=[[crm.pk], [crm.pk]], start=_at(9))
    client.force_login(manager_maria)
    every_team = client.get("/kpis/coaching/").content.decode()
    assert 'id="checklist-teams"' in every_team and 'id="checklist-agents"' not in every_team
    assert 'id="checklist-agents-note"' in every_team
    assert "Alice Martin" not in every_team  # on no list: only the team rows name no one
    north = client.get("/kpis/coaching/", {"team": "North"}).content.decode()
    assert 'id="checklist-agents"' in north and 'id="checklist-agents-note"' not in north
    agents = north[north.index('id="checklist-agents"') :]
    assert "Alice Martin" in agents and "Carol Dubois" not in agents


# --- Too short everywhere, and the alert ------------------------------------------------------


def test_the_kpi_pages_show_the_too_short_rate_and_the_index(
    client: Client, manager_maria: Any, alice: Agent
) -> None:
    calls("alice", [5, 30, 30, 30])  # 1 of 4 too short = 25 %
    client.force_login(manager_maria)
    for url in ["/kpis/", f"/kpis/teams/{alice.team_id}/", "/kpis/agents/alice/"]:
        html = client.get(url).content.decode()
        assert "25.0 %" in html, url
        assert "ACW index" in html, url


def test_a_persistent_too_short_pattern_raises_the_too_short_alert(alice: Agent) -> None:
    # 20 ACWs yesterday, 12 too short (60 %, bound 41 %): a pattern even with none today.
    calls("alice", [5] * 12 + [30] * 8, start=_at(9, days_ago=1))
    condition = current_conditions()[(AlertKind.TOO_SHORT_STREAK, alice.team_id, alice.pk)]
    assert condition.value == 0.6 and condition.threshold == 0.2
    assert "12 of 20 ACWs" in condition.message


def test_a_few_short_acws_raise_no_persistent_alert(alice: Agent) -> None:
    calls("alice", [5] * 2 + [30] * 18, start=_at(9, days_ago=1))
    assert (AlertKind.TOO_SHORT_STREAK, alice.team_id, alice.pk) not in current_conditions()
