"""The nesting limits of ``ccl.limits``: programs at the limits go through the parser, the
checker, code generation and the verifier within half of ``RECURSION_LIMIT`` Python frames
(so the limit has a margin of two); one level more is refused with E-TOO-DEEP (the cases
``too_deep_*.ccl`` of the corpus)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ccl import limits
from ccl.diagnostics import CclError
from ccl.driver import Compiler
from ccl.limits import MAX_BRACKETS, MAX_NESTING, recursion_headroom
from ccl.verify.obligations import Kind
from ccl.verify.program import verify_program

HEADER = "mission corot;\nconfig deep version 1;\nvar v : int;\nvar w : int[0..10];\n"


def _chain(n: int) -> str:
    """Functions f0 .. f{n-1}, each calling the one before: f{n-1} nests n levels."""
    return "".join(f"fn f{i}(a: int) -> int {{ return {f'f{i - 1}(a)' if i else 'a'}; }}\n"
                   for i in range(n))


# Programs at the limits: (name, declarations, task body). The deepest point of each is
# exactly MAX_NESTING levels deep, or its brackets MAX_BRACKETS deep.
AT_THE_LIMITS = [
    ("brackets", "", "v = " + "(" * (MAX_BRACKETS - 1) + "w" + ")" * (MAX_BRACKETS - 1) + ";"),
    ("nested_ifs", "", "if w == 0 { " * (MAX_BRACKETS - 1) + "v = 1;" + " }" * (MAX_BRACKETS - 1)),
    ("flat_sum", "", "v = " + " + ".join(["w"] * MAX_NESTING) + ";"),
    ("unary_minus", "", "v = " + "- " * (MAX_NESTING - 1) + "w;"),
    ("and_chain", "", "if " + " && ".join(["w == 1"] * (MAX_NESTING - 2)) + " { v = 2; }"),
    ("else_if_chain", "", "if w == 0 { v = 0; }" + "".join(
        f" else if w == {i % 10} {{ v = {i}; }}" for i in range(1, MAX_NESTING - 2))),
    ("call_chain", _chain(MAX_NESTING - 1), f"v = f{MAX_NESTING - 2}(w);"),
]


def _write(tmp_path: Path, decls: str, body: str) -> Path:
    path = tmp_path / "deep.ccl"
    path.write_text(HEADER + decls + "task t every 1 s {\n" + body + "\n}\n")
    return path


@pytest.fixture
def half_headroom(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the stages raise Python's recursion limit to half of RECURSION_LIMIT only."""
    monkeypatch.setattr(limits, "RECURSION_LIMIT", limits.RECURSION_LIMIT // 2)


@pytest.mark.parametrize(("name", "decls", "body"), AT_THE_LIMITS,
                         ids=[c[0] for c in AT_THE_LIMITS])
def test_the_front_end_compiles_programs_at_the_limits(
        tmp_path: Path, half_headroom: None, name: str, decls: str, body: str) -> None:
    before = sys.getrecursionlimit()
    compiled = Compiler().compile(_write(tmp_path, decls, body))
    assert compiled.image.tasks[0].name == "t"
    assert sys.getrecursionlimit() == before  # the headroom is given back


@pytest.mark.parametrize("name", ["unary_minus", "call_chain"])
def test_the_verifier_walks_programs_at_the_limits(
        tmp_path: Path, half_headroom: None, name: str) -> None:
    # The verifier's walks take the most frames per level on these two (a unary operator
    # and an inlined call); it runs under the headroom the `ccl` command gives it.
    _, decls, body = next(c for c in AT_THE_LIMITS if c[0] == name)
    compiled = Compiler().compile(_write(tmp_path, decls, body))
    with recursion_headroom():
        report = verify_program(compiled, timeout_ms=5000)
    if name == "unary_minus":  # -w for w in 0 .. 10 never overflows
        assert report.status == "proven"
    else:  # 1023 nested calls: the mission allows 16 (and nothing else is wrong)
        assert {o.kind for o in report.refuted} == {Kind.CALL_DEPTH}


def test_one_level_more_is_refused(tmp_path: Path) -> None:
    body = "v = " + "- " * MAX_NESTING + "w;"
    with pytest.raises(CclError) as info:
        Compiler().check(_write(tmp_path, "", body))
    first = info.value.diagnostics[0]
    assert first.code == "E-TOO-DEEP"
    assert first.span is not None and first.span.line == 6
    assert str(MAX_NESTING) in first.message + first.hint
