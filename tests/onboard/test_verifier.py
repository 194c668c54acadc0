"""The load-time bytecode verifier: a corpus of assembled cases, every program the compiler
produces, and hostile bytecode (property-based).

The corpus (``verifier_cases/*.vasm``) is in the style of the WebAssembly spec tests: each
file is one image, written in assembly, whose header states the verdict::

    # what the case shows (free text)
    # expect: ok | REASON-CODE
    # at: UNIT [+OFFSET]                   (rejections: where; an image-level rule: `test`)
    # max_stack: UNIT N                    (ok cases, optional: facts the verifier returns)
    # depth: UNIT D D - D ...              (stack depth before each instruction; - dead)

and then directives and code::

    .kind config|vmlet                     (default config)
    .limits stack=N call_depth=N code_bytes=N data_bytes=N locals=N frame_budget=N
    .natives NAME ...    .env KEY ...      (import tables)
    .ext VMLET.INSTR ...                   (extension opcodes 0, 1, ...)
    .uses VMLET[@VERSION] ...              (`kit` is loaded; any other name is not)
    .hidden VMLET NATIVE ...               (natives the VMlet's `on load` has hidden)
    .global NAME rw|ro LO HI VALUE         (replaces the default globals)
    .exposes NATIVE ...  .hides NATIVE ... (a VMlet's)
    .task UNIT [PERIOD_MS]  .rule UNIT  .on_apply UNIT  .on_load UNIT  .instr UNIT
    .unit NAME [params=N] [locals=N] [returns=1] [stack=N]
    LABEL:
        MNEMONIC OPERAND, ...              (EXTk for extension opcode k; a jump operand is
    .bytes HEX ...                          a label or a raw distance; raw bytes end a unit)

Every case runs against the same harness, so that the files stay short:

* the target is the CoRoT mission's natives and environment with small limits: stack 16,
  call depth 4, code 4096 bytes, data 4096 bytes, 64 locals;
* a configuration (image `test`) uses the VMlet `kit` (instructions `med3(a, b, c)`,
  `inc(v)`, `deep(v)` whose body makes one call; exposes `flux` and `flag`, hides
  `heater_set`); it has globals `state` (writable, 0..100) and `param` (read-only, 0..100,
  = 64), arrays `buf` (writable, 8 x 0..255) and `table` (read-only, 8 x 0..255), native
  imports `flux`, `flag`, `heater_set`, environment import `ccd` and extension opcodes
  `kit.med3`, `kit.inc`;
* a VMlet (image `test`) has the same native and environment imports, exposes `flux` and
  `flag`, hides `heater_set`, and no extension opcodes.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ccl.driver import Compiler
from onboard.mission import MissionProfile, find_mission
from onboard.vm import isa, reference
from onboard.vm.assembler import assemble
from onboard.vm.binding import Bound, ExtBinding, bind_natives, ext_fixed_cost
from onboard.vm.faults import Trap
from onboard.vm.image import (
    Array,
    CodeUnit,
    ExtRef,
    Global,
    Image,
    ImageError,
    ImageKind,
    InstrDef,
    Rule,
    Task,
    VmletRef,
    decode_image,
)
from onboard.vm.machine import opcode_cycles
from onboard.vm.verifier import REASONS, ImageFacts, Target, VerifyError, verify_image

REPO = Path(__file__).resolve().parents[2]
CASES = Path(__file__).parent / "verifier_cases"
CASE_FILES = sorted(CASES.glob("*.vasm"))
CCL_CASES = REPO / "tests" / "ccl" / "cases"

PROFILE: MissionProfile = find_mission("corot")
HARNESS = dataclasses.replace(Target.of(PROFILE), max_stack=16, max_call_depth=4,
                              code_bytes=4096, data_bytes=4096, max_locals=64)

PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- assembling cases


def _kit() -> Image:
    """The VMlet every harness configuration uses."""
    med3 = assemble(["LOAD_L 0", "LOAD_L 1", "MIN", "LOAD_L 0", "LOAD_L 1", "MAX", "LOAD_L 2",
                     "MIN", "MAX", "RETV"])
    inc = assemble(["LOAD_L 0", "PUSH 1", "ADD", "RETV"])
    deep = assemble(["LOAD_L 0", "CALL 3", "RETV"])
    return Image(
        kind=ImageKind.VMLET, name="kit", version=1, mission="corot",
        natives=("flux", "flag"), exposes=("flux", "flag"), hides=("heater_set",),
        functions=(CodeUnit("med3", 3, 3, True, 3, med3), CodeUnit("inc", 1, 1, True, 2, inc),
                   CodeUnit("deep", 1, 1, True, 1, deep),
                   CodeUnit("twice", 1, 1, True, 2, assemble(["LOAD_L 0", "DUP", "ADD",
                                                              "RETV"]))),
        instrs=(InstrDef("med3", 0), InstrDef("inc", 1), InstrDef("deep", 2)),
    )


KIT = _kit()


@dataclass
class Case:
    """One parsed ``.vasm`` file: the image, how to verify it, and what to expect."""

    image: Image
    target: Target
    hidden: dict[str, tuple[str, ...]]
    expect: str
    at: tuple[str, int | None] | None
    facts: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> unit -> text


@dataclass
class _Unit:
    name: str
    params: int = 0
    locals: int | None = None
    returns: bool = False
    stack: int | None = None
    lines: list[str] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)


_FACT_KINDS = ("max_stack", "depth")
_LIMIT_FIELDS = {"stack": "max_stack", "call_depth": "max_call_depth",
                 "code_bytes": "code_bytes", "data_bytes": "data_bytes",
                 "locals": "max_locals", "frame_budget": "frame_budget"}


def load_case(path: Path) -> Case:
    """Parse one ``.vasm`` file into the image it describes (see the module docstring)."""
    header: dict[str, str] = {}
    facts: dict[str, dict[str, str]] = {}
    directives: list[tuple[str, list[str]]] = []
    units: list[_Unit] = []
    for raw_line in path.read_text(encoding="utf-8").splitlines():
        line = raw_line.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = re.fullmatch(r"#\s*([a-z_]+):\s*(.*)", line)
            if m and m.group(1) in _FACT_KINDS:
                unit, _, value = m.group(2).partition(" ")
                facts.setdefault(m.group(1), {})[unit] = value.strip()
            elif m and m.group(1) in ("expect", "at"):
                assert m.group(1) not in header, f"{path.name}: two `{m.group(1)}` lines"
                header[m.group(1)] = m.group(2).strip()
            continue
        if line.startswith(".unit"):
            words = line.split()
            unit = _Unit(words[1])
            for word in words[2:]:
                key, _, value = word.partition("=")
                assert key in ("params", "locals", "returns", "stack"), f"{path.name}: {word}"
                setattr(unit, key, bool(int(value)) if key == "returns" else int(value))
            units.append(unit)
        elif line.startswith(".bytes"):
            units[-1].raw += bytes.fromhex("".join(line.split()[1:]))
        elif line.startswith("."):
            words = line.split()
            directives.append((words[0][1:], words[1:]))
        else:
            assert units, f"{path.name}: code before the first .unit"
            assert not units[-1].raw, f"{path.name}: code after .bytes in {units[-1].name}"
            units[-1].lines.append(line)

    assert "expect" in header, f"{path.name}: no `# expect:` line"
    expect = header["expect"]
    assert expect == "ok" or expect in REASONS, f"{path.name}: unknown reason {expect!r}"
    assert (expect == "ok") == ("at" not in header), \
        f"{path.name}: a rejection needs `# at:`, an ok case has none"
    assert expect != "ok" or not facts or set(facts) <= set(_FACT_KINDS)
    at = None
    if "at" in header:
        m = re.fullmatch(r"(\S+)(?: \+(\d+))?", header["at"])
        assert m, f"{path.name}: cannot read `at: {header['at']}`"
        at = (m.group(1), int(m.group(2)) if m.group(2) else None)

    kind = ImageKind.CONFIG
    for name, args in directives:
        if name == "kind":
            kind = {"config": ImageKind.CONFIG, "vmlet": ImageKind.VMLET}[args[0]]
    index = {u.name: i for i, u in enumerate(units)}

    def unit_ref(word: str) -> int:
        return int(word) if word.isdigit() else index[word]

    target = HARNESS
    config = kind == ImageKind.CONFIG
    fields_: dict[str, object] = {
        "natives": ("flux", "flag", "heater_set"), "env": ("ccd",),
        "ext": (ExtRef("kit", "med3"), ExtRef("kit", "inc")) if config else (),
        "uses": (VmletRef("kit", KIT.version, KIT.content_hash),) if config else (),
        "globals": (Global("state", True, 0, 100, 0),
                    Global("param", False, 0, 100, 64)) if config else (),
        "arrays": (Array("buf", True, 0, 255, (0,) * 8),
                   Array("table", False, 0, 255, tuple(range(8)))) if config else (),
        "exposes": () if config else ("flux", "flag"),
        "hides": () if config else ("heater_set",),
    }
    tasks, rules, instrs, globals_ = [], [], [], []
    hidden: dict[str, tuple[str, ...]] = {}
    for name, args in directives:
        if name == "kind":
            continue
        if name == "limits":
            changes = {_LIMIT_FIELDS[k]: int(v) for k, _, v in (a.partition("=") for a in args)}
            target = dataclasses.replace(target, **changes)  # type: ignore[arg-type]
        elif name in ("natives", "env", "exposes", "hides"):
            fields_[name] = tuple(args)
        elif name == "ext":
            fields_["ext"] = tuple(ExtRef(*a.split(".", 1)) for a in args)
        elif name == "uses":
            uses = []
            for a in args:
                vm, _, version = a.partition("@")
                uses.append(VmletRef(vm, int(version or KIT.version),
                                     KIT.content_hash if vm == "kit" else bytes(32)))
            fields_["uses"] = tuple(uses)
        elif name == "hidden":
            hidden[args[0]] = tuple(args[1:])
        elif name == "global":
            g, mode, lo, hi, value = args
            globals_.append(Global(g, mode == "rw", int(lo), int(hi), int(value)))
        elif name == "task":
            tasks.append(Task(args[0], int(args[1]) if len(args) > 1 else 100,
                              unit_ref(args[0])))
        elif name == "rule":
            rules.append(Rule(args[0], unit_ref(args[0])))
        elif name in ("on_apply", "on_load"):
            fields_[name] = unit_ref(args[0])
        elif name == "instr":
            instrs.append(InstrDef(args[0], unit_ref(args[0])))
        else:
            raise AssertionError(f"{path.name}: unknown directive .{name}")
    if globals_:
        fields_["globals"] = tuple(globals_)
    functions = tuple(
        CodeUnit(u.name, u.params, u.locals if u.locals is not None else u.params, u.returns,
                 u.stack if u.stack is not None else target.max_stack,
                 assemble(u.lines) + bytes(u.raw))
        for u in units)
    image = Image(kind=kind, name="test", version=1, mission="corot", functions=functions,
                  tasks=tuple(tasks), rules=tuple(rules), instrs=tuple(instrs),
                  **fields_)  # type: ignore[arg-type]
    return Case(image, target, hidden, expect, at, facts)


def verify_case(case: Case) -> ImageFacts:
    return verify_image(case.image, case.target, vmlets=(KIT,), hidden=case.hidden)


def _facts_text(facts: ImageFacts, image: Image, kind: str, unit: str) -> str:
    f = facts.units[image.function_index(unit)]
    if kind == "max_stack":
        return str(f.max_stack)
    return " ".join(str(d) if d >= 0 else "-" for d in f.depth)


# --------------------------------------------------------------------------- the corpus


def test_harness_vmlet_is_valid() -> None:
    facts = verify_image(KIT, HARNESS)
    assert facts.visible == {"flux", "flag"}
    assert facts.call_heights == (0, 0, 1, 0)
    assert [u.max_stack for u in facts.units] == [3, 2, 1, 2]


def test_corpus_is_large_and_covers_every_reason() -> None:
    expects = [load_case(p).expect for p in CASE_FILES]
    assert len(CASE_FILES) >= 80
    assert sum(e == "ok" for e in expects) >= 10
    missing = REASONS - set(expects)
    assert not missing, f"no .vasm case for {sorted(missing)}"


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_case(path: Path) -> None:
    case = load_case(path)
    if case.expect == "ok":
        facts = verify_case(case)
        for kind, per_unit in case.facts.items():
            for unit, text in per_unit.items():
                assert _facts_text(facts, case.image, kind, unit) == text, f"{kind} of {unit}"
        for code_unit, f in zip(case.image.functions, facts.units, strict=True):
            assert f.max_stack <= code_unit.max_stack
        return
    with pytest.raises(VerifyError) as info:
        verify_case(case)
    err = info.value
    assert (err.code, str(err.unit), err.offset) == (case.expect, *case.at), str(err)  # type: ignore[misc]
    assert err.message and str(err).endswith(err.message)


def test_error_reports_code_unit_offset_and_message() -> None:
    image = load_case(CASES / "stack_underflow.vasm").image
    with pytest.raises(VerifyError) as info:
        verify_image(image, HARNESS, vmlets=(KIT,))
    assert str(info.value) == "main +2: ADD needs 2 values, the stack holds 1"
    assert repr(info.value).startswith("VerifyError('stack-underflow', 'main', 2, ")


def test_a_changed_vmlet_is_refused() -> None:
    image = load_case(CASES / "ok_calls_natives_ext_env.vasm").image
    changed = dataclasses.replace(KIT, functions=KIT.functions[:3] + (
        dataclasses.replace(KIT.functions[3], code=assemble(["LOAD_L 0", "RETV"])),))
    with pytest.raises(VerifyError) as info:
        verify_image(image, HARNESS, vmlets=(changed,))
    assert info.value.code == "bad-vmlet" and "version 1" in info.value.message
    with pytest.raises(VerifyError) as info:
        verify_image(image, HARNESS)
    assert info.value.code == "bad-vmlet" and "not loaded" in info.value.message


def test_an_invalid_vmlet_is_refused_with_its_reason() -> None:
    broken = dataclasses.replace(KIT, functions=KIT.functions[:3] + (
        dataclasses.replace(KIT.functions[3], code=assemble(["ADD", "RETV"])),))
    image = dataclasses.replace(load_case(CASES / "ok_calls_natives_ext_env.vasm").image,
                                uses=(VmletRef("kit", 1, broken.content_hash),))
    with pytest.raises(VerifyError) as info:
        verify_image(image, HARNESS, vmlets=(broken,))
    assert info.value.code == "bad-vmlet" and "(stack-underflow)" in info.value.message


def test_facts_resolve_extension_opcodes_and_visibility() -> None:
    case = load_case(CASES / "ok_calls_natives_ext_env.vasm")
    facts = verify_case(case)
    assert [(e.vmlet, e.function, e.n_params, e.returns) for e in facts.ext] == \
        [("kit", 0, 3, True), ("kit", 1, 1, True)]
    assert facts.visible == {"flux", "flag"}
    assert facts.units[0].exts == (0, 1) and facts.units[0].calls == (1, 2)
    assert facts.call_depth == 1
    with pytest.raises(VerifyError) as info:  # main calls `flag`
        verify_image(case.image, case.target, vmlets=(KIT,), hidden={"kit": ("flag",)})
    assert info.value.code == "hidden-native" and "`flag`" in info.value.message
    quiet = load_case(CASES / "ok_dead_code_after_ret.vasm")  # calls no native
    facts = verify_image(quiet.image, quiet.target, vmlets=(KIT,), hidden={"kit": ("flag",)})
    assert facts.visible == {"flux"}


# --------------------------------------------------------------------------- compiled programs


def _ok_ccl_cases() -> list[Path]:
    return sorted(p for p in CCL_CASES.glob("*.ccl")
                  if p.read_text(encoding="utf-8-sig").startswith("// expect: ok"))


COMPILED_SOURCES = [
    *(p for p in sorted((REPO / "missions" / "corot" / "configs").glob("*.ccl"))
      if p.stem != "bad_syntax"),
    REPO / "missions" / "corot" / "vmlets" / "photometry.ccl",
    *_ok_ccl_cases(),
]

# Programs that compile to dead code, or did with some version of the compiler (constant
# conditions, statements after `return`, loops whose body always returns): accepted.
DEAD_CODE_PROGRAMS = {
    "if_false": "if false { x = 1; }",
    "if_true_else": "if true { x = 1; } else { x = 2; }",
    "and_false": "if y > 0 && false { x = 1; }",
    "or_true": "if y > 0 || true { x = 1; }",
    "materialised_and_false": "let b : bool = y > 0 && false; if b { x = 1; }",
    "materialised_or_true": "let b : bool = true || y > 0; if b { x = 1; }",
    "after_return": "return; x = 1;",
    "after_if_else_return": "if y > 0 { return; } else { return; } x = 1;",
    "loop_body_returns": "for i in 0 .. 3 { return; }",
    "loop_body_if_else_returns": "for i in 0 .. 3 { if i > 1 { return; } else { return; } }",
    "dead_loop": "if false { for i in 0 .. y { x = 1; } }",
    "call_with_folded_argument": "x = min(10, clamp(y, 0, 5 + (1 - 1)));",
}


@functools.cache
def compiled(path: Path) -> tuple[Image, tuple[Image, ...]]:
    """The image of ``path`` and of the VMlets it uses (compiled once per session)."""
    result = Compiler().compile(path)
    return result.image, tuple(vm.image for vm in result.vmlets)


@pytest.mark.parametrize("path", COMPILED_SOURCES, ids=lambda p: p.name)
def test_every_compiled_program_is_accepted(path: Path) -> None:
    image, vmlets = compiled(path)
    facts = verify_image(image, Target.of(PROFILE), vmlets=vmlets)
    assert len(facts.units) == len(image.functions)
    for unit, f in zip(image.functions, facts.units, strict=True):
        assert 0 <= f.max_stack <= unit.max_stack, unit.name
        assert f.offsets[0] == 0 and len(f.depth) == len(f.offsets)
    for vm in vmlets:
        assert verify_image(vm, Target.of(PROFILE)).units


def test_exo_e1_facts() -> None:
    image, vmlets = compiled(REPO / "missions" / "corot" / "configs" / "exo_e1.ccl")
    facts = verify_image(image, Target.of(PROFILE), vmlets=vmlets)
    assert [f.max_stack for f in facts.units] == [u.max_stack for u in image.functions]
    assert facts.visible == {"flux", "noise", "flag", "window_sum"}
    task = image.tasks[0].function
    filter_unit, code = facts.units[task], image.functions[task].code
    assert -1 not in filter_unit.depth
    # its one loop: opened and closed on an empty stack (the loop-stack rule)
    assert [d for o, d in zip(filter_unit.offsets, filter_unit.depth, strict=True)
            if code[o] in (isa.FORPREP, isa.FORLOOP)] == [0, 0]
    assert [(e.vmlet, e.n_params, e.returns) for e in facts.ext] == [("photometry", 3, True)]
    assert facts.call_depth == 1  # cosmic_filter -> clamp


def _charges_by_decoding(image: Image, facts: ImageFacts, target: Target,
                         vmlets: Sequence[Image]) -> list[tuple[int, int, int]]:
    """(unit, offset, charge) of every instruction with a one-piece charge, found the slow
    way: decoding all the code and charging each instruction (the oracle)."""
    costs = target.costs
    assert costs is not None
    by_name = {vm.name: vm for vm in vmlets}
    ext_fixed = [costs.body_fixed_cost(isa.decode(by_name.get(e.vmlet, image)
                                                  .functions[e.function].code),
                                       by_name.get(e.vmlet, image).natives)
                 for e in facts.ext]
    unit_locals = [u.n_locals for u in image.functions]
    out = []
    for index, unit in enumerate(image.functions):
        for ins in isa.decode(unit.code):
            charge = costs.fixed_charge(ins, image.natives, ext_fixed, unit_locals,
                                        [e.n_locals for e in facts.ext])
            if charge is not None:
                out.append((index, ins.offset, charge))
    return out


@pytest.mark.parametrize("path", COMPILED_SOURCES[:8], ids=lambda p: p.name)
def test_frame_charge_rule_matches_charging_every_instruction(path: Path) -> None:
    """The rule charges only the first instruction of each distinct charge
    (``UnitFacts.charge_sites``): the same largest charge and the same first refusal as
    charging every instruction."""
    image, vmlets = compiled(path)
    target = Target.of(PROFILE)
    facts = verify_image(image, target, vmlets=vmlets)
    charges = _charges_by_decoding(image, facts, target, vmlets)
    own = max((c for _, _, c in charges), default=0)
    assert facts.largest_charge >= own and (facts.largest_charge == own or facts.ext)
    for unit, f in zip(image.functions, facts.units, strict=True):
        first: dict[tuple[int, int], int] = {}  # (opcode, callee or native) -> first offset
        for ins in isa.decode(unit.code):
            calls = ins.opcode in (isa.CALL, isa.CALLN)
            first.setdefault((ins.opcode, ins.operands[0] if calls else -1), ins.offset)
        assert f.charge_sites == tuple(sorted(first.values())), unit.name
    for budget in sorted({c for _, _, c in charges})[:-1]:  # each charge refused in turn
        unit, offset, _ = next(x for x in charges if x[2] > budget)
        with pytest.raises(VerifyError) as info:
            verify_image(image, dataclasses.replace(target, frame_budget=budget),
                         vmlets=vmlets)
        if info.value.code == "bad-vmlet":  # the VMlet's own code is refused first
            continue
        assert (info.value.code, info.value.unit, info.value.offset) == \
            ("frame-charge", image.functions[unit].name or unit, offset)


@pytest.mark.parametrize("name", sorted(DEAD_CODE_PROGRAMS))
def test_programs_with_dead_code_are_accepted(name: str, tmp_path: Path) -> None:
    source = tmp_path / f"{name}.ccl"
    source.write_text(
        "mission corot;\nconfig dead version 1;\nvar x : int[0..10];\nvar y : int[0..10];\n"
        "fn clamp(v: int, lo: int, hi: int) -> int { return max(lo, min(v, hi)); }\n"
        f"task tick every 100 ms {{ {DEAD_CODE_PROGRAMS[name]} }}\n", encoding="utf-8")
    result = Compiler().compile(source)
    facts = verify_image(result.image, Target.of(PROFILE))
    for unit, f in zip(result.image.functions, facts.units, strict=True):
        live = [d for d in f.depth if d >= 0]
        assert live and max(live) <= f.max_stack <= unit.max_stack


# --------------------------------------------------------------------------- hostile bytecode


def _fake_native(lo: int, hi: int):  # type: ignore[no-untyped-def]
    def native(*args: int) -> int:
        return lo + sum(args) % (hi - lo + 1)
    return native


NATIVES = {name: (_fake_native(*n.result) if n.result else (lambda *args: None))
           for name, n in PROFILE.natives.items()}
_KEEP: list[Image] = []  # reference.run caches decoded code by id(image): keep ids unique


def bind(image: Image, vmlets: Sequence[Image], facts: ImageFacts) -> Bound:
    """``image`` ready for the reference interpreter, imports bound as the loader would."""
    _KEEP.append(image)
    by_name = {vm.name: vm for vm in vmlets}
    bound = Bound(image, bind_natives(image, PROFILE, NATIVES),
                  tuple(PROFILE.env[k].value for k in image.env), (), opcode_cycles(PROFILE),
                  PROFILE.frame_slot_cycles)
    ext = []
    for e in facts.ext:
        if image.kind == ImageKind.VMLET:  # its own instruction
            vm_bound = bound
        else:
            vm = by_name[e.vmlet]
            vm_bound = bind(vm, (), verify_image(vm, Target.of(PROFILE)))
        ext.append(ExtBinding(vm_bound, e.function, e.vmlet,
                              ext_fixed_cost(vm_bound, e.function, PROFILE)))
    object.__setattr__(bound, "ext", tuple(ext))  # Bound is frozen; a VMlet binds to itself
    return bound


def run_safely(image: Image, vmlets: Sequence[Image], facts: ImageFacts, unit: int,
               budget: int = 20_000) -> str:
    """Run an accepted unit on the reference interpreter for at most ``budget`` cycles: it
    may finish, trap or run out of budget, and nothing else. Returns which."""
    bound = bind(image, vmlets, facts)
    args = tuple(range(image.functions[unit].n_params))
    hidden: list[str] = []
    execution = reference.run(bound, reference.Memory.of(bound), unit, args, budget,
                              on_hide=hidden.append)
    try:
        next(execution)
    except StopIteration:
        return "finished"
    except Trap:
        return "trapped"
    return "out of budget"


def _probe(image: Image, vmlets: Sequence[Image] = (KIT,), target: Target = HARNESS,
           ) -> ImageFacts | None:
    """Verify; if accepted, run every unit. Only VerifyError may come out of the verifier."""
    try:
        facts = verify_image(image, target, vmlets=vmlets)
    except VerifyError as exc:
        assert exc.code in REASONS
        return None
    for i in range(len(image.functions)):
        run_safely(image, vmlets, facts, i)
    return facts


def _harness_with(code: bytes, n_locals: int = 4, returns: bool = False,
                  max_stack: int = HARNESS.max_stack) -> Image:
    """The harness configuration (calls, natives, VMlet instructions) with ``code`` as its
    first unit."""
    base = load_case(CASES / "ok_calls_natives_ext_env.vasm").image
    unit = CodeUnit("fuzz", 0, n_locals, returns, max_stack, code)
    return dataclasses.replace(base, functions=(unit,) + base.functions[1:])


@settings(PROPERTY, max_examples=300)
@given(st.binary(max_size=48), st.booleans())
def test_random_bytes_are_refused_or_run_safely(code: bytes, returns: bool) -> None:
    _probe(_harness_with(code, returns=returns))


class _ProgramGen:
    """Draws a well-formed code unit for the harness configuration, tracking the operand
    stack as it goes: nested ifs, counted loops (two deep), jumps over dead junk, returns
    in the middle of a body, and every kind of call. Such code must always be accepted."""

    SCRATCH = (4, 5)  # locals 0..3 are the two loops' counters and limits

    def __init__(self, draw: st.DrawFn, returns: bool) -> None:
        self.draw, self.returns = draw, returns
        self.asm = isa.Assembler()
        self.depth = self.deepest = 0
        self.live = True
        self.labels: list[tuple[isa.Label, int, int]] = []  # open targets: depth, loop level
        self.loops: list[tuple[int, isa.Label, isa.Label, bool]] = []  # slot, body, exit, live

    def emit(self, op: int, *args: int | isa.Label, effect: tuple[int, int] | None = None,
             ) -> None:
        info = isa.op_info(op)
        assert info is not None
        self.asm.emit(op, *args)
        if self.live:
            pops, pushes = effect or (info.pops or 0, info.pushes or 0)
            assert self.depth >= pops
            self.depth += pushes - pops
            self.deepest = max(self.deepest, self.depth)

    def settle(self, depth: int) -> None:
        """Pop or push until the stack holds ``depth`` values (live code only)."""
        while self.live and self.depth > depth:
            self.emit(isa.POP)
        while self.live and self.depth < depth:
            self.emit(isa.PUSH, 0)

    def choose(self, *options: str) -> str:
        return self.draw(st.sampled_from(options))

    def step(self) -> None:
        d, level = self.depth, len(self.loops)
        open_here = [lb for lb in self.labels if lb[2] == level]
        # repeated names weigh more: mostly live code, some dead code after JMP and returns
        options = ["push"] * 4 + ["close"] * 3 + ["jump_over", "return", "noop"]
        if not self.live:
            options = ["junk", "close", "close"] if open_here else ["junk"]
        else:
            options += ["unary", "store", "store", "if", "if", "flux", "inc",
                        "load_a"] if d >= 1 else []
            options += ["binary", "binary", "store_a", "flag", "add2"] if d >= 2 else []
            options += ["med3"] if d >= 3 else []
            options += ["loop"] if level < 2 else []
        if self.loops and not open_here:
            options.append("endloop")
        what = self.choose(*options)
        draw = self.draw
        if what == "push" and d < 12:
            kind = self.choose("imm", "local", "global", "env")
            if kind == "imm":
                self.emit(isa.PUSH, draw(st.integers(-3, 300) | st.sampled_from(
                    [isa.INT_MIN, isa.INT_MAX, 5999, 6000])))
            elif kind == "local":
                self.emit(isa.LOAD_L, draw(st.integers(0, 5)))
            else:
                self.emit(isa.LOAD_G if kind == "global" else isa.ENV,
                          draw(st.integers(0, 1)) if kind == "global" else 0)
        elif what == "junk":  # dead code: any stack effect will do, even an underflow
            self.emit(isa.BY_NAME[self.choose("POP", "ADD", "RETV", "RET", "DUP")].code)
        elif what == "unary":
            op = self.choose("NEG", "ABS", "NOT", "DUP", "RANGE")
            if op == "RANGE":
                self.emit(isa.RANGE, draw(st.integers(-5, 5)), draw(st.integers(0, 400)))
            else:
                self.emit(isa.BY_NAME[op].code)
        elif what == "binary":
            self.emit(isa.BY_NAME[self.choose("ADD", "SUB", "MUL", "DIV", "MOD", "MIN", "MAX",
                                              "EQ", "NE", "LT", "LE", "GT", "GE")].code)
        elif what == "store":
            kind = self.choose("local", "global", "pop")
            if kind == "local":
                self.emit(isa.STORE_L, draw(st.sampled_from(self.SCRATCH)))
            else:
                self.emit(isa.STORE_G, 0) if kind == "global" else self.emit(isa.POP)
        elif what == "load_a":
            self.emit(isa.LOAD_A, draw(st.integers(0, 1)))
        elif what == "store_a":
            self.emit(isa.STORE_A, 0)
        elif what in ("flux", "flag"):
            self.emit(isa.CALLN, 0 if what == "flux" else 1,
                      effect=(1, 1) if what == "flux" else (2, 0))
        elif what in ("med3", "inc"):
            self.emit(isa.EXT_BASE + (0 if what == "med3" else 1),
                      effect=(3, 1) if what == "med3" else (1, 1))
        elif what in ("add2", "noop"):
            self.emit(isa.CALL, 1 if what == "add2" else 2,
                      effect=(2, 1) if what == "add2" else (0, 0))
        elif what == "if":
            label = isa.Label()
            self.emit(self.draw(st.sampled_from([isa.JZ, isa.JNZ])), label)
            self.labels.append((label, self.depth, level))
        elif what == "jump_over":
            label = isa.Label()
            self.labels.append((label, self.depth, level))
            self.emit(isa.JMP, label)
            self.live = False
        elif what == "close" and open_here:
            self.close_label(open_here[-1])
        elif what == "return":
            self.settle(1 if self.returns else 0)
            self.emit(isa.RETV if self.returns else isa.RET)
            self.live = False
        elif what == "loop":
            self.settle(0)
            slot, body, exit_ = 2 * level, isa.Label(), isa.Label()
            self.emit(isa.PUSH, draw(st.integers(-2, 3)))
            self.emit(isa.STORE_L, slot)
            self.emit(isa.PUSH, draw(st.integers(-2, 5) | st.just(10**6)))
            self.emit(isa.STORE_L, slot + 1)
            self.emit(isa.FORPREP, slot, exit_)
            self.asm.place(body)
            self.loops.append((slot, body, exit_, self.live))
        elif what == "endloop":
            self.close_loop()

    def close_label(self, entry: tuple[isa.Label, int, int]) -> None:
        """Place an open jump target: the stack there is what the jumps carry."""
        label, depth, _ = entry
        self.labels.remove(entry)
        self.settle(depth)
        self.asm.place(label)
        self.depth, self.live = depth, True

    def close_loop(self) -> None:
        """FORLOOP for the innermost loop; after it, live if its FORPREP was."""
        self.settle(0)
        slot, body, exit_, prep_live = self.loops.pop()
        self.emit(isa.FORLOOP, slot, body)
        self.asm.place(exit_)
        if prep_live:
            self.depth, self.live = 0, True

    def finish(self) -> bytes:
        while self.labels or self.loops:
            level = len(self.loops)
            open_here = [lb for lb in self.labels if lb[2] == level]
            if open_here:
                self.close_label(open_here[-1])
            else:
                self.close_loop()
        self.settle(1 if self.returns else 0)
        self.emit(isa.RETV if self.returns else isa.RET)
        return self.asm.assemble()


@st.composite
def programs(draw: st.DrawFn) -> tuple[bytes, bool, int]:
    """(code, whether it returns a value, deepest operand stack of its live code)."""
    gen = _ProgramGen(draw, draw(st.booleans()))
    for _ in range(draw(st.integers(0, 40))):
        gen.step()
    return gen.finish(), gen.returns, gen.deepest


@settings(PROPERTY, max_examples=300)
@given(programs())
def test_well_formed_programs_are_accepted_and_run_safely(
        program: tuple[bytes, bool, int]) -> None:
    code, returns, deepest = program
    image = _harness_with(code, n_locals=6, returns=returns, max_stack=deepest)
    facts = verify_image(image, HARNESS, vmlets=(KIT,))  # must not raise
    assert facts.units[0].max_stack == deepest
    assert run_safely(image, (KIT,), facts, 0) in ("finished", "trapped", "out of budget")


@functools.cache
def mutation_corpus() -> tuple[tuple[Image, tuple[Image, ...]], ...]:
    """Real images to mutate: exo_e1, photometry, a VMlet using its own instructions and a
    few configurations with loops, short circuits and calls."""
    picks = ["exo_e1.ccl", "photometry.ccl", "ok_vmlet_with_on_load.ccl",
             "ok_logical_operators.ccl", "ok_return_paths.ccl", "ok_nested_for_and_natives.ccl"]
    return tuple(compiled(p) for p in COMPILED_SOURCES if p.name in picks)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Image, tuple[Image, ...], int]:
    """A real image with one code unit damaged by 1-3 mutations: bit flips, truncation,
    inserted or deleted bytes, an operand replaced, two instructions swapped, or a changed
    frame (parameters, locals, result, declared stack)."""
    image, vmlets = draw(st.sampled_from(mutation_corpus()))
    index = draw(st.integers(0, len(image.functions) - 1))
    unit = image.functions[index]
    code = bytearray(unit.code)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "operand",
                                     "swap", "frame"]))
        pos = draw(st.integers(0, max(len(code) - 1, 0)))
        if kind == "flip" and code:
            code[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del code[pos:]
        elif kind == "insert":
            code[pos:pos] = draw(st.binary(min_size=1, max_size=3))
        elif kind == "delete" and code:
            del code[pos:pos + draw(st.integers(1, 3))]
        elif kind in ("operand", "swap"):
            try:
                decoded = list(isa.decode(bytes(code)))
            except isa.DecodeError:
                continue
            if len(decoded) < 2:
                continue
            a = draw(st.integers(0, len(decoded) - 2))
            first, second = decoded[a], decoded[a + 1]
            if kind == "swap":
                code[first.offset:second.end] = (code[second.offset:second.end]
                                                 + code[first.offset:first.end])
            elif first.operands:
                piece = bytearray([first.opcode])
                for _ in first.operands:
                    isa.encode_uvarint(draw(st.integers(0, 2**32 - 1) | st.integers(0, 8)),
                                       piece)
                code[first.offset:first.end] = piece
        elif kind == "frame":
            unit = dataclasses.replace(
                unit, n_params=draw(st.integers(0, 4)), n_locals=draw(st.integers(0, 6)),
                returns=draw(st.booleans()), max_stack=draw(st.integers(0, 5)))
    unit = dataclasses.replace(unit, code=bytes(code))
    functions = image.functions[:index] + (unit,) + image.functions[index + 1:]
    return dataclasses.replace(image, functions=functions), vmlets, index


@settings(PROPERTY, max_examples=500)
@given(mutated())
def test_mutated_compiled_code_is_refused_or_runs_safely(
        case: tuple[Image, tuple[Image, ...], int]) -> None:
    image, vmlets, index = case
    target = Target.of(PROFILE)
    try:
        facts = verify_image(image, target, vmlets=vmlets)
    except VerifyError as exc:
        assert exc.code in REASONS
        return
    run_safely(image, vmlets, facts, index)


@settings(PROPERTY, max_examples=200)
@given(st.binary(max_size=120))
def test_random_image_bytes_are_image_errors(data: bytes) -> None:
    try:
        image = decode_image(data)
    except ImageError:
        return
    _probe(image, target=Target.of(PROFILE))


@settings(PROPERTY, max_examples=200)
@given(st.data())
def test_corrupted_image_files_are_refused_or_verified(data: st.DataObject) -> None:
    image, vmlets = data.draw(st.sampled_from(mutation_corpus()))
    blob = bytearray(image.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    try:
        damaged = decode_image(bytes(blob))
    except ImageError:
        return
    assume(damaged != image)
    _probe(damaged, vmlets, Target.of(PROFILE))


# --------------------------------------------------------------------------- linear time


def _straight_line(n_blocks: int) -> Image:
    lines = []
    for i in range(n_blocks):
        lines += ["LOAD_G 1", "PUSH 3", "ADD", "JZ " + f"s{i}", "PUSH 1", "STORE_G 0", f"s{i}:"]
    code = assemble(lines + ["RET"])
    base = load_case(CASES / "ok_calls_natives_ext_env.vasm").image
    return dataclasses.replace(base, functions=(CodeUnit("main", 0, 0, False, 2, code),))


def test_time_grows_linearly_with_code_size() -> None:
    target = dataclasses.replace(HARNESS, code_bytes=1 << 24)

    def seconds(image: Image) -> float:
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            verify_image(image, target, vmlets=(KIT,))
            best = min(best, time.perf_counter() - t0)
        return best

    small, large = _straight_line(1000), _straight_line(8000)
    assert len(large.functions[0].code) > 7 * len(small.functions[0].code)
    # 8x the code: a quadratic pass would take 64x; allow generous noise around 8x
    assert seconds(large) < 20 * seconds(small)
