"""Small static SVG charts for the teaching notebooks: grouped bars (per-core load, with each series'
mean drawn as a labelled dashed line) and lines (a figure against core count).

SVG rather than a plotting library: the executed notebooks carry these as ``image/svg+xml`` outputs,
which read on a code-hosting site without a kernel, byte-identical on every run (a test re-executes
the notebooks and compares). Jupyter shows a ``Chart`` through ``_repr_svg_``.
"""
from __future__ import annotations

import math

from dataclasses import dataclass
from html import escape
from typing import Mapping, Sequence

# Colour-blind-safe (Okabe-Ito), strong enough on white; series take them in order.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9")
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 52, 46


@dataclass(frozen=True)
class Chart:
    """An SVG document; notebooks display it inline."""

    svg: str

    def _repr_svg_(self) -> str:
        return self.svg


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 1.0
    while power * 10 <= value:
        power *= 10
    while power > value:
        power /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def number(value: float) -> str:
    """Axis and label text: thousands separated, at most two decimals, no trailing zeros."""
    if abs(value - round(value)) < 1e-9:
        return f"{int(round(value)):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _frame(title: str, width: int, height: int, top: float, x_label: str, y_label: str,
           low: float = 0.0) -> tuple[list[str], float, float]:
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{LEFT}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>']
    for i in range(6):
        v = low + (top - low) * i / 5
        y = TOP + plot_h * (1 - i / 5)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#444">{number(v)}</text>')
    out.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#333"/>')
    out.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{height - 8}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text x="14" y="{TOP + plot_h / 2:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {TOP + plot_h / 2:.0f})">{escape(y_label)}</text>')
    return out, plot_w, plot_h


def _legend(out: list[str], names: Sequence[str], width: int, dashed: bool = False) -> None:
    """One swatch per plotted series, right-aligned under the title (nothing for a single series)."""
    if len(names) < 2:
        return
    x = width - RIGHT
    for i in reversed(range(len(names))):
        label = escape(names[i])
        x -= 7 * len(names[i]) + 30
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{x}" y="28" width="12" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 16}" y="37">{label}</text>')


def bar_chart(title: str, categories: Sequence[object], series: Mapping[str, Sequence[float]], *,
              x_label: str = "core", y_label: str = "packets", means: bool = True,
              width: int = 760, height: int = 280) -> Chart:
    """Grouped bars, one group per category (core), one bar per series; with ``means`` each series'
    mean is a dashed line in its colour, labelled with its value at the right end."""
    names = list(series)
    values = [list(map(float, series[n])) for n in names]
    for name, row in zip(names, values):
        if len(row) != len(categories):
            raise ValueError(f"series {name!r} has {len(row)} values for {len(categories)} categories")
    top = nice_max(max((v for row in values for v in row), default=0.0) * 1.08)
    out, plot_w, plot_h = _frame(title, width, height, top, x_label, y_label)
    _legend(out, names, width)
    slot = plot_w / max(len(categories), 1)
    bar = slot * 0.8 / max(len(names), 1)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    for c, category in enumerate(categories):
        x0 = LEFT + slot * c + slot * 0.1
        for s, row in enumerate(values):
            height_px = plot_h * row[c] / top
            out.append(f'<rect x="{x0 + bar * s:.1f}" y="{y(row[c]):.1f}" width="{max(bar - 1, 1):.1f}" '
                       f'height="{height_px:.1f}" fill="{PALETTE[s % len(PALETTE)]}"/>')
        if len(categories) <= 40 or c % 4 == 0:
            out.append(f'<text x="{LEFT + slot * (c + 0.5):.1f}" y="{TOP + plot_h + 15}" text-anchor="middle" '
                       f'fill="#444">{escape(str(category))}</text>')
    if means:
        averages = [sum(row) / len(row) if row else 0.0 for row in values]
        shared = len(names) > 1 and max(averages) - min(averages) < 1e-9  # one line says it for all
        for s, mean in enumerate(averages[:1] if shared else averages):
            colour = "#444" if shared else PALETTE[s % len(PALETTE)]
            label = f"mean {number(round(mean, 1))}" + (
                " (every series)" if shared else f" ({names[s]})" if len(names) > 1 else "")
            out.append(f'<line x1="{LEFT}" y1="{y(mean):.1f}" x2="{LEFT + plot_w}" y2="{y(mean):.1f}" '
                       f'stroke="{colour}" stroke-width="1.5" stroke-dasharray="6 4"/>')
            out.append(f'<text x="{LEFT + plot_w - 4}" y="{y(mean) - 4 - 12 * s:.1f}" text-anchor="end" '
                       f'fill="{colour}" stroke="white" stroke-width="3" paint-order="stroke">{escape(label)}</text>')
    out.append("</svg>")
    return Chart("\n".join(out) + "\n")


def _runs(row: Sequence[float]) -> list[list[int]]:
    """The indices of ``row``'s values, in stretches without a NaN between them."""
    runs: list[list[int]] = [[]]
    for i, v in enumerate(row):
        if math.isnan(v):
            runs.append([])
        else:
            runs[-1].append(i)
    return [run for run in runs if run]


def line_chart(title: str, xs: Sequence[float], series: Mapping[str, Sequence[float]], *, x_label: str = "cores",
               y_label: str = "imbalance (busiest core / mean)", baseline: float | None = None,
               digits: int = 2, low: float = 0.0, width: int = 760, height: int = 280) -> Chart:
    """One line per series over ``xs`` (evenly spaced); ``baseline`` draws a grey reference line
    (1.0: perfectly even) and the y axis starts at ``low``. With one or two series each point is
    labelled with its value to ``digits`` decimals (more would be clutter). A value that is None or
    NaN is a point the series lacks (a core count its NIC cannot take): no mark, a gap in its line."""
    names = list(series)
    values = [[math.nan if v is None else float(v) for v in series[n]] for n in names]
    for name, row in zip(names, values):
        if len(row) != len(xs):
            raise ValueError(f"series {name!r} has {len(row)} values for {len(xs)} points")
    highest = max([v for row in values for v in row if not math.isnan(v)] + [baseline or 0.0])
    top = low + nice_max((highest - low) * 1.08)
    out, plot_w, plot_h = _frame(title, width, height, top, x_label, y_label, low)
    _legend(out, names, width)

    def x(i: int) -> float:
        return LEFT + plot_w * ((i + 0.5) / max(len(xs), 1))

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - low) / (top - low))

    for i, value in enumerate(xs):
        out.append(f'<text x="{x(i):.1f}" y="{TOP + plot_h + 15}" text-anchor="middle" fill="#444">'
                   f'{escape(number(value))}</text>')
    if baseline is not None:
        out.append(f'<line x1="{LEFT}" y1="{y(baseline):.1f}" x2="{LEFT + plot_w}" y2="{y(baseline):.1f}" '
                   f'stroke="#888" stroke-dasharray="3 3"/>')
        out.append(f'<text x="{LEFT + 4}" y="{y(baseline) - 4:.1f}" fill="#666">{number(baseline)} = perfectly '
                   "even</text>")
    for s, row in enumerate(values):
        colour = PALETTE[s % len(PALETTE)]
        for run in _runs(row):  # one line per stretch of points the series has
            points = " ".join(f"{x(i):.1f},{y(row[i]):.1f}" for i in run)
            out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for i, v in enumerate(row):
            if math.isnan(v):
                continue
            out.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}"/>')
            if len(names) > 2:
                continue
            below = s % 2 == 1  # alternate series label under their points, so close values stay apart
            dx, dy, anchor = 0, (16 if below else -7), "middle"
            if below and y(v) + 20 > TOP + plot_h:  # no room under it (the axis' numbers): beside it
                dx, dy, anchor = 7, 4, "start"
            out.append(f'<text x="{x(i) + dx:.1f}" y="{y(v) + dy:.1f}" text-anchor="{anchor}" '
                       f'fill="{colour}" stroke="white" stroke-width="3" paint-order="stroke">{v:,.{digits}f}</text>')
    out.append("</svg>")
    return Chart("\n".join(out) + "\n")
