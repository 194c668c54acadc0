"""Compiled images: identity, encoding, the code of the contract's programs, stack bounds and
range checks.

Stack bounds are checked against an independent simulator written here: it walks every path
of a code unit's control flow (jumps only go forward, ``FORLOOP`` is the only backward edge)
with the stack effects from ``onboard.vm.isa`` (and, for calls, from the callee's signature) and
returns the deepest operand stack any path reaches.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import compile_text

from ccl.driver import Compiled, Compiler
from onboard.mission import MissionProfile
from onboard.vm import isa
from onboard.vm.image import CodeUnit, Image, decode_image

REPO = Path(__file__).resolve().parents[2]
EXO_E1 = REPO / "missions" / "corot" / "configs" / "exo_e1.ccl"
PHOTOMETRY = REPO / "missions" / "corot" / "vmlets" / "photometry.ccl"
CASES = Path(__file__).parent / "cases"
OK_CASES = sorted(p for p in CASES.glob("*.ccl")
                  if p.read_text(encoding="utf-8-sig").startswith("// expect: ok"))


def ops(unit: CodeUnit) -> list[isa.Decoded]:
    return list(isa.decode(unit.code))


# --------------------------------------------------------------------------- stack simulator


def stack_effect(ins: isa.Decoded, image: Image, mission: MissionProfile,
                 vmlets: dict[str, Image]) -> tuple[int, int]:
    """(pops, pushes) of one instruction, calls resolved through their signatures."""
    if ins.opcode >= isa.EXT_BASE:
        ref = image.ext[ins.opcode - isa.EXT_BASE]
        owner = image if ref.vmlet == image.name else vmlets[ref.vmlet]
        body = owner.functions[next(d.function for d in owner.instrs if d.name == ref.instr)]
        return body.n_params, int(body.returns)
    info = ins.info
    if ins.opcode == isa.CALL:
        callee = image.functions[ins.operands[0]]
        return callee.n_params, int(callee.returns)
    if ins.opcode == isa.CALLN:
        native = mission.natives[image.natives[ins.operands[0]]]
        return len(native.args), int(native.result is not None)
    assert info.pops is not None and info.pushes is not None
    return info.pops, info.pushes


def simulate_max_stack(unit: CodeUnit, image: Image, mission: MissionProfile,
                       vmlets: dict[str, Image]) -> int:
    """The deepest stack reached on any path; asserts the depths are consistent."""
    code = ops(unit)
    at = {ins.offset: i for i, ins in enumerate(code)}
    depth_at: dict[int, int] = {}
    work = [(0, 0)]
    deepest = 0
    while work:
        offset, depth = work.pop()
        assert offset != len(unit.code), f"{unit.name}: a path runs off the end of the code"
        assert offset in at, f"{unit.name}: jump into the middle of an instruction (+{offset})"
        if offset in depth_at:
            assert depth_at[offset] == depth, f"{unit.name}: inconsistent depth at +{offset}"
            continue
        depth_at[offset] = depth
        ins = code[at[offset]]
        pops, pushes = stack_effect(ins, image, mission, vmlets)
        assert depth >= pops, f"{unit.name}: stack underflow at +{offset}"
        after = depth - pops + pushes
        deepest = max(deepest, depth, after)
        if ins.opcode in (isa.RET, isa.RETV):  # statements leave the stack as they found it
            assert after == 0, f"{unit.name}: returns with {after} values left at +{offset}"
        target = ins.target()
        if target is not None:
            work.append((target, after))
        if not ins.info.ends_block:
            work.append((ins.end, after))
    return deepest


def all_units(compiled: Compiled) -> list[tuple[CodeUnit, Image, dict[str, Image]]]:
    vmlets = {vm.program.name: vm.image for vm in compiled.vmlets}
    out = [(u, compiled.image, vmlets) for u in compiled.image.functions]
    for vm in compiled.vmlets:
        out += [(u, vm.image, {}) for u in vm.image.functions]
    return out


def test_simulator_finds_the_depth_of_a_known_sequence() -> None:
    # PUSH PUSH PUSH ADD ADD RETV reaches depth 3: a sanity check of the simulator itself.
    asm = isa.Assembler()
    for v in (1, 2, 3):
        asm.emit(isa.PUSH, v)
    asm.emit(isa.ADD)
    asm.emit(isa.ADD)
    asm.emit(isa.RETV)
    unit = CodeUnit("probe", 0, 0, True, 0, asm.assemble())
    image = Image(kind=1, name="probe", version=1, mission="corot")  # type: ignore[arg-type]
    mission = Compiler().mission("corot")
    assert simulate_max_stack(unit, image, mission, {}) == 3


# --------------------------------------------------------------------------- identity


def test_content_hash_is_stable_across_compilations() -> None:
    first = Compiler().compile(EXO_E1).image
    second = Compiler().compile(EXO_E1).image
    assert first.encode() == second.encode()
    assert first.content_hash == second.content_hash
    assert len(first.content_hash) == 32


def test_content_hash_changes_with_a_parameter_value(tmp_path: Path) -> None:
    text = EXO_E1.read_text(encoding="utf-8")
    original = compile_text(tmp_path, text, "exo_e1").image
    assert original.content_hash == Compiler().compile(EXO_E1).image.content_hash  # no paths
    changed_text = text.replace("param cr_k10     : int[20..100]        = 50;",
                                "param cr_k10     : int[20..100]        = 51;")
    assert changed_text != text
    changed = compile_text(tmp_path, changed_text, "exo_e1").image
    assert changed.content_hash != original.content_hash
    cr = {g.name: g.value for g in changed.globals}["cr_k10"]
    assert cr == 51


def test_config_pins_the_vmlet_hash() -> None:
    compiled = Compiler().compile(EXO_E1)
    vm = Compiler().compile(PHOTOMETRY).image
    assert compiled.image.uses[0].hash == vm.content_hash


@pytest.mark.parametrize("path", [EXO_E1, PHOTOMETRY, *OK_CASES],
                         ids=lambda p: p.name)
def test_image_round_trips(path: Path) -> None:
    compiled = Compiler().compile(path)
    for image in [compiled.image, *(vm.image for vm in compiled.vmlets)]:
        data = image.encode()
        back = decode_image(data)
        assert back == image
        assert back.encode() == data
        assert back.content_hash == image.content_hash


# --------------------------------------------------------------------------- the contract's code


def test_cosmic_filter_is_a_counted_loop_with_an_ext_opcode() -> None:
    compiled = Compiler().compile(EXO_E1)
    image = compiled.image
    unit = image.functions[image.tasks[0].function]
    assert unit.name == "cosmic_filter"
    codes = [ins.opcode for ins in ops(unit)]
    assert isa.FORPREP in codes and isa.FORLOOP in codes
    assert codes.index(isa.FORPREP) < codes.index(isa.FORLOOP)
    assert 0xC0 in codes
    assert image.ext[0].vmlet == "photometry" and image.ext[0].instr == "med3"
    assert codes.count(isa.CALLN) == 3  # flux, noise, flag
    assert codes[-1] == isa.RET
    loop = next(ins for ins in ops(unit) if ins.opcode == isa.FORLOOP)
    prep = next(ins for ins in ops(unit) if ins.opcode == isa.FORPREP)
    assert loop.target() == prep.end  # the body starts right after FORPREP
    assert prep.target() == loop.end  # and the exit right after FORLOOP


def test_disassembly_is_symbolic() -> None:
    compiled = Compiler().compile(EXO_E1)
    image = compiled.image
    index = image.tasks[0].function
    unit = image.functions[index]
    text = "\n".join(isa.disassemble(unit.code,
                                     image.names_for(unit, compiled.debug.local_names[index])))
    assert "photometry.med3" in text
    assert "CALLN    flux" in text
    assert "CALLN    noise" in text
    assert "CALL     clamp" in text
    assert "\nL1:" in text or text.startswith("L1:")
    assert "FORLOOP  s, L1" in text
    assert "LOAD_A   last1" in text
    assert "STORE_G  rejected" in text


def test_photometry_code() -> None:
    image = Compiler().compile(PHOTOMETRY).image
    med3 = image.functions[image.instrs[0].function]
    assert (med3.n_params, med3.returns) == (3, True)
    assert [i.opcode for i in ops(med3)] == [
        isa.LOAD_L, isa.LOAD_L, isa.MIN, isa.LOAD_L, isa.LOAD_L, isa.MAX, isa.LOAD_L, isa.MIN,
        isa.MAX, isa.RETV]
    assert image.on_load is not None
    on_load = [i.opcode for i in ops(image.functions[image.on_load])]
    assert on_load == [isa.ENV, isa.PUSH, isa.EQ, isa.JZ, isa.HIDE, isa.RET]
    assert image.env == ("ccd",)


# --------------------------------------------------------------------------- stack bounds


@pytest.mark.parametrize("path", [EXO_E1, PHOTOMETRY, *OK_CASES], ids=lambda p: p.name)
def test_max_stack_bounds_every_path(path: Path) -> None:
    compiled = Compiler().compile(path)
    for unit, image, vmlets in all_units(compiled):
        true_max = simulate_max_stack(unit, image, compiled.mission, vmlets)
        assert unit.max_stack >= true_max, f"{image.name}.{unit.name}"
        assert unit.max_stack <= compiled.mission.max_stack


def test_max_stack_of_known_functions() -> None:
    compiled = Compiler().compile(EXO_E1)
    image = compiled.image
    by_name = {u.name: u for u in image.functions}
    assert by_name["clamp"].max_stack == 2
    # f - m | abs | *10 | cr_k10 * noise(s) : LOAD_G + LOAD_L on top of the product = 3
    assert by_name["cosmic_filter"].max_stack == 3
    assert image.functions[image.on_apply].max_stack == 1  # type: ignore[index]
    assert image.functions[image.rules[0].function].max_stack == 2
    med3 = compiled.vmlets[0].image.functions[0]
    assert med3.max_stack == 3
    for unit, img, vmlets in all_units(compiled):
        assert unit.max_stack == simulate_max_stack(unit, img, compiled.mission, vmlets)


def test_max_stack_of_deep_expressions(tmp_path: Path) -> None:
    compiled = compile_text(tmp_path, """mission corot;
config deep version 1;
param a : int[0..10] = 1;
var out : int;
var ok : int[0..1];
task t every 1 s {
    out = a + (a + (a + (a + (a + 1))));
    if (a > 1 && a < 5) || !(a == 3) { ok = 1; }
    let b = a > 1 || a < 0;
}
""")
    unit = compiled.image.functions[0]
    assert unit.max_stack == simulate_max_stack(unit, compiled.image, compiled.mission, {})
    assert unit.max_stack == 6


# --------------------------------------------------------------------------- range checks


RANGED = """mission corot;
config ranged version 1;
param base : int[0..800] = 100;
param x : int[0..200] = 10;
var sink : int;
task t every 1 s {
    let acc : int[0..900] = base + x;
    let y : int[0..10] = 5;
    let z : int[0..1000] = base + x;
    sink = acc + y + z;
}
fn update(acc0: int[0..900], x0: int[0..100]) -> int[0..900] {
    let acc : int[0..900] = acc0;
    acc = acc + x0;
    return acc;
}
"""


def _ranges(unit: CodeUnit) -> list[tuple[int, ...]]:
    return [ins.operands for ins in ops(unit) if ins.opcode == isa.RANGE]


def test_range_check_where_the_value_is_not_proven(tmp_path: Path) -> None:
    compiled = compile_text(tmp_path, RANGED)
    by_name = {u.name: u for u in compiled.image.functions}
    # acc = base + x can reach 1000 > 900: checked once; y = 5 and z (<= 1000) are proven.
    assert _ranges(by_name["t"]) == [(0, 900)]
    # In update, `acc = acc + x0` can reach 1000: checked. `let acc = acc0` is proven, and
    # `return acc` returns a value already in int[0..900].
    assert _ranges(by_name["update"]) == [(0, 900)]


def test_range_check_placement(tmp_path: Path) -> None:
    compiled = compile_text(tmp_path, RANGED)
    unit = {u.name: u for u in compiled.image.functions}["t"]
    code = ops(unit)
    i = next(k for k, ins in enumerate(code) if ins.opcode == isa.RANGE)
    # base + x, RANGE 0..900, STORE_L acc
    assert [c.opcode for c in code[i - 3:i + 2]] == [
        isa.LOAD_G, isa.LOAD_G, isa.ADD, isa.RANGE, isa.STORE_L]
    assert code[i + 1].operands == (0,)  # slot of `acc`


def test_no_range_check_for_a_constant_in_range(tmp_path: Path) -> None:
    compiled = compile_text(tmp_path, """mission corot;
config const_let version 1;
var sink : int;
task t every 1 s {
    let y : int[0..10] = 5;
    sink = y;
}
""")
    unit = compiled.image.functions[0]
    assert _ranges(unit) == []
    assert [i.opcode for i in ops(unit)] == [
        isa.PUSH, isa.STORE_L, isa.LOAD_L, isa.STORE_G, isa.RET]


def test_range_check_on_arguments_and_results(tmp_path: Path) -> None:
    compiled = compile_text(tmp_path, """mission corot;
config args version 1;
param p : int[0..1000] = 5;
var sink : int;
fn pct(v: int[0..100]) -> int[0..50] { return v / 2; }
fn loose(v: int) -> int[0..10] { return v; }
task t every 1 s {
    sink = pct(p) + pct(7) + loose(3);
}
""")
    by_name = {u.name: u for u in compiled.image.functions}
    assert _ranges(by_name["pct"]) == []  # v / 2 is within 0..50
    assert _ranges(by_name["loose"]) == [(0, 10)]  # an unranged argument returned as ranged
    assert _ranges(by_name["t"]) == [(0, 100)]  # pct(p) only: p may be 1000; 7 is proven


DEAD = """mission corot;
config dead version 1;
uses photometry;
var sink : int[0..100];
fn pick(v: int[0..100]) -> int[0..100] {
    if v > 50 {
        return 50;
        sink = 1;                       // dead: after a return, in the same block
    }
    if v > 10 { return v; } else { return 10; }
    sink = v;                           // dead: both branches above return
    flag(v, 1);                         // dead
}
task t every 1 s {
    sink = pick(7);
    return;
    sink = 3;                           // dead
    for i in 0 .. 4 { flag(i, 2); }     // dead
}
"""


def test_statements_after_a_return_emit_no_code(tmp_path: Path) -> None:
    live = "\n".join(line for line in DEAD.splitlines() if "// dead" not in line)
    with_dead = {u.name: u for u in compile_text(tmp_path, DEAD, "dead").image.functions}
    without = {u.name: u for u in compile_text(tmp_path, live, "live").image.functions}
    assert "sink = 1" not in live and "flag(v, 1)" not in live and "sink = 3" not in live
    for name in ("pick", "t"):
        assert with_dead[name].code == without[name].code, name
    # No store to `sink` survives in `pick`, no native call in `t`, and each ends in a return.
    pick_ops = [i.opcode for i in ops(with_dead["pick"])]
    assert isa.STORE_G not in pick_ops and isa.CALLN not in pick_ops
    task_ops = [i.opcode for i in ops(with_dead["t"])]
    assert isa.CALLN not in task_ops and task_ops.count(isa.RET) == 1
    assert task_ops[-1] == isa.RET and pick_ops[-1] == isa.RETV


def test_a_compound_assignment_calls_its_index_once(tmp_path: Path) -> None:
    # `a[next()] += 1` reads and writes the element `next()` names: with the index computed
    # twice, a call with a side effect would run twice and read one element, write another.
    compiled = compile_text(tmp_path, "mission corot;\nconfig once version 1;\n"
                            "var n : int[0..7];\nvar a[8] : int[0..100];\n"
                            "fn next() -> int[0..7] { n = (n + 1) % 8; return n; }\n"
                            "task t every 1 s { a[next()] += 1; a[n] *= 2; }\n")
    task = compiled.image.functions[compiled.image.tasks[0].function]
    code = [i.info.name for i in ops(task)]
    assert code.count("CALL") == 1
    assert code.count("LOAD_G") == 2  # a plain index is simply read twice
