"""``KpiRow``: the KPI formulas, and totals computed from sums (never averages of averages)."""

from __future__ import annotations

import csv
import io

import pytest
from rest_framework.renderers import JSONRenderer

from reporting.queries import SUMMED, KpiRow, row_fields, rows_json


def test_a_total_sums_the_figures_and_computes_the_ratios_from_the_sums() -> None:
    rows = [
        KpiRow("north", "North", 1, talk_seconds=100, hold_seconds=0, acw_seconds=60),
        KpiRow("south", "South", 9, talk_seconds=900, hold_seconds=90, acw_seconds=90),
    ]
    total = KpiRow.total(rows)
    assert total.name == "Total"
    assert (total.interactions, total.talk_seconds, total.hold_seconds, total.acw_seconds) == (
        10,
        1000,
        90,
        150,
    )
    assert total.avg_acw_seconds == 15  # 150 / 10, not the mean of 60 and 10
    assert total.aht_seconds == pytest.approx(124)  # (1000 + 90 + 150) / 10
    assert total.acw_share == pytest.approx(150 / 1240)
    assert total.as_dict()["avg_acw_seconds"] == 15


def test_the_total_of_no_rows_is_zero() -> None:
    total = KpiRow.total([], name="All")
    assert (total.name, total.interactions, total.avg_acw_seconds, total.acw_share) == (
        "All",
        0,
        0.0,
        0.0,
    )


@pytest.mark.parametrize("group_by", ["agent", "wrap_up_code", "interval"])
def test_the_json_text_of_rows_is_what_the_api_renderer_writes_for_their_dicts(
    group_by: str,
) -> None:
    rows = [
        KpiRow("a", 'Zoë \u2028 "quoted" \\ ✓', 3, 100.1234, 0.0, 61.00049, 2, 1, 1, 0),
        KpiRow("b", "", 0, norm_acw_seconds=45.0),
        KpiRow("", "No wrap-up code", 7, 10, 20, 30, 7, 0, 3, 2, None, 90.5, 7),
    ]
    norm = group_by == "wrap_up_code"
    expected = JSONRenderer().render({"rows": [row.as_dict(norm=norm) for row in rows]})
    assert rows_json(rows, group_by) == expected
    assert rows_json([], group_by) == JSONRenderer().render({"rows": []})
    assert list(rows[0].as_dict(norm=norm)) == row_fields(group_by)


@pytest.mark.parametrize("norm", [False, True])
def test_a_csv_line_is_what_the_csv_writer_writes_for_the_values(norm: bool) -> None:
    rows = [
        KpiRow("a,b", 'Zoë "quoted" \\ ✓', 3, 100.1234, 0.0, 61.00049, 2, 1, 1, 0),
        KpiRow("line\nbreak", "carriage\rreturn", 0, norm_acw_seconds=45.0),
        KpiRow("", "No wrap-up code", 7, 10, 20, 30, 7, 0, 3, 2, None, 90.5, 7),
        KpiRow("2026-03-29T03:00:00+02:00", "2026-03-29 03:00", 1, 1e-05, 1e20, 2.5),
    ]
    for row in rows:
        out = io.StringIO()
        csv.writer(out).writerow(["" if v is None else v for v in row.values(norm=norm)])
        assert row.as_csv(norm=norm) == out.getvalue(), row


def test_adding_a_row_adds_every_stored_measure() -> None:
    names = (*SUMMED, "expected_acw_total", "expected_interactions")
    one = KpiRow("a", "A", **dict.fromkeys(names, 1))
    row = KpiRow("b", "B")
    row.add(one)
    row.add(one)
    assert {name: getattr(row, name) for name in names} == dict.fromkeys(names, 2)
