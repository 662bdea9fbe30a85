"""The analysis API (``/api/v1/kpis`` groupings and filters, ``/api/v1/kpis/distribution``)
against a day computed by hand, read from the raw rows and again from the rollups."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

import pytest
import time_machine
from rest_framework.test import APIClient

from agents.models import AcwPolicy, Agent, Department, Team, WrapUpCode
from agents.tests.factories import DAY, send
from reporting import rollups
from reporting.models import Grain, TeamHourRollup
from reporting.tests.test_api_kpis import KPI_URL, by_key, client_for

# Time stands still on the afternoon of DAY (the root conftest's frozen_now).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

DISTRIBUTION_URL = "/api/v1/kpis/distribution"
NEW_FIELDS = ("acw_count", "timeouts", "extended", "too_short")


@pytest.fixture
def analysis_day(alice: Agent, bob: Agent, carol: Agent, north: Team, south: Team) -> None:
    """One day (Monday DAY, site time zone UTC) computed by hand.

    Policies: North timed 30 s with a 10 s minimum (extension step 30 s), North chat manual
    (no timer) with a 20 s minimum; South the site default (timed 30 s, no minimum).
    Code "sale" has a norm of 45 s; "info" is not defined (stored as given). Department Sales
    holds North; South has no department.

    alice a1 phone 09:00:00-09:02:00 (talk 120), ACW ended 09:02:05 "sale": 5 s, too short.
    alice a2 phone 09:10:00-09:11:00 (talk 60), no acw.ended: timeout at 09:11:30, 30 s.
    alice a3 chat  10:05:00-10:15:00 (talk 600), manual ACW ended 10:16:40 "info": 100 s.
    bob   b1 phone 09:40:00-09:45:00, held 09:41-09:42 (hold 60, talk 240); extended at
          09:45:20 (deadline 09:46:00), ended 09:45:50 "sale": 50 s, extended.
    bob   b2 email 13:00:00-13:04:00 (talk 240); extended at 13:04:25 (deadline 13:05:00),
          never ended: timeout at 13:05:00, 60 s, extended and timed out.
    carol c1 phone 09:00:00-09:03:00 (talk 180), ACW ended 09:03:03 (no code): 3 s (South has
          no minimum, so not too short).
    """
    sales = Department.objects.create(name="Sales")
    north.department = sales
    north.save(update_fields=["department"])
    AcwPolicy.objects.create(team=north, seconds=30, min_seconds=10)
    AcwPolicy.objects.create(team=north, channel="chat", mode="manual", seconds=0, min_seconds=20)
    WrapUpCode.objects.create(code="sale", label="Sale", expected_acw_seconds=45)

    def interaction(agent: str, cid: str, channel: str, start: str, end: str) -> None:
        send(agent, "interaction.started", start, interaction_id=cid, channel=channel)
        send(agent, "interaction.ended", end, interaction_id=cid)

    for agent in ("alice", "bob", "carol"):
        send(agent, "agent.logged_in", "08:55:00")
    interaction("alice", "a1", "phone", "09:00:00", "09:02:00")
    send("alice", "acw.ended", "09:02:05", wrap_up_code="sale")
    interaction("alice", "a2", "phone", "09:10:00", "09:11:00")
    interaction("alice", "a3", "chat", "10:05:00", "10:15:00")
    send("alice", "acw.ended", "10:16:40", wrap_up_code="info")
    send("bob", "interaction.started", "09:40:00", interaction_id="b1", channel="phone")
    send("bob", "interaction.held", "09:41:00", interaction_id="b1")
    send("bob", "interaction.resumed", "09:42:00", interaction_id="b1")
    send("bob", "interaction.ended", "09:45:00", interaction_id="b1")
    send("bob", "acw.extended", "09:45:20")
    send("bob", "acw.ended", "09:45:50", wrap_up_code="sale")
    interaction("bob", "b2", "email", "13:00:00", "13:04:00")
    send("bob", "acw.extended", "13:04:25")
    interaction("carol", "c1", "phone", "09:00:00", "09:03:00")
    send("carol", "acw.ended", "09:03:03")
    # Everything has happened by now (15:00): b2's ACW timed out at 13:05:00.
    for agent in ("alice", "bob", "carol"):
        send(agent, "agent.logged_out", "14:00:00")


def fig(n: int, talk: float, hold: float, acw: float, count: int, *rest: int) -> dict:
    """Expected figures: interactions, talk, hold, ACW, acw_count, timeouts, extended, too_short."""
    timeouts, extended, too_short = (*rest, 0, 0, 0)[:3]
    handle = talk + hold + acw
    return {
        "interactions": n,
        "talk_seconds": talk,
        "hold_seconds": hold,
        "acw_seconds": acw,
        "avg_acw_seconds": round(acw / n, 3),
        "aht_seconds": round(handle / n, 3),
        "acw_share": round(acw / handle, 4),
        "acw_count": count,
        "timeouts": timeouts,
        "extended": extended,
        "too_short": too_short,
    }


NORTH = fig(5, 1260, 60, 245, 5, 2, 2, 1)
SOUTH = fig(1, 180, 0, 3, 1)
EXPECTED: dict[str, dict[str, dict[str, Any]]] = {
    "agent": {
        "alice": {"name": "Alice Martin", **fig(3, 780, 0, 135, 3, 1, 0, 1)},
        "bob": {"name": "Bob Jansen", **fig(2, 480, 60, 110, 2, 1, 2, 0)},
        "carol": {"name": "Carol Dubois", **SOUTH},
    },
    "team": {"North": {"name": "North", **NORTH}, "South": {"name": "South", **SOUTH}},
    "department": {
        "": {"name": "No department", **SOUTH},
        "Sales": {"name": "Sales", **NORTH},
    },
    "channel": {
        "chat": {"name": "Chat", **fig(1, 600, 0, 100, 1)},
        "email": {"name": "E-mail", **fig(1, 240, 0, 60, 1, 1, 1, 0)},
        "phone": {"name": "Phone", **fig(4, 600, 60, 88, 4, 1, 1, 1)},
    },
    "wrap_up_code": {
        "": {**fig(3, 480, 0, 93, 3, 2, 1, 0), "norm_acw_seconds": None},
        "info": {"name": "info", **fig(1, 600, 0, 100, 1), "norm_acw_seconds": None},
        "sale": {"name": "Sale", **fig(2, 360, 60, 55, 2, 0, 1, 1), "norm_acw_seconds": 45.0},
    },
    "day": {DAY: {"name": DAY, **fig(6, 1440, 60, 248, 6, 2, 2, 1)}},
    "interval": {
        f"{DAY}T09:00:00+00:00": fig(3, 360, 0, 38, 3, 1, 0, 1),  # a1, a2, c1
        f"{DAY}T09:45:00+00:00": fig(1, 240, 60, 50, 1, 0, 1, 0),  # b1
        f"{DAY}T10:15:00+00:00": fig(1, 600, 0, 100, 1),  # a3
        f"{DAY}T13:00:00+00:00": fig(1, 240, 0, 60, 1, 1, 1, 0),  # b2
    },
    "weekday_hour": {
        "1-09": {"name": "Mon 09:00", **fig(4, 600, 60, 88, 4, 1, 1, 1)},
        "1-10": {"name": "Mon 10:00", **fig(1, 600, 0, 100, 1)},
        "1-13": {"name": "Mon 13:00", **fig(1, 240, 0, 60, 1, 1, 1, 0)},
    },
}


@pytest.fixture(params=["raw", "rollups"])
def read_from(request: Any, analysis_day: None) -> str:
    """Each figure twice: right after ingestion (dirty intervals: raw rows), then from the
    rollups once they have run."""
    if request.param == "rollups":
        assert rollups.compute_rollups() > 0
    return str(request.param)


def _rows(client: APIClient, group_by: str, **params: str) -> list[dict[str, Any]]:
    response = client.get(KPI_URL, {"group_by": group_by, "from": DAY, "to": DAY, **params})
    assert response.status_code == 200, response.json()
    return response.json()["rows"]


@pytest.mark.parametrize("group_by", list(EXPECTED))
def test_every_grouping_matches_the_hand_computed_day(
    api: APIClient, read_from: str, group_by: str
) -> None:
    rows = _rows(api, group_by)
    assert [row["key"] for row in rows] == list(EXPECTED[group_by])  # ordered by key
    for row in rows:
        expected = EXPECTED[group_by][row["key"]]
        for name, value in expected.items():
            assert row[name] == pytest.approx(value, abs=1e-3), (row["key"], name)
        assert ("norm_acw_seconds" in row) == (group_by == "wrap_up_code")


@pytest.mark.parametrize(
    ("params", "key", "expected"),
    [
        ({"team": "North"}, "North", NORTH),
        ({"department": "Sales"}, "North", NORTH),
        ({"agent": "bob"}, "North", fig(2, 480, 60, 110, 2, 1, 2, 0)),
        ({"channel": "phone", "team": "North"}, "North", fig(3, 420, 60, 85, 3, 1, 1, 1)),
        ({"channel": "phone", "department": "Sales", "agent": "alice"}, "North", None),
    ],
)
def test_filters_combine(
    api: APIClient, read_from: str, params: dict, key: str, expected: dict | None
) -> None:
    rows = by_key(api.get(KPI_URL, {"group_by": "team", "from": DAY, "to": DAY, **params}))
    if expected is None:  # alice's phone calls: a1 and a2
        expected = fig(2, 180, 0, 35, 2, 1, 0, 1)
    assert list(rows) == [key]
    for name, value in expected.items():
        assert rows[key][name] == pytest.approx(value, abs=1e-3), name


def test_a_department_sums_its_teams(api: APIClient, analysis_day: None, south: Team) -> None:
    south.department = Department.objects.get(name="Sales")
    south.save(update_fields=["department"])
    rows = by_key(api.get(KPI_URL, {"group_by": "department", "from": DAY, "to": DAY}))
    assert list(rows) == ["Sales"]
    assert rows["Sales"]["interactions"] == 6
    assert rows["Sales"]["acw_seconds"] == pytest.approx(248)
    assert rows["Sales"]["too_short"] == 1


def test_the_distribution_matches_the_hand_computed_day(api: APIClient, read_from: str) -> None:
    # Closed ACWs: 3, 5, 30, 50, 60, 100 s.
    body = api.get(DISTRIBUTION_URL, {"from": DAY, "to": DAY}).json()
    counts = [0] * 11
    counts[0], counts[3], counts[5], counts[6], counts[10] = 2, 1, 1, 1, 1
    assert body == {
        "count": 6,
        "bin_seconds": 10,
        "bins": [{"from": i * 10, "to": i * 10 + 10, "count": n} for i, n in enumerate(counts)],
        "p50": 30,  # the 3rd of 6
        "p90": 100,  # the 6th of 6 (ceil(0.9 * 6) = 6)
    }
    wide = api.get(DISTRIBUTION_URL, {"from": DAY, "to": DAY, "bin_seconds": 30}).json()
    assert [b["count"] for b in wide["bins"]] == [2, 2, 1, 1]
    assert wide["count"] == sum(b["count"] for b in wide["bins"])
    south = api.get(DISTRIBUTION_URL, {"from": DAY, "to": DAY, "team": "South"}).json()
    assert (south["count"], south["p50"], south["p90"]) == (1, 3, 3)
    chat = api.get(DISTRIBUTION_URL, {"from": DAY, "to": DAY, "channel": "chat"}).json()
    assert chat["bins"][-1] == {"from": 100, "to": 110, "count": 1}


def test_an_empty_distribution_has_no_bins(api: APIClient, alice: Agent) -> None:
    body = api.get(DISTRIBUTION_URL, {"from": DAY, "to": DAY}).json()
    assert body == {"count": 0, "bin_seconds": 10, "bins": [], "p50": None, "p90": None}


def test_an_open_acw_counts_with_its_time_so_far(api: APIClient, alice: Agent, north: Team) -> None:
    # Manual ACW (no timer) opened at 14:50; "now" is 15:00.
    AcwPolicy.objects.create(team=north, mode="manual", seconds=0)
    send("alice", "interaction.started", "14:45:00", interaction_id="o1", channel="phone")
    send("alice", "interaction.ended", "14:50:00", interaction_id="o1")
    rows = by_key(api.get(KPI_URL, {"group_by": "agent", "from": DAY, "to": DAY}))
    assert rows["alice"]["acw_seconds"] == pytest.approx(600)
    assert (rows["alice"]["acw_count"], rows["alice"]["timeouts"]) == (1, 0)
    # Its length is not known yet: no duration in the histogram.
    assert api.get(DISTRIBUTION_URL, {"from": DAY, "to": DAY}).json()["count"] == 0


# --- A day with a DST change ---------------------------------------------------------------

DST_DAY = "2026-10-25"  # Europe/Berlin: 03:00 CEST becomes 02:00 CET (01:00 UTC); 25 hours


@pytest.fixture
def dst_day(alice: Agent, settings: Any, frozen_now: time_machine.Traveller) -> None:
    """Calls of 60 s with 10 s of ACW, ending at (UTC → Berlin):

    2026-10-24 22:30 → 00:30 CEST on the 25th (a Sunday)
    2026-10-25 00:20 → 02:20 CEST (the first 02:20)
    2026-10-25 01:20 → 02:20 CET (the second 02:20, an hour later)
    2026-10-25 22:50 → 23:50 CET
    2026-10-25 23:10 → 00:10 CET on the 26th (the next day)
    """
    settings.TIME_ZONE = "Europe/Berlin"
    frozen_now.move_to(datetime.fromisoformat("2026-10-27T12:00:00+00:00"))
    ends = [
        ("2026-10-24", "22:30:00"),
        ("2026-10-25", "00:20:00"),
        ("2026-10-25", "01:20:00"),
        ("2026-10-25", "22:50:00"),
        ("2026-10-25", "23:10:00"),
    ]
    for n, (day, end) in enumerate(ends):
        hh, mm, _ = end.split(":")
        minutes = int(hh) * 60 + int(mm) - 1
        start = f"{minutes // 60:02d}:{minutes % 60:02d}:00"
        send("alice", "interaction.started", start, day, interaction_id=f"d{n}", channel="phone")
        send("alice", "interaction.ended", end, day, interaction_id=f"d{n}")
        end_acw = f"{hh}:{mm}:10"
        send("alice", "acw.ended", end_acw, day)


@pytest.mark.parametrize("rolled_up", [False, True])
def test_a_dst_day_has_its_25_hours_in_the_site_time_zone(
    api: APIClient, dst_day: None, rolled_up: bool
) -> None:
    if rolled_up:
        rollups.compute_rollups()
    days = by_key(api.get(KPI_URL, {"group_by": "day", "from": "2026-10-24", "to": "2026-10-26"}))
    assert {k: r["interactions"] for k, r in days.items()} == {"2026-10-25": 4, "2026-10-26": 1}
    one_day = {"group_by": "interval", "from": DST_DAY, "to": DST_DAY}
    intervals = api.get(KPI_URL, one_day).json()["rows"]
    # In time order: the repeated hour's "+02:00" interval comes before its "+01:00" one.
    assert [r["key"] for r in intervals] == [
        "2026-10-25T00:30:00+02:00",
        "2026-10-25T02:15:00+02:00",
        "2026-10-25T02:15:00+01:00",
        "2026-10-25T23:45:00+01:00",
    ]
    assert all(r["acw_seconds"] == pytest.approx(10) for r in intervals)
    hours = by_key(api.get(KPI_URL, {**one_day, "group_by": "weekday_hour"}))
    assert {k: r["interactions"] for k, r in hours.items()} == {"7-00": 1, "7-02": 2, "7-23": 1}
    assert hours["7-02"]["acw_seconds"] == pytest.approx(20)
    distribution = api.get(DISTRIBUTION_URL, {"from": DST_DAY, "to": DST_DAY}).json()
    assert distribution["count"] == 4
    assert distribution["bins"] == [{"from": 10, "to": 20, "count": 4}] or distribution["bins"] == [
        {"from": 0, "to": 10, "count": 0},
        {"from": 10, "to": 20, "count": 4},
    ]


def test_the_hour_rows_of_a_dst_day_and_its_month_have_its_25_hours_in_the_site_time_zone(
    api: APIClient, dst_day: None, frozen_now: time_machine.Traveller
) -> None:
    rollups.compute_rollups()
    day_cells = TeamHourRollup.objects.filter(grain=Grain.DAY).values_list(
        "bucket_start", "weekday", "hour", "interactions", "acw_seconds"
    )
    sunday = datetime.fromisoformat("2026-10-24T22:00:00+00:00")  # midnight CEST
    monday = datetime.fromisoformat("2026-10-25T23:00:00+00:00")  # midnight CET
    assert sorted(day_cells) == [
        (sunday, 7, 0, 1, 10),
        (sunday, 7, 2, 2, 20),  # 02:20 CEST and 02:20 CET
        (sunday, 7, 23, 1, 10),
        (monday, 1, 0, 1, 10),
    ]
    frozen_now.move_to(datetime.fromisoformat("2026-11-02T12:00:00+00:00"))
    rollups.refresh_stale_buckets()  # October has ended: its month rows
    month_cells = TeamHourRollup.objects.filter(grain=Grain.MONTH).values_list(
        "weekday", "hour", "interactions"
    )
    assert sorted(month_cells) == [(1, 0, 1), (7, 0, 1), (7, 2, 2), (7, 23, 1)]
    october = {"group_by": "weekday_hour", "from": "2026-10-01", "to": "2026-10-31"}
    hours = by_key(api.get(KPI_URL, october))
    assert {k: r["interactions"] for k, r in hours.items()} == {
        "1-00": 1,
        "7-00": 1,
        "7-02": 2,
        "7-23": 1,
    }


# --- Access and validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"team": "South"}, "team"),
        ({"agent": "carol"}, "agent"),
        ({"department": "Service"}, "department"),
        ({"department": "Nowhere"}, "department"),
        ({"agent": "nobody"}, "agent"),
        ({"channel": "fax"}, "channel"),
        ({"group_by": "queue"}, "group_by"),
        ({"format": "xml"}, "format"),
    ],
)
def test_a_value_the_user_may_not_see_or_that_does_not_exist_is_400(
    analysis_day: None, supervisor_sam: Any, south: Team, params: dict, field: str
) -> None:
    south.department = Department.objects.create(name="Service")
    south.save(update_fields=["department"])
    response = client_for(supervisor_sam).get(KPI_URL, {"from": DAY, "to": DAY, **params})
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}:"), response.json()


@pytest.mark.parametrize("bin_seconds", ["0", "-5", "abc", "3601"])
def test_a_wrong_bin_width_is_400(api: APIClient, bin_seconds: str) -> None:
    response = api.get(DISTRIBUTION_URL, {"bin_seconds": bin_seconds})
    assert response.status_code == 400
    assert response.json()["error"].startswith("bin_seconds:")


def test_a_supervisor_reads_only_their_teams_in_every_grouping(
    analysis_day: None, supervisor_sam: Any
) -> None:
    client = client_for(supervisor_sam)
    assert [r["key"] for r in _rows(client, "team")] == ["North"]
    assert [r["key"] for r in _rows(client, "department")] == ["Sales"]
    assert sum(r["interactions"] for r in _rows(client, "channel")) == 5
    body = client.get(DISTRIBUTION_URL, {"from": DAY, "to": DAY}).json()
    assert body["count"] == 5  # carol's 3 s ACW is not theirs


# --- CSV ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("group_by", ["agent", "wrap_up_code", "interval"])
def test_csv_has_the_json_rows_field_for_field(
    api: APIClient, analysis_day: None, group_by: str
) -> None:
    params = {"group_by": group_by, "from": DAY, "to": DAY}
    rows = api.get(KPI_URL, params).json()["rows"]
    response = api.get(KPI_URL, {**params, "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response.streaming
    assert response["Content-Disposition"] == (
        f'attachment; filename="acw-kpis-by-{group_by}-{DAY}-to-{DAY}.csv"'
    )
    text = b"".join(response.streaming_content).decode()
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == list(rows[0])  # the header: the JSON fields in their order
    assert len(lines) == len(rows) + 1
    for line, row in zip(lines[1:], rows, strict=True):
        assert line == ["" if v is None else str(v) for v in row.values()]


def test_csv_of_a_long_period_per_interval_equals_the_json(api: APIClient, read_from: str) -> None:
    # One streamed statement merged with the raw rows of the dirty intervals and an ACW still
    # open (manual, North chat: 14:45 to now, 15:00): the same rows as the JSON, in order.
    send("alice", "agent.logged_in", "14:30:00")
    send("alice", "interaction.started", "14:35:00", interaction_id="a4", channel="chat")
    send("alice", "interaction.ended", "14:45:00", interaction_id="a4")
    params = {"group_by": "interval", "from": "2026-09-01", "to": "2026-12-31"}
    rows = api.get(KPI_URL, params).json()["rows"]
    assert len(rows) == 5
    assert rows[-1]["acw_seconds"] == pytest.approx(900)
    text = b"".join(api.get(KPI_URL, {**params, "format": "csv"}).streaming_content).decode()
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[1:] == [["" if v is None else str(v) for v in row.values()] for row in rows]


def test_the_distribution_downloads_as_csv(api: APIClient, analysis_day: None) -> None:
    params = {"from": DAY, "to": DAY, "bin_seconds": "30"}
    bins = api.get(DISTRIBUTION_URL, params).json()["bins"]
    response = api.get(DISTRIBUTION_URL, {**params, "format": "csv"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert lines == [["from", "to", "count"]] + [
        [str(b["from"]), str(b["to"]), str(b["count"])] for b in bins
    ]


def test_a_csv_request_with_a_wrong_value_gets_a_json_400(api: APIClient) -> None:
    response = api.get(KPI_URL, {"format": "csv", "group_by": "nope"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("group_by:")
