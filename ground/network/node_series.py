"""Each node's traffic and memory over a run, read from the run's trace, and their plot
(``ccl net sim SCENARIO --plot FILE.svg``).

* bytes out: cumulative, at each ``send`` event of the node (lost packets included: they
  left it), ending at its meter's ``bytes_out``;
* bytes in: cumulative, at each ``send`` event towards the node whose packet was not
  ``lost`` (dated when it left the neighbour), ending at its meter's ``bytes_in``;
* memory: what the node holds, a step at each ``memory`` event (the program in hand, the
  code cache, the soft state and VMlets installed in band: ``ground.network.simulator``),
  peaking at ``peak_memory_bytes``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from ground.network.simulator import RunReport
from ground.svg_chart import PALETTE, Line, Panel, render

Points = tuple[tuple[int, int], ...]  # (t_us, value), t not decreasing


@dataclass(frozen=True)
class NodeSeries:
    """One node's series, each from time 0 to the run's end."""

    node: int
    bytes_in: Points
    bytes_out: Points
    memory: Points

    @staticmethod
    def peak(points: Points) -> int:
        return max((v for _, v in points), default=0)


def node_series(report: RunReport) -> dict[int, NodeSeries]:
    """The series of every node of ``report``, by address."""
    lost = Counter((e.node, e.packet, e.detail.get("to")) for e in report.trace
                   if e.event == "lost")
    totals_in: Counter[int] = Counter()
    totals_out: Counter[int] = Counter()
    series: dict[int, dict[str, list[tuple[int, int]]]] = {
        n: {"in": [(0, 0)], "out": [(0, 0)], "memory": [(0, 0)]} for n in report.nodes}
    for e in report.trace:
        if e.event == "send":
            size, to = int(str(e.detail["bytes"])), e.detail["to"]
            totals_out[e.node] += size
            series[e.node]["out"].append((e.t_us, totals_out[e.node]))
            key = (e.node, e.packet, to)
            if lost[key]:
                lost[key] -= 1
                continue
            hop = int(str(to))
            totals_in[hop] += size
            series[hop]["in"].append((e.t_us, totals_in[hop]))
        elif e.event == "memory":
            series[e.node]["memory"].append((e.t_us, int(str(e.detail["bytes"]))))
    end = report.end_us
    return {n: NodeSeries(n, *(_until(tuple(s[k]), end) for k in ("in", "out", "memory")))
            for n, s in sorted(series.items())}


def _until(points: Points, end: int) -> Points:
    """``points`` carried on to ``end`` at their last value."""
    last_t, last_v = points[-1]
    return points if last_t >= end else (*points, (end, last_v))


def plot_svg(report: RunReport, title: str) -> str:
    """The run's traffic (bytes in, solid; out, dashed) and memory per node, as SVG."""
    series = node_series(report)
    colour: Mapping[int, str] = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(series)}

    def ms(points: Points) -> list[tuple[float, float]]:
        return [(t / 1000, v) for t, v in points]

    traffic: list[Line] = []
    memory: list[Line] = []
    for n, s in series.items():
        for name, points, dashed in (("bytes_in", s.bytes_in, False),
                                     ("bytes_out", s.bytes_out, True)):
            peak = NodeSeries.peak(points)
            traffic.append(Line(f"node {n} {name.split('_')[1]}: {peak:,} B", ms(points),
                                colour[n], dashed,
                                {"series": name, "node": str(n), "max": str(peak)}))
        peak = NodeSeries.peak(s.memory)
        memory.append(Line(f"node {n}: peak {peak:,} B", ms(s.memory), colour[n], False,
                           {"series": "memory", "node": str(n), "max": str(peak)}))
    return render(title, "simulated time (ms)", report.end_us / 1000,
                  [Panel("bytes on the wire per node, cumulative (in solid, out dashed)",
                         "bytes", tuple(traffic)),
                   Panel("memory held per node (program in hand, code cache, soft state, VMlets "
                         "in band)", "bytes",
                         tuple(memory))])
