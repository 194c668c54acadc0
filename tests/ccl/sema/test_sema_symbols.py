"""Typed symbols: what each module-level name of a checked file stands for, and the entry
point ``ccl.sema.analyze`` (which goes through ``ccl.sema.parse``, as benchmarks time it)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ccl import ir, sema
from ccl.diagnostics import Source
from ccl.driver import Compiler
from ccl.sema.analyzer import Analyzer
from ccl.sema.symbols import (
    ArraySymbol,
    ConstSymbol,
    DataSymbol,
    GlobalSymbol,
    ModuleScope,
    ProcSymbol,
)
from ccl.syntax import parse

_CONFIG = """\
mission corot;
config typed version 3;
const LIMIT = 7;
param gain : int[1..LIMIT] = 2;
var count : int[0..100];
var history[4] : int[0..9];
table weights[2] : int[0..9] = [1, 2];
fn twice(v: int[0..9]) -> int { return v * 2; }
task tick every 100 ms { count = min(count + twice(weights[0]) * gain, 100); }
"""


def _analyzer(tmp_path: Path, text: str) -> Analyzer:
    path = tmp_path / "typed.ccl"
    path.write_text(text, encoding="utf-8")
    source = Source.of(path, text)
    compiler = Compiler()
    analyzer = Analyzer(source, parse(source), compiler.mission, lambda n, s: pytest.fail(n))
    analyzer.run()
    return analyzer


def test_each_name_has_the_symbol_of_what_it_is(tmp_path: Path) -> None:
    symbols = _analyzer(tmp_path, _CONFIG).module.symbols
    assert isinstance(symbols["LIMIT"], ConstSymbol)
    gain = symbols["gain"]
    assert isinstance(gain, GlobalSymbol) and gain.glob.kind is ir.GlobalKind.PARAM
    assert gain.glob.value == 2 and gain.glob.type == ir.IntType(1, 7)
    count = symbols["count"]
    assert isinstance(count, GlobalSymbol) and count.glob.writable
    history, weights = symbols["history"], symbols["weights"]
    assert isinstance(history, ArraySymbol) and history.array.kind is ir.ArrayKind.VAR
    assert isinstance(weights, ArraySymbol) and weights.array.values == (1, 2)
    assert isinstance(symbols["twice"], ProcSymbol) and symbols["twice"].kind == "fn"
    assert isinstance(symbols["tick"], ProcSymbol) and symbols["tick"].kind == "task"
    # The kind a symbol reports is the declaration's keyword, before and after analysis.
    assert [symbols[n].kind for n in ("LIMIT", "gain", "count", "history", "weights")] == \
        ["const", "param", "var", "var", "table"]


def test_symbols_are_immutable(tmp_path: Path) -> None:
    gain = _analyzer(tmp_path, _CONFIG).module.symbols["gain"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        gain.glob = gain.glob  # type: ignore[misc]


def test_messages_name_kinds_as_declared() -> None:
    module = ModuleScope()
    module.symbols["p"] = DataSymbol("param", None)
    module.symbols["t"] = DataSymbol("table", None)
    assert module.kind_word("p") == "a parameter"
    assert module.kind_word("t") == "a table"
    assert module.kind_word("nothing") == "a name"


def test_analyze_parses_through_sema_parse(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/compile.py times parsing by replacing ``ccl.sema.parse``."""
    parsed: list[str] = []
    original = sema.parse

    def counting(source: Source, **options):  # type: ignore[no-untyped-def]
        parsed.append(Path(source.path).name)
        return original(source, **options)  # pack_bodies

    monkeypatch.setattr(sema, "parse", counting)
    path = tmp_path / "typed.ccl"
    path.write_text(_CONFIG, encoding="utf-8")
    program = Compiler().check(path)
    assert parsed == ["typed.ccl"]
    assert program.name == "typed" and program.version == 3
    assert [g.name for g in program.globals] == ["gain", "count"]
