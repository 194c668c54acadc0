"""The data-driven CCL corpus: every ``cases/*.ccl`` file states its own verdict.

In the style of the WebAssembly spec tests: each file starts with header comments

    // expect: ok
    // expect: E-CODE at LINE:COL
    // hint: a substring of the first diagnostic's hint      (optional, repeatable)
    // message: a substring of the first diagnostic's message (optional, repeatable)

``ok`` files must check *and* compile (to an image that round-trips through its encoding);
the others must be refused, and the FIRST diagnostic must have the code and the position
stated. Line numbers count the header lines: they are part of the file.

VMlets the cases use are found next to them (``cases/vmlets/``) or in the mission's
``vmlets/`` folder (``photometry``); data files for ``table ... from`` are in ``cases/data``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ccl.diagnostics import CclError
from ccl.driver import Compiler
from onboard.vm.image import decode_image

CASES = Path(__file__).parent / "cases"
CASE_FILES = sorted(CASES.glob("*.ccl"))

_HEADER = re.compile(r"//\s*(expect|hint|message):\s*(.*?)\s*$")
_EXPECT = re.compile(r"(ok|(E-[A-Z-]+) at (\d+):(\d+))")


@dataclass
class Expectation:
    ok: bool
    code: str = ""
    line: int = 0
    col: int = 0
    hints: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def parse_header(path: Path) -> Expectation:
    """The expectation stated by the leading ``// key: value`` comments of ``path``."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()  # cases may carry a BOM
    assert lines, f"{path.name} is empty"
    first = _HEADER.fullmatch(lines[0])
    assert first and first.group(1) == "expect", \
        f"{path.name}: the first line must be `// expect: ...`"
    m = _EXPECT.fullmatch(first.group(2))
    assert m, f"{path.name}: cannot read expectation {first.group(2)!r}"
    exp = (Expectation(ok=True) if m.group(1) == "ok"
           else Expectation(False, m.group(2), int(m.group(3)), int(m.group(4))))
    for line in lines[1:]:
        h = _HEADER.fullmatch(line)
        if h is None:
            break
        key, value = h.groups()
        assert key != "expect", f"{path.name}: more than one `expect`"
        assert value, f"{path.name}: empty `{key}`"
        (exp.hints if key == "hint" else exp.messages).append(value)
    assert not (exp.ok and (exp.hints or exp.messages)), \
        f"{path.name}: `hint`/`message` only make sense for a rejected program"
    return exp


def test_corpus_is_large_enough() -> None:
    assert len(CASE_FILES) >= 50
    verdicts = [parse_header(p) for p in CASE_FILES]
    assert sum(v.ok for v in verdicts) >= 10
    assert sum(not v.ok for v in verdicts) >= 40


def test_corpus_covers_the_required_reasons() -> None:
    codes = {parse_header(p).code for p in CASE_FILES}
    required = {
        "E-SYNTAX", "E-UNKNOWN-NAME", "E-OUT-OF-RANGE", "E-DUPLICATE", "E-RESERVED",
        "E-RECURSION", "E-WHILE", "E-NATIVE-HIDDEN", "E-ARITY", "E-MISSION", "E-UNKNOWN-VMLET",
        "E-TYPE", "E-READONLY", "E-PERIOD", "E-MISSING-RETURN", "E-RULE-VIOLATED", "E-INDEX",
        "E-DIV-ZERO", "E-PLACEMENT", "E-AMBIGUOUS",
    }
    assert required <= codes, f"no case for {sorted(required - codes)}"


def test_header_parser_rejects_a_malformed_header(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ccl"
    bad.write_text("// expect: E-SYNTAX somewhere\nmission corot;\n")
    with pytest.raises(AssertionError):
        parse_header(bad)
    good = tmp_path / "good.ccl"
    good.write_text("// expect: E-TYPE at 3:14\n// hint: a\n// message: b\nmission corot;\n")
    exp = parse_header(good)
    assert (exp.ok, exp.code, exp.line, exp.col, exp.hints, exp.messages) == \
        (False, "E-TYPE", 3, 14, ["a"], ["b"])


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.name for p in CASE_FILES])
def test_case(path: Path) -> None:
    exp = parse_header(path)
    compiler = Compiler()
    if exp.ok:
        try:
            compiled = compiler.compile(path)
        except CclError as exc:
            d = exc.diagnostics[0]
            pytest.fail(f"expected ok, got {d.code} at {d.span}: {d.message}")
        assert compiled.image.name == compiled.program.name
        assert decode_image(compiled.image.encode()) == compiled.image
        return
    with pytest.raises(CclError) as info:
        compiler.check(path)
    first = info.value.diagnostics[0]
    assert first.span is not None, f"{first.code}: {first.message} has no position"
    got = (first.code, first.span.line, first.span.col)
    assert got == (exp.code, exp.line, exp.col), (
        f"expected {exp.code} at {exp.line}:{exp.col}, got {first.code} at "
        f"{first.span.line}:{first.span.col}: {first.message} (hint: {first.hint})")
    assert Path(first.span.file).name == path.name
    for text in exp.hints:
        assert text in first.hint, f"hint {first.hint!r} lacks {text!r}"
    for text in exp.messages:
        assert text in first.message, f"message {first.message!r} lacks {text!r}"
