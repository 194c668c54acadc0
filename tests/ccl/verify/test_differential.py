"""Differential test: the verifier against the VVM on 1,000 generated programs.

Each program (a configuration with ranged parameters, a state variable and array, a table, a
function with ranged arguments and result, and one task mixing arithmetic, indexing, calls,
natives, ``if``/``&&``/``||``, loops and early returns) is verified, then run once on the VVM
with random values for everything the verifier quantifies over. The two must agree:

* a run that traps belongs to a refuted program, and traps the way one of its refuted
  obligations says (proven never traps);
* a run that does not trap stays within the task's proven worst-case bound;
* every refuted safety obligation whose counterexample is exact (values at the start of the
  run) traps when replayed on the VVM.

Deterministic (``derandomize``): the same 1,000 programs every run.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from verify_replay import TRAP_OF, run, unit_of

from ccl.diagnostics import CclError
from ccl.driver import Compiler
from ccl.verify import Replay, Status, verify_program

EXAMPLES = 1000


@dataclass(frozen=True)
class Generated:
    text: str
    replay: Replay  # random values for the run


class _Writer:
    """Writes one random program, drawing from hypothesis."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.n = 0
        self.locals: list[str] = []  # readable
        self.assignable: list[str] = []
        self.in_function = False

    def fresh(self, stem: str) -> str:
        self.n += 1
        return f"{stem}{self.n}"

    def pick(self, options: list[str]) -> str:
        return self.draw(st.sampled_from(options))

    def index(self, depth: int, length: int) -> str:
        e = self.expr(depth + 1)
        # Mostly clamped: unchecked indices are the commonest refutation, and proven
        # programs must be well represented too.
        if e.isdigit() or e.startswith("(-") or self.draw(st.integers(0, 3)) > 0:
            return f"min(max({e}, 0), {length - 1})"  # (a constant must be in bounds)
        return e

    def atom(self, depth: int) -> str:
        kinds = ["lit", "lit", "param", "var", "table", "array", "native"]
        kind = self.pick(kinds + ["local"] * 2 if self.locals else kinds)
        if kind == "lit":
            v = self.draw(st.integers(-5, 20))
            return str(v) if v >= 0 else f"({v})"
        if kind == "param":
            return self.pick(["p0", "p1"])
        if kind == "var":
            return "v0"
        if kind == "table":
            return f"t0[{self.index(depth, 5)}]"
        if kind == "array":
            return f"a0[{self.index(depth, 4)}]"
        if kind == "native":
            return "noise(3)" if self.draw(st.booleans()) else f"noise({self.index(depth, 6000)})"
        return self.pick(self.locals)

    def expr(self, depth: int = 0) -> str:
        if depth >= 2 or self.draw(st.integers(0, 2)) == 0:
            return self.atom(depth)
        kind = self.pick(["bin", "bin", "bin", "minmax", "abs"]
                         + ([] if self.in_function else ["call"]))
        if kind == "bin":
            op = self.pick(["+", "+", "-", "-", "*", "/", "%"])
            # Mostly simple right operands for * / %: products and quotients of unknowns are
            # what makes bit-vector queries slow, and a few of them cover the semantics.
            simple = op in "*/%" and self.draw(st.integers(0, 3)) > 0
            right = self.pick(["p0", "p1", "2", "3", "7", "(-4)"]) if simple \
                else self.expr(depth + 1)
            return f"({self.expr(depth + 1)} {op} {right})"
        if kind == "minmax":
            return f"{self.pick(['min', 'max'])}({self.expr(depth + 1)}, {self.expr(depth + 1)})"
        if kind == "abs":
            return f"abs({self.expr(depth + 1)})"
        return f"f({self.expr(depth + 1)}, {self.expr(depth + 1)})"

    def cond(self) -> str:
        c = f"{self.expr(1)} {self.pick(['<', '<=', '==', '!=', '>', '>='])} {self.expr(1)}"
        join = self.pick(["", "", "&&", "||", "!"])
        if join == "!":
            return f"!({c})"
        if join:
            c = f"{c} {join} {self.expr(1)} < {self.expr(1)}"
        return c

    def block(self, depth: int, indent: str, n_max: int = 3) -> list[str]:
        saved = list(self.locals), list(self.assignable)
        out = [line for _ in range(self.draw(st.integers(1, n_max)))
               for line in self.stmt(depth, indent)]
        self.locals, self.assignable = saved
        return out

    def stmt(self, depth: int, indent: str) -> list[str]:
        kinds = ["let", "ranged", "var", "clamp", "arr"] + (["if", "for"] if depth < 2 else [])
        kinds += ["return"] if depth > 0 else []
        kind = self.pick(kinds + (["assign"] if self.assignable else []))
        if kind in ("let", "ranged"):
            name = self.fresh("x")
            ty = " : int[-100..100]" if kind == "ranged" else ""
            value = self.expr()
            if ty and self.draw(st.booleans()):
                value = f"min(max({value}, -100), 100)"  # as careful code would
            line = f"{indent}let {name}{ty} = {value};"
            self.locals.append(name)
            self.assignable.append(name)
            return [line]
        if kind == "assign":
            return [f"{indent}{self.pick(self.assignable)} = {self.expr()};"]
        if kind == "var":
            return [f"{indent}v0 = {self.expr()};"]
        if kind == "clamp":
            return [f"{indent}v0 = min(max({self.expr()}, 0), 1000);"]
        if kind == "arr":
            return [f"{indent}a0[{self.index(1, 4)}] = min(max({self.expr()}, -50), 50);"]
        if kind == "return":
            return [f"{indent}return {self.expr()};" if self.in_function else f"{indent}return;"]
        if kind == "if":
            lines = [f"{indent}if {self.cond()} {{", *self.block(depth + 1, indent + "    ")]
            if self.draw(st.booleans()):
                lines += [f"{indent}}} else {{", *self.block(depth + 1, indent + "    ")]
            return [*lines, f"{indent}}}"]
        i = self.fresh("i")
        hi = self.pick(["p0", "4", "p0 + 1"])
        self.locals.append(i)
        body = self.block(depth + 1, indent + "    ")
        self.locals.remove(i)
        return [f"{indent}for {i} in 0 .. {hi} {{", *body, f"{indent}}}"]


@st.composite
def generated(draw: st.DrawFn) -> Generated:
    w = _Writer(draw)
    p0_hi = draw(st.sampled_from([3, 10, 100]))
    p1_lo, p1_hi = draw(st.sampled_from([(-10, 10), (0, 1000), (1, 50), (-100000, 100000)]))
    table = [draw(st.integers(0, 9)) for _ in range(5)]
    w.locals, w.in_function = ["a", "b"], True
    fbody = w.block(1, "    ", 2)
    fret = w.expr()
    w.locals, w.in_function = [], False
    tbody = w.block(0, "    ", 4)
    text = "\n".join([
        "mission corot;",
        "config gen version 1;",
        "uses photometry;",
        f"param p0 : int[0..{p0_hi}] = 1;",
        f"param p1 : int[{p1_lo}..{p1_hi}] = {max(p1_lo, 0)};",
        "var v0 : int[0..1000];",
        "var a0[4] : int[-50..50];",
        f"table t0[5] : int[0..9] = [{', '.join(map(str, table))}];",
        "fn f(a: int[-100..100], b: int) -> int[-1000..1000] {",
        *fbody,
        f"    return {fret};",
        "}",
        "task t every 1 s {",
        *tbody,
        "}",
        "",
    ])
    values = (("p0", draw(st.integers(0, p0_hi))), ("p1", draw(st.integers(p1_lo, p1_hi))),
              ("v0", draw(st.integers(0, 1000))))
    a0 = tuple((k, draw(st.integers(-50, 50))) for k in range(4))
    replay = Replay(globals=values, arrays=(("a0", a0, 0),),
                    natives=(("noise", draw(st.integers(0, 65535))),))
    return Generated(text, replay)


@pytest.fixture(scope="module")
def workspace() -> Iterator[tuple[Compiler, Path]]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Compiler(), Path(tmp) / "gen.ccl"


def test_the_verifier_agrees_with_the_vvm_on_generated_programs(
        workspace: tuple[Compiler, Path]) -> None:
    compiler, path = workspace
    seen: Counter[str] = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(generated())
    def check(g: Generated) -> None:
        path.write_text(g.text)
        try:
            compiled = compiler.compile(path)
        except CclError:
            assume(False)  # e.g. a constant division by zero: the front end's business
            return
        report = verify_program(compiled, timeout_ms=500)
        seen[report.status] += 1
        traps = {TRAP_OF[o.kind] for o in report.refuted if o.kind.is_safety}
        open_ = {TRAP_OF[o.kind] for o in report.unknown if o.kind.is_safety}
        out = run(compiled, "t", g.replay)
        if out.fault is not None:
            # never proven: a trap is one a refuted (or undecided) obligation names
            assert report.status != Status.PROVEN.value, g.text
            assert out.fault.code in traps | open_, (g.text, out.fault)
        else:
            assert out.cycles <= report.worst_case("t").bound, g.text
        for o in report.refuted:
            cex = o.counterexample
            if o.kind.is_safety and cex is not None and cex.replay.exact \
                    and unit_of(o.where) == "t":
                seen["replayed"] += 1
                replayed = run(compiled, "t", cex.replay)
                assert replayed.fault is not None and replayed.fault.code in traps, \
                    (g.text, o, replayed)

    check()
    assert seen["proven"] + seen["refuted"] + seen["unknown"] >= EXAMPLES
    # Both verdicts must be well represented, or the test proves little. (About a fifth of
    # the programs are proven; which programs are drawn shifts with what else the test
    # session imported, so the bound keeps a margin.)
    assert seen["proven"] >= EXAMPLES // 8 and seen["refuted"] >= EXAMPLES // 8, seen
    assert seen["replayed"] >= EXAMPLES // 5, seen
