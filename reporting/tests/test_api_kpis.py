"""The KPI read API: ``GET /api/v1/kpis`` against a day computed by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from agents.models import AcwPolicy, Agent
from agents.tests.factories import DAY, by_key, call, client_for, send

KPI_URL = "/api/v1/kpis"

# Time stands still on the afternoon of DAY (the root conftest's frozen_now).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

KPI_FIELDS = {
    "key",
    "name",
    "interactions",
    "talk_seconds",
    "hold_seconds",
    "acw_seconds",
    "avg_acw_seconds",
    "aht_seconds",
    "acw_share",
}


# --- GET /api/v1/kpis: a scenario computed by hand --------------------------------------------


@pytest.fixture
def kpi_day(alice: Agent, bob: Agent, carol: Agent) -> None:
    """One morning of calls on DAY (site default ACW policy: timed, 30 s).

    alice, call a1: started 09:01:00, held 09:01:30, resumed 09:01:50, ended 09:02:40
        → 100 s on the call, hold 20 s, talk 80 s; ACW ended by the agent at 09:03:10 → 30 s.
    alice, call a2: 09:05:00 → 09:06:00 → talk 60 s; no acw.ended, so the ACW times out at its
        30 s deadline → 30 s.
    bob, call b1: started 10:00:00, held 10:00:30 and never resumed, ended 10:01:00
        → hold 30 s (to the end), talk 30 s; ACW extended by 30 s at 10:01:20, ended at
        10:01:50 → 50 s.
    carol (South), call c1: 09:00:00 → 09:04:00 → talk 240 s; ACW ended at 09:04:10 → 10 s.
    """
    send("alice", "agent.logged_in", "09:00:00")
    send("alice", "interaction.started", "09:01:00", interaction_id="a1", channel="phone")
    send("alice", "interaction.held", "09:01:30", interaction_id="a1")
    send("alice", "interaction.resumed", "09:01:50", interaction_id="a1")
    send("alice", "interaction.ended", "09:02:40", interaction_id="a1")
    send("alice", "acw.ended", "09:03:10")
    call("alice", "a2", "09:05:00", "09:06:00")
    send("alice", "agent.available", "09:10:00")
    send("bob", "interaction.started", "10:00:00", interaction_id="b1", channel="phone")
    send("bob", "interaction.held", "10:00:30", interaction_id="b1")
    send("bob", "interaction.ended", "10:01:00", interaction_id="b1")
    send("bob", "acw.extended", "10:01:20", seconds=30)
    send("bob", "acw.ended", "10:01:50")
    call("carol", "c1", "09:00:00", "09:04:00")
    send("carol", "acw.ended", "09:04:10")


EXPECTED_AGENTS = {
    "alice": {
        "key": "alice",
        "name": "Alice Martin",
        "interactions": 2,
        "talk_seconds": 140.0,
        "hold_seconds": 20.0,
        "acw_seconds": 60.0,
        "avg_acw_seconds": 30.0,
        "aht_seconds": 110.0,  # (140 + 20 + 60) / 2
        "acw_share": 0.2727,  # 60 / 220
    },
    "bob": {
        "key": "bob",
        "name": "Bob Jansen",
        "interactions": 1,
        "talk_seconds": 30.0,
        "hold_seconds": 30.0,
        "acw_seconds": 50.0,
        "avg_acw_seconds": 50.0,
        "aht_seconds": 110.0,  # 30 + 30 + 50
        "acw_share": 0.4545,  # 50 / 110
    },
    "carol": {
        "key": "carol",
        "name": "Carol Dubois",
        "interactions": 1,
        "talk_seconds": 240.0,
        "hold_seconds": 0.0,
        "acw_seconds": 10.0,
        "avg_acw_seconds": 10.0,
        "aht_seconds": 250.0,
        "acw_share": 0.04,  # 10 / 250
    },
}
EXPECTED_TEAMS = {
    "North": {
        "key": "North",
        "name": "North",
        "interactions": 3,
        "talk_seconds": 170.0,
        "hold_seconds": 50.0,
        "acw_seconds": 110.0,
        "avg_acw_seconds": 36.667,  # 110 / 3
        "aht_seconds": 110.0,  # 330 / 3
        "acw_share": 0.3333,  # 110 / 330
    },
    "South": {**EXPECTED_AGENTS["carol"], "key": "South", "name": "South"},
}


def _close(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(actual) >= KPI_FIELDS
    for field, value in expected.items():
        if isinstance(value, float):
            assert actual[field] == pytest.approx(value, abs=1e-3), field
        else:
            assert actual[field] == value, field


def test_kpis_per_agent_match_the_hand_computed_day(api: APIClient, kpi_day: None) -> None:
    rows = by_key(api.get(KPI_URL, {"group_by": "agent", "from": DAY, "to": DAY}))
    assert set(rows) == set(EXPECTED_AGENTS)
    for key, expected in EXPECTED_AGENTS.items():
        _close(rows[key], expected)


def test_kpis_per_team_match_the_hand_computed_day(api: APIClient, kpi_day: None) -> None:
    rows = by_key(api.get(KPI_URL, {"group_by": "team", "from": DAY, "to": DAY}))
    assert set(rows) == set(EXPECTED_TEAMS)
    for key, expected in EXPECTED_TEAMS.items():
        _close(rows[key], expected)


def test_kpis_default_to_agents_today(api: APIClient, kpi_day: None) -> None:
    rows = by_key(api.get(KPI_URL))
    assert set(rows) == set(EXPECTED_AGENTS)
    _close(rows["alice"], EXPECTED_AGENTS["alice"])


def test_kpis_of_another_day_are_empty(api: APIClient, kpi_day: None) -> None:
    response = api.get(KPI_URL, {"from": "2026-11-01", "to": "2026-11-01"})
    assert response.json() == {"rows": []}


def test_kpis_filter_by_team(api: APIClient, kpi_day: None) -> None:
    rows = by_key(api.get(KPI_URL, {"from": DAY, "to": DAY, "team": "South"}))
    assert set(rows) == {"carol"}
    rows = by_key(api.get(KPI_URL, {"group_by": "team", "from": DAY, "to": DAY, "team": "North"}))
    assert set(rows) == {"North"}
    _close(rows["North"], EXPECTED_TEAMS["North"])


def test_an_unknown_team_filter_is_400_naming_the_field(api: APIClient, kpi_day: None) -> None:
    response = api.get(KPI_URL, {"team": "Nowhere"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("team:")


def test_a_supervisor_gets_kpis_of_their_teams_only(supervisor_sam: Any, kpi_day: None) -> None:
    client = client_for(supervisor_sam)
    assert set(by_key(client.get(KPI_URL, {"from": DAY, "to": DAY}))) == {"alice", "bob"}
    teams = by_key(client.get(KPI_URL, {"group_by": "team", "from": DAY, "to": DAY}))
    assert set(teams) == {"North"}
    response = client.get(KPI_URL, {"from": DAY, "to": DAY, "team": "South"})
    assert response.status_code == 400
    assert "carol" not in response.content.decode()


def test_a_manager_gets_kpis_of_every_team(manager_maria: Any, kpi_day: None) -> None:
    teams = by_key(client_for(manager_maria).get(KPI_URL, {"group_by": "team", "from": DAY}))
    assert set(teams) == {"North", "South"}


@pytest.mark.parametrize("group_by", ["agent", "channel", "weekday_hour", "interval"])
def test_a_reader_of_every_team_reads_by_period_not_through_a_list_of_teams(
    manager_maria: Any, supervisor_sam: Any, kpi_day: None, group_by: str
) -> None:
    """A manager with no team chosen is not narrowed to a list of every team id (which made
    the database read a year through the team index); a supervisor, or a chosen team, is. The
    figures are those of the teams added up."""
    manager = client_for(manager_maria)
    query = {"group_by": group_by, "from": DAY, "to": DAY}
    with CaptureQueriesContext(connection) as every_team:
        rows = by_key(manager.get(KPI_URL, query))
    reads = [q["sql"] for q in every_team.captured_queries if '"team_id" IS NOT NULL' in q["sql"]]
    assert reads
    assert not any('"team_id" IN (' in sql for sql in reads)
    with CaptureQueriesContext(connection) as listed:
        supervised = by_key(client_for(supervisor_sam).get(KPI_URL, query))
    assert any('"team_id" IN (' in q["sql"] for q in listed.captured_queries)
    assert not any('"team_id" IS NOT NULL' in q["sql"] for q in listed.captured_queries)
    south = by_key(manager.get(KPI_URL, {**query, "team": "South"}))
    for key in set(rows) | set(supervised) | set(south):
        parts = [part[key] for part in (supervised, south) if key in part]
        for field in ("interactions", "talk_seconds", "hold_seconds", "acw_seconds"):
            assert rows[key][field] == pytest.approx(sum(part[field] for part in parts))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "queue"}, "group_by"),
        ({"from": "02/11/2026"}, "from"),
        ({"from": "2026-11-31"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"to": "2026-11-02T00:00:00"}, "to"),
        ({"from": "2026-11-03", "to": "2026-11-02"}, "from"),
        ({"to": "9999-12-31"}, "to"),
        ({"from": "0001-01-01"}, "from"),
        ({"team": "t" * 101}, "team"),
    ],
    ids=[
        "group_by",
        "from",
        "impossible from",
        "word",
        "to",
        "to",
        "from > to",
        "last day",
        "first day",
        "long team",
    ],
)
def test_invalid_kpi_parameters_are_400_naming_the_field(
    api: APIClient, params: dict[str, str], field: str
) -> None:
    response = api.get(KPI_URL, params)
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}:"), response.json()


def test_empty_dates_and_filters_mean_their_defaults(api: APIClient, kpi_day: None) -> None:
    # As an HTML form sends them: an empty period or filter is the same as none.
    params = {"from": "", "to": "", "team": "", "department": "", "agent": "", "channel": ""}
    rows = by_key(api.get(KPI_URL, params))
    assert set(rows) == set(EXPECTED_AGENTS)


def test_an_empty_group_by_is_400(api: APIClient, kpi_day: None) -> None:
    # What the rows mean must not be guessed: "group_by=" is a client bug, not the default.
    response = api.get(KPI_URL, {"group_by": ""})
    assert response.status_code == 400
    assert response.json()["error"].startswith("group_by:")


def test_day_boundaries_are_inclusive_in_utc(api: APIClient, alice: Agent) -> None:
    call("alice", "late", "23:58:00", "23:59:59", day="2026-11-01")
    call("alice", "early", "00:00:00", "00:00:30", day=DAY)
    first = by_key(api.get(KPI_URL, {"from": "2026-11-01", "to": "2026-11-01"}))
    assert first["alice"]["interactions"] == 1
    assert first["alice"]["talk_seconds"] == pytest.approx(119)
    second = by_key(api.get(KPI_URL, {"from": DAY, "to": DAY}))
    assert second["alice"]["talk_seconds"] == pytest.approx(30)
    both = by_key(api.get(KPI_URL, {"from": "2026-11-01", "to": DAY}))
    assert both["alice"]["interactions"] == 2


def test_days_are_counted_in_the_site_time_zone(
    api: APIClient, alice: Agent, settings: Any, frozen_now: time_machine.Traveller
) -> None:
    settings.TIME_ZONE = "Europe/Paris"
    frozen_now.move_to(datetime.fromisoformat("2026-11-03T12:00:00+00:00"))
    # 23:30 UTC on Nov 1 is 00:30 on Nov 2 in Paris (UTC+1 in November).
    call("alice", "night", "23:00:00", "23:30:00", day="2026-11-01")
    # 22:30 UTC on Nov 2 is 23:30 on Nov 2 in Paris: still Nov 2 there.
    call("alice", "evening", "22:00:00", "22:30:00", day=DAY)
    assert api.get(KPI_URL, {"from": "2026-11-01", "to": "2026-11-01"}).json() == {"rows": []}
    rows = by_key(api.get(KPI_URL, {"from": DAY, "to": DAY}))
    assert rows["alice"]["interactions"] == 2
    assert rows["alice"]["talk_seconds"] == pytest.approx(3600)


def test_a_daylight_saving_day_has_its_25_hours_in_the_site_time_zone(
    api: APIClient, alice: Agent, settings: Any, frozen_now: time_machine.Traveller
) -> None:
    settings.TIME_ZONE = "Europe/Paris"
    frozen_now.move_to(datetime.fromisoformat("2026-10-27T12:00:00+00:00"))
    # Paris leaves summer time on Oct 25, 2026: that day runs from 22:00 UTC on Oct 24
    # (00:00 CEST) to 23:00 UTC on Oct 25 (00:00 CET).
    call("alice", "before", "21:50:00", "21:59:00", day="2026-10-24")
    call("alice", "first", "22:00:00", "22:01:00", day="2026-10-24")
    call("alice", "last", "22:58:00", "22:59:59", day="2026-10-25")
    call("alice", "after", "23:00:00", "23:01:00", day="2026-10-25")
    day = by_key(api.get(KPI_URL, {"from": "2026-10-25", "to": "2026-10-25"}))
    assert day["alice"]["interactions"] == 2
    assert day["alice"]["talk_seconds"] == pytest.approx(60 + 119)
    both_sides = by_key(api.get(KPI_URL, {"from": "2026-10-24", "to": "2026-10-26"}))
    assert both_sides["alice"]["interactions"] == 4


def test_today_is_the_site_time_zone_day(
    api: APIClient, alice: Agent, settings: Any, frozen_now: time_machine.Traveller
) -> None:
    settings.TIME_ZONE = "Europe/Paris"
    frozen_now.move_to(datetime.fromisoformat("2026-11-02T23:40:00+00:00"))
    call("alice", "night", "23:00:00", "23:30:00", day=DAY)
    # It is already Nov 3 in Paris, and the interaction ended at 00:30 Paris time.
    rows = by_key(api.get(KPI_URL))
    assert rows["alice"]["interactions"] == 1


def test_an_open_acw_counts_the_time_elapsed_so_far(
    api: APIClient, alice: Agent, frozen_now: time_machine.Traveller
) -> None:
    call("alice", "c1", "14:58:00", "14:59:50")
    rows = by_key(api.get(KPI_URL, {"from": DAY, "to": DAY}))
    assert rows["alice"]["acw_seconds"] == pytest.approx(10)
    assert rows["alice"]["aht_seconds"] == pytest.approx(110 + 10)
    frozen_now.shift(15)
    rows = by_key(api.get(KPI_URL, {"from": DAY, "to": DAY}))
    assert rows["alice"]["acw_seconds"] == pytest.approx(25)


def test_an_open_untimed_acw_keeps_counting(
    api: APIClient, alice: Agent, north: Any, frozen_now: time_machine.Traveller
) -> None:
    AcwPolicy.objects.create(team=north, mode="manual")
    call("alice", "c1", "14:50:00", "14:55:00")
    frozen_now.shift(600)
    rows = by_key(api.get(KPI_URL, {"from": DAY, "to": DAY}))
    assert rows["alice"]["acw_seconds"] == pytest.approx(900)


def test_an_interaction_counts_for_the_team_of_its_agent_when_it_ended(
    api: APIClient, alice: Agent, bob: Agent, carol: Agent
) -> None:
    call("alice", "in-north", "09:00:00", "09:01:00")
    send("alice", "acw.ended", "09:01:10")
    send("alice", "interaction.started", "09:05:00", interaction_id="moved", channel="phone")
    moved = api.put("/api/v1/agents/alice", {"name": "Alice Martin", "team": "South"})
    assert moved.status_code == 200
    send("alice", "interaction.ended", "09:07:00", interaction_id="moved")
    send("alice", "acw.ended", "09:07:20")
    call("alice", "in-south", "09:10:00", "09:10:30")
    teams = by_key(api.get(KPI_URL, {"group_by": "team", "from": DAY, "to": DAY}))
    assert teams["North"]["interactions"] == 1
    assert teams["North"]["talk_seconds"] == pytest.approx(60)
    assert teams["North"]["acw_seconds"] == pytest.approx(10)
    assert teams["South"]["interactions"] == 2
    assert teams["South"]["talk_seconds"] == pytest.approx(120 + 30)
    assert teams["South"]["acw_seconds"] == pytest.approx(20 + 30)
    agents = by_key(api.get(KPI_URL, {"from": DAY, "to": DAY}))
    assert agents["alice"]["interactions"] == 3
