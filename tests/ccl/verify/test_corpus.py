"""The verifier's corpus: every ``cases/*.ccl`` file states what ``ccl verify`` must conclude.

Header comments (line numbers count them: they are part of the file)::

    // verify: proven
    // verify: refuted KIND at LINE:COL          (repeatable; [FILE:]LINE:COL)
    // verify: unknown KIND at LINE:COL
    // counterexample: NAME = VALUE, ...           (values the first refutation must show)
    // worst: task NAME = CYCLES                   (the exact worst case of an entry point)
    // timeout-ms: N                               (the solver's limit per query)

The set of (kind, place) of the refuted (or unknown) obligations must be exactly the one the
headers state. Cases for mission ``testsat`` (tight limits, a dear native) find it in
``cases/missions``; its VMlet is ``cases/vmlets/testkit.ccl``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ccl.driver import Compiled, Compiler
from ccl.verify import VerifyReport, verify_program

CASES = Path(__file__).parent / "cases"
CASE_FILES = sorted(CASES.glob("*.ccl"))

_VERIFY = re.compile(r"(proven|(refuted|unknown) ([a-z-]+) at (?:(\S+):)?(\d+):(\d+))$")


@dataclass
class Expectation:
    status: str = ""
    verdicts: set[tuple[str, str, str, int, int]] = field(default_factory=set)
    values: dict[str, int] = field(default_factory=dict)
    worst: dict[str, int] = field(default_factory=dict)
    timeout_ms: int = 5000


def expectation(path: Path) -> Expectation:
    exp = Expectation()
    for line in path.read_text().splitlines():
        m = re.match(r"//\s*(verify|counterexample|worst|timeout-ms):\s*(.*?)\s*$", line)
        if not m:
            if not line.startswith("//"):
                break
            continue
        key, value = m.groups()
        if key == "verify":
            v = _VERIFY.match(value)
            assert v, f"{path.name}: bad header {value!r}"
            if v.group(1) == "proven":
                exp.status = "proven"
                continue
            status, kind, file, ln, col = v.group(2, 3, 4, 5, 6)
            exp.status = "refuted" if "refuted" in (exp.status, status) else status
            where = (path.parent / file).name if file else path.name
            exp.verdicts.add((status, kind, where, int(ln), int(col)))
        elif key == "counterexample":
            for item in value.split(","):
                name, _, number = item.partition("=")
                exp.values[name.strip()] = int(number)
        elif key == "worst":
            name, _, cycles = value.removeprefix("task ").partition("=")
            exp.worst[name.strip()] = int(cycles)
        else:
            exp.timeout_ms = int(value)
    assert exp.status, f"{path.name}: no `// verify:` header"
    return exp


def compile_case(path: Path) -> Compiled:
    return Compiler(mission_dirs=[CASES / "missions"]).compile(path)


_REPORTS: dict[Path, tuple[Compiled, VerifyReport]] = {}


def verified(path: Path) -> tuple[Compiled, VerifyReport]:
    """The case compiled and verified (once per test session: other tests reuse it)."""
    if path not in _REPORTS:
        compiled = compile_case(path)
        _REPORTS[path] = compiled, verify_program(compiled,
                                                  timeout_ms=expectation(path).timeout_ms)
    return _REPORTS[path]


def test_the_corpus_covers_every_verdict_and_kind() -> None:
    exps = [expectation(p) for p in CASE_FILES]
    assert {e.status for e in exps} == {"proven", "refuted", "unknown"}
    kinds = {v[1] for e in exps for v in e.verdicts if v[0] == "refuted"}
    assert kinds == {"overflow", "div-zero", "index", "range", "argument", "result",
                     "native-arg", "rule", "native-frame", "cpu-share", "code-memory",
                     "data-memory", "stack", "call-depth"}


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_case(path: Path) -> None:
    exp = expectation(path)
    _, report = verified(path)
    assert report.status == exp.status
    found = {(o.status.value, o.kind.value, Path(o.span.file).name if o.span else "",
              o.span.line if o.span else 0, o.span.col if o.span else 0)
             for o in (*report.refuted, *report.unknown)}
    assert found == exp.verdicts
    if exp.values:
        first = (report.refuted or report.unknown)[0]
        assert first.counterexample is not None
        shown = {v.name: v.value for v in first.counterexample.values}
        assert {k: shown.get(k) for k in exp.values} == exp.values
    for name, cycles in exp.worst.items():
        wc = report.worst_case(name)
        assert (wc.cycles, wc.exact) == (cycles, True)
