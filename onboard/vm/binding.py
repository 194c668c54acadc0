"""Binding: an image with every import resolved against the host and the loaded VMlets.

The loader builds one ``Bound`` per loaded image: its natives bound to host functions with
their declared ranges and costs, its environment values, its extension opcodes bound to
VMlet instruction bodies, and the cycle cost of every opcode from the mission's CPU model.
Both execution engines (``reference`` and ``translate``) run a ``Bound``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from onboard.mission import CostFormula, MissionProfile
from onboard.vm import isa, machine
from onboard.vm.host import NativeFn
from onboard.vm.image import Image


@dataclass(frozen=True)
class NativeBinding:
    """One entry of an image's native import table, bound to the host."""

    name: str
    fn: NativeFn
    arg_ranges: tuple[tuple[int, int], ...]
    result: tuple[int, int] | None
    call_cost: int  # the CALLN instruction's own cycles
    formula: CostFormula
    arg_names: tuple[str, ...]

    @property
    def n_args(self) -> int:
        return len(self.arg_ranges)

    @property
    def returns(self) -> bool:
        return self.result is not None

    @property
    def constant_cost(self) -> int | None:
        """Total cycles of a call if they do not depend on the arguments (the machine
        model's ``CostModel.native_fixed``)."""
        lo, hi = self.formula.bounds(dict(zip(self.arg_names, self.arg_ranges, strict=True)))
        return self.call_cost + lo if lo == hi else None

    def cost(self, args: tuple[int, ...]) -> int:
        return self.call_cost + self.formula.evaluate(dict(zip(self.arg_names, args, strict=True)))


@dataclass(frozen=True)
class ExtBinding:
    """An extension opcode bound to the body of a VMlet instruction.

    ``fixed_cost`` is the cycles of the body when it is straight-line code whose cost does
    not depend on its arguments (its returns free; the VMlet instructions it uses, through
    the layers, are of fixed cost too): such an instruction is charged dispatch plus body
    at once, like a built-in, and translated in place. None when the body is charged as it
    runs."""

    vmlet: Bound
    function: int
    name: str
    fixed_cost: int | None

    @property
    def n_params(self) -> int:
        return self.vmlet.image.functions[self.function].n_params

    @property
    def returns(self) -> bool:
        return self.vmlet.image.functions[self.function].returns


@dataclass(frozen=True)
class Bound:
    """An image ready to run: imports resolved, costs known."""

    image: Image
    natives: tuple[NativeBinding, ...]
    env: tuple[int, ...]
    ext: tuple[ExtBinding, ...]
    op_cost: tuple[int, ...]  # cycles of each opcode (index = opcode); ext opcodes: dispatch
    frame_slot: int  # cycles per local of a frame a CALL or an extension opcode pushes

    @cached_property
    def call_cost(self) -> tuple[int, ...]:
        """What a ``CALL`` of each code unit is charged: dispatch and the callee's frame
        (the machine model's ``call_cycles``)."""
        return tuple(machine.call_cycles(self.op_cost, self.frame_slot, isa.CALL, f.n_locals)
                     for f in self.image.functions)

    @cached_property
    def ext_cost(self) -> tuple[int, ...]:
        """What each extension opcode is charged before its body runs: dispatch and the
        body's frame, plus the whole body when that is of fixed cost."""
        out = []
        for k, e in enumerate(self.ext):
            n_locals = e.vmlet.image.functions[e.function].n_locals
            out.append(machine.call_cycles(self.op_cost, self.frame_slot, isa.EXT_BASE + k,
                                           n_locals) + (e.fixed_cost or 0))
        return tuple(out)


def ext_fixed_cost(vmlet: Bound, function: int, profile: MissionProfile) -> int | None:
    """Cycles of a VMlet instruction body if it is straight-line and of fixed cost (the
    machine model's ``body_fixed_cost``); the instructions it uses are those ``vmlet`` is
    bound to (``vmlet.ext``, complete once that VMlet is loaded)."""
    return machine.CostModel.of(profile).body_fixed_cost(
        isa.decode(vmlet.image.functions[function].code), vmlet.image.natives,
        [e.fixed_cost for e in vmlet.ext],
        [e.vmlet.image.functions[e.function].n_locals for e in vmlet.ext])


def bind_natives(image: Image, profile: MissionProfile,
                 implementations: Mapping[str, NativeFn]) -> tuple[NativeBinding, ...]:
    """Bind the image's native imports (names must exist in the profile and the host)."""
    call_cost = machine.opcode_cycles(profile)[isa.CALLN]
    out = []
    for name in image.natives:
        decl = profile.natives[name]
        out.append(NativeBinding(
            name=name,
            fn=implementations[name],
            arg_ranges=tuple((a.lo, a.hi) for a in decl.args),
            result=decl.result,
            call_cost=call_cost,
            formula=decl.cost,
            arg_names=tuple(a.name for a in decl.args),
        ))
    return tuple(out)
