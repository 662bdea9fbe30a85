"""The KPI pages: the visible teams' figures for a period, from the same functions as the API."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import translation
from django.utils.formats import date_format

from agents.models import AcwPolicy, Agent, ChecklistItem, Department, Team
from agents.services import provision_agent
from reporting import pages
from reporting.alerts import evaluate_alerts
from reporting.models import Grain, KpiRollup
from reporting.queries import site_today, site_tz
from reporting.rollups import close_day, compute_rollups

from .factories import call, event, ingest

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _afternoon(db: None) -> Iterator[None]:
    """Today at 15:00 (site time), so a morning of calls is today's, and a longer ACW timer
    than the site default's 30 s, so each call's ACW lasts as long as the test says."""
    AcwPolicy.objects.filter(team=None, channel="").update(seconds=100)
    with time_machine.travel(datetime.combine(site_today(), time(15), site_tz()), tick=True):
        yield


def _today_at(hour: int, minute: int = 0) -> datetime:
    return datetime.combine(site_today(), time(hour, minute), site_tz())


def _text(response: Any) -> str:
    """The page's text without tags and with single spaces."""
    html = response.content.decode()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_kpi_page_shows_the_supervisors_teams_only(
    client: Client, supervisor_sam: Any, alice: Agent, carol: Agent
) -> None:
    start = _today_at(10)
    ingest(*call("alice", "a", start, talk=100, acw=20), *call("carol", "c", start, talk=5, acw=1))
    client.force_login(supervisor_sam)
    response = client.get("/kpis/")
    page = response.content.decode()
    assert "Alice Martin" in page and "Carol Dubois" not in page
    assert 'option value="South"' not in page
    # Durations as people read them: 100 s of talk is 1:40.
    assert "1:40" in _text(response) and "20 s" in _text(response)


def test_a_team_or_department_the_user_may_not_see_is_a_400_naming_it(
    client: Client, supervisor_sam: Any, south: Team
) -> None:
    south.department = Department.objects.create(name="Sales")
    south.save(update_fields=["department"])
    client.force_login(supervisor_sam)
    response = client.get("/kpis/?team=South")
    assert response.status_code == 400 and "team: no such team" in _text(response)
    response = client.get("/kpis/?department=Sales")
    assert response.status_code == 400 and "department: no such department" in _text(response)


@pytest.mark.parametrize(
    "query",
    [
        "from=2026-11-20&to=2026-11-01",
        "from=garbage",
        "period=fortnight",
        "channel=fax",
        "group_by=weekday",
        "from=2020-01-01&to=2026-01-01",
        "from=0001-01-01",
    ],
)
def test_bad_input_is_a_clear_400_never_a_500(
    client: Client, manager_maria: Any, query: str
) -> None:
    client.force_login(manager_maria)
    response = client.get(f"/kpis/?{query}")
    assert response.status_code == 400
    assert 'class="form-error"' in response.content.decode()


def test_agent_users_may_not_see_kpis(client: Client, agent_user_alice: Any, north: Team) -> None:
    client.force_login(agent_user_alice)
    assert client.get("/kpis/").status_code == 403
    assert client.get("/kpis/agents/alice/").status_code == 403
    assert client.get(f"/kpis/teams/{north.pk}/").status_code == 403


def test_the_headline_cards_compare_with_the_previous_period_of_the_same_length(
    client: Client, manager_maria: Any, alice: Agent
) -> None:
    today = _today_at(9)
    yesterday = today - timedelta(days=1)
    ingest(
        *call("alice", "y1", yesterday, talk=200, acw=30),
        *call("alice", "t1", today, talk=200, acw=45, hold=20),
        *call("alice", "t2", today + timedelta(minutes=5), talk=100, acw=75),
    )
    client.force_login(manager_maria)
    text = _text(client.get("/kpis/?period=today"))
    # 2 interactions today vs 1 yesterday; average ACW 1:00 vs 30 s (+100 %, worse).
    assert re.search(r"Interactions 2 ▲ \+100 % vs 1", text), text
    assert re.search(r"Average ACW 1:00 ▲ \+100 % vs 30 s", text), text
    assert re.search(r"AHT 3:40 talk 2:30 · hold 10 s · ACW 1:00", text), text
    page = client.get("/kpis/?period=today").content.decode()
    assert re.search(r'data-card="avg_acw".*?data-tone="worse"', page, re.S)


def test_a_preset_link_keeps_the_other_filters(
    client: Client, manager_maria: Any, north: Team
) -> None:
    client.force_login(manager_maria)
    page = client.get("/kpis/?period=yesterday&team=North&channel=chat&group_by=team")
    assert page.status_code == 200
    links = re.findall(r'<a href="\?([^"]+)"[^>]*>Last 30 days<', page.content.decode())
    assert links == ["period=last_30_days&amp;team=North&amp;channel=chat&amp;group_by=team"]


def test_the_overview_links_agents_and_teams_to_their_pages_and_the_api_csv(
    client: Client, manager_maria: Any, alice: Agent, north: Team
) -> None:
    ingest(*call("alice", "a", _today_at(10), talk=60, acw=20))
    client.force_login(manager_maria)
    page = client.get("/kpis/?period=today").content.decode()
    assert 'href="/kpis/agents/alice/?period=today"' in page
    assert "/api/v1/kpis?group_by=agent&amp;from=" in page and "format=csv" in page
    page = client.get("/kpis/?period=today&group_by=team").content.decode()
    assert f'href="/kpis/teams/{north.pk}/?period=today"' in page


def test_the_agent_page_lists_recent_interactions_with_how_each_acw_ended(
    client: Client, manager_maria: Any, alice: Agent
) -> None:
    crm = ChecklistItem.objects.create(label="Update the CRM record")
    start = _today_at(9)
    ingest(
        *call("alice", "c-1", start, talk=120, acw=40, code="sale"),
        event(
            "alice",
            "interaction.started",
            start + timedelta(minutes=5),
            interaction_id="c-2",
            channel="chat",
        ),
        event("alice", "interaction.ended", start + timedelta(minutes=9), interaction_id="c-2"),
        event("alice", "acw.extended", start + timedelta(minutes=9, seconds=10), seconds=30),
        event(
            "alice",
            "acw.ended",
            start + timedelta(minutes=9, seconds=50),
            reason="supervisor",
            wrap_up_code="callback",
            note="Call back on Friday",
            checklist=[crm.pk],
        ),
        *call("alice", "c-3", start + timedelta(minutes=12), talk=30, acw=None),
        # The next contact starts 10 s into c-3's ACW.
        event(
            "alice",
            "interaction.started",
            start + timedelta(minutes=12, seconds=40),
            interaction_id="c-4",
            channel="phone",
        ),
        event("alice", "interaction.ended", start + timedelta(minutes=14), interaction_id="c-4"),
        # c-4's ACW is left to its timer: the next event times it out at its deadline.
        event("alice", "agent.available", start + timedelta(minutes=16)),
    )
    client.force_login(manager_maria)
    response = client.get("/kpis/agents/alice/?period=today")
    assert response.status_code == 200
    rows = re.findall(
        r"<tr>(.*?)</tr>",
        response.content.decode().split('id="interactions-table"')[1].split("</table>")[0],
        re.S,
    )
    cells = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() for row in rows[1:]]
    assert [c.split(" ")[4] for c in cells] == ["c-4", "c-3", "c-2", "c-1"]
    assert "1:40 timeout" in cells[0]
    assert "10 s next contact" in cells[1]
    assert "50 s supervisor 1 callback – Call back on Friday ✓ Update the CRM record" in cells[2]
    assert "2:00 0 s 40 s agent – sale" in cells[3]

    export = client.get("/kpis/agents/alice/?period=today&csv=interactions")
    assert export["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="interactions-alice.csv"' in export["Content-Disposition"]
    lines = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert [(line["interaction_id"], line["acw_ended_by"]) for line in lines] == [
        ("c-4", "timeout"),
        ("c-3", "next contact"),
        ("c-2", "supervisor"),
        ("c-1", "agent"),
    ]
    assert lines[2]["checklist"] == "Update the CRM record" and lines[2]["extensions"] == "1"


def test_a_supervisor_gets_404_for_a_foreign_agent_or_team(
    client: Client, supervisor_sam: Any, alice: Agent, carol: Agent, north: Team, south: Team
) -> None:
    client.force_login(supervisor_sam)
    assert client.get("/kpis/agents/alice/").status_code == 200
    assert client.get("/kpis/agents/carol/").status_code == 404
    assert client.get("/kpis/agents/nobody/").status_code == 404
    assert client.get(f"/kpis/teams/{north.pk}/").status_code == 200
    assert client.get(f"/kpis/teams/{south.pk}/").status_code == 404
    assert client.get("/kpis/teams/999999/").status_code == 404


def test_the_team_page_sorts_its_agents_and_draws_a_sparkline_each(
    client: Client, manager_maria: Any, alice: Agent, bob: Agent, north: Team
) -> None:
    start = _today_at(9)
    ingest(
        *call("alice", "a1", start, talk=60, acw=20),
        *call("bob", "b1", start, talk=60, acw=90),
        *call("bob", "b2", start + timedelta(minutes=5), talk=60, acw=30),
    )
    compute_rollups()
    evaluate_alerts()
    client.force_login(manager_maria)
    url = f"/kpis/teams/{north.pk}/?period=today"
    names = lambda page: re.findall(r'<th scope="row"><a href="[^"]+">([^<]+)</a>', page)  # noqa: E731
    assert names(client.get(url).content.decode()) == ["Alice Martin", "Bob Jansen"]
    page = client.get(url + "&sort=-avg_acw").content.decode()
    assert names(page) == ["Bob Jansen", "Alice Martin"]
    assert 'aria-sort="descending"' in page
    assert page.count('class="chart sparkline"') == 2
    assert client.get(url + "&sort=nonsense").status_code == 200

    export = client.get(url + "&csv=alerts")
    assert export.status_code == 200
    assert b"".join(export.streaming_content).decode().startswith("id,kind,status,team,agent")


def test_a_department_filter_and_grouping_sum_its_teams(
    client: Client, manager_maria: Any, alice: Agent, carol: Agent, north: Team, south: Team
) -> None:
    sales = Department.objects.create(name="Sales")
    for team in (north, south):
        team.department = sales
        team.save(update_fields=["department"])
    provision_agent("zed", name="Zed Ito", team_name="Solo")
    start = _today_at(9)
    ingest(
        *call("alice", "a1", start, talk=60, acw=20),
        *call("carol", "c1", start, talk=60, acw=40),
        *call("zed", "z1", start, talk=60, acw=90),
    )
    client.force_login(manager_maria)
    text = _text(client.get("/kpis/?period=today&group_by=department"))
    assert re.search(r"Sales 2 2:00 0 s 1:00 30 s", text), text
    assert re.search(r"No department 1 1:00 0 s 1:30 1:30", text), text
    page = client.get("/kpis/?period=today&department=Sales").content.decode()
    assert "Alice Martin" in page and "Carol Dubois" in page and "Zed Ito" not in page


def _queries(client: Client, url: str) -> list[str]:
    client.get(url)  # the learned wrap-up norms are cached (docs/coaching.md): count warm reads
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return [q["sql"] for q in ctx.captured_queries]


def _seed_days(agents: list[str], days: int) -> None:
    today = site_today()
    for n, external_id in enumerate(agents):
        provision_agent(external_id, name=f"Agent {n}", team_name="North")
        for back in range(days):
            start = datetime.combine(today - timedelta(days=back + 1), time(10), site_tz())
            ingest(*call(external_id, f"{external_id}-{back}", start, talk=60, acw=20 + n))
    compute_rollups()


PAGES = [
    "/kpis/?{q}",
    "/kpis/?{q}&group_by=team",
    "/kpis/agents/a0/?{q}",
    "/kpis/teams/{team}/?{q}",
]


def test_each_page_costs_the_same_number_of_queries_for_more_agents_and_days(
    client: Client, manager_maria: Any, north: Team
) -> None:
    client.force_login(manager_maria)
    _seed_days(["a0", "a1"], 2)
    small = [_queries(client, p.format(q="period=last_7_days", team=north.pk)) for p in PAGES]
    _seed_days(["a2", "a3", "a4"], 9)
    big = [_queries(client, p.format(q="period=last_30_days", team=north.pk)) for p in PAGES]
    for page, before, after in zip(PAGES, small, big, strict=True):
        assert len(after) == len(before) <= 45, (page, after)
        # With the rollups up to date, no query aggregates raw interactions, but for one
        # agent's ACW histogram (there are no agent duration rows: its own raw rows answer).
        raw = [q for q in after if 'FROM "agents_interaction"' in q and "GROUP BY" in q]
        if "/agents/" in page:
            assert len(raw) == 1 and '"agents_interaction"."agent_id" IN' in raw[0], raw
        else:
            assert raw == [], (page, raw)


def test_the_overview_table_pages_and_sorts_every_row_keeping_the_filters(
    client: Client, manager_maria: Any, alice: Agent, bob: Agent, north: Team, monkeypatch: Any
) -> None:
    provision_agent("dora", name="Dora Lind", team_name="North")
    start = _today_at(9)
    ingest(
        *call("alice", "a1", start, talk=60, acw=20),
        *call("bob", "b1", start, talk=60, acw=90),
        *call("dora", "d1", start, talk=60, acw=50),
    )
    monkeypatch.setattr("reporting.pages.TABLE_PAGE_SIZE", 2)
    client.force_login(manager_maria)
    names = lambda page: re.findall(r'<th scope="row"><a href="[^"]+">([^<]+)</a>', page)  # noqa: E731
    url = "/kpis/?period=today&channel=phone"
    first = client.get(url + "&sort=-avg_acw").content.decode()
    assert names(first) == ["Bob Jansen", "Dora Lind"]
    assert 'aria-sort="descending"' in first
    # The total counts every row, not the page's.
    assert re.search(r"Total</th>\s*<td class=\"num\">3<", first)
    # The next page keeps the period, the filter and the sort; the sort links go to page 1.
    assert 'href="?period=today&amp;channel=phone&amp;sort=-avg_acw&amp;page=2"' in first
    assert 'href="?period=today&amp;channel=phone&amp;sort=avg_acw"' in first
    assert '<input type="hidden" name="sort" value="-avg_acw">' in first
    second = client.get(url + "&sort=-avg_acw&page=2").content.decode()
    assert names(second) == ["Alice Martin"]
    assert "Rows 3–3 of 3" in _text(client.get(url + "&sort=-avg_acw&page=2"))
    # Without a sort, the API's order (by external id); a page out of range is the last one.
    assert names(client.get(url).content.decode()) == ["Alice Martin", "Bob Jansen"]
    assert names(client.get(url + "&page=9").content.decode()) == ["Dora Lind"]
    assert names(client.get(url + "&page=x&sort=nonsense").content.decode()) == [
        "Alice Martin",
        "Bob Jansen",
    ]


@pytest.mark.parametrize("language", ["en", "fr", "nl"])
def test_a_range_trend_labels_each_day_as_the_locale_writes_it(
    manager_maria: Any, alice: Agent, language: str
) -> None:
    first = date(2025, 12, 25)
    scope = pages.parse_scope(manager_maria, {"from": str(first), "to": "2026-03-05"})
    with translation.override(language):
        labels = pages.trend(scope).labels
        expected = [date_format(first + timedelta(days=i), "d M") for i in range(scope.period.days)]
    assert labels == expected
    assert len(labels) == 71


def test_the_team_page_draws_a_point_per_month_over_a_year(
    client: Client, manager_maria: Any, alice: Agent, north: Team
) -> None:
    """A year's sparkline has a point per calendar month: ended months from their month rows,
    the current month and the partial first month from day rows."""
    today = site_today()
    first = today - timedelta(days=364)
    days = {
        "first": (first, 20),
        "m2a": (_month_start(first, 2) + timedelta(days=3), 40),
        "m2b": (_month_start(first, 2) + timedelta(days=9), 60),
        "last": (today - timedelta(days=1), 70),
    }
    for key, (day, acw) in days.items():
        start = datetime.combine(day, time(10), site_tz())
        ingest(*call("alice", key, start, talk=60, acw=acw))
    compute_rollups()
    user_scope = pages.parse_scope(
        manager_maria, {"from": str(first), "to": str(today)}, team=north
    )
    assert pages.sparkline_step(user_scope.period) == "month"
    months = (today.year - first.year) * 12 + today.month - first.month + 1
    last = _month_number(today - timedelta(days=1)) - _month_number(first)
    # Read from the day rows until the daily close sums the ended months, then from those.
    for summed in (False, True):
        if summed:
            close_day()
        assert KpiRollup.objects.filter(grain=Grain.MONTH, agent=alice).exists() == summed
        points = pages.agent_sparklines(user_scope)["alice"]
        assert len(points) == months
        assert points[0] == 20
        assert points[2] == pytest.approx((40 + 60) / 2)
        assert points[last] == 70
        assert [i for i, p in enumerate(points) if p is not None] == [0, 2, last]
    client.force_login(manager_maria)
    page = client.get(f"/kpis/teams/{north.pk}/?from={first}&to={today}")
    assert "Avg ACW per month" in page.content.decode()


def _month_number(day: date) -> int:
    return day.year * 12 + day.month


def _month_start(day: date, months_later: int) -> date:
    month = day.month - 1 + months_later
    return date(day.year + month // 12, month % 12 + 1, 1)


def test_the_team_page_draws_a_point_per_hour_of_one_day_from_its_raw_rows(
    manager_maria: Any, alice: Agent, bob: Agent, north: Team
) -> None:
    ingest(
        *call("alice", "a1", _today_at(9), talk=60, acw=20),
        *call("alice", "a2", _today_at(9) + timedelta(minutes=30), talk=60, acw=40),
        *call("bob", "b1", _today_at(14), talk=60, acw=90),
    )
    user_scope = pages.parse_scope(manager_maria, {"period": "today"}, team=north)
    assert pages.sparkline_step(user_scope.period) == "hour"
    # Before any rollup run: the hours come from the raw rows.
    points = pages.agent_sparklines(user_scope)
    assert len(points["alice"]) == 24
    assert [(h, p) for h, p in enumerate(points["alice"]) if p is not None] == [(9, 30)]
    assert [(h, p) for h, p in enumerate(points["bob"]) if p is not None] == [(14, 90)]


def test_the_team_page_draws_a_point_per_week_over_a_long_period(
    client: Client, manager_maria: Any, alice: Agent, north: Team
) -> None:
    today = site_today()
    for back, acw in ((1, 10), (8, 80), (9, 90), (40, 30)):
        start = datetime.combine(today - timedelta(days=back), time(10), site_tz())
        ingest(*call("alice", f"a{back}", start, talk=60, acw=acw))
    compute_rollups()
    user_scope = pages.parse_scope(
        manager_maria, {"from": str(today - timedelta(days=69)), "to": str(today)}, team=north
    )
    assert pages.sparkline_step(user_scope.period) == "week"
    points = pages.agent_sparklines(user_scope)["alice"]
    # 70 days: 10 weeks from the first day. Yesterday is day 68 (week 9), 8 and 9 days ago
    # days 61 and 60 (week 8), 40 days ago day 29 (week 4).
    assert len(points) == 10
    assert points[9] == 10 and points[8] == pytest.approx((80 + 90) / 2) and points[4] == 30
    assert [i for i, p in enumerate(points) if p is not None] == [4, 8, 9]
    client.force_login(manager_maria)
    page = client.get(f"/kpis/teams/{north.pk}/?from={today - timedelta(days=69)}&to={today}")
    assert "Avg ACW per week" in page.content.decode()
