"""The coaching rules as pure functions, with hand-computed numbers (docs/coaching.md)."""

from __future__ import annotations

import math

import pytest

from reporting.coaching import (
    KpiRow,
    Norms,
    RecentAgent,
    Stats,
    change_is_real,
    grows,
    high_index,
    rate_is_high,
    wilson_lower,
)
from reporting.queries import add_expected


def test_stats_from_moments_are_the_sample_mean_and_standard_deviation() -> None:
    # 19 ACWs of 30 s and one of 600 s: (n, Σx, Σx²) = (20, 19 × 30 + 600, 19 × 900 + 360 000);
    # mean 1170 / 20 = 58.5; (377 100 − 20 × 58.5²) / 19 = 308 655 / 19 = 16 245.
    stats = Stats.from_moments((20, 1170.0, 377100.0))
    assert stats.n == 20
    assert stats.mean == pytest.approx(58.5)
    assert stats.sd == pytest.approx(math.sqrt(16245))
    assert Stats.from_moments((3, 60.0, 1400.0)) == Stats(3, 20.0, 10.0)  # 10, 20, 30
    assert Stats.from_moments(None) == Stats(0, 0.0, 0.0)


def test_the_wilson_lower_bound_by_hand() -> None:
    # p = 0.5, n = 20, z = 1.645: (0.5 + 2.706/40 − 1.645 × √(0.0125 + 2.706/1600)) ÷ 1.1353
    # = (0.56765 − 0.19596) ÷ 1.13530 = 0.3274.
    assert wilson_lower(10, 20) == pytest.approx(0.3274, abs=1e-4)
    assert wilson_lower(0, 20) == 0.0
    assert wilson_lower(0, 0) == 0.0


def test_a_rate_is_persistently_high_only_with_enough_cases_and_a_bound_over_the_threshold() -> (
    None
):
    assert not rate_is_high(19, 19, 0.2), "19 of 19: too few ACWs for a pattern"
    assert rate_is_high(20, 20, 0.2)
    # 6 of 20 = 30 % but the bound is (0.3 + 0.06765 − 1.645 × √(0.0105 + 0.00169)) ÷ 1.1353
    # = (0.36765 − 0.18163) ÷ 1.1353 = 16.4 % (< 20 %): could be chance.
    assert wilson_lower(6, 20) == pytest.approx(0.1639, abs=1e-4)
    assert not rate_is_high(6, 20, 0.2)
    # 10 of 20 = 50 %: bound 32.7 % ≥ 20 %.
    assert rate_is_high(10, 20, 0.2)


def test_one_long_acw_never_makes_an_index_high() -> None:
    # The spike: average 58.5 s against 30 s expected (index 1.95), but the lower bound
    # 58.5 − 1.645 × 127.46 / √20 = 58.5 − 46.88 = 11.6 s is under the 30 s expected.
    spike = Stats.from_moments((20, 1170.0, 377100.0))
    assert not high_index(58.5, 30.0, spike)


def test_a_persistently_long_acw_makes_the_index_high() -> None:
    steady = Stats(20, 45.0, 0.0)  # index 1.5, no spread
    assert high_index(45.0, 30.0, steady)
    assert not high_index(33.0, 30.0, Stats(20, 33.0, 0.0)), "index 1.1 < 1.2"
    assert not high_index(45.0, 30.0, Stats(19, 45.0, 0.0)), "19 ACWs"
    assert not high_index(45.0, None, steady), "no expected ACW"


def test_a_change_against_a_baseline_counts_when_it_is_more_than_noise() -> None:
    before = Stats(40, 40.0, 10.0)
    # Rise 10 s ≥ 15 % of 40; se = √(10²/25 + 10²/40) = √6.5 = 2.55; z = 3.92 ≥ 1.645.
    assert change_is_real(Stats(25, 50.0, 10.0), 40.0, before)
    # Rise 5 s < 6 s (15 %): not a change worth coaching.
    assert not change_is_real(Stats(25, 45.0, 10.0), 40.0, before)
    # Rise 10 s but very noisy: se = √(60²/25 + 10²/40) = 12.1, z = 0.83.
    assert not change_is_real(Stats(25, 50.0, 60.0), 40.0, before)
    assert not change_is_real(Stats(19, 50.0, 10.0), 40.0, before), "19 ACWs"
    assert not change_is_real(Stats(25, 50.0, 10.0), 40.0, Stats(19, 40.0, 10.0))


def test_acw_grows_in_a_group_when_welch_says_so() -> None:
    # Diff 20 s ≥ 15 % of 40; se = √(20²/10 + 20²/30) = √53.33 = 7.30; z = 2.74.
    assert grows(Stats(10, 60.0, 20.0), Stats(30, 40.0, 20.0))
    # Same means, spread 60: se = 21.9, z = 0.91.
    assert not grows(Stats(10, 60.0, 60.0), Stats(30, 40.0, 60.0))


def test_long_calls_and_late_acws_are_compared_when_both_sides_have_ten() -> None:
    agent = RecentAgent()
    # 10 ACWs after long calls: 600 s in all, squares 36 000 (all 60 s); 30 others of 40 s:
    # 40 ACWs, 1 800 s, squares 84 000 in all.
    agent.add((40, 1800.0, 84000.0), (10, 600.0, 36000.0), (0, 0.0, 0.0))
    flagged, others = agent.split(by_long=True) or (None, None)
    assert flagged == Stats(10, 60.0, 0.0) and others == Stats(30, 40.0, 0.0)
    assert agent.split(by_long=False) is None, "no late ACW at all"
    nine = RecentAgent()
    nine.add((39, 1740.0, 80400.0), (9, 540.0, 32400.0), (0, 0.0, 0.0))
    assert nine.split(by_long=True) is None, "9 long calls"


def test_norms_prefer_admin_then_learned_then_the_site_mean() -> None:
    norms = Norms(admin={"sale": 40.0}, learned={"sale": 55.0, "info": 12.0}, fallback=33.0)
    assert (norms.expected("sale"), norms.source("sale")) == (40.0, "admin")
    assert (norms.expected("info"), norms.source("info")) == (12.0, "learned")
    assert (norms.expected("new"), norms.source("new")) == (33.0, "site")


def test_the_acw_index_weighs_each_code_by_its_interactions() -> None:
    # alice: 2 "sale" (norm 20, admin) with 60 s of ACW, 1 without a code (learned 40) with 30 s.
    # Expected (2 × 20 + 1 × 40) ÷ 3 = 26.67 s; average 90 ÷ 3 = 30 s; index 1.125.
    norms = Norms(admin={"sale": 20.0}, learned={"": 40.0})
    alice = KpiRow("alice", "Alice", interactions=3, acw_seconds=90.0, acw_count=3)
    add_expected(alice, "", 1, norms)
    add_expected(alice, "sale", 2, norms)
    assert alice.expected_acw_seconds == pytest.approx(80 / 3)
    assert alice.acw_index == pytest.approx(1.125)
    assert alice.as_dict()["acw_index"] == 1.125


def test_no_index_when_a_code_has_no_norm_at_all() -> None:
    alice = KpiRow("alice", "Alice", interactions=1, acw_seconds=30.0)
    add_expected(alice, "odd", 1, Norms())
    assert alice.expected_acw_seconds is None and alice.acw_index is None
    assert alice.as_dict()["expected_acw_seconds"] is None
