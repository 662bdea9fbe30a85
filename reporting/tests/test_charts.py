"""The server-drawn SVG charts: well-formed, the right marks for the figures, text escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from reporting import charts

NS = {"s": "http://www.w3.org/2000/svg"}


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def test_duration_ticks_are_round_and_cover_the_top() -> None:
    assert charts.duration_ticks(42) == [0, 15, 30, 45]
    assert charts.duration_ticks(250) == [0, 120, 240, 360]
    ticks = charts.duration_ticks(100_000)
    assert ticks[-1] >= 100_000 and len(ticks) <= 6
    assert charts.duration_ticks(0) == [0, 10]


def test_the_trend_line_skips_empty_buckets_and_labels_its_axis_in_durations() -> None:
    svg = parse(
        charts.line_chart(["09:00", "09:15", "09:30", "09:45"], [30, None, 45, 60], label="t")
    )
    assert len(svg.findall("s:circle", NS)) == 3
    # The gap splits the line: one segment (09:30–09:45); a lone point has no segment.
    assert len(svg.findall("s:polyline", NS)) == 1
    ticks = [t.text for t in svg.findall("s:text", NS)]
    assert "1:00" in ticks and "30 s" in ticks and "09:00" in ticks


def test_count_steps_are_round() -> None:
    assert [charts.count_step(n) for n in (1, 4, 9, 40, 87, 390, 4100)] == [
        1,
        1,
        5,
        10,
        50,
        100,
        2000,
    ]


def test_an_empty_period_says_so_instead_of_drawing_nothing() -> None:
    svg = parse(charts.line_chart(["a", "b"], [None, None], label="t"))
    assert "No interactions" in svg.findall("s:text", NS)[0].text


def test_aht_bars_stack_acw_hold_and_talk_in_that_order_from_the_base() -> None:
    svg = parse(charts.stacked_bars(["d1", "d2"], [(30, 10, 200), None], label="aht"))
    segments = svg.findall("s:rect", NS)
    assert [s.get("class") for s in segments] == ["seg seg-acw", "seg seg-hold", "seg seg-talk"]
    ys = [float(s.get("y")) for s in segments]
    assert ys[0] > ys[1] > ys[2]  # SVG's y grows downwards: ACW lowest
    assert "AHT 4:00 = ACW 30 s + hold 10 s + talk 3:20" in segments[0].find("s:title", NS).text


def test_histogram_bars_take_the_band_of_their_middle() -> None:
    bins = [{"from": f, "to": f + 10, "count": c} for f, c in [(0, 3), (10, 5), (20, 0), (30, 2)]]
    svg = parse(charts.histogram(bins, label="h", too_short_below=10, deadline=30))
    fills = [r.get("fill") for r in svg.findall("s:rect", NS) if r.get("class") == "bin"]
    assert fills == [charts.TOO_SHORT, charts.NORMAL, "url(#hatch)"]
    labels = [t.text for t in svg.findall("s:text", NS)]
    assert "minimum 10 s" in labels and "deadline 30 s" in labels


def test_histogram_without_a_minimum_has_no_too_short_band() -> None:
    bins = [{"from": 0, "to": 10, "count": 3}]
    svg = parse(charts.histogram(bins, label="h", too_short_below=None, deadline=None))
    assert [r.get("fill") for r in svg.findall("s:rect", NS) if r.get("class") == "bin"] == [
        charts.NORMAL
    ]


def test_the_heat_map_has_a_cell_per_weekday_and_hour_with_its_value_printed() -> None:
    svg = parse(charts.heat_map({(1, 9): (30.0, 4), (7, 23): (150.0, 1)}, label="heat"))
    cells = svg.findall("s:g", NS)
    assert len(cells) == 2
    assert len(svg.findall(".//s:rect", NS)) == 7 * 24
    assert [c.find("s:text", NS).text for c in cells] == ["30", "2:30"]
    assert cells[0].find("s:rect", NS).get("fill") == charts.VIRIDIS[0]
    assert cells[1].find("s:rect", NS).get("fill") == charts.VIRIDIS[-1]
    assert cells[0].find("s:title", NS).text == "Mon 09:00: avg ACW 30 s, 4 interactions"


def test_labels_are_escaped() -> None:
    markup = str(charts.bar_list([("<script>x</script>", 40, "a&b")], label='"quoted"'))
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    parse(markup)


def test_bar_list_marks_a_norm_where_one_is_set() -> None:
    svg = parse(charts.bar_list([("sale", 40, ""), ("info", 20, "")], label="c", norms=[30, None]))
    assert len(svg.findall("s:line", NS)) == 1


def test_a_sparkline_is_a_line_with_gaps() -> None:
    svg = parse(charts.sparkline([10, 20, None, 5, 8], label="s"))
    assert len(svg.findall("s:polyline", NS)) == 2
    assert svg.get("aria-label") == "s"
