"""VMlets as layered descriptions of a VM: name clashes (E-SHADOW, E-AMBIGUOUS, `replaces`),
VMlets that use VMlets, and what a configuration on the top layer sees and runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from vmlet_layers import APP, LOW, stack, write

from ccl.diagnostics import CclError
from ccl.driver import Compiler

R_FLUX = """\
vmlet r_flux version 1;
mission corot;
instr flux(s: int[0..5999]) -> int[0..16777215]{replaces} {{
    return 42;
}}
"""

USES_R_FLUX = """\
mission corot;
config reads_flux version 1;
uses r_flux, photometry;
var last : int[0..16777215];
task t every 1 s {
    last = flux(3);
}
"""


def refusal(path: Path) -> CclError:
    with pytest.raises(CclError) as info:
        Compiler().compile(path)
    return info.value


def test_an_instruction_named_like_a_host_service_is_refused_where_it_is_defined(
        tmp_path: Path) -> None:
    # Found by trying it: `flux(3)` ran r_flux's `flux` (42) instead of the host's, silently.
    vmlet = write(tmp_path, "r_flux", R_FLUX.format(replaces=""))
    config = write(tmp_path, "reads_flux", USES_R_FLUX)
    first = refusal(config).diagnostics[0]
    assert first.code == "E-SHADOW"
    assert first.span is not None and Path(first.span.file) == vmlet
    assert (first.span.line, first.span.col) == (3, 7)
    assert "host service `flux`" in first.message
    assert "replaces flux" in first.hint


def test_ccl_check_shows_where_the_shadowing_is_and_where_it_came_in(tmp_path: Path) -> None:
    write(tmp_path, "r_flux", R_FLUX.format(replaces=""))
    write(tmp_path, "reads_flux", USES_R_FLUX)
    proc = subprocess.run([sys.executable, "-m", "cli.ccl", "check", "reads_flux.ccl"],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                               "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == ("r_flux.ccl:3:7: error[E-SHADOW]: instruction `flux` takes the name "
                        "of the host service `flux`")
    assert lines[2] == " " * len("   3 | instr ") + "^^^^"  # under the instruction's name
    assert "  note: in VMlet `r_flux`, used at reads_flux.ccl:3:6" in lines


def test_replaces_says_the_replacement_is_meant(tmp_path: Path) -> None:
    write(tmp_path, "r_flux", R_FLUX.format(replaces=" replaces flux"))
    compiled = Compiler().compile(write(tmp_path, "reads_flux", USES_R_FLUX))
    # the call is the VMlet's instruction, one extension opcode, not the host's native
    assert [f"{e.vmlet}.{e.instr}" for e in compiled.image.ext] == ["r_flux.flux"]
    assert "flux" not in compiled.image.natives


def test_a_configuration_on_the_top_layer_sees_every_layer(tmp_path: Path) -> None:
    compiled = Compiler().compile(stack(tmp_path))
    # loaded lowest first; each image pins only the layer just below it
    assert [v.program.name for v in compiled.vmlets] == ["low", "mid", "top"]
    assert [u.name for u in compiled.image.uses] == ["top"]
    by_name = {v.image.name: v.image for v in compiled.vmlets}
    assert [u.name for u in by_name["top"].uses] == ["mid"]
    assert by_name["mid"].uses[0].hash == by_name["low"].content_hash
    assert [f"{e.vmlet}.{e.instr}" for e in compiled.image.ext] == ["top.score", "low.clamp"]


def test_a_layer_hides_what_the_layer_below_exposes(tmp_path: Path) -> None:
    stack(tmp_path)
    app = write(tmp_path, "app", APP.format(vmlet="top").replace("flux(s), 100000",
                                                                  "noise(s), 100000"))
    first = refusal(app).diagnostics[0]
    assert first.code == "E-NATIVE-HIDDEN"
    assert "VMlet `mid` hides it" in first.message


def test_a_cycle_of_vmlets_is_refused_with_the_cycle_shown(tmp_path: Path) -> None:
    write(tmp_path, "a", "vmlet a version 1;\nmission corot;\nuses b;\n")
    write(tmp_path, "b", "vmlet b version 1;\nmission corot;\nuses c;\n")
    write(tmp_path, "c", "vmlet c version 1;\nmission corot;\nuses a;\n")
    first = refusal(tmp_path / "a.ccl").diagnostics[0]
    assert first.code == "E-CYCLE"
    assert "a -> b -> c -> a" in first.message
    assert first.span is not None and Path(first.span.file).name == "c.ccl"
    assert (first.span.line, first.span.col) == (3, 6)


def test_an_instruction_named_like_one_below_needs_replaces(tmp_path: Path) -> None:
    write(tmp_path, "low", LOW.format(version=1))
    over = write(tmp_path, "over", "vmlet over version 1;\nmission corot;\nuses low;\n"
                 "instr half(v: int[0..100000]) -> int[0..50000]{r} {{ return v / 4; }}\n")
    over.write_text(over.read_text().format(r=""))
    first = refusal(over).diagnostics[0]
    assert (first.code, first.span.line if first.span else 0) == ("E-SHADOW", 4)
    assert "`low.half`" in first.message and "replaces half" in first.hint
    over.write_text(over.read_text().replace("-> int[0..50000]", "-> int[0..50000] "
                                             "replaces half"))
    app = write(tmp_path, "app2", "mission corot;\nconfig app2 version 1;\nuses over;\n"
                "var out : int[0..50000];\ntask t every 1 s { out = half(100); }\n")
    compiled = Compiler().compile(app)
    # the replacement is what the programs on `over` call
    assert [f"{e.vmlet}.{e.instr}" for e in compiled.image.ext] == ["over.half"]
