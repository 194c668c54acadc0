"""Each node's traffic and memory over a run (ground/network/node_series.py), its SVG plot
(ground/svg_chart.py) and ``ccl net sim --plot``: the series end at the meters' figures,
the SVG parses and carries one series of each kind per node with its maximum, the same run
draws the same bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ground.network.node_series import NodeSeries, node_series, plot_svg
from ground.network.scenario import load_net_scenario
from ground.network.sender import NetResult, run_net_scenario
from ground.svg_chart import ticks

ROOT = Path(__file__).resolve().parents[2]
NET = ROOT / "missions" / "activenet"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def plan_and_ants() -> NetResult:
    return run_net_scenario(load_net_scenario(NET / "scenarios" / "plan_and_ants.toml"))


def test_series_end_at_the_meters_figures(plan_and_ants: NetResult) -> None:
    report = plan_and_ants.report
    series = node_series(report)
    assert sorted(series) == sorted(report.nodes)
    for n, meter in report.nodes.items():
        s = series[n]
        assert s.bytes_out[-1] == (report.end_us, meter.bytes_out)
        assert s.bytes_in[-1][1] == meter.bytes_in
        assert NodeSeries.peak(s.memory) == meter.peak_memory_bytes
        for points in (s.bytes_in, s.bytes_out, s.memory):
            times = [t for t, _ in points]
            assert times == sorted(times) and times[0] == 0 and times[-1] == report.end_us
        assert [v for _, v in s.bytes_out] == sorted(v for _, v in s.bytes_out)
    # node 1 held the PLAN ping (216 B in hand) and then both codes in its cache
    assert report.nodes[1].peak_memory_bytes == 487 == report.nodes[1].peak_cache_bytes
    # routers 2-4 held only the traceroute code they fetched: PLAN's ping passed through
    assert {report.nodes[n].peak_memory_bytes for n in (2, 3, 4)} == {271}


def test_memory_counts_the_plan_program_in_hand_then_lets_it_go() -> None:
    result = run_net_scenario(load_net_scenario(NET / "scenarios" / "ping_traceroute.toml"))
    samples = [e for e in result.report.trace if e.event == "memory" and e.node == 5]
    held = [int(str(e.detail["bytes"])) for e in samples]
    assert held == [216, 0, 271, 0]  # ping, then traceroute, each while loaded and run
    assert result.report.nodes[5].peak_memory_bytes == 271
    assert result.report.nodes[5].memory_bytes == 0


def test_memory_counts_soft_state_and_vmlets_installed_in_band() -> None:
    flood = run_net_scenario(load_net_scenario(NET / "scenarios" / "flood.toml")).report
    for n, meter in flood.nodes.items():
        last = [e.detail for e in flood.trace if e.event == "memory" and e.node == n][-1]
        assert last["state"] == meter.state_bytes > 0  # the floods' marks outlive them
        assert meter.memory_bytes == meter.state_bytes + meter.cache_bytes
    inband = run_net_scenario(load_net_scenario(NET / "scenarios" / "inband.toml")).report
    assert all(m.installed and m.memory_bytes >= 55 for m in inband.nodes.values())  # MARK


def test_svg_parses_with_one_series_per_node_and_its_maximum(plan_and_ants: NetResult
                                                             ) -> None:
    report = plan_and_ants.report
    text = plot_svg(report, "plan_and_ants")
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    lines = root.iter(f"{SVG}polyline")
    found = {(p.get("data-series"), int(p.get("data-node") or -1)): p for p in lines}
    expected = {"bytes_in": "bytes_in", "bytes_out": "bytes_out",
                "memory": "peak_memory_bytes"}
    assert set(found) == {(k, n) for k in expected for n in report.nodes}
    for (kind, node), line in found.items():
        assert int(line.get("data-max") or -1) == getattr(report.nodes[node], expected[kind])
        points = [tuple(map(float, xy.split(","))) for xy in
                  (line.get("points") or "").split()]
        assert len(points) >= 2 and all(0 <= x <= 860 and 0 <= y <= 700 for x, y in points)
    assert text == plot_svg(report, "plan_and_ants")  # deterministic


def test_axes_reach_the_maximum_in_round_steps() -> None:
    assert ticks(0) == [0, 1] and ticks(7) == [0, 2, 4, 6, 8] and ticks(34.79)[-1] == 40
    assert ticks(487) == [0, 100, 200, 300, 400, 500] and ticks(0.4)[2] == 0.2
    for value in (1, 3, 12, 240, 241, 1082, 2001, 99_999):
        axis = ticks(value)
        steps = {round(b - a, 9) for a, b in zip(axis, axis[1:], strict=False)}
        assert axis[0] == 0 and axis[-2] < value <= axis[-1] and len(axis) <= 6
        assert len(steps) == 1 and f"{steps.pop():e}"[0] in "125"  # 1, 2 or 5 x 10^k


def test_net_sim_plot_writes_the_svg_and_refuses_another_format(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def ccl(*args: object) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "cli.ccl", *map(str, args)],
                              capture_output=True, text=True, cwd=ROOT, env=env, check=False)
        assert "Traceback" not in proc.stdout + proc.stderr
        return proc

    scenario = NET / "scenarios" / "ping_traceroute.toml"
    proc = ccl("net", "sim", scenario, "--plot", tmp_path / "run.svg", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["plot"] == str(tmp_path / "run.svg")
    root = ET.parse(tmp_path / "run.svg").getroot()
    memory = {p.get("data-node"): int(p.get("data-max") or -1)
              for p in root.iter(f"{SVG}polyline") if p.get("data-series") == "memory"}
    assert memory == {n: m["peak_memory_bytes"] for n, m in out["nodes"].items()}
    bad = ccl("net", "sim", scenario, "--plot", tmp_path / "run.png")
    assert bad.returncode == 2 and "end the name with .svg" in bad.stderr
    assert not (tmp_path / "run.png").exists()
    missing = ccl("net", "sim", scenario, "--plot", tmp_path / "no" / "run.svg")
    assert missing.returncode == 2 and "no folder" in missing.stderr
