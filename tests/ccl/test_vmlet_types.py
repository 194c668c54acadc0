"""Types a VMlet defines for its programs (issue 15): `type q16 = int scale 65536;` is a
nominal type in the checker (a q16 is not an int), made and read back by conversions,
computed with the VMlet's instructions, and, in the IR, the proofs and on board, the
ranged int it rests on: its overflow is an obligation like any other, refuted with a
counterexample, and a proven program runs on the real VVM without a trap."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import start_vvm

from ccl import ir
from ccl.diagnostics import CclError, Diagnostic, Source, render
from ccl.driver import Compiled, Compiler
from ccl.verify import Kind, verify_program
from missions.corot.natives import make_host
from onboard.vm.listing import listing
from onboard.vm.vvm import VVM

ROOT = Path(__file__).resolve().parents[2]
VMLETS = ROOT / "missions" / "corot" / "vmlets"
SMOOTH = ROOT / "missions" / "corot" / "configs" / "smooth_q16.ccl"
S = 65536

# Every q16 instruction of `fixed_point` on parameters the test sets (held values).
QOPS = """\
mission corot;
config qops version 1;
uses fixed_point;
param a : q16[-128..127] = q16(3, 2);
param b : q16[-128..127] = q16(-5, 4);
param y : q16[0..8191] = q16(100);
param x : q16[0..8191] = q16(200);
param w : q16[0..1] = q16(1, 4);
param p : q16 = q16(32000);
param q : q16 = q16(1000);
var prod : q16;
var step : q16[0..8191];
var sum : q16;
var diff : q16;
var whole : int[-32768..32767];
var less : int[0..1];
task t every 1 s {
    prod = qmul(a, b);
    step = qlerp(y, x, w);
    sum = qadd(p, q);
    diff = qsub(q16(-32000), q);
    whole = int(prod);
    less = 0;
    if min(a, b) < q16(0) && a > b { less = 1; }
}
"""


def tdiv(a: int, b: int) -> int:
    """Integer division truncated toward zero, as on board."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def qlerp(y: int, x: int, w: int) -> int:
    d = x - y
    dh, dl = tdiv(d, S), d - S * tdiv(d, S)
    return min(max(y + dh * w + tdiv(dl * tdiv(w, 256), 256), 0), 8191 * S)


def qmul(a: int, b: int) -> int:
    ah, bh = tdiv(a, S), tdiv(b, S)
    al, bl = a - S * ah, b - S * bh
    return ah * b + al * bh + tdiv(al, 256) * tdiv(bl, 256)


def saturate(v: int) -> int:
    return min(max(v, -(2**31)), 2**31 - 1)


def program(tmp_path: Path, text: str, name: str = "prog",
            vmlets: dict[str, str] | None = None) -> Path:
    """``text`` written as ``name.ccl`` beside a copy of `fixed_point` (and ``vmlets``)."""
    shutil.copy(VMLETS / "fixed_point.ccl", tmp_path / "fixed_point.ccl")
    for vm_name, vm_text in (vmlets or {}).items():
        (tmp_path / f"{vm_name}.ccl").write_text(vm_text, encoding="utf-8")
    path = tmp_path / f"{name}.ccl"
    path.write_text(text, encoding="utf-8")
    return path


def refusal(path: Path) -> list[Diagnostic]:
    with pytest.raises(CclError) as info:
        Compiler().compile(path)
    return list(info.value.diagnostics)


def at(d: Diagnostic) -> tuple[str, int, int]:
    assert d.span is not None
    return Path(d.span.file).name, d.span.line, d.span.col


@pytest.fixture(scope="module")
def qops(tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    return Compiler().compile(program(tmp_path_factory.mktemp("qops"), QOPS, "qops"))


@pytest.fixture(scope="module")
def qops_vm(qops: Compiled) -> VVM:
    return start_vvm(qops)


# --------------------------------------------------------------------------- accepted, run


def test_the_q16_program_is_proven_and_runs_with_the_expected_values(qops: Compiled) -> None:
    report = verify_program(qops, timeout_ms=30_000)
    assert report.status == "proven", [o.kind for o in report.refuted]
    vm = start_vvm(qops)
    out = vm.call("t")
    assert out.fault is None
    assert vm.global_value("prod") == qmul(3 * S // 2, -5 * S // 4) == -15 * S // 8
    assert vm.global_value("whole") == -1  # -1.875 truncated toward zero
    assert vm.global_value("step") == 125 * S  # 100 + (200 - 100) / 4
    assert vm.global_value("sum") == 2**31 - 1  # 32000 + 1000 saturates
    assert vm.global_value("diff") == -(2**31)
    assert vm.global_value("less") == 1


def test_in_the_ir_a_q16_is_the_ranged_int_it_rests_on(qops: Compiled) -> None:
    fp = next(v.program for v in qops.vmlets if v.program.name == "fixed_point")
    (q16,) = fp.types
    assert (q16.name, q16.vmlet, q16.lo, q16.hi, q16.scale) == (
        "q16", "fixed_point", -(2**31), 2**31 - 1, S)
    alpha = {g.name: g for g in qops.program.globals}["w"]
    assert (alpha.type.lo, alpha.type.hi, alpha.value) == (0, S, S // 4)
    assert str(alpha.type) == "q16[0..1]" and str(alpha.type.plain) == f"int[0..{S}]"
    # the image (what the board gets) holds only the range: the VVM learns no type
    g = {g.name: g for g in qops.image.globals}["w"]
    assert (g.lo, g.hi, g.value) == (0, S, S // 4)


def test_the_smoothing_filter_in_q16_follows_its_model_on_the_vvm(tmp_path: Path) -> None:
    shutil.copy(VMLETS / "photometry.ccl", tmp_path / "photometry.ccl")
    path = program(tmp_path, SMOOTH.read_text(encoding="utf-8"), "smooth_q16")
    compiled = Compiler().compile(path)
    assert verify_program(compiled, timeout_ms=30_000).status == "proven"
    host = make_host(compiled.mission, 7)
    vm = start_vvm(compiled, host=host)
    level = [0] * 100
    for _ in range(3):
        flux = [host.flux(s) for s in range(100)]
        assert vm.call("smooth").fault is None
        level = [qlerp(level[s], flux[s] // 2048 * S, S // 8) for s in range(100)]
        assert vm.array_values("level")[:100] == level
        assert vm.global_value("n_bright") == sum(v >= 4096 * S for v in level)
    assert any(level)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=st.integers(-128 * S, 127 * S), b=st.integers(-128 * S, 127 * S),
       y=st.integers(0, 8191 * S), x=st.integers(0, 8191 * S), w=st.integers(0, S),
       p=st.integers(-(2**31), 2**31 - 1), q=st.integers(-(2**31), 2**31 - 1))
def test_proven_q16_instructions_never_trap_at_adversarial_inputs(
        qops_vm: VVM, a: int, b: int, y: int, x: int, w: int, p: int, q: int) -> None:
    vm = qops_vm  # one VVM: each run sets every input and writes every output
    for name, value in dict(a=a, b=b, y=y, x=x, w=w, p=p, q=q).items():
        vm.set_global(name, value)
    out = vm.call("t")
    assert out.fault is None
    assert vm.global_value("prod") == qmul(a, b)
    assert abs(qmul(a, b) - tdiv(a * b, S)) <= 512  # within 1/128 of the exact product
    step = vm.global_value("step")
    assert step == qlerp(y, x, w)
    assert min(x, y) <= step <= max(x, y)  # the clamp is never what bounds it
    assert abs(step - (y + tdiv((x - y) * w, S))) <= 258  # within 1/256
    assert vm.global_value("sum") == saturate(p + q)


# --------------------------------------------------------------------------- refused


MIXED = """\
mission corot;
config mixed version 1;
uses fixed_point;
param a : q16 = 3;
var v : q16;
var n : int[0..100];
task t every 1 s {
    let x : q16 = q16(1, 2);
    let y = x + 1;
    n = x;
    if x > 0 { n = 1; }
    v = qmul(x, 3);
    for i in 0 .. x { }
    let m = -x;
    let k = int(x) + 1;
}
"""


def test_mixing_a_q16_with_an_int_is_refused_with_its_position(tmp_path: Path) -> None:
    diags = refusal(program(tmp_path, MIXED, "mixed"))
    assert [(d.code, at(d)[1:]) for d in diags] == [
        ("E-TYPE", (4, 17)),   # param a : q16 = 3
        ("E-TYPE", (9, 13)),   # x + 1
        ("E-TYPE", (10, 9)),   # n = x
        ("E-TYPE", (11, 8)),   # x > 0
        ("E-TYPE", (12, 17)),  # qmul(x, 3)
        ("E-TYPE", (13, 19)),  # a loop bound
        ("E-TYPE", (14, 13)),  # -x
    ]
    first, plus, store = diags[0], diags[1], diags[2]
    assert first.message == "expected a q16, found an integer (int[3..3])"
    assert "`q16(n)`" in first.hint and "`q16(n, d)`" in first.hint
    assert plus.message == "`+` does not apply to a q16 and an integer (int[1..1])"
    assert "instructions of VMlet `fixed_point` (qadd, qlerp, qmul, qsub)" in plus.hint
    assert store.message == "expected an integer (int[0..100]), found a q16"
    assert "`int(x)`" in store.hint


def test_ccl_check_shows_the_mixing_with_a_caret(tmp_path: Path) -> None:
    path = program(tmp_path, MIXED, "mixed")
    diag = refusal(path)[1]
    assert diag.span is not None
    source = Source.of(path, path.read_text(encoding="utf-8"))
    lines = render(diag, {diag.span.file: source}).splitlines()
    assert lines[0].endswith("mixed.ccl:9:13: error[E-TYPE]: `+` does not apply to a q16 "
                             "and an integer (int[1..1])")
    assert lines[2].strip() == "^^^^^"


@pytest.mark.parametrize(("text", "code", "where", "words"), [
    ("param w : q16[0..40000] = q16(0);", "E-OUT-OF-RANGE", (4, 11), "outside the range of q16"),
    ("param w : q16[0..1] = q16(2);", "E-OUT-OF-RANGE", (4, 23), "the initial value 2 (held as"),
    ("param w : q16 = q16(40000);", "E-OUT-OF-RANGE", (4, 17), "q16(40000) is outside q16"),
    ("param w : q16 = q16(1, n);", "E-NOT-CONSTANT", (4, 24), "not a constant"),
    ("param w : q17 = 0;", "E-UNKNOWN-NAME", (4, 11), "unknown type `q17`"),
    ("const q16 = 1;", "E-SHADOW", (4, 7), "already a type of VMlet `fixed_point`"),
    ("param w : int = q16;", "E-TYPE", (4, 17), "`q16` is a type, not a value"),
    ("type meters = int[0..100];", "E-PLACEMENT", (4, 1), "`type` belongs in a VMlet"),
])
def test_declarations_with_a_q16_are_checked(tmp_path: Path, text: str, code: str,
                                             where: tuple[int, int], words: str) -> None:
    head = "mission corot;\nconfig c version 1;\nuses fixed_point;\n"
    diags = refusal(program(tmp_path, head + text + "\nparam n : int[1..9] = 2;\n"))
    assert (diags[0].code, at(diags[0])[1:]) == (code, where), diags[0].message
    assert words in diags[0].message


OTHER_Q16 = """\
vmlet other version 1;
mission corot;
type q16 = int scale 256;
instr q8(n: int[0..100]) -> q16 { return n * 256; }
"""


def test_a_type_named_like_another_used_vmlets_type_is_ambiguous(tmp_path: Path) -> None:
    text = "mission corot;\nconfig c version 1;\nuses fixed_point, other;\n"
    diags = refusal(program(tmp_path, text, vmlets={"other": OTHER_Q16}))
    assert diags[0].code == "E-AMBIGUOUS" and at(diags[0]) == ("prog.ccl", 3, 19)
    assert "`q16` is defined by VMlet `fixed_point` and by VMlet `other`" in diags[0].message


def test_a_layer_may_not_redefine_a_type_below_it(tmp_path: Path) -> None:
    upper = OTHER_Q16.replace("mission corot;", "mission corot;\nuses fixed_point;")
    diags = refusal(program(tmp_path, "mission corot;\nconfig c version 1;\nuses other;\n",
                            vmlets={"other": upper}))
    assert diags[0].code == "E-SHADOW" and at(diags[0]) == ("other.ccl", 4, 6)


MID = """\
vmlet mid version 1;
mission corot;
uses fixed_point;
instr half(v: q16) -> q16 {{ return {body}; }}
"""


def test_a_layer_above_sees_q16_as_a_type_not_as_an_int(tmp_path: Path) -> None:
    # Only the VMlet that defines q16 works on the int beneath; a layer above uses its
    # instructions, and its programs see q16 through it.
    diags = refusal(program(tmp_path, "mission corot;\nconfig c version 1;\nuses mid;\n",
                            vmlets={"mid": MID.format(body="v / 2")}))
    assert diags[0].code == "E-TYPE" and at(diags[0]) == ("mid.ccl", 4, 36)
    config = """\
mission corot;
config c version 1;
uses mid;
var out : q16;
task t every 1 s { out = half(qmul(q16(3), q16(1, 2))); }
"""
    compiled = Compiler().compile(program(
        tmp_path, config, vmlets={"mid": MID.format(body="qmul(v, q16(1, 2))")}))
    vm = start_vvm(compiled)
    assert vm.call("t").fault is None and vm.global_value("out") == 3 * S // 4
    # `mid` is proven on its own: its `half` passes any q16 where qmul takes -128 .. 127
    mid = next(v for v in compiled.vmlets if v.program.name == "mid")
    refuted = verify_program(mid, timeout_ms=30_000).refuted
    assert [o.kind for o in refuted] == [Kind.ARGUMENT]
    assert refuted[0].span is not None and refuted[0].span.line == 4


# --------------------------------------------------------------------------- proofs


NAIVE = """\
vmlet naive version 1;
mission corot;
type q16 = int scale 65536;
instr qmul(a: q16, b: q16) -> q16 { return a * b / 65536; }
"""


def test_an_overflowing_q16_product_is_refuted_with_a_counterexample(tmp_path: Path) -> None:
    path = tmp_path / "naive.ccl"
    path.write_text(NAIVE, encoding="utf-8")
    report = verify_program(Compiler().compile(path), timeout_ms=30_000)
    overflow = [o for o in report.refuted if o.kind is Kind.OVERFLOW]
    assert overflow and report.status == "refuted"
    o = overflow[0]
    assert o.span is not None and (o.span.line, o.span.col) == (4, 44)
    assert o.counterexample is not None
    a, b = o.counterexample.value("a"), o.counterexample.value("b")
    assert abs(a * b) > 2**31 - 1  # the product leaves 32 bits


def test_hover_and_listings_name_the_type(qops: Compiled) -> None:
    from ccl.lsp.names import Names  # noqa: PLC0415

    hover = Names(qops.program, qops.mission).lookup("w", 1)
    assert hover is not None and "param w : q16[0..1]" in hover.detail
    q16 = Names(qops.program, qops.mission).lookup("q16", 1)
    assert q16 is not None and q16.detail == "type q16 = int scale 65536"
    assert q16.kind == "type" and "VMlet `fixed_point`" in q16.doc
    names = {g.name: str(g.type) for g in qops.program.globals if g.type.nominal}
    lines = listing(qops.image, qops.debug.local_names, names)
    assert "  g4   param w : q16[0..1] as int[0..65536] = 16384" in lines
    assert "  g0   param a : q16[-128..127] as int[-8388608..8323072] = 98304" in lines
    qmul_sig = next(p for p in qops.program.stack[0].instrs if p.name == "qmul")
    assert [str(p.type) for p in qmul_sig.params] == ["q16[-128..127]"] * 2
    assert isinstance(qmul_sig.returns, ir.IntType) and str(qmul_sig.returns) == "q16"
