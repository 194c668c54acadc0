"""``ccl net sim`` on the flood, multicast and reliable-transfer scenarios, as the command
answers (``support.run_in_process``): each exits 0 with its expectations met, and the soft
state and timers are in each node's meter, in text and JSON."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support import run_in_process

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "missions" / "activenet" / "scenarios"


def ccl(*args: object) -> subprocess.CompletedProcess[str]:
    proc = run_in_process("ccl", [str(a) for a in args])
    assert "Traceback" not in proc.stdout + proc.stderr and proc.returncode != 70
    return proc


@pytest.mark.parametrize("name", ["flood", "multicast", "reliable"])
def test_workload_scenarios_run_and_meet_their_expectations(name: str) -> None:
    out = json.loads(ccl("net", "sim", SCENARIOS / f"{name}.toml", "--json").stdout)
    assert out["ok"] and all(e["met"] for e in out["expectations"])
    assert all(s["sent"] and s["verified"] for s in out["sends"])
    nodes = out["nodes"]
    if name == "flood":
        assert all(n["delivered"] == [11, 22] and n["peak_state_bytes"] == 24
                   for n in nodes.values())
    elif name == "multicast":
        assert [nodes[k]["delivered"] for k in "1234567"] == \
            [[], [], [], [], [31, 32], [31, 32], [31, 32]]
    else:
        assert nodes["4"]["delivered"] == [*range(100, 108), *range(200, 208)]
        assert nodes["1"]["timers"] >= 16


def test_the_text_report_shows_soft_state_and_timers() -> None:
    proc = ccl("net", "sim", SCENARIOS / "reliable.toml")
    assert proc.returncode == 0
    assert "soft state: 24 bytes held" in proc.stdout and " timers" in proc.stdout
