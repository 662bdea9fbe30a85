"""Durations as people read them, shares as percentages: never a raw count of seconds."""

from __future__ import annotations

import pytest
from django.template import Context, Template

from reporting.templatetags.kpi_format import format_duration, format_percent


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "–"),
        (0, "0 s"),
        (0.4, "0 s"),
        (41.6, "42 s"),
        (59.4, "59 s"),
        (59.6, "1:00"),
        (60, "1:00"),
        (185, "3:05"),
        (3599, "59:59"),
        (3600, "1:00:00"),
        (3765, "1:02:45"),
        (16714, "4:38:34"),
        (360_000, "100:00:00"),
        (-42, "−42 s"),
        (-3765, "−1:02:45"),
    ],
)
def test_durations_read_as_people_read_them(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("share", "text"),
    [(None, "–"), (0, "0.0 %"), (0.1234, "12.3 %"), (1, "100.0 %"), (-0.015, "−1.5 %")],
)
def test_shares_read_as_percentages(share: float | None, text: str) -> None:
    assert format_percent(share) == text


def test_the_template_filters_write_the_same() -> None:
    template = Template(
        "{% load kpi_format %}{{ s|duration }} | {{ share|percent }} | {{ n|count }} | "
        "{{ names|get_item:'phone' }}"
    )
    out = template.render(
        Context({"s": 16714.2, "share": 0.25, "n": 1234567, "names": {"phone": "Phone"}})
    )
    assert out == "4:38:34 | 25.0 % | 1,234,567 | Phone"
