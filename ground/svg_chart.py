"""A small SVG line chart: panels stacked over one time axis, each with step lines.

Written for plots that must not pull in a plotting library (``ccl net sim --plot``): the
output is plain SVG 1.1 text, a function of its input only (numbers printed with fixed
precision, elements in input order), so the same run draws the same bytes. Each line is a
``polyline`` carrying its own ``data-*`` attributes (which series, which node, its maximum),
so a reader or a test can find a series without reading pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

#: Colours given to lines in turn (colour-blind-safe, Okabe and Ito's palette and greys).
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#f0e442",
           "#000000", "#999999", "#7f3c8d")

WIDTH = 860
PANEL_HEIGHT = 240
LEFT, RIGHT, TOP, GAP = 70, 190, 40, 60


@dataclass(frozen=True)
class Line:
    """One series: ``points`` (x, y) in increasing x, drawn as steps (the value holds until
    the next point)."""

    label: str
    points: Sequence[tuple[float, float]]
    colour: str
    dashed: bool = False
    attrs: Mapping[str, str] = field(default_factory=dict)  # data-* attributes


@dataclass(frozen=True)
class Panel:
    """A chart: a title, the unit of its y axis, its lines."""

    title: str
    unit: str
    lines: tuple[Line, ...]


def ticks(value: float) -> list[float]:
    """An axis from 0 to at least ``value``: 0 and multiples of a step of 1, 2 or 5 times a
    power of ten, at most 5 steps (an axis of 0 to 1 for nothing)."""
    if value <= 0:
        return [0.0, 1.0]
    step = 1.0
    while step * 5 < value:
        step *= 10
    while step * 5 / 10 >= value:
        step /= 10
    for factor in (0.1, 0.2, 0.5, 1.0):  # the smallest step that reaches value in 5
        if step * factor * 5 >= value:
            step *= factor
            break
    count = -(-value // step)
    return [round(step * i, 10) for i in range(int(count) + 1)]


def _num(v: float) -> str:
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _label(v: float) -> str:
    return f"{v:,.0f}" if v >= 10 or v == int(v) else f"{v:g}"


def render(title: str, x_label: str, x_end: float, panels: Sequence[Panel]) -> str:
    """The chart as SVG text: ``panels`` one above the other, x from 0 to ``x_end``."""
    plot_w = WIDTH - LEFT - RIGHT
    height = TOP + len(panels) * (PANEL_HEIGHT + GAP)
    x_ticks = ticks(x_end)
    x_top = x_ticks[-1]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" '
           f'height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" '
           'font-size="11">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           f'<text x="{WIDTH // 2}" y="20" text-anchor="middle" font-size="14">'
           f'{escape(title)}</text>']
    for k, panel in enumerate(panels):
        top = TOP + k * (PANEL_HEIGHT + GAP)
        bottom = top + PANEL_HEIGHT
        y_ticks = ticks(max((y for line in panel.lines for _, y in line.points), default=0))
        y_top = y_ticks[-1]

        def x_of(x: float, left: float = LEFT) -> str:
            return _num(left + plot_w * x / x_top)

        def y_of(y: float, bottom: float = bottom, y_top: float = y_top) -> str:
            return _num(bottom - PANEL_HEIGHT * y / y_top)

        out.append(f'<g class="panel" data-title={quoteattr(panel.title)}>')
        out.append(f'<text x="{LEFT}" y="{top - 8}" font-size="12">{escape(panel.title)}'
                   '</text>')
        out.append(f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_HEIGHT}" '
                   'fill="none" stroke="#444"/>')
        for y in y_ticks:
            out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y_of(y)}" '
                       f'y2="{y_of(y)}" stroke="#ddd"/>')
            out.append(f'<text x="{LEFT - 4}" y="{_num(float(y_of(y)) + 4)}" '
                       f'text-anchor="end">{_label(y)}</text>')
        for x in x_ticks:
            out.append(f'<text x="{x_of(x)}" y="{bottom + 14}" text-anchor="middle">'
                       f'{_label(x)}</text>')
        out.append(f'<text x="{LEFT - 50}" y="{top + PANEL_HEIGHT // 2}" '
                   f'transform="rotate(-90 {LEFT - 50} {top + PANEL_HEIGHT // 2})" '
                   f'text-anchor="middle">{escape(panel.unit)}</text>')
        out.append(f'<text x="{LEFT + plot_w // 2}" y="{bottom + 30}" '
                   f'text-anchor="middle">{escape(x_label)}</text>')
        for j, line in enumerate(panel.lines):
            steps: list[str] = []
            last: float | None = None
            for x, y in line.points:
                if last is not None:
                    steps.append(f"{x_of(x)},{y_of(last)}")
                steps.append(f"{x_of(x)},{y_of(y)}")
                last = y
            attrs = "".join(f" data-{k}={quoteattr(v)}" for k, v in sorted(line.attrs.items()))
            dash = ' stroke-dasharray="5,3"' if line.dashed else ""
            out.append(f'<polyline fill="none" stroke="{line.colour}" stroke-width="1.5"'
                       f'{dash}{attrs} points="{" ".join(steps)}"/>')
            ly = top + 12 + 14 * j
            out.append(f'<line x1="{WIDTH - RIGHT + 10}" x2="{WIDTH - RIGHT + 30}" '
                       f'y1="{ly - 4}" y2="{ly - 4}" stroke="{line.colour}" '
                       f'stroke-width="1.5"{dash}/>')
            out.append(f'<text x="{WIDTH - RIGHT + 34}" y="{ly}">{escape(line.label)}'
                       '</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
