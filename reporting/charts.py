"""The KPI pages' charts, drawn on the server as SVG.

SVG from the server needs no JavaScript (so no inline script under the Content-Security-Policy),
prints as sharp as it shows, and is tested like any other function: figures in, markup out.
The palette is Okabe and Ito's, chosen to stay distinct for the common colour-vision
deficiencies; the heat map uses a single-hue-progression (viridis) scale, and every band or
series is also told apart by a label, a pattern or a line style, never by colour alone.

Each builder takes plain numbers and labels and returns safe markup for a template.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

from .templatetags.kpi_format import format_duration

# Okabe–Ito colours.
ORANGE = "#E69F00"
SKY = "#56B4E9"
GREEN = "#009E73"
YELLOW = "#F0E442"
BLUE = "#0072B2"
VERMILLION = "#D55E00"
PURPLE = "#CC79A7"

TALK, HOLD, ACW = SKY, ORANGE, PURPLE
TOO_SHORT, NORMAL, OVER = ORANGE, SKY, VERMILLION

# Viridis at nine stops: dark (low) to light (high), readable in grey when printed.
VIRIDIS = [
    "#440154",
    "#472d7b",
    "#3b528b",
    "#2c728e",
    "#21918c",
    "#28ae80",
    "#5ec962",
    "#addc30",
    "#fde725",
]

WEEKDAYS = [
    pgettext_lazy("weekday", "Mon"),
    pgettext_lazy("weekday", "Tue"),
    pgettext_lazy("weekday", "Wed"),
    pgettext_lazy("weekday", "Thu"),
    pgettext_lazy("weekday", "Fri"),
    pgettext_lazy("weekday", "Sat"),
    pgettext_lazy("weekday", "Sun"),
]

# Round steps for a duration axis, in seconds.
_STEPS = [1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800]


def _f(value: float) -> str:
    """A coordinate with one decimal: enough for the screen, short in the markup."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def duration_ticks(top: float, count: int = 4) -> list[float]:
    """Round axis ticks from 0 up to at least ``top`` seconds, about ``count`` of them."""
    if top <= 0:
        return [0.0, 10.0]
    raw = top / count
    step = next((s for s in _STEPS if s >= raw), None)
    if step is None:
        step = 3600 * math.ceil(raw / 3600)
    n = math.ceil(top / step)
    return [float(i * step) for i in range(n + 1)]


def count_step(top: int, count: int = 4) -> int:
    """A round step (1, 2 or 5 times a power of ten) for about ``count`` ticks up to ``top``."""
    raw = max(1.0, top / count)
    power = 10 ** math.floor(math.log10(raw))
    return int(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


def _svg(width: int, height: int, label: str, body: list[str], css: str = "") -> SafeString:
    classes = f"chart {css}".strip()
    # Safe: every text inside was escaped by the builders.
    return mark_safe(
        f'<svg class="{classes}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="xMidYMid meet" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _empty(width: int, height: int, label: str) -> SafeString:
    return _svg(
        width,
        height,
        label,
        [
            f'<text class="chart-empty" x="{width / 2}" y="{height / 2}" '
            f'text-anchor="middle">{escape(_("No interactions in this period"))}</text>'
        ],
    )


@dataclass(frozen=True)
class _Frame:
    """The plot area inside the margins, and the y scale from 0 to ``top``."""

    width: int
    height: int
    left: int = 56
    right: int = 12
    top_margin: int = 12
    bottom: int = 34

    @property
    def plot_w(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> float:
        return self.height - self.top_margin - self.bottom

    def y(self, value: float, top: float) -> float:
        return self.top_margin + self.plot_h * (1 - value / top if top else 1)


def _y_axis(frame: _Frame, ticks: list[float]) -> list[str]:
    top = ticks[-1]
    out = []
    for tick in ticks:
        y = _f(frame.y(tick, top))
        out.append(
            f'<line class="grid" x1="{frame.left}" x2="{frame.width - frame.right}" '
            f'y1="{y}" y2="{y}"/>'
            f'<text class="tick" x="{frame.left - 6}" y="{y}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(format_duration(tick))}</text>'
        )
    return out


def _x_labels(frame: _Frame, labels: Sequence[str], slot: float, most: int = 12) -> list[str]:
    every = max(1, math.ceil(len(labels) / most))
    y = frame.height - frame.bottom + 16
    return [
        f'<text class="tick" x="{_f(frame.left + slot * (i + 0.5))}" y="{y}" '
        f'text-anchor="middle">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if i % every == 0
    ]


def line_chart(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    label: str,
    target: float | None = None,
    width: int = 900,
    height: int = 240,
) -> SafeString:
    """One duration per bucket as a line with dots; a gap where a bucket had no interactions.

    ``target`` draws a dashed reference line (e.g. the target average ACW).
    """
    present = [v for v in values if v is not None]
    if not present:
        return _empty(width, height, label)
    frame = _Frame(width, height)
    ticks = duration_ticks(max([*present, target or 0]))
    top = ticks[-1]
    slot = frame.plot_w / len(values)
    body = _y_axis(frame, ticks)
    if target:
        y = _f(frame.y(target, top))
        body.append(
            f'<line class="target" x1="{frame.left}" x2="{frame.width - frame.right}" '
            f'y1="{y}" y2="{y}"/><text class="tick target-label" '
            f'x="{frame.width - frame.right}" y="{_f(frame.y(target, top) - 4)}" '
            f'text-anchor="end">{escape(_("target %s") % format_duration(target))}</text>'
        )
    runs: list[list[str]] = [[]]
    dots = []
    for i, (name, value) in enumerate(zip(labels, values, strict=True)):
        if value is None:
            runs.append([])
            continue
        x, y = _f(frame.left + slot * (i + 0.5)), _f(frame.y(value, top))
        runs[-1].append(f"{x},{y}")
        dots.append(
            f'<circle class="dot" cx="{x}" cy="{y}" r="{2.5 if len(values) > 60 else 3.5}" '
            f'fill="{ACW}"><title>{escape(name)}: {escape(format_duration(value))}</title>'
            "</circle>"
        )
    for run in runs:
        if len(run) > 1:
            body.append(
                f'<polyline class="line" fill="none" stroke="{ACW}" points="{" ".join(run)}"/>'
            )
    body += dots + _x_labels(frame, labels, slot)
    return _svg(width, height, label, body)


def stacked_bars(
    labels: Sequence[str],
    parts: Sequence[tuple[float, float, float] | None],
    *,
    label: str,
    width: int = 900,
    height: int = 240,
) -> SafeString:
    """AHT per bucket as a bar of its parts, ACW at the base so its changes stay readable.

    ``parts`` are (ACW, hold, talk) seconds per interaction, or None for an empty bucket.
    """
    totals = [sum(p) for p in parts if p is not None]
    if not totals:
        return _empty(width, height, label)
    frame = _Frame(width, height)
    ticks = duration_ticks(max(totals))
    top = ticks[-1]
    slot = frame.plot_w / len(parts)
    bar = max(1.0, slot * 0.72)
    body = _y_axis(frame, ticks)
    for i, (name, part) in enumerate(zip(labels, parts, strict=True)):
        if part is None:
            continue
        x = _f(frame.left + slot * i + (slot - bar) / 2)
        base = 0.0
        # Escaped once for the bar's three segments: a year is 365 bars.
        tip = escape(
            _("%(bucket)s: AHT %(aht)s = ACW %(acw)s + hold %(hold)s + talk %(talk)s")
            % {
                "bucket": name,
                "aht": format_duration(sum(part)),
                "acw": format_duration(part[0]),
                "hold": format_duration(part[1]),
                "talk": format_duration(part[2]),
            }
        )
        for value, colour, css in zip(
            part, (ACW, HOLD, TALK), ("acw", "hold", "talk"), strict=True
        ):
            if value <= 0:
                continue
            y0, y1 = frame.y(base, top), frame.y(base + value, top)
            body.append(
                f'<rect class="seg seg-{css}" x="{x}" y="{_f(y1)}" width="{_f(bar)}" '
                f'height="{_f(y0 - y1)}" fill="{colour}"><title>{tip}</title></rect>'
            )
            base += value
    body += _x_labels(frame, labels, slot)
    return _svg(width, height, label, body)


def heat_colour(value: float, low: float, high: float) -> str:
    """The viridis stop for ``value`` between ``low`` and ``high``."""
    if high <= low:
        return VIRIDIS[len(VIRIDIS) // 2]
    share = min(1.0, max(0.0, (value - low) / (high - low)))
    return VIRIDIS[round(share * (len(VIRIDIS) - 1))]


def heat_map(
    cells: dict[tuple[int, int], tuple[float, int]], *, label: str, width: int = 900
) -> SafeString:
    """Average ACW per ISO weekday (1–7) × hour (0–23): ``{(weekday, hour): (avg, count)}``.

    Each cell also prints its value, so the map reads in grey on paper and without colour.
    """
    if not cells:
        return _empty(width, 120, label)
    left, top_margin, cell_h = 40, 18, 26
    cell_w = (width - left - 4) / 24
    height = top_margin + 7 * cell_h + 4
    values = [avg for avg, _ in cells.values()]
    low, high = min(values), max(values)
    body = []
    for hour in range(24):
        body.append(
            f'<text class="tick" x="{_f(left + cell_w * (hour + 0.5))}" y="12" '
            f'text-anchor="middle">{hour:02d}</text>'
        )
    for day in range(1, 8):
        y = top_margin + (day - 1) * cell_h
        body.append(
            f'<text class="tick" x="{left - 6}" y="{_f(y + cell_h / 2)}" text-anchor="end" '
            f'dominant-baseline="middle">{WEEKDAYS[day - 1]}</text>'
        )
        for hour in range(24):
            x = left + cell_w * hour
            cell = cells.get((day, hour))
            if cell is None:
                body.append(
                    f'<rect class="cell-empty" x="{_f(x + 1)}" y="{y + 1}" '
                    f'width="{_f(cell_w - 2)}" height="{cell_h - 2}"/>'
                )
                continue
            avg, n = cell
            colour = heat_colour(avg, low, high)
            # Light text on the dark half of the scale, dark text on the light half.
            ink = "#fff" if VIRIDIS.index(colour) < 5 else "#111"
            tip = _("%(day)s %(hour)02d:00: avg ACW %(avg)s, %(n)s interactions") % {
                "day": WEEKDAYS[day - 1],
                "hour": hour,
                "avg": format_duration(avg),
                "n": n,
            }
            body.append(
                f'<g><title>{escape(tip)}</title><rect x="{_f(x + 1)}" y="{y + 1}" '
                f'width="{_f(cell_w - 2)}" height="{cell_h - 2}" fill="{colour}"/>'
                f'<text class="cell-value" x="{_f(x + cell_w / 2)}" y="{y + cell_h / 2}" '
                f'text-anchor="middle" dominant-baseline="middle" fill="{ink}">'
                f"{escape(_short_duration(avg))}</text></g>"
            )
    return _svg(width, height, label, body, "chart-heat")


def _short_duration(seconds: float) -> str:
    """A cell label short enough for a 36-pixel cell: ``42`` (seconds), ``2:30``, or ``2h``."""
    total = round(seconds)
    if total < 60:
        return f"{total}"
    if total < 3600:
        return f"{total // 60}:{total % 60:02d}"
    return f"{total // 3600}h"


def histogram(
    bins: Sequence[dict[str, float]],
    *,
    label: str,
    too_short_below: float | None,
    deadline: float | None,
    width: int = 900,
    height: int = 240,
) -> SafeString:
    """ACW durations per bin, each bar in its band: too short, normal, or over the deadline.

    A bin belongs to the band of its middle. The limits are also drawn as labelled lines, and
    the over-deadline bars are hatched, so the bands do not depend on colour.
    """
    if not bins or not any(b["count"] for b in bins):
        return _empty(width, height, label)
    frame = _Frame(width, height, left=48)
    most = round(max(b["count"] for b in bins))
    step = count_step(most)
    top = step * math.ceil(most / step)
    slot = frame.plot_w / len(bins)
    span = bins[-1]["to"] - bins[0]["from"]
    body = [
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" '
        f'fill="{OVER}"/><line x1="0" y1="0" x2="0" y2="6" stroke="#000" '
        'stroke-opacity=".45" stroke-width="2"/></pattern></defs>'
    ]
    for tick in range(0, int(top) + 1, int(step)):
        y = _f(frame.y(tick, top))
        body.append(
            f'<line class="grid" x1="{frame.left}" x2="{frame.width - frame.right}" y1="{y}" '
            f'y2="{y}"/><text class="tick" x="{frame.left - 6}" y="{y}" text-anchor="end" '
            f'dominant-baseline="middle">{tick}</text>'
        )
    for i, b in enumerate(bins):
        middle = (b["from"] + b["to"]) / 2
        if too_short_below and middle < too_short_below:
            fill, band = TOO_SHORT, _("too short")
        elif deadline and middle > deadline:
            fill, band = "url(#hatch)", _("over the deadline")
        else:
            fill, band = NORMAL, _("normal")
        if not b["count"]:
            continue
        bar_top = frame.y(b["count"], top)
        tip = _("%(low)s–%(high)s: %(count)s ACWs (%(band)s)") % {
            "low": format_duration(b["from"]),
            "high": format_duration(b["to"]),
            "count": b["count"],
            "band": band,
        }
        body.append(
            f'<rect class="bin" x="{_f(frame.left + slot * i + 0.5)}" y="{_f(bar_top)}" '
            f'width="{_f(max(1.0, slot - 1))}" height="{_f(frame.y(0, top) - bar_top)}" '
            f'fill="{fill}"><title>{escape(tip)}</title></rect>'
        )
    for limit, name in ((too_short_below, _("minimum")), (deadline, _("deadline"))):
        if limit and span and bins[0]["from"] < limit < bins[-1]["to"]:
            x = _f(frame.left + frame.plot_w * (limit - bins[0]["from"]) / span)
            body.append(
                f'<line class="limit" x1="{x}" x2="{x}" y1="{frame.top_margin}" '
                f'y2="{_f(frame.y(0, top))}"/><text class="tick limit-label" x="{x}" '
                f'y="{frame.top_margin + 2}" dx="4" dominant-baseline="hanging">'
                f"{name} {escape(format_duration(limit))}</text>"
            )
    labels = [format_duration(b["from"]) for b in bins]
    body += _x_labels(frame, labels, slot)
    return _svg(width, height, label, body)


def bar_list(
    rows: Sequence[tuple[str, float, str]],
    *,
    label: str,
    norms: Sequence[float | None] | None = None,
    width: int = 440,
) -> SafeString:
    """Horizontal bars: (name, seconds, note) per row, largest first as given.

    ``norms`` marks each row's expected value with a tick (a wrap-up code's norm ACW).
    """
    if not rows:
        return _empty(width, 80, label)
    left, right, row_h = 120, 110, 24
    height = row_h * len(rows) + 8
    norm_values = [n for n in (norms or []) if n]
    top = duration_ticks(max([*(r[1] for r in rows), *norm_values]))[-1]
    plot = width - left - right
    body = []
    for i, (name, value, note) in enumerate(rows):
        y = 4 + i * row_h
        w = plot * value / top if top else 0
        colour = (BLUE, SKY, GREEN, ORANGE, PURPLE, YELLOW, VERMILLION)[i % 7]
        body.append(
            f'<text class="tick bar-name" x="{left - 8}" y="{y + row_h / 2}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(name[:18])}</text>'
            f'<rect x="{left}" y="{y + 4}" width="{_f(max(w, 1))}" height="{row_h - 8}" '
            f'fill="{colour}"><title>{escape(name)}: {escape(format_duration(value))}'
            f"{escape(' · ' + note if note else '')}</title></rect>"
            f'<text class="tick bar-value" x="{_f(left + w + 6)}" y="{y + row_h / 2}" '
            f'dominant-baseline="middle">{escape(format_duration(value))}'
            f'<tspan class="muted-text"> {escape(note)}</tspan></text>'
        )
        norm = norms[i] if norms else None
        if norm:
            x = _f(left + plot * norm / top)
            body.append(
                f'<line class="norm" x1="{x}" x2="{x}" y1="{y + 1}" y2="{y + row_h - 1}">'
                f"<title>{escape(_('norm %s') % format_duration(norm))}</title></line>"
            )
    return _svg(width, height, label, body, "chart-bars")


def sparkline(values: Sequence[float | None], *, label: str) -> SafeString:
    """A small line of values (None: no interactions that bucket), for a table cell."""
    width, height = 100, 24
    present = [v for v in values if v is not None]
    if len(values) < 2 or not present:
        return _svg(width, height, label, [])
    top = max(present) or 1.0
    slot = width / (len(values) - 1)
    runs: list[list[str]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            runs.append([])
            continue
        runs[-1].append(f"{_f(i * slot)},{_f(2 + (height - 4) * (1 - value / top))}")
    body = [
        f'<polyline fill="none" stroke="{ACW}" stroke-width="1.5" points="{" ".join(run)}"/>'
        if len(run) > 1
        else f'<circle r="1.5" fill="{ACW}" cx="{run[0].split(",")[0]}" cy="{run[0].split(",")[1]}"/>'
        for run in runs
        if run
    ]
    return _svg(width, height, label, body, "sparkline")
