"""`replaces`: the verifier holds a replacement to the contract of what it replaces (range
and worst-case cost), and names the configuration a broken one would affect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from vmlet_layers import LOW, write

from ccl.driver import Compiler
from ccl.verify import verify_program
from ccl.verify.obligations import Kind
from onboard.mission import find_mission
from onboard.vm import isa
from onboard.vm.machine import opcode_cycles

ROOT = Path(__file__).resolve().parents[3]

R_FLUX = """\
vmlet r_flux version 1;
mission corot;
instr flux(s: int[0..5999]) -> {result} replaces flux {{
    {body}
}}
"""
READS_FLUX = """\
mission corot;
config reads_flux version 1;
uses r_flux, photometry;
var last : int;
task t every 1 s {
    last = flux(3);
}
"""


def replaces_verdicts(path: Path) -> list[tuple[str, str]]:
    report = verify_program(Compiler().compile(path), timeout_ms=2000)
    return [(o.status.value, o.stated) for o in report.obligations if o.kind is Kind.REPLACES]


def test_a_wider_result_range_is_refused_naming_the_configuration(tmp_path: Path) -> None:
    write(tmp_path, "r_flux", R_FLUX.format(result="int", body="return 42;"))
    config = write(tmp_path, "reads_flux", READS_FLUX)
    proc = subprocess.run([sys.executable, "-m", "cli.ccl", "verify", str(config), "--json"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    refuted = [o for f in out["files"] for o in f["refuted"]]
    assert [o["kind"] for o in refuted] == ["replaces"]
    assert refuted[0]["file"].endswith("r_flux.ccl") and refuted[0]["line"] == 3
    assert "configuration `reads_flux`" in refuted[0]["message"]
    assert "wider than 0 .. 16777215" in refuted[0]["message"]


def flux_call_cycles() -> int:
    """What a call of the host's `flux` costs at worst: CALLN and its cost formula."""
    mission = find_mission("corot")
    return opcode_cycles(mission)[isa.CALLN] + mission.natives["flux"].worst_cost()


def test_a_replacement_within_range_and_cost_is_proven(tmp_path: Path) -> None:
    write(tmp_path, "r_flux", R_FLUX.format(result="int[0..16777215]", body="return 42;"))
    assert replaces_verdicts(write(tmp_path, "reads_flux", READS_FLUX)) == [
        ("proven", "`r_flux.flux` keeps the contract of host service `flux`: result within "
                   f"0 .. 16777215, worst case within {flux_call_cycles():,} cycles")]


def test_a_dearer_replacement_is_refused(tmp_path: Path) -> None:
    body = "let a = 0;\n    for i in 0 .. 100 { a = a + i; }\n    return min(a, 7);"
    write(tmp_path, "r_flux", R_FLUX.format(result="int[0..16777215]", body=body))
    (status, message), = replaces_verdicts(write(tmp_path, "reads_flux", READS_FLUX))
    assert status == "refuted"
    assert f"cycles exceeds {flux_call_cycles():,}" in message
    assert "configuration `reads_flux`" in message


def test_a_replacement_of_a_lower_layer_is_held_to_its_range(tmp_path: Path) -> None:
    write(tmp_path, "low", LOW.format(version=1))
    over = "vmlet over version 1;\nmission corot;\nuses low;\n" \
        "instr half(v: int[0..100000]) -> int[0..{hi}] replaces half {{ return v / 4; }}\n"
    app = "mission corot;\nconfig app2 version 1;\nuses over;\nvar out : int;\n" \
        "task t every 1 s { out = half(100); }\n"
    write(tmp_path, "over", over.format(hi=50000))
    (status, _), = replaces_verdicts(write(tmp_path, "app2", app))
    assert status == "proven"
    write(tmp_path, "over", over.format(hi=100000))
    (status, message), = replaces_verdicts(write(tmp_path, "app2", app))
    assert status == "refuted"
    assert "instruction `low.half`" in message and "wider than 0 .. 50000" in message
