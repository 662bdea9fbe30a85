"""``/kpis/staffing/``: the what-if fed by a team's measured hour, entered inputs, CSV, access."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from agents.models import Agent, Team
from agents.tests.factories import DAY, at, client_for
from reporting.staffing import TABLE_FIELDS

from .factories import call, ingest

# Time stands still on the afternoon of DAY (the root conftest's frozen_now).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

URL = "/kpis/staffing/"


@pytest.fixture
def busy_hour(alice: Agent, bob: Agent, carol: Agent) -> None:
    """North between 10:00 and 11:00 on DAY: alice and bob each take four calls of 150 s talk
    and 30 s ACW (AHT 180 s); carol (South) takes one call of 600 s, her ACW left to its timer.

    North's hour: volume 8, AHT 180 s, average ACW 30 s → traffic 8 · 180 / 3600 = 0.4 Erlang.
    1 agent: C = 0.4, SL = 1 − 0.4 · e^(−0.6 · 20/180) = 0.626 < 0.8.
    2 agents: B(2) = 0.054054, C = 2 · B / (2 − 0.4 · (1 − B)) = 0.066667,
    SL = 1 − 0.066667 · e^(−1.6 · 20/180) = 0.9442 → 2 agents needed.
    ACW − 15 s (AHT 165 s, 0.3667 Erlang): 1 agent gives SL = 1 − 0.3667 · e^(−0.6333 · 20/165)
    = 0.660 < 0.8 → still 2 agents.
    """
    for agent in ("alice", "bob"):
        for n in range(4):
            start = at("10:00:00") + timedelta(minutes=10 * n)
            assert set(ingest(*call(agent, f"{agent}-{n}", start, talk=150, acw=30))) == {
                "accepted"
            }
    ingest(*call("carol", "carol-1", at("10:05:00"), talk=600, acw=None))


def _page(user: Any, **params: Any) -> Any:
    client = Client()
    client.force_login(user)
    return client.get(URL, params)


def test_it_feeds_the_calculator_with_the_measured_hour(
    supervisor_sam: Any, north: Team, busy_hour: None
) -> None:
    response = _page(supervisor_sam, team=north.pk, day=DAY, hour=10)
    assert response.status_code == 200
    html = response.content.decode()
    assert "8 interactions, AHT 3:00, average ACW 30 s" in html
    assert '<p class="kpi-value" id="agents-needed">2</p>' in html
    assert '<p class="kpi-value" id="agents-needed-changed">2</p>' in html
    assert "0.40 Erlang" in html
    assert (
        "Cutting ACW from 30 s to 15 s needs the same number of agents for 80/20 at 10–11 h."
        in html
    )


def test_entered_inputs_override_the_measured_ones(
    supervisor_sam: Any, north: Team, busy_hour: None
) -> None:
    # 200 an hour at 180 s: 10 Erlangs, 14 agents for 80/20; at 150 s: 12 (test_api_staffing).
    response = _page(
        supervisor_sam,
        team=north.pk,
        day=DAY,
        hour=10,
        volume=200,
        aht_seconds=180,
        acw_change_seconds=-30,
    )
    html = response.content.decode()
    assert '<p class="kpi-value" id="agents-needed">14</p>' in html
    assert '<p class="kpi-value" id="agents-needed-changed">12</p>' in html
    assert "Cutting average ACW by 30 s needs 2 fewer agents for 80/20 at 10–11 h." in html
    assert "200 per hour (entered)" in html


def test_the_table_downloads_as_csv_with_the_apis_numbers(
    supervisor_sam: Any, north: Team, busy_hour: None
) -> None:
    params = {"team": north.pk, "day": DAY, "hour": 10, "volume": 200, "aht_seconds": 180}
    response = _page(supervisor_sam, **params, acw_change_seconds=-30, format="csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert list(rows[0]) == TABLE_FIELDS
    current = {int(r["agents"]): r for r in rows if r["scenario"] == "current"}
    changed = {int(r["agents"]): r for r in rows if r["scenario"] == "with_acw_change"}
    # Three agents either side of both answers (12 and 14): 9 to 17.
    assert sorted(current) == list(range(11, 18))  # 9 and 10 cannot carry 10 Erlangs
    assert sorted(changed) == list(range(9, 18))
    api = client_for(supervisor_sam).get(
        "/api/v1/staffing",
        {"volume": 200, "interval_seconds": 3600, "aht_seconds": 180},
    )
    assert float(current[14]["service_level"]) == round(api.json()["service_level"], 4)
    assert current[14]["meets_target"] == "True"
    assert current[13]["meets_target"] == "False"


def test_an_hour_without_interactions_asks_for_inputs(
    supervisor_sam: Any, north: Team, busy_hour: None
) -> None:
    response = _page(supervisor_sam, team=north.pk, day=DAY, hour=3)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="staffing-missing"' in html
    assert 'id="agents-needed"' not in html


def test_a_cut_larger_than_the_measured_acw_is_refused(
    supervisor_sam: Any, north: Team, busy_hour: None
) -> None:
    response = _page(supervisor_sam, team=north.pk, day=DAY, hour=10, acw_change_seconds=-45)
    assert response.status_code == 400
    assert "acw_change_seconds: the measured average ACW is only 30 s" in response.content.decode()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"service_level_percent": 100}, "service_level_percent: must be more than 0"),
        ({"hour": 24}, "hour: "),
        ({"day": "yesterday"}, "day: "),
        ({"volume": -3}, "volume: "),
        ({"aht_seconds": 0}, "aht_seconds: must be more than 0"),
    ],
)
def test_bad_input_is_a_400_that_names_the_field(
    supervisor_sam: Any, north: Team, params: dict[str, Any], message: str
) -> None:
    response = _page(supervisor_sam, team=north.pk, **params)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_supervisors_only_see_their_teams(
    supervisor_sam: Any, north: Team, south: Team, busy_hour: None
) -> None:
    assert _page(supervisor_sam, team=south.pk).status_code == 404
    html = _page(supervisor_sam).content.decode()
    assert f'<option value="{north.pk}" selected>North</option>' in html
    assert "South" not in html


def test_managers_see_every_team(manager_maria: Any, south: Team, busy_hour: None) -> None:
    response = _page(manager_maria, team=south.pk, day=DAY, hour=10)
    # carol's ACW times out at the site default's 30 s: AHT 600 + 30 = 630 s.
    assert "1 interaction, AHT 10:30" in response.content.decode()


def test_agent_users_are_refused(agent_user_alice: Any) -> None:
    assert _page(agent_user_alice).status_code == 403


def test_the_kpi_navigation_links_to_it(supervisor_sam: Any, north: Team) -> None:
    html = _page(supervisor_sam).content.decode()
    assert f'href="{URL}" aria-current="page"' in html
    overview = Client()
    overview.force_login(supervisor_sam)
    assert f'href="{URL}"' in overview.get("/kpis/").content.decode()
