"""The obligations of `replaces`: an instruction that takes the place of a host service or
of a lower layer's instruction keeps the contract the programs calling that name were
proven against: its declared result range within the replaced one's, and its worst-case
cost (dispatch, frame and body) within the replaced one's (a native: the call and its cost
formula at the worst arguments; an instruction: its proven worst case).

Checked by ``ccl verify`` of a configuration, for every replacement in the VMlets it runs
on (the refutation names the configuration, which is what the replacement would break),
and of the VMlet itself (naming the programs on it)."""

from __future__ import annotations

from collections.abc import Callable

from ccl import ir
from ccl.verify.obligations import Counterexample, Kind, Method, Obligation, Status, Value
from onboard.mission import MissionProfile
from onboard.vm import isa
from onboard.vm.machine import opcode_cycles

#: The proven worst-case cycles of instruction ``name`` of VMlet ``program`` (its dispatch
#: and frame included), as ``ccl verify`` of that VMlet finds it.
InstrCost = Callable[[ir.Program, str], int]


def obligations(program: ir.Program, mission: MissionProfile,
                cost: InstrCost) -> list[Obligation]:
    """One REPLACES obligation per replacement in ``program`` (a VMlet) or in the VMlets it
    runs on (a configuration)."""
    owners = [program] if program.kind is ir.ProgramKind.VMLET else []
    owners += [vm for vm in program.stack if vm is not program]
    affected = (f"configuration `{program.name}`" if program.kind is ir.ProgramKind.CONFIG
                else f"every program on `{program.name}`")
    out: list[Obligation] = []
    for vm in owners:
        for proc in vm.instrs:
            if proc.replaces:
                out.append(_check(vm, proc, mission, cost, affected))
    return out


def _check(vm: ir.Program, proc: ir.Procedure, mission: MissionProfile, cost: InstrCost,
           affected: str) -> Obligation:
    name = f"{vm.name}.{proc.name}"
    replaced, (lo, hi), limit = _replaced(vm, proc.replaces, mission, cost)
    got_lo, got_hi = _range(proc.returns)
    spent = cost(vm, proc.name)
    message = (f"`{name}` keeps the contract of {replaced}: result within {lo} .. {hi}, "
               f"worst case within {limit:,} cycles")
    where = f"instr {proc.name}"
    if lo <= got_lo and got_hi <= hi and spent <= limit:
        return Obligation(Kind.REPLACES, Status.PROVEN, proc.span, message, where,
                          Method.ARITHMETIC)
    why = []
    if not (lo <= got_lo and got_hi <= hi):
        why.append(f"its declared result {got_lo} .. {got_hi} is wider than {lo} .. {hi}")
    if spent > limit:
        why.append(f"its worst case of {spent:,} cycles exceeds {limit:,}")
    broken = (f"`{name}` replaces {replaced} but {' and '.join(why)}: it breaks the contract "
              f"{affected} relies on when it calls `{proc.replaces}`")
    cex = Counterexample((Value("result.lo", got_lo, "result"), Value("result.hi", got_hi,
                                                                        "result"),
                          Value("cycles", spent, "cost")), detail="; ".join(why))
    return Obligation(Kind.REPLACES, Status.REFUTED, proc.span, message, where,
                      Method.ARITHMETIC, cex, broken=broken)


def _replaced(vm: ir.Program, name: str, mission: MissionProfile,
              cost: InstrCost) -> tuple[str, tuple[int, int], int]:
    """What ``name`` names below ``vm``: its description, declared range and cost."""
    for lower in reversed(vm.stack):  # the nearest layer offering it
        for p in lower.instrs:
            if p.name == name and (lower.name, name) in _offered(lower):
                return (f"instruction `{lower.name}.{name}`", _range(p.returns),
                        cost(lower, name))
    native = mission.natives[name]
    assert native.result is not None  # an instruction returns a value: so must what it replaces
    call = opcode_cycles(mission)[isa.CALLN]
    return f"host service `{name}`", native.result, call + native.worst_cost()


def _offered(vm: ir.Program) -> set[tuple[str, str]]:
    return set(vm.offered_instrs) or {(vm.name, p.name) for p in vm.instrs}


def _range(t: ir.Type | None) -> tuple[int, int]:
    if isinstance(t, ir.IntType):
        return t.lo, t.hi
    return 0, 1  # a bool
