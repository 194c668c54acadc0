"""Every code unit of a bound image translated and compiled into one namespace, with the
VMlet code its instructions run out of line; a unit that cannot be translated runs on the
reference interpreter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from onboard.vm import isa
from onboard.vm.binding import Bound
from onboard.vm.reference import Memory, run
from onboard.vm.translator.context import ImageContext, UnitSpec
from onboard.vm.translator.unit import translate_unit


@dataclass
class Translated:
    """An image's code units as Python callables (generator functions when metered).

    ``fallbacks``: units the translator could not translate (a translator bug met by
    verified code), which run on the reference interpreter instead, with why."""

    functions: list[Callable[..., Any]]
    source: str
    fallbacks: dict[int, str] = field(default_factory=dict)


def translate(bound: Bound, memory: Memory, *, metered: bool = True,
              reference_units: frozenset[int] = frozenset(),
              max_passes: int = 4) -> Translated:
    """Translate every code unit of ``bound`` (whose code the verifier has accepted), but
    those in ``reference_units``, which run on the reference interpreter.

    Never fails on verified code: a unit whose translation raises or does not compile (a
    translator bug) runs on the reference interpreter, and so does every unit that uses a
    VMlet instruction whose out-of-line translation failed; ``Translated.fallbacks`` says
    which and why."""
    ctx = ImageContext(bound, memory, metered)
    natives = ctx.bind_natives("", bound.natives)
    n_units = len(bound.image.functions)
    names = [f"u{i}" for i in range(n_units)]
    extra, vmlet_of = _out_of_line(ctx, bound)
    specs = [UnitSpec(bound, i, names[i], natives, False, memory, names.__getitem__)
             for i in range(n_units) if i not in reference_units] + extra
    failed: dict[str, str] = {}  # function name -> why it could not be translated
    sources: dict[str, str] = {}
    for spec in specs:
        try:
            sources[spec.fn_name] = translate_unit(ctx, spec, max_passes)
        except Exception as exc:  # noqa: BLE001 - a translator bug: the reference runs it
            failed[spec.fn_name] = f"{type(exc).__name__}: {exc}"
    source = "\n\n".join(sources.values())
    _compile(ctx, f"<vvm {bound.image.name} v{bound.image.version}>", source, sources, failed)
    fallbacks = _fallbacks(bound, failed, names, vmlet_of)
    for i in (*reference_units, *fallbacks):
        ctx.namespace[names[i]] = _on_reference(bound, memory, i)
    return Translated([ctx.namespace[n] for n in names], source, fallbacks)


def _compile(ctx: ImageContext, filename: str, source: str, sources: dict[str, str],
             failed: dict[str, str]) -> None:
    """Compile ``source`` (all of ``sources``) into the namespace; if Python refuses it,
    each unit apart, recording in ``failed`` those that do not compile."""
    try:
        exec(compile(source, filename, "exec"), ctx.namespace)
    except Exception:  # noqa: BLE001 - find the units that do not compile, one by one
        for name, src in sources.items():
            try:
                exec(compile(src, filename, "exec"), ctx.namespace)
            except Exception as exc:  # noqa: BLE001
                failed[name] = f"{type(exc).__name__}: {exc}"


def _on_reference(bound: Bound, memory: Memory, unit: int) -> Callable[..., Any]:
    def unit_fn(budget: int, *args: int) -> Any:
        return run(bound, memory, unit, args, budget)
    return unit_fn


def _out_of_line(ctx: ImageContext, bound: Bound) -> tuple[list[UnitSpec], dict[int, int]]:
    """The VMlet code translated out of line: for each VMlet (number ``m``) with an
    instruction that cannot be inlined (used by the configuration, or by the VMlet's own
    code), every unit as a function its code may call (``v{m}_u{j}``) and each such
    instruction's body, whose returns are free (``v{m}_i{j}``), once each. Returns the
    specs and, for each extension opcode of ``bound`` translated out of line, its VMlet."""
    empty = Memory([], (), [], ())
    extra: list[UnitSpec] = []
    numbers: dict[int, int] = {}  # id of a VMlet's Bound -> m

    def body(vm: Bound, function: int) -> None:
        key = (id(vm), function)
        if key in ctx.out_of_line:
            return
        if id(vm) not in numbers:
            m = numbers[id(vm)] = len(numbers)
            natives = ctx.bind_natives(f"v{m}_", vm.natives)
            plain = [f"v{m}_u{j}" for j in range(len(vm.image.functions))]
            for j in range(len(vm.image.functions)):
                extra.append(UnitSpec(vm, j, plain[j], natives, False, empty,
                                      plain.__getitem__))
            ctx.out_of_line[key] = name = f"v{m}_i{function}"
            for e in vm.ext:  # its own instructions and its layers', used by its code
                if e.fixed_cost is None:
                    body(e.vmlet, e.function)
        else:
            m = numbers[id(vm)]
            ctx.out_of_line[key] = name = f"v{m}_i{function}"
        first = next(s for s in extra if s.bound is vm)
        extra.append(UnitSpec(vm, function, name, first.native_names, True, empty,
                              first.callee_names))

    vmlet_of: dict[int, int] = {}
    for k, ext in enumerate(bound.ext):
        if ext.fixed_cost is None:
            body(ext.vmlet, ext.function)
            vmlet_of[k] = numbers[id(ext.vmlet)]
    return extra, vmlet_of


def _fallbacks(bound: Bound, failed: dict[str, str], names: list[str],
               vmlet_of: dict[int, int]) -> dict[int, str]:
    """The units of ``bound`` that run on the reference interpreter because their own
    translation failed or that of the VMlet code an instruction they use runs
    (``v{m}_...``: ``vmlet_of`` maps extension opcodes to ``m``) did."""
    out = {i: why for i, name in enumerate(names) if (why := failed.get(name)) is not None}
    broken_vmlets: dict[int, str] = {}
    for name, why in failed.items():
        if name.startswith("v"):
            broken_vmlets.setdefault(int(name[1:name.index("_")]), why)
    broken = {k: broken_vmlets[m] for k, m in vmlet_of.items() if m in broken_vmlets}
    if broken:
        for i, unit in enumerate(bound.image.functions):
            if i in out:
                continue
            used = {d.opcode - isa.EXT_BASE for d in isa.decode(unit.code)
                    if d.opcode >= isa.EXT_BASE}
            hit = sorted(used & broken.keys())
            if hit:
                out[i] = f"VMlet instruction {hit[0]}: {broken[hit[0]]}"
    return out
