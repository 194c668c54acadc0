"""The uplink timeline as a figure (``ccl uplink simulate --plot FILE.png``).

Top: every uplink window at its time -- bytes sent per patch (stacked bars), frames lost
(red), cancelled passes (grey band) and lost telemetry reports (x). Bottom: the fraction of
each patch's k shares held on board after each window, as the next telemetry report told,
with its completion on board (solid line, dated by the downlinked event log) and its
confirmation on the ground by the next telemetry (dashed line). Activation is
drawn when the caller knows it (the onboard patcher's time of activation, per patch).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from ground.uplink import SimulationResult


def image_formats() -> frozenset[str]:
    """The file suffixes (without the dot) ``plot_timeline`` can write."""
    from matplotlib.backend_bases import FigureCanvasBase

    return frozenset(FigureCanvasBase.get_supported_filetypes())


def plot_timeline(result: SimulationResult, path: Path, title: str,
                  activations: Mapping[str, datetime] | None = None) -> None:
    """Draw ``result`` to ``path`` (PNG, or any format matplotlib knows by the suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not result.windows:
        raise ValueError("nothing to draw: the simulation had no uplink window")
    t0 = result.windows[0].window.start

    def hours(t: datetime) -> float:
        return (t - t0).total_seconds() / 3600

    names = [p.name for p in result.patches]
    colours = {n: plt.get_cmap("tab10")(i % 10) for i, n in enumerate(names)}
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(11, 6.5),
                                      gridspec_kw={"height_ratios": [1.2, 1]})
    width = 0.35
    for log in result.windows:
        x = hours(log.window.pass_.culmination)
        if log.cancelled:
            top.axvspan(hours(log.window.start) - 0.2, hours(log.window.end) + 0.2,
                        color="0.85", lw=0)
            continue
        base = 0.0
        for name, _frames, nbytes in log.per_patch:
            top.bar(x, nbytes, width, bottom=base, color=colours[name])
            base += nbytes
        if log.frames_sent:
            lost = log.bytes_sent * log.frames_lost / log.frames_sent
            top.bar(x + width, lost, width / 2, color="tab:red")
        if not log.report_received:
            top.plot([x], [0], marker="x", color="black", ms=8)
    top.set_ylabel("bytes sent per pass")
    top.set_title(title)
    top.plot([], [], color="tab:red", lw=6, label="lost")
    top.plot([], [], color="0.85", lw=6, label="cancelled pass")
    top.plot([], [], marker="x", color="black", ls="", label="telemetry lost")
    for n in names:
        top.plot([], [], color=colours[n], lw=6, label=n)
    top.legend(loc="upper right", fontsize=8, ncol=2)

    for p in result.patches:
        xs, ys = [], []
        for log in result.windows:
            for name, held, k in log.held:
                if name == p.name and k:
                    xs.append(hours(log.window.end))
                    ys.append(held / k)
        if xs:
            bottom.step(xs, ys, where="post", color=colours[p.name], label=p.name)
        if p.completed_at:
            bottom.axvline(hours(p.completed_at), color=colours[p.name], lw=1.2)
        if p.confirmed_at:
            bottom.axvline(hours(p.confirmed_at), color=colours[p.name], lw=1.2, ls="--")
        if activations and p.name in activations:
            bottom.axvline(hours(activations[p.name]), color=colours[p.name], lw=2, ls=":")
    bottom.set_ylim(0, 1.05)
    bottom.set_ylabel("shares on board / k")
    bottom.set_xlabel(f"hours since {t0.isoformat(timespec='minutes')}")
    bottom.plot([], [], color="0.3", lw=1.2, label="complete on board")
    bottom.plot([], [], color="0.3", lw=1.2, ls="--", label="confirmed by telemetry")
    bottom.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
