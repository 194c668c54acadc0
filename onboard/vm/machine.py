"""The machine model: the one definition of what the VVM computes, what it costs, what it
holds and when it runs work.

Every other part of the product derives from this module instead of restating it: the
reference interpreter and the translator (what an instruction computes, when it traps,
when it may start), the bytecode verifier and the patcher (memory, call depth, load-time
limits), and on the ground ``ccl verify`` and ``ccl.ranges`` (the same arithmetic, costs,
memory and schedulability, proven instead of executed). A verifier with its own copy of the
machine proves things about a machine that does not fly, so a test fails if any of these
definitions appears a second time (``tests/onboard/test_machine.py``).

The model, in five parts (docs/language.md section 18 lists every limit with its number):

* **Integers.** 32-bit signed; ``+ - * neg abs`` trap on overflow, ``/`` truncates toward
  zero, ``%`` takes the dividend's sign, both trap on a zero divisor and on ``INT_MIN / -1``
  and ``INT_MIN % -1`` (the quotient overflows; C leaves it undefined, the VVM traps).
* **Costs.** Each instruction costs its mission cost class's cycles; ``CALLN`` adds the
  native's cost formula on its arguments; ``CALL`` and an extension opcode add the set-up
  of the frame they push (``frame_slot`` cycles per local of the callee: a frame of 100,000
  locals is not set up for the price of one of 2); an extension opcode adds its VMlet body,
  all at once when the body is straight-line code of fixed cost (instructions of VMlets
  it uses count as their own fixed charge: a body built of fixed-cost instructions is
  fixed-cost too, and costs the sum of their charges). The frame of an entry
  point (a task, a rule, ``on apply``) is set up by the scheduler, outside the job.
* **Memory.** A global or array element takes the bytes its declared range needs (1, 2 or
  4, the value stored as an offset from the range's low end); a call frame takes a word per
  local and per operand stack entry; the data memory of an image is its globals, its arrays
  and its deepest chain of frames. Call depth counts every frame the engine pushes: ``CALL``
  and extension opcodes (VMlet instructions) alike.
* **Limits.** ``Limits.of(profile)``: code and data memory, operand stack, call depth,
  locals per frame, the cycles of a VMlet's ``on load``, the cycles a frame leaves tasks.
* **Admission.** An instruction starts only when its whole cost fits in what is left of the
  frame's budget (``admits``); otherwise the job suspends at that instruction boundary, and
  the rest of the frame is lost to every job (the scheduler ends the frame). So a frame
  loses fewer cycles than the largest single charge, and ``schedulability`` proves a task
  set with that loss taken from every frame.

Stdlib only: the onboard side stands alone.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from onboard.mission import MissionProfile
from onboard.vm import isa
from onboard.vm.faults import TrapCode
from onboard.vm.isa import INT_MAX, INT_MIN, CostClass

Interval = tuple[int, int]

# --------------------------------------------------------------------------- integers


class ArithmeticTrap(Exception):
    """An operation the VVM traps on; ``code`` says which trap."""

    def __init__(self, code: TrapCode, why: str) -> None:
        super().__init__(why)
        self.code = code


def fits(value: int) -> bool:
    """Whether ``value`` is a 32-bit signed integer."""
    return INT_MIN <= value <= INT_MAX


def tdiv(a: int, b: int) -> int:
    """``a / b`` truncated toward zero (``b != 0``), in unbounded integers."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def tmod(a: int, b: int) -> int:
    """The remainder of ``tdiv``: ``a == tdiv(a, b) * b + tmod(a, b)``; sign of ``a``."""
    return a - tdiv(a, b) * b


def _checked(value: int, what: str) -> int:
    if not fits(value):
        raise ArithmeticTrap(TrapCode.OVERFLOW, f"{what} = {value} overflows 32 bits")
    return value


def binary(op: int, a: int, b: int) -> int:
    """The VVM's result of binary opcode ``op`` (``ADD`` .. ``MAX``, ``EQ`` .. ``GE``) on
    ``a`` (below) and ``b`` (top of stack); raises ``ArithmeticTrap`` where the VVM traps."""
    if op == isa.ADD:
        return _checked(a + b, f"{a} + {b}")
    if op == isa.SUB:
        return _checked(a - b, f"{a} - {b}")
    if op == isa.MUL:
        return _checked(a * b, f"{a} * {b}")
    if op in (isa.DIV, isa.MOD):
        sym = "/" if op == isa.DIV else "%"
        if b == 0:
            raise ArithmeticTrap(TrapCode.DIV_ZERO, f"{a} {sym} 0 divides by zero")
        # INT_MIN % -1 traps too: the quotient it needs does not fit
        q = tdiv(a, b)
        if not fits(q):
            raise ArithmeticTrap(TrapCode.OVERFLOW, f"{a} {sym} {b} overflows 32 bits (the "
                                 f"quotient {q} does not fit)")
        return q if op == isa.DIV else a - q * b
    if op == isa.MIN:
        return a if a < b else b
    if op == isa.MAX:
        return a if a > b else b
    if op == isa.EQ:
        return int(a == b)
    if op == isa.NE:
        return int(a != b)
    if op == isa.LT:
        return int(a < b)
    if op == isa.LE:
        return int(a <= b)
    if op == isa.GT:
        return int(a > b)
    if op == isa.GE:
        return int(a >= b)
    raise ValueError(f"opcode 0x{op:02x} is not a binary operation")


def unary(op: int, a: int) -> int:
    """The VVM's result of unary opcode ``op`` (``NEG``, ``ABS``, ``NOT``) on ``a``."""
    if op == isa.NEG:
        return _checked(-a, f"-({a})")
    if op == isa.ABS:
        return _checked(abs(a), f"abs({a})")
    if op == isa.NOT:
        return int(a == 0)
    raise ValueError(f"opcode 0x{op:02x} is not a unary operation")


def clip(lo: int, hi: int) -> Interval:
    """The 32-bit part of ``lo .. hi``: a result outside traps and never reaches anyone."""
    lo, hi = max(lo, INT_MIN), min(hi, INT_MAX)
    if lo > hi:  # entirely outside: every evaluation traps; any interval will do
        lo = hi = min(max(lo, INT_MIN), INT_MAX)
    return lo, hi


def binary_interval(op: int, a: Interval, b: Interval) -> Interval:
    """Every value ``binary(op, x, y)`` can return (when it does not trap) for ``x`` in
    ``a`` and ``y`` in ``b``."""
    (alo, ahi), (blo, bhi) = a, b
    if op == isa.ADD:
        return clip(alo + blo, ahi + bhi)
    if op == isa.SUB:
        return clip(alo - bhi, ahi - blo)
    if op == isa.MUL:
        p = (alo * blo, alo * bhi, ahi * blo, ahi * bhi)
        return clip(min(p), max(p))
    if op == isa.MIN:
        return min(alo, blo), min(ahi, bhi)
    if op == isa.MAX:
        return max(alo, blo), max(ahi, bhi)
    if op == isa.DIV:
        divisors = [d for d in (blo, bhi, -1, 1) if blo <= d <= bhi and d != 0]
        if not divisors:
            return clip(0, 0)  # always divides by zero: always traps
        q = [tdiv(n, d) for n in (alo, ahi) for d in divisors]
        return clip(min(q), max(q))
    if op == isa.MOD:
        m = max(abs(blo), abs(bhi))
        if m == 0:
            return clip(0, 0)
        lo = 0 if alo >= 0 else max(alo, -(m - 1))
        hi = 0 if ahi <= 0 else min(ahi, m - 1)
        return lo, hi
    if isa.EQ <= op <= isa.GE:
        return 0, 1
    raise ValueError(f"opcode 0x{op:02x} is not a binary operation")


def unary_interval(op: int, a: Interval) -> Interval:
    """Every value ``unary(op, x)`` can return (when it does not trap) for ``x`` in ``a``."""
    lo, hi = a
    if op == isa.NEG:
        return clip(-hi, -lo)
    if op == isa.ABS:
        if lo >= 0:
            return lo, hi
        if hi <= 0:
            return clip(-hi, -lo)
        return clip(0, max(-lo, hi))
    if op == isa.NOT:
        return 0, 1
    raise ValueError(f"opcode 0x{op:02x} is not a unary operation")


# --------------------------------------------------------------------------- costs


def opcode_cycles(profile: MissionProfile) -> tuple[int, ...]:
    """Cycles of every opcode 0 .. 255 under ``profile``'s CPU model (0 for invalid ones;
    an extension opcode: its dispatch, the body is added)."""
    return _opcode_cycles(tuple(profile.cycles.items()))


@functools.lru_cache(maxsize=16)
def _opcode_cycles(cycles: tuple[tuple[CostClass, int], ...]) -> tuple[int, ...]:
    # every load needs the table several times (binding, verifying, VMlet bodies): ~1 ms each
    by_class = dict(cycles)
    return tuple(by_class[info.cost] if (info := isa.op_info(code)) is not None else 0
                 for code in range(256))


def native_charge_bounds(profile: MissionProfile, name: str,
                         args: Sequence[Interval] | None = None) -> Interval:
    """The fewest and most cycles one ``CALLN`` of native ``name`` is charged for arguments
    in ``args`` (default: the native's declared argument ranges)."""
    native = profile.natives[name]
    ranges = [(a.lo, a.hi) for a in native.args] if args is None else list(args)
    lo, hi = native.cost.bounds(dict(zip((a.name for a in native.args), ranges, strict=True)))
    call = profile.cycles[CostClass.NATIVE]
    return call + lo, call + hi


def frame_setup_cycles(frame_slot: int, n_locals: int) -> int:
    """Cycles of setting up a call frame of ``n_locals`` locals (each cleared, or copied from
    an argument), charged with the ``CALL`` or extension opcode that pushes it."""
    return frame_slot * n_locals


def call_cycles(cycles: Sequence[int], frame_slot: int, op: int, n_locals: int) -> int:
    """What ``CALL`` (or extension opcode ``op``) is charged for its dispatch and the frame
    of its callee (``n_locals`` locals); an extension's fixed body comes on top."""
    return cycles[op] + frame_setup_cycles(frame_slot, n_locals)


@dataclass(frozen=True)
class CostModel:
    """What each instruction is charged under one mission profile, where that is known
    before the instruction runs."""

    cycles: tuple[int, ...]  # by opcode (``opcode_cycles``)
    native_fixed: Mapping[str, int | None]  # a CALLN's whole charge, None if it varies
    frame_slot: int = 1  # cycles per local of a frame a CALL or extension opcode pushes

    @staticmethod
    def of(profile: MissionProfile) -> CostModel:
        fixed: dict[str, int | None] = {}
        for name in profile.natives:
            lo, hi = native_charge_bounds(profile, name)
            fixed[name] = lo if lo == hi else None
        return CostModel(opcode_cycles(profile), fixed, profile.frame_slot_cycles)

    def call(self, op: int, n_locals: int) -> int:
        """``call_cycles`` under this model: ``CALL`` or extension opcode ``op`` pushing a
        frame of ``n_locals`` locals."""
        return call_cycles(self.cycles, self.frame_slot, op, n_locals)

    def body_fixed_cost(self, body: Iterable[isa.Decoded], natives: Sequence[str],
                        ext_fixed: Sequence[int | None] = (),
                        ext_locals: Sequence[int] = ()) -> int | None:
        """The cycles of a VMlet instruction's decoded ``body`` when it is straight-line
        code of fixed cost (its returns free: the body is inlined), else None; ``natives``
        is the VMlet image's native import table. Such an instruction is charged dispatch
        plus body at once.

        A body may use instructions of its own VMlet or of the layers below it (extension
        opcodes of the VMlet image's ``ext`` table): ``ext_fixed`` gives each one's fixed
        body cost (None: charged as it runs) and ``ext_locals`` its frame. A body is fixed
        when every instruction it uses is, and a nested instruction costs in it exactly
        what it costs on its own (``fixed_charge``: its dispatch, its frame and its body),
        so making a body fixed changes when it is charged, never how much."""
        total = 0
        for ins in body:
            op = ins.opcode
            if op in (isa.JMP, isa.JZ, isa.JNZ, isa.FORPREP, isa.FORLOOP, isa.CALL, isa.HIDE):
                return None
            if op >= isa.EXT_BASE:
                k = op - isa.EXT_BASE
                nested = ext_fixed[k] if k < len(ext_fixed) else None
                if nested is None:
                    return None
                total += self.call(op, ext_locals[k]) + nested
            elif op == isa.CALLN:
                c = self.native_fixed.get(natives[ins.operands[0]])
                if c is None:
                    return None
                total += c
            elif op not in (isa.RET, isa.RETV):
                total += self.cycles[op]
        return total

    def units_fixed_cost(self, code: Sequence[bytes], natives: Sequence[str],
                         ext_unit: Sequence[int | None], ext_fixed: Sequence[int | None],
                         ext_locals: Sequence[int]) -> tuple[int | None, ...]:
        """``body_fixed_cost`` of each code unit of one VMlet image (``code``: its units'
        bytecode), where its extension opcode ``k`` names either its own unit
        ``ext_unit[k]`` (an instruction of the same VMlet: its cost is found here, in turn)
        or, when ``ext_unit[k]`` is None, an instruction of a lower layer of fixed cost
        ``ext_fixed[k]``. A unit that reaches itself again (recursion, which the verifier
        refuses) is not of fixed cost."""
        memo: dict[int, int | None] = {}

        def of(unit: int) -> int | None:
            if unit in memo:
                return memo[unit]
            memo[unit] = None  # while it is being costed: a cycle is not fixed
            body = list(isa.decode(code[unit]))
            nested = [ext_fixed[k] if own is None else
                      (of(own) if any(d.opcode == isa.EXT_BASE + k for d in body) else None)
                      for k, own in enumerate(ext_unit)]
            memo[unit] = self.body_fixed_cost(body, natives, nested, ext_locals)
            return memo[unit]

        return tuple(of(u) for u in range(len(code)))

    def fixed_charge(self, ins: isa.Decoded, natives: Sequence[str],
                     ext_fixed: Sequence[int | None], unit_locals: Sequence[int],
                     ext_locals: Sequence[int]) -> int | None:
        """The cycles ``ins`` is charged in one piece, or None when that depends on its
        arguments (a native whose cost formula reads them: ``ccl verify`` bounds it).
        ``ext_fixed``: the fixed body cost of each extension opcode's instruction (None:
        the body is charged as it runs, after the dispatch); ``unit_locals``: the locals of
        each code unit of the image (a ``CALL``'s frame); ``ext_locals``: those of each
        extension opcode's body."""
        op = ins.opcode
        if op == isa.CALLN:
            return self.native_fixed.get(natives[ins.operands[0]])
        if op == isa.CALL:
            return self.call(op, unit_locals[ins.operands[0]])
        if op >= isa.EXT_BASE:
            k = op - isa.EXT_BASE
            return self.call(op, ext_locals[k]) + (ext_fixed[k] or 0)
        return self.cycles[op]


# --------------------------------------------------------------------------- memory

#: Bytes of a machine word: a local slot or an operand stack entry.
WORD_BYTES = 4


def slot_bytes(lo: int, hi: int) -> int:
    """Bytes a global or array element of declared range ``lo .. hi`` takes: the value is
    stored as an offset from ``lo`` in 1, 2 or 4 bytes."""
    span = hi - lo
    if span < 1 << 8:
        return 1
    if span < 1 << 16:
        return 2
    return 4


def globals_bytes(ranges: Iterable[Interval], counts: Iterable[int] | None = None) -> int:
    """Bytes of data slots of the given declared ranges (``counts``: elements of each)."""
    if counts is None:
        return sum(slot_bytes(lo, hi) for lo, hi in ranges)
    return sum(slot_bytes(lo, hi) * n for (lo, hi), n in zip(ranges, counts, strict=True))


def call_frame_bytes(n_locals: int, max_stack: int) -> int:
    """Bytes of one call frame: its locals and its operand stack."""
    return WORD_BYTES * (n_locals + max_stack)


# --------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class Limits:
    """Every limit the VVM enforces when it loads code, for one mission profile."""

    code_bytes: int  # bytecode of all loaded code units
    data_bytes: int  # globals, arrays and the deepest chain of call frames
    max_stack: int  # operand stack entries of one code unit
    max_call_depth: int  # frames nested below an entry point (CALL and VMlet instructions)
    max_locals: int  # locals of one code unit (a frame must fit in data memory)
    on_load_cycles: int  # cycles a VMlet's `on load` may use
    frame_budget: int  # cycles a frame leaves the tasks: the share less the patch reserve

    @staticmethod
    def of(profile: MissionProfile) -> Limits:
        """The limits of ``profile``'s spacecraft, with all its memory free."""
        return Limits(
            code_bytes=profile.code_bytes,
            data_bytes=profile.data_bytes,
            max_stack=profile.max_stack,
            max_call_depth=profile.max_call_depth,
            max_locals=profile.data_bytes // WORD_BYTES,
            on_load_cycles=profile.reconfig.on_load_cycles,
            frame_budget=profile.share_cycles_per_frame - profile.patch_reserve_cycles_per_frame,
        )


# --------------------------------------------------------------------------- admission


def admits(cost: int, left: int) -> bool:
    """Whether an instruction charged ``cost`` cycles may start with ``left`` cycles left in
    the frame. If not, the job suspends before it, and the frame ends."""
    return cost <= left


def frame_loss(largest_charge: int) -> int:
    """The most cycles a frame can lose at its end: an instruction that does not fit leaves
    fewer than its own charge unused (``admits``)."""
    return max(0, largest_charge - 1)


@dataclass(frozen=True)
class Schedulability:
    """The verdict of ``schedulability``: ``ok``, or the first deadline that demand misses."""

    ok: bool
    supply_per_frame: int  # the frame budget less the worst loss at a frame's end
    utilisation: float  # the tasks' demand per frame over ``supply_per_frame``
    at_ms: int = 0  # where demand first exceeds supply (0 when ok)
    demand: int = 0  # cycles due by then
    supply: int = 0  # cycles supplied by then
    points: int = 0  # deadlines examined


#: Deadlines examined exactly at most; beyond, a sufficient linear bound decides.
MAX_DEADLINE_POINTS = 200_000


def schedulability(tasks: Sequence[tuple[int, int]], *, frame_ms: int, frame_budget: int,
                   largest_charge: int, burst: int = 0) -> Schedulability:
    """Whether periodic tasks ``(period_ms, worst cycles)``, all released together (as at a
    switch) with deadlines at their next release, after a first job of ``burst`` cycles
    that runs before them (``on apply``), never overrun on the VVM's scheduler.

    The scheduler runs released jobs earliest deadline first within ``frame_budget`` cycles
    per frame; releases and overrun checks happen at frame starts (periods are multiples of
    the frame), and a frame ends early by at most ``frame_loss(largest_charge)`` cycles.
    So, with ``s`` the budget less that loss, the processor-demand criterion is exact for
    this supply: for every deadline ``t`` (a frame start), ``burst + sum(floor(t / T_i) *
    C_i) <= s * t / frame_ms``; checking the deadlines of one hyperperiod suffices because
    demand grows by no more than supply over each later one."""
    supply = frame_budget - frame_loss(largest_charge)
    live = [(p, c) for p, c in tasks if c > 0]
    per_frame = sum(c * frame_ms / p for p, c in live)
    util = per_frame / supply if supply > 0 else math.inf
    if not live:
        ok = burst == 0 or supply > 0
        return Schedulability(ok, supply, 0.0)
    hyper = math.lcm(frame_ms, *(p for p, _ in live))
    points = sum(hyper // p for p, _ in live)
    if supply <= 0 or (util > 1 and points > MAX_DEADLINE_POINTS):
        first = min(p for p, _ in live)
        return Schedulability(False, supply, util, first, _demand(live, first, burst),
                              max(0, supply) * (first // frame_ms), points)
    if points > MAX_DEADLINE_POINTS:
        # Sufficient: demand(t) <= burst + t * U, which is below supply from the first
        # deadline on if it is there (supply grows faster, utilisation <= 1).
        first = min(p for p, _ in live)
        need = burst + first * per_frame / frame_ms
        ok = need <= supply * first / frame_ms
        return Schedulability(ok, supply, util, 0 if ok else first,
                              0 if ok else _demand(live, first, burst),
                              0 if ok else supply * first // frame_ms, points)
    deadlines = sorted({k * p for p, _ in live for k in range(1, hyper // p + 1)})
    for t in deadlines:
        demand = _demand(live, t, burst)
        have = supply * (t // frame_ms)
        if demand > have:
            return Schedulability(False, supply, util, t, demand, have, len(deadlines))
    return Schedulability(True, supply, util, points=len(deadlines))


def _demand(tasks: Sequence[tuple[int, int]], t: int, burst: int) -> int:
    return burst + sum((t // p) * c for p, c in tasks)
