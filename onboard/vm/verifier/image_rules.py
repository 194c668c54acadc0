"""The image-level rules of the bytecode verifier, and ``verify_image``, which applies them
around the pass over each code unit (``onboard.vm.verifier.code``): sections that fit the
image's kind, data inside its declared ranges, entry points, the VMlets used and the
instructions bound to extension opcodes, the call graph (``onboard.vm.verifier.calls``),
memory budgets, task periods and one-piece charges."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from onboard.vm import isa
from onboard.vm.image import Image, ImageKind
from onboard.vm.machine import globals_bytes
from onboard.vm.verifier.calls import check_calls
from onboard.vm.verifier.code import OPCODE_NAMES, CodeContext, verify_code
from onboard.vm.verifier.interface import (
    ExtTarget,
    ImageFacts,
    Target,
    UnitFacts,
    VerifyError,
    image_error,
    unit_label,
)


def verify_image(
    image: Image,
    target: Target,
    *,
    vmlets: Sequence[Image] = (),
    hidden: Mapping[str, Collection[str]] | None = None,
) -> ImageFacts:
    """Verify every code unit of ``image`` and the image-level rules; return what was
    learned. Raises ``VerifyError`` only. See the module docstring for the arguments."""
    hidden = hidden or {}
    _check_sections(image, target)
    static = _check_data(image, target)
    total = sum(len(u.code) for u in image.functions)
    if total > target.code_bytes:
        raise image_error(image, "code-too-large", f"{total} bytes of code exceed the "
                          f"{target.code_bytes} bytes of code memory")
    _check_entries(image)
    # the VMlets it uses (a VMlet: the layers below it), with theirs, each as pinned
    used = _used_vmlets(image, target, vmlets, hidden)
    ext, ext_heights, ext_chains, ext_fixed, ext_charge, units_fixed = \
        _ext_targets(image, used, target)
    offered = frozenset().union(*(_offered(used[ref.name][0], used, hidden)
                                  for ref in image.uses))
    if image.kind == ImageKind.VMLET:  # its own code: what its `on load` hides comes after
        visible = (offered | frozenset(image.exposes)) - frozenset(image.hides)
    else:
        # and the functions other applications export to it, which the board offers it as
        # natives named `app.fn` (a mission's own natives are plain names)
        visible = offered | frozenset(n for n in image.natives
                                      if "." in n and n in target.natives)
    ctx = CodeContext(image, target, ext, visible)
    units = tuple(verify_code(ctx, i) for i in range(len(image.functions)))
    heights, chains = check_calls(image, units, ext, ext_heights, ext_chains,
                                   target.max_call_depth)
    deepest = max(chains, default=0)
    if static + deepest > target.data_bytes:
        raise image_error(image, "data-too-large",
                          f"{static + deepest} bytes of data ({static} of globals and "
                          f"arrays, {deepest} of call frames on the deepest chain) exceed "
                          f"the {target.data_bytes} bytes of data memory")
    _check_periods(image, target)
    largest = max(_check_charges(image, target, units, ext, ext_fixed), ext_charge)
    return ImageFacts(units, ext, visible, heights, chains, static, largest, units_fixed)


def _check_periods(image: Image, target: Target) -> None:
    """Tasks are released at frame starts: a period is a whole number of frames."""
    if target.frame_ms <= 0:
        return
    for task in image.tasks:
        if task.period_ms % target.frame_ms:
            raise image_error(image, "bad-entry", f"task `{task.name}` has period "
                              f"{task.period_ms} ms, not a multiple of the "
                              f"{target.frame_ms} ms frame")


def _check_charges(image: Image, target: Target, units: Sequence[UnitFacts],
                   ext: Sequence[ExtTarget], ext_fixed: Sequence[int | None]) -> int:
    """The largest cycles one instruction is charged in one piece (the machine model's
    ``CostModel.fixed_charge``); none may exceed what a frame leaves the tasks, or the job
    could never get past it. Returns that charge (0 without a cost model).

    A charge depends only on the opcode and, for CALL and CALLN, on the callee or native,
    so only the first instruction of each (``UnitFacts.charge_sites``) is charged here: the
    first of them over the budget is the first such instruction of the unit."""
    costs = target.costs
    if costs is None:
        return 0
    largest = 0
    unit_locals = [u.n_locals for u in image.functions]
    ext_locals = [e.n_locals for e in ext]
    for index, (unit, facts) in enumerate(zip(image.functions, units, strict=True)):
        for offset in facts.charge_sites:
            ins = next(isa.decode(unit.code[offset:offset + _LONGEST_INSTRUCTION]))
            charge = costs.fixed_charge(ins, image.natives, ext_fixed, unit_locals, ext_locals)
            if charge is None:
                continue
            if target.frame_budget and charge > target.frame_budget:
                what = OPCODE_NAMES[ins.opcode] if ins.opcode < isa.EXT_BASE \
                    else "a VMlet instruction"
                raise VerifyError("frame-charge", unit_label(unit, index), offset,
                                  f"{what} is charged {charge} cycles in one piece, more than "
                                  f"the {target.frame_budget} a frame leaves the tasks: it "
                                  "could never start")
            largest = max(largest, charge)
    return largest


_LONGEST_INSTRUCTION = 1 + 2 * isa.MAX_VARINT_BYTES  # an opcode and two operands


def _check_sections(image: Image, target: Target) -> None:
    """Sections the image's kind cannot have; imports the mission cannot satisfy."""
    if image.kind == ImageKind.VMLET:
        # `uses` is allowed: a VMlet builds on the VMlets below it (layering)
        wrong = {"globals": image.globals, "arrays": image.arrays,
                 "tasks": image.tasks, "rules": image.rules,
                 "on apply": image.on_apply is not None}
        kind = "a VMlet"
    else:
        wrong = {"instructions": image.instrs, "exposes": image.exposes,
                 "hides": image.hides, "on load": image.on_load is not None}
        kind = "a configuration"
    for what, present in wrong.items():
        if present:
            raise image_error(image, "bad-section", f"{kind} image has no `{what}` section")
    for what, names in (("imports", image.natives), ("exposes", image.exposes),
                        ("hides", image.hides)):
        for name in names:
            if name not in target.natives:
                raise image_error(image, "bad-native",
                                  f"{what}: the mission has no native `{name}`")
    for key in image.env:
        if key not in target.env:
            raise image_error(image, "bad-env",
                              f"imports: the mission has no environment value `{key}`")
    if len(image.ext) > isa.EXT_COUNT:
        raise image_error(image, "bad-ext", f"{len(image.ext)} extension opcodes, the ISA "
                          f"has {isa.EXT_COUNT}")


def _check_data(image: Image, target: Target) -> int:
    """Declared ranges are 32-bit and hold the initial values: the engines rely on it.
    Returns the bytes of the globals and arrays (the machine model's ``slot_bytes``)."""
    for what, name, lo, hi, values in (
            [("global", g.name, g.lo, g.hi, (g.value,)) for g in image.globals]
            + [("array", a.name, a.lo, a.hi, a.values) for a in image.arrays]):
        if not isa.INT_MIN <= lo <= hi <= isa.INT_MAX:
            raise image_error(image, "bad-data",
                              f"{what} `{name}`: [{lo}, {hi}] is not a 32-bit range")
        if values and not lo <= min(values) <= max(values) <= hi:
            bad = next(v for v in values if not lo <= v <= hi)
            raise image_error(image, "bad-data",
                              f"{what} `{name}` holds {bad}, outside its range [{lo}, {hi}]")
    static = globals_bytes([(g.lo, g.hi) for g in image.globals]) + \
        globals_bytes([(a.lo, a.hi) for a in image.arrays], [a.length for a in image.arrays])
    if static > target.data_bytes:
        raise image_error(image, "data-too-large", f"{static} bytes of globals and arrays "
                          f"exceed the {target.data_bytes} bytes of data memory")
    return static


def _check_entries(image: Image) -> None:
    """Tasks, rules, instructions, ``on apply`` and ``on load`` name units that fit."""
    functions = image.functions

    def entry(what: str, index: int | None, *, params: bool, returns: bool) -> None:
        if index is None:
            return
        if not 0 <= index < len(functions):
            raise image_error(image, "bad-entry", f"{what} names code unit {index}, which "
                              f"does not exist (the image has {len(functions)})")
        unit = functions[index]
        label = unit_label(unit, index)
        if not params and unit.n_params != 0:
            raise VerifyError("bad-entry", label, None,
                              f"{what} must take no parameters, it takes {unit.n_params}")
        if bool(unit.returns) != returns:
            raise VerifyError("bad-entry", label, None,
                              f"{what} must {'return a value' if returns else 'return nothing'}")

    for task in image.tasks:
        entry(f"task `{task.name}`", task.function, params=False, returns=False)
        if task.period_ms <= 0:
            raise image_error(image, "bad-entry", f"task `{task.name}` has period 0")
    for rule in image.rules:
        entry(f"rule `{rule.text}`", rule.function, params=False, returns=True)
    entry("`on apply`", image.on_apply, params=False, returns=False)
    entry("`on load`", image.on_load, params=False, returns=False)
    names: set[str] = set()
    for instr in image.instrs:
        entry(f"instruction `{instr.name}`", instr.function, params=True, returns=True)
        if instr.function == image.on_load:
            raise image_error(image, "bad-entry",
                              f"instruction `{instr.name}` is the `on load` code")
        if instr.name in names:
            raise image_error(image, "bad-entry", f"instruction `{instr.name}` is defined "
                              "twice")
        names.add(instr.name)


def _offered(vm: Image, used: Mapping[str, tuple[Image, ImageFacts]],
             hidden: Mapping[str, Collection[str]]) -> frozenset[str]:
    """The natives programs on VMlet ``vm`` may call: what its layers offer and it exposes,
    less what it hides, statically or in its ``on load`` (``hidden``)."""
    below = frozenset().union(*(_offered(used[ref.name][0], used, hidden) for ref in vm.uses
                                if ref.name in used))
    return (below | frozenset(vm.exposes)) - frozenset(vm.hides) \
        - frozenset(hidden.get(vm.name, ()))


def _used_vmlets(image: Image, target: Target, vmlets: Sequence[Image],
                 hidden: Mapping[str, Collection[str]]) -> dict[str, tuple[Image, ImageFacts]]:
    """The VMlets ``image`` uses, as pinned, each verified (VMlets are small), and the
    layers below them, as they pinned them: a stack is loaded whole, at the versions it was
    compiled against, or not at all."""
    loaded: dict[str, Image] = {}
    for candidate in vmlets:
        loaded.setdefault(candidate.name, candidate)
    used: dict[str, tuple[Image, ImageFacts]] = {}
    for ref in image.uses:
        vm = loaded.get(ref.name)
        if ref.name in used:
            raise image_error(image, "bad-vmlet", f"uses VMlet `{ref.name}` twice")
        if vm is None or vm.kind != ImageKind.VMLET:
            raise image_error(image, "bad-vmlet", f"uses VMlet `{ref.name}`, which is not "
                              "loaded")
        if vm.version != ref.version or vm.content_hash != ref.hash:
            raise image_error(image, "bad-vmlet",
                              f"uses VMlet `{ref.name}` version {ref.version} "
                              f"{ref.hash.hex()[:16]}, but version {vm.version} "
                              f"{vm.short_hash} is loaded")
        try:
            facts = verify_image(vm, target, vmlets=vmlets, hidden=hidden)
        except VerifyError as exc:
            raise image_error(image, "bad-vmlet", f"uses VMlet `{ref.name}`, which fails "
                              f"verification: {exc} ({exc.code})") from None
        used[ref.name] = (vm, facts)
    for ref in image.uses:  # verified with the VMlet that uses them, just above
        for name, entry in _used_vmlets(used[ref.name][0], target, vmlets, hidden).items():
            if used.setdefault(name, entry)[0] is not entry[0]:
                raise image_error(image, "bad-vmlet", f"uses VMlet `{name}` twice, at two "
                                  "versions")
    return used


def _instr(vm: Image, name: str) -> int | None:
    return next((d.function for d in vm.instrs if d.name == name), None)


_ExtFacts = tuple[tuple[ExtTarget, ...], tuple[int, ...], tuple[int, ...],
                  tuple[int | None, ...], int, tuple[int | None, ...]]


def _units_fixed(image: Image, target: Target, own: Sequence[int | None],
                 lower_fixed: Sequence[int | None],
                 ext_locals: Sequence[int]) -> tuple[int | None, ...]:
    """The fixed cost of each code unit of a VMlet image as an instruction body (the
    machine model's ``units_fixed_cost``); empty for a configuration or without a cost
    model."""
    costs = target.costs
    if costs is None or image.kind != ImageKind.VMLET:
        return ()
    try:
        return costs.units_fixed_cost([u.code for u in image.functions], image.natives, own,
                                      lower_fixed, ext_locals)
    except (isa.DecodeError, IndexError):  # verified later (or already refused)
        return (None,) * len(image.functions)


def _ext_targets(image: Image, used: Mapping[str, tuple[Image, ImageFacts]],
                 target: Target) -> _ExtFacts:
    """An image's extension opcodes: a VMlet's own instructions (call heights and frame
    chains come later: -1) and instructions of the VMlets it runs on (a configuration's
    all are), with the call height and the frame chain of each body, its fixed cost, the
    largest charge of the VMlets whose instructions are charged as they run, and (for a
    VMlet) the fixed cost of each of its own units as an instruction body."""
    out, heights, chains = [], [], []
    fixed: list[int | None] = []
    own_units: list[int | None] = []
    charge = 0
    for k, ref in enumerate(image.ext):
        if image.kind == ImageKind.VMLET and ref.vmlet == image.name:
            own = _instr(image, ref.instr)
            if own is None:
                raise image_error(image, "bad-ext", f"extension opcode {k} names "
                                  f"`{ref.vmlet}.{ref.instr}`, not an instruction of this "
                                  "VMlet")
            unit = image.functions[own]
            out.append(ExtTarget(image.name, own, unit.n_params, bool(unit.returns),
                                 unit.n_locals))
            heights.append(-1)
            chains.append(-1)
            fixed.append(None)  # found below, with the rest of its own units
            own_units.append(own)
            continue
        entry = used.get(ref.vmlet)
        f = _instr(entry[0], ref.instr) if entry is not None else None
        if entry is None or f is None:
            raise image_error(image, "bad-ext", f"extension opcode {k} names "
                              f"`{ref.vmlet}.{ref.instr}`, not an instruction of "
                              f"{'this VMlet or ' if image.kind == ImageKind.VMLET else ''}"
                              "a VMlet it uses")
        vm, facts = entry
        unit = vm.functions[f]
        out.append(ExtTarget(vm.name, f, unit.n_params, bool(unit.returns), unit.n_locals))
        heights.append(facts.call_heights[f])
        chains.append(facts.frame_chains[f])
        fixed.append(facts.unit_fixed[f] if facts.unit_fixed else None)
        own_units.append(None)
        if fixed[-1] is None:
            charge = max(charge, facts.largest_charge)
    units_fixed = _units_fixed(image, target, own_units, fixed, [e.n_locals for e in out])
    for k, own in enumerate(own_units):
        if own is not None and units_fixed:
            fixed[k] = units_fixed[own]
    return tuple(out), tuple(heights), tuple(chains), tuple(fixed), charge, units_fixed

