"""The cheap structural pass: memory, operand stack and call depth, before any solving.

These budgets follow from the program's shape alone: the bytes of code ``ccl.codegen``
emitted (with those of the VMlets the program runs on), the data at the widths the declared
ranges need, the deepest operand stack of any code unit, and the longest chain of nested
calls. Each is compared with the mission's limit and becomes an obligation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ccl import ir
from ccl.diagnostics import Span
from ccl.verify.irwalk import callees
from ccl.verify.obligations import Counterexample, Kind, Method, Obligation, Status, Value
from onboard.image import Image
from onboard.mission import MissionProfile


def width_bytes(ty: ir.IntType) -> int:
    """Bytes one value of ``ty`` takes stored at its ranged width (as an offset from ``lo``)."""
    return (ty.bits + 7) // 8


def data_bytes(program: ir.Program) -> int:
    """Parameters, state variables, tables and state arrays at their ranged widths."""
    return sum(width_bytes(g.type) for g in program.globals) + \
        sum(a.length * width_bytes(a.type) for a in program.arrays)


def call_depth(program: ir.Program) -> tuple[int, tuple[str, ...]]:
    """The longest chain of nested ``CALL``s (VMlet instructions are inlined, not called)."""
    memo: dict[str, tuple[int, tuple[str, ...]]] = {}

    def below(name: str) -> tuple[int, tuple[str, ...]]:
        if name not in memo:
            best: tuple[int, tuple[str, ...]] = (0, (name,))
            for callee in sorted(callees(program.function(name).body)):
                d, chain = below(callee)
                if d + 1 > best[0]:
                    best = (d + 1, (name, *chain))
            memo[name] = best
        return memo[name]

    roots = [*(t.proc for t in program.tasks), *program.functions, *program.instrs]
    if program.on_apply is not None:
        roots.append(program.on_apply)
    if program.on_load is not None:
        roots.append(program.on_load)
    best: tuple[int, tuple[str, ...]] = (0, ())
    for proc in roots:
        for callee in sorted(callees(proc.body)):
            d, chain = below(callee)
            if d + 1 > best[0]:
                best = (d + 1, (proc.name, *chain))
    return best


def called_functions(program: ir.Program) -> set[str]:
    """Functions some procedure of ``program`` calls."""
    out: set[str] = set()
    for proc in (*program.functions, *(t.proc for t in program.tasks),
                 *(r.proc for r in program.rules),
                 *(p for p in (program.on_apply, program.on_load) if p is not None)):
        out |= callees(proc.body)
    return out


@dataclass(frozen=True)
class Shape:
    """The structural figures of one program."""

    code_bytes: int
    data_bytes: int
    max_stack: int
    call_depth: int


def check(program: ir.Program, image: Image, vmlet_images: tuple[Image, ...],
          mission: MissionProfile) -> tuple[Shape, list[Obligation]]:
    """The structural figures and their obligations against ``mission``'s limits."""
    units = [u for img in (image, *vmlet_images) for u in img.functions]
    code = sum(len(u.code) for u in units)
    data = data_bytes(program)
    deepest = max(units, key=lambda u: u.max_stack, default=None)
    stack = deepest.max_stack if deepest is not None else 0
    depth, chain = call_depth(program)
    procs = {p.name: p for p in _procedures(program)}
    biggest = max(image.functions, key=lambda u: len(u.code), default=None)
    largest_array = max(program.arrays, key=lambda a: a.length * width_bytes(a.type),
                        default=None)
    head = program.tasks[0].span if program.tasks else None
    obs = [
        _limit(Kind.CODE_MEMORY, code, mission.code_bytes, "bytes of code",
               _span(procs, biggest.name if biggest else None, head),
               f"the code ({code} bytes, with the VMlets it runs on) fits in the mission's "
               f"{mission.code_bytes} bytes of code memory", program.name),
        _limit(Kind.DATA_MEMORY, data, mission.data_bytes, "bytes of data",
               largest_array.span if largest_array else head,
               f"the data ({data} bytes) fits in the mission's {mission.data_bytes} bytes of "
               "data memory", program.name),
        _limit(Kind.STACK, stack, mission.max_stack, "operand stack entries",
               _span(procs, deepest.name if deepest else None, head),
               f"every code unit's operand stack ({stack} entries at most) fits in the "
               f"mission's {mission.max_stack}", program.name),
        _limit(Kind.CALL_DEPTH, depth, mission.max_call_depth, "nested calls",
               _span(procs, chain[0] if chain else None, head),
               f"calls nest at most {mission.max_call_depth} deep (here {depth}"
               + (f": {' > '.join(chain)}" if chain else "") + ")", program.name),
    ]
    return Shape(code, data, stack, depth), obs


def _limit(kind: Kind, used: int, limit: int, unit: str, span: Span | None, message: str,
           where: str) -> Obligation:
    if used <= limit:
        return Obligation(kind, Status.PROVEN, span, message, where, Method.ARITHMETIC)
    cex = Counterexample((Value(unit, used, "size"),),
                         detail=f"{used} {unit}, the limit is {limit}")
    return Obligation(kind, Status.REFUTED, span, message, where, Method.ARITHMETIC, cex)


def _span(procs: dict[str, ir.Procedure], name: str | None, default: Span | None) -> Span | None:
    proc = procs.get(name) if name is not None else None
    return proc.span if proc is not None else default


def _procedures(program: ir.Program) -> Iterator[ir.Procedure]:
    yield from program.functions
    yield from program.instrs
    yield from (t.proc for t in program.tasks)
    yield from (p for p in (program.on_apply, program.on_load) if p is not None)
