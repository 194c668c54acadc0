"""What ``ccl lsp`` answers about names (``ccl.lsp.names``), on a configuration that runs
on a three-layer VMlet stack (``vmlet_layers``): instructions offered through the layers,
with the layer defining them, and natives with the layer exposing them."""

from __future__ import annotations

from pathlib import Path

from vmlet_layers import stack

from ccl.lsp.document import FrontEnd
from ccl.lsp.names import Names, word_at


def test_names_through_a_vmlet_stack(tmp_path: Path) -> None:
    app = stack(tmp_path)
    checked = FrontEnd().check(app, app.read_text())
    assert checked.diagnostics == () and checked.program is not None
    names = Names(checked.program, checked.mission)
    line = next(i for i, t in enumerate(app.read_text().splitlines()) if "raw = clamp" in t)
    clamp = names.lookup("clamp", line + 1)
    assert clamp is not None and clamp.kind == "instr"
    assert clamp.detail == "instr low.clamp(v: int[0..16777215], hi: int[0..100000]) -> " \
                           "int[0..100000]"
    assert clamp.span is not None and Path(clamp.span.file).name == "low.ccl"
    score = names.lookup("score", line + 1)
    assert score is not None and "VMlet `top`" in score.doc
    flux = names.lookup("flux", line + 1)
    assert flux is not None and "exposed by VMlet `low`" in flux.doc
    visible = {n.name for n in names.visible(line + 1)}
    assert {"clamp", "half", "level", "score", "flux", "s", "out", "raw"} <= visible
    assert "noise" not in visible  # `mid` hides it
    assert word_at(app.read_text(), line, app.read_text().splitlines()[line].index("clamp")
                   + 2) == ("clamp", app.read_text().splitlines()[line].index("clamp"))
