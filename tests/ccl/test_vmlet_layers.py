"""VMlets as layered descriptions of a VM: name clashes (E-SHADOW, E-AMBIGUOUS, `replaces`),
VMlets that use VMlets, and what a configuration on the top layer sees and runs."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.ccl"
    path.write_text(text, encoding="utf-8")
    return path


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


def test_replaces_says_the_replacement_is_meant(tmp_path: Path) -> None:
    write(tmp_path, "r_flux", R_FLUX.format(replaces=" replaces flux"))
    compiled = Compiler().compile(write(tmp_path, "reads_flux", USES_R_FLUX))
    # the call is the VMlet's instruction, one extension opcode, not the host's native
    assert [f"{e.vmlet}.{e.instr}" for e in compiled.image.ext] == ["r_flux.flux"]
    assert "flux" not in compiled.image.natives
