"""benchmarks/active_networks.py: its figures come from real runs (every workload in both
protocols, each delivering what PLAN delivers), its sizes count code and not comments, and
the two sides of the choice show: ANTS fewer bytes on the wire, PLAN nothing retained."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import active_networks  # noqa: E402


def test_python_code_drops_comments_docstrings_and_blank_lines() -> None:
    text = ('"""Module."""\n\nimport os  # why\n\n\ndef f():\n    """Doc,\n    two lines."""\n'
            '    return "# not a comment"  # a comment\n')
    assert active_networks.python_code(text) == ["import os", "def f():",
                                                 '    return "# not a comment"']
    assert active_networks.python_code(text + "class G:\n    x = 1\n", ("f",)) == \
        ["import os", "class G:", "    x = 1"]


def test_ccl_bytes_count_code_lines() -> None:
    written, code, lines = active_networks.ccl_bytes(ROOT / "missions" / "activenet" / "vmlets"
                                                     / "ants.ccl")
    assert code < written and lines >= 4  # vmlet, mission, uses, instr ... }


def test_the_benchmark_measures_every_workload_in_both_protocols(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "active_networks.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = [json.loads(line) for line in proc.stdout.splitlines()]
    assert all(f["benchmark"] == "active_networks" for f in figures)

    def one(metric: str, **context: Any) -> float:
        (found,) = [f["value"] for f in figures if f["metric"] == metric
                    and all(f.get(k) == v for k, v in context.items())]
        return float(found)

    runs = [f for f in figures if f["metric"] == "wire_bytes"]
    assert {(f["workload"], f["protocol"]) for f in runs} >= {
        ("ping", "plan"), ("ping", "ants"), ("traceroute", "plan"), ("traceroute", "ants")}
    assert all(f["same_as_plan"] and f["complete"] and f["delivered"] > 0 for f in runs)
    for workload in ("ping", "traceroute"):
        plan = {"workload": workload, "protocol": "plan"}
        ants = {"workload": workload, "protocol": "ants"}
        assert one("wire_bytes", **ants) < one("wire_bytes", **plan)
        assert one("retained_memory", **plan) == 0 < one("retained_memory", **ants)
        assert one("load_cycles", **ants) < one("load_cycles", **plan)
        # once cached, a capsule costs a fraction of a packet that carries its code
        assert one("again_wire_bytes", **ants) < one("wire_bytes", **ants) \
            < one("again_wire_bytes", **plan) == one("wire_bytes", **plan)
        assert one("again_load_cycles", **ants) == 0 < one("again_load_cycles", **plan)
    assert one("peak_node_memory", workload="traceroute", protocol="plan") == 271
    # the sender's choice, where it ran: the figures of the protocol it chose for every packet
    for auto in (f for f in runs if f["protocol"] == "auto" and len(set(f["chosen"])) == 1):
        assert auto["value"] == one("wire_bytes", workload=auto["workload"],
                                    protocol=auto["chosen"][0])
    assert one("natives_exposed") == 13
    reference = one("reference_code_bytes")
    vmlets = one("vmlet_code_bytes", vmlet="plan") + one("vmlet_code_bytes", vmlet="ants")
    assert one("ratio_reference_vs_vmlets") == round(reference / vmlets, 2)
    assert one("ratio_reference_vs_vvm_router") < one("ratio_reference_vs_vmlets_and_natives") \
        < one("ratio_reference_vs_vmlets")
