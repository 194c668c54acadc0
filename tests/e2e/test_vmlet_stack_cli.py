"""A configuration on a three-layer VMlet stack through the real commands: `ccl verify`,
`ccl pack` (one patch carrying every layer), `vvm apply` and `vvm run` on a simulated VVM
that has none of them, and `vvm load` refusing a layer whose lower layer is not loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vmlet_layers import stack

ROOT = Path(__file__).resolve().parents[2]


def run(tool: str, *args: object) -> subprocess.CompletedProcess[str]:
    module = "cli.ccl" if tool == "ccl" else "cli.vvm"
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


def test_a_stack_is_proven_packed_uplinked_and_run(tmp_path: Path) -> None:
    app = stack(tmp_path / "src")
    verified = run("ccl", "verify", app, "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["files"][0]["status"] == "proven"
    patch = tmp_path / "app.vvmp"
    packed = run("ccl", "pack", app, "-o", patch)
    assert packed.returncode == 0, packed.stderr
    state = tmp_path / "sat"
    assert run("vvm", "init", state, "--mission", "corot").returncode == 0
    applied = run("vvm", "apply", state, patch)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    ran = run("vvm", "run", state, "--for", "2m")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    # every command reopens the state: the stack is reloaded, bottom up, each time
    status = json.loads(run("vvm", "status", state, "--json").stdout)
    assert [p["status"] for p in status["patches"]] == ["received", "staged", "active",
                                                         "committed"]
    assert [v["name"] for v in status["vmlets"]] == ["low", "mid", "top"]
    assert status["fault_count"] == 0 and status["tasks"]


def test_vvm_load_refuses_a_layer_whose_lower_layer_is_not_loaded(tmp_path: Path) -> None:
    stack(tmp_path / "src")
    top = tmp_path / "top.vvmi"
    assert run("ccl", "compile", tmp_path / "src" / "top.ccl", "-o", top).returncode == 0
    state = tmp_path / "sat"
    assert run("vvm", "init", state, "--mission", "corot").returncode == 0
    refused = run("vvm", "load", state, top)
    assert refused.returncode == 1
    assert "`top` runs on VMlet `mid` v1, which is not loaded" in refused.stderr
