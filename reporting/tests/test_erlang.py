"""The Erlang C calculator (reporting.erlang): pure, no database.

Checked three ways: hand-computed small cases, published worked examples, and an independent
implementation (the textbook closed form with exact fractions and factorials, below) over a grid.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from reporting import erlang
from reporting.erlang import StaffingError


def textbook_erlang_c(agents: int, traffic: Fraction) -> Fraction:
    """Erlang C as printed in the textbooks, computed exactly (independent of the recursion):

    C = (A^N / N! · N / (N − A)) / (Σ_{k<N} A^k / k! + A^N / N! · N / (N − A)).
    """
    top = traffic**agents / math.factorial(agents) * Fraction(agents) / (agents - traffic)
    below = sum(traffic**k / math.factorial(k) for k in range(agents))
    return top / (below + top)


def test_it_computes_a_two_agent_case_by_hand() -> None:
    # A = 1.5, N = 2: A²/2! · 2/(2 − 1.5) = 1.125 · 4 = 4.5; Σ = 1 + 1.5 = 2.5;
    # C = 4.5 / (2.5 + 4.5) = 9/14.
    assert erlang.erlang_c(2, 1.5) == pytest.approx(9 / 14, abs=1e-12)


def test_one_agent_is_the_single_server_queue() -> None:
    # M/M/1: the probability of waiting is the utilisation itself.
    assert erlang.erlang_c(1, 0.7) == pytest.approx(0.7, abs=1e-12)


def test_traffic_is_volume_times_aht_over_the_interval() -> None:
    # 100 contacts in 1800 s at 180 s each: 100 · 180 / 1800 = 10 Erlangs.
    assert erlang.traffic_erlangs(100, 1800, 180) == 10.0


def test_it_matches_the_call_centre_helper_worked_example() -> None:
    """Call Centre Helper, "Erlang C Formula – Made Simple With an Easy Worked Example"
    (https://www.callcentrehelper.com/erlang-c-formula-example-121281.htm): 100 calls in
    30 minutes, AHT 180 s, 80 % answered in 20 s → traffic 10 Erlangs; 11 agents give a
    probability of waiting of 68.21 % and a service level of 39 %; 14 agents are needed.
    """
    traffic = erlang.traffic_erlangs(100, 1800, 180)
    eleven = erlang.figures(11, traffic, 180, 20)
    assert eleven.waiting_probability == pytest.approx(0.6821, abs=5e-5)
    assert eleven.service_level == pytest.approx(0.39, abs=5e-3)
    needed = erlang.agents_needed(traffic, 180, 0.8, 20)
    assert needed.agents == 14
    # 13 agents fall just short: SL = 1 − 0.28527 · e^(−3 · 20 / 180) = 0.7956 < 0.8.
    assert erlang.figures(13, traffic, 180, 20).service_level == pytest.approx(0.7956, abs=1e-4)
    # At 14: C = 0.174132, SL = 1 − C · e^(−4 · 20/180) = 0.888350, ASA = C · 180 / 4 = 7.8359 s,
    # occupancy 10/14.
    assert needed.waiting_probability == pytest.approx(0.174132, abs=1e-6)
    assert needed.service_level == pytest.approx(0.888350, abs=1e-6)
    assert needed.asa_seconds == pytest.approx(7.835937, abs=1e-6)
    assert needed.occupancy == pytest.approx(10 / 14)


def test_it_matches_a_published_erlang_c_curve_reading() -> None:
    """A textbook M/M/m exercise: 120 customers an hour, 3 minutes each (6 Erlangs), 10
    servers: "from the Erlang C curve, the probability of waiting is about 0.10"."""
    assert erlang.erlang_c(10, 6.0) == pytest.approx(0.10, abs=0.005)


def test_it_finds_the_fewest_agents_for_a_probability_of_no_delay() -> None:
    """Wolfram Language documentation of ``ErlangC``, Applications: 30 calls an hour, five
    minutes each (2.5 Erlangs); a 90 % chance that a call is not delayed needs 6 employees
    (C(5) = 0.1304 > 0.1, C(6) = 0.0474). With a 0 s answer target the service level is 1 − C."""
    needed = erlang.agents_needed(2.5, 300, 0.9, 0)
    assert needed.agents == 6
    assert needed.service_level == pytest.approx(1 - 0.047445, abs=1e-6)


@pytest.mark.parametrize("traffic", [0.3, 1.0, 2.5, 7.25, 10.0, 23.9, 48.0])
def test_it_agrees_with_the_textbook_closed_form(traffic: float) -> None:
    exact_traffic = Fraction(traffic)
    for agents in range(math.floor(traffic) + 1, math.floor(traffic) + 12):
        expected = float(textbook_erlang_c(agents, exact_traffic))
        assert erlang.erlang_c(agents, traffic) == pytest.approx(expected, rel=1e-12)


def test_it_handles_thousands_of_agents_without_overflow() -> None:
    # 5000! and 4900^5000 overflow a float; the recursion does not. At A = 4900 the
    # answer sits a little above A (square-root staffing: about A + β·√A).
    needed = erlang.agents_needed(4900.0, 180, 0.8, 20)
    assert 4900 < needed.agents < 4900 + 2 * math.sqrt(4900)
    assert 0.8 <= needed.service_level < 1
    before = erlang.figures(needed.agents - 1, 4900.0, 180, 20)
    assert before.service_level < 0.8
    assert 0 < needed.waiting_probability < 1


def test_more_agents_never_lower_the_service_level() -> None:
    levels = [s.service_level for s in erlang.staffing_table(10.0, 180, 20, range(8, 30))]
    assert levels == sorted(levels)
    assert levels[-1] < 1


def test_the_table_leaves_out_numbers_that_cannot_serve_the_traffic() -> None:
    rows = erlang.staffing_table(10.0, 180, 20, range(8, 13))
    assert [r.agents for r in rows] == [11, 12]


def test_it_refuses_what_has_no_answer() -> None:
    with pytest.raises(StaffingError) as error:
        erlang.agents_needed(10.0, 180, 1.0, 20)
    assert error.value.field == "target_service_level"
    with pytest.raises(StaffingError) as error:
        erlang.agents_needed(0.0, 180, 0.8, 20)
    assert error.value.field == "volume"
    with pytest.raises(StaffingError):
        erlang.agents_needed(float(erlang.MAX_AGENTS), 180, 0.8, 20)


def test_the_api_fields_name_the_agents_needed() -> None:
    fields = erlang.figures(14, 10.0, 180, 20).as_dict()
    assert (fields["agents_needed"], "agents" in fields) == (14, False)
