"""A small SVG line chart of Mpps per core count (matplotlib is not a dependency): one line per
strategy, the sequential build as a dashed horizontal line. Deterministic text."""
from __future__ import annotations

from html import escape
from typing import Sequence

WIDTH, HEIGHT = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 70, 150, 40, 50
COLORS = {"seq": "#555555", "sn": "#1f77b4", "locks": "#d62728", "tm": "#2ca02c"}


def _nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value``."""
    if value <= 0:
        return 1.0
    power = 1.0
    while power * 10 < value:
        power *= 10
    while power > value:
        power /= 10
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


def scaling_svg(title: str, results: Sequence[dict]) -> str:
    """``results``: dicts with strategy, cores, mpps (as in bench JSON)."""
    cores = sorted({int(r["cores"]) for r in results}) or [1]
    top = _nice_max(max((float(r["mpps"]) for r in results), default=1.0) * 1.1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    low, high = min(cores), max(cores)

    def x(c: float) -> float:
        return LEFT + (plot_w * (c - low) / (high - low) if high > low else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{WIDTH / 2:.0f}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
           f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="black"/>',
           f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="black"/>']
    for i in range(6):
        v = top * i / 5
        out.append(f'<line x1="{LEFT - 4}" y1="{y(v):.1f}" x2="{LEFT + plot_w}" y2="{y(v):.1f}" stroke="#dddddd"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{_fmt(round(v, 2))}</text>')
    for c in cores:
        out.append(f'<text x="{x(c):.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{c}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 10}" text-anchor="middle">cores</text>')
    out.append(f'<text x="16" y="{TOP + plot_h / 2:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 16 {TOP + plot_h / 2:.0f})">Mpps</text>')
    strategies = sorted({r["strategy"] for r in results}, key=lambda s: (list(COLORS).index(s) if s in COLORS else 9, s))
    for row, strategy in enumerate(strategies):
        color = COLORS.get(strategy, "#9467bd")
        points = sorted((int(r["cores"]), float(r["mpps"])) for r in results if r["strategy"] == strategy)
        if strategy == "seq":
            v = points[0][1]
            out.append(f'<line x1="{LEFT}" y1="{y(v):.1f}" x2="{LEFT + plot_w}" y2="{y(v):.1f}" stroke="{color}" '
                       f'stroke-dasharray="6 4" stroke-width="2"/>')
        else:
            path = " ".join(f"{x(c):.1f},{y(v):.1f}" for c, v in points)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
            out += [f'<circle cx="{x(c):.1f}" cy="{y(v):.1f}" r="3" fill="{color}"/>' for c, v in points]
        ly = TOP + 10 + 20 * row
        dash = ' stroke-dasharray="6 4"' if strategy == "seq" else ""
        out.append(f'<line x1="{WIDTH - RIGHT + 15}" y1="{ly}" x2="{WIDTH - RIGHT + 40}" y2="{ly}" stroke="{color}" '
                   f'stroke-width="2"{dash}/>')
        out.append(f'<text x="{WIDTH - RIGHT + 46}" y="{ly + 4}">{escape(strategy)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
