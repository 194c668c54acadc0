"""The reference interpreter: the VVM's semantics, one instruction at a time.

It is the executable specification that the fast engine (``onboard.vm.translator``) must
match cycle for cycle: tests run both on the same programs and compare results, state, traps
and the budget left at every suspension. It is deliberately plain; nothing here is tuned.

Execution is a generator: it starts with a cycle budget, and when the next instruction's
whole cost does not fit in what is left, it yields the remaining budget and waits for a new
one (``send``). It returns ``(remaining budget, result)``. Traps raise ``Trap``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field

from onboard.vm import isa, machine
from onboard.vm.binding import Bound
from onboard.vm.faults import Trap, TrapCode

#: What running a code unit is: yields remaining budgets, receives new ones, returns
#: (remaining budget, result or None).
Execution = Generator[int, int, tuple[int, "int | None"]]


@dataclass
class Memory:
    """The data of one loaded image: scalar globals and arrays, with their declared ranges."""

    globals: list[int]
    global_ranges: tuple[tuple[int, int], ...]
    arrays: list[list[int]]
    array_ranges: tuple[tuple[int, int], ...]

    @staticmethod
    def of(bound: Bound) -> Memory:
        img = bound.image
        return Memory(
            globals=[g.value for g in img.globals],
            global_ranges=tuple((g.lo, g.hi) for g in img.globals),
            arrays=[list(a.values) for a in img.arrays],
            array_ranges=tuple((a.lo, a.hi) for a in img.arrays),
        )


@dataclass
class _Frame:
    bound: Bound
    memory: Memory
    unit: int
    code: dict[int, isa.Decoded]
    pc: int
    locals: list[int]
    stack: list[int] = field(default_factory=list)
    inline: bool = False  # a VMlet instruction body: its returns are free
    free: bool = False  # inside a fixed-cost VMlet instruction, already charged in full
    trap_at: tuple[int, int] | None = None  # (unit, offset) of the extension opcode


# Decoded code, by the code's bytes: content-addressed, so never stale (and cheaper than
# the image's content hash, which encodes the whole image). Bounded: a VVM that loads
# configuration after configuration must not keep every one it ever ran.
_decoded: dict[bytes, dict[int, isa.Decoded]] = {}
_DECODED_MAX = 4096


def _decode(bound: Bound, unit: int) -> dict[int, isa.Decoded]:
    code = bound.image.functions[unit].code
    decoded = _decoded.get(code)
    if decoded is None:
        if len(_decoded) >= _DECODED_MAX:
            _decoded.clear()
        decoded = _decoded[code] = {d.offset: d for d in isa.decode(code)}
    return decoded


_EMPTY = Memory([], (), [], ())


def run(bound: Bound, memory: Memory, unit: int, args: tuple[int, ...], budget: int,
        on_hide: Callable[[str], None] | None = None) -> Execution:
    """Execute code unit ``unit`` of ``bound`` with ``args``; see the module docstring.

    ``on_hide`` receives the native a ``HIDE`` hides (only a VMlet's ``on load`` has one)."""
    fn = bound.image.functions[unit]
    frames = [_Frame(bound, memory, unit, _decode(bound, unit), 0,
                     list(args) + [0] * (fn.n_locals - len(args)))]
    while True:
        f = frames[-1]
        ins = f.code[f.pc]
        op = ins.opcode
        # -- the cost of this instruction, charged before it starts
        if f.free or (op in (isa.RET, isa.RETV) and f.inline):
            cost = 0
        elif op == isa.CALLN:
            native = f.bound.natives[ins.operands[0]]
            n = native.n_args
            cost = native.cost(tuple(f.stack[len(f.stack) - n:]) if n else ())
        elif op >= isa.EXT_BASE:
            cost = f.bound.ext_cost[op - isa.EXT_BASE]
        elif op == isa.CALL:
            cost = f.bound.call_cost[ins.operands[0]]
        else:
            cost = f.bound.op_cost[op]
        while not machine.admits(cost, budget):
            budget = yield budget
        budget -= cost
        try:
            finished = _STEP[op](frames, f, ins, on_hide)
        except Trap as trap:
            # a trap inside a VMlet instruction is the instruction's own
            outer = next((fr.trap_at for fr in frames if fr.trap_at is not None), None)
            unit_, offset = outer if outer is not None else (trap.unit, trap.offset)
            raise Trap(trap.code, unit_, offset, budget) from None
        if finished is not None:
            return budget, finished[0]


# --------------------------------------------------------------------------- one step
# Each instruction's step executes it in frame ``f`` (already charged) and moves ``f.pc``
# on; it returns None, or ``(result,)`` when the run has returned from its entry point.
# One function per instruction, looked up by opcode: no chain of tests on the way.

Finished = tuple["int | None"] | None
Step = Callable[[list[_Frame], _Frame, isa.Decoded, "Callable[[str], None] | None"], Finished]


# -- constants, the operand stack, locals, globals and arrays

def _push(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    f.stack.append(ins.operands[0])
    f.pc = ins.end
    return None


def _pop(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    f.stack.pop()
    f.pc = ins.end
    return None


def _dup(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    f.stack.append(f.stack[-1])
    f.pc = ins.end
    return None


def _env(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    f.stack.append(f.bound.env[ins.operands[0]])
    f.pc = ins.end
    return None


def _load_l(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    f.stack.append(f.locals[ins.operands[0]])
    f.pc = ins.end
    return None


def _store_l(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    f.locals[ins.operands[0]] = f.stack.pop()
    f.pc = ins.end
    return None


def _load_g(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    f.stack.append(f.memory.globals[ins.operands[0]])
    f.pc = ins.end
    return None


def _store_g(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    s = f.stack
    g = ins.operands[0]
    lo, hi = f.memory.global_ranges[g]
    if not lo <= s[-1] <= hi:
        raise Trap(TrapCode.RANGE, f.unit, ins.offset)
    f.memory.globals[g] = s.pop()
    f.pc = ins.end
    return None


def _load_a(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    s = f.stack
    arr = f.memory.arrays[ins.operands[0]]
    i = s[-1]
    if not 0 <= i < len(arr):
        raise Trap(TrapCode.INDEX, f.unit, ins.offset)
    s[-1] = arr[i]
    f.pc = ins.end
    return None


def _store_a(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    s = f.stack
    a = ins.operands[0]
    arr = f.memory.arrays[a]
    value, i = s[-1], s[-2]
    if not 0 <= i < len(arr):
        raise Trap(TrapCode.INDEX, f.unit, ins.offset)
    lo, hi = f.memory.array_ranges[a]
    if not lo <= value <= hi:
        raise Trap(TrapCode.RANGE, f.unit, ins.offset)
    del s[-2:]
    arr[i] = value
    f.pc = ins.end
    return None


# -- arithmetic, comparisons and range checks (their meaning is ``machine``'s)

def _unary(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    s = f.stack
    try:
        s[-1] = machine.unary(ins.opcode, s[-1])
    except machine.ArithmeticTrap as trap:
        raise Trap(trap.code, f.unit, ins.offset) from None
    f.pc = ins.end
    return None


def _binary(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    s = f.stack
    try:
        value = machine.binary(ins.opcode, s[-2], s[-1])
    except machine.ArithmeticTrap as trap:
        raise Trap(trap.code, f.unit, ins.offset) from None
    del s[-1]
    s[-1] = value
    f.pc = ins.end
    return None


def _range(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    lo, hi = ins.operands
    if not lo <= f.stack[-1] <= hi:
        raise Trap(TrapCode.RANGE, f.unit, ins.offset)
    f.pc = ins.end
    return None


# -- branches, loops and returns

def _jmp(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    f.pc = ins.end + ins.operands[0]
    return None


def _branch(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    if (f.stack.pop() == 0) == (ins.opcode == isa.JZ):
        f.pc = ins.end + ins.operands[0]
    else:
        f.pc = ins.end
    return None


def _forprep(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    slot = ins.operands[0]
    if f.locals[slot] >= f.locals[slot + 1]:
        f.pc = ins.end + ins.operands[1]
    else:
        f.pc = ins.end
    return None


def _forloop(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    slot = ins.operands[0]
    f.locals[slot] += 1
    if f.locals[slot] < f.locals[slot + 1]:
        f.pc = ins.end - ins.operands[1]
    else:
        f.pc = ins.end
    return None


def _return(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    result = f.stack.pop() if ins.opcode == isa.RETV else None
    frames.pop()
    if not frames:
        return (result,)
    if result is not None:
        frames[-1].stack.append(result)
    return None


# -- calls: code units, VMlet instructions, natives

def _args(f: _Frame, n: int) -> list[int]:
    """The top ``n`` operands, popped (the first argument first)."""
    s = f.stack
    args = s[len(s) - n:] if n else []
    del s[len(s) - n:]
    return args


def _call(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    b = f.bound
    callee = ins.operands[0]
    cu = b.image.functions[callee]
    call_args = _args(f, cu.n_params)
    f.pc = ins.end
    frames.append(_Frame(b, f.memory, callee, _decode(b, callee), 0,
                         call_args + [0] * (cu.n_locals - cu.n_params), free=f.free))
    return None


def _ext(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    ext = f.bound.ext[ins.opcode - isa.EXT_BASE]
    cu = ext.vmlet.image.functions[ext.function]
    call_args = _args(f, cu.n_params)
    f.pc = ins.end
    frames.append(_Frame(ext.vmlet, _EMPTY, ext.function, _decode(ext.vmlet, ext.function), 0,
                         call_args + [0] * (cu.n_locals - cu.n_params), inline=True,
                         free=f.free or ext.fixed_cost is not None,
                         trap_at=(f.unit, ins.offset)))
    return None


def _calln(frames: list[_Frame], f: _Frame, ins: isa.Decoded, on_hide: object) -> Finished:
    s = f.stack
    native = f.bound.natives[ins.operands[0]]
    n = native.n_args
    call_args = s[len(s) - n:] if n else []
    for v, (lo, hi) in zip(call_args, native.arg_ranges, strict=True):
        if not lo <= v <= hi:
            raise Trap(TrapCode.NATIVE_ARG, f.unit, ins.offset)
    result = native.fn(*call_args)
    if native.result is not None:
        lo, hi = native.result
        if not isinstance(result, int) or not lo <= result <= hi:
            raise Trap(TrapCode.NATIVE_RESULT, f.unit, ins.offset)
    if n:
        del s[len(s) - n:]
    if result is not None:
        s.append(result)
    f.pc = ins.end
    return None


def _hide(frames: list[_Frame], f: _Frame, ins: isa.Decoded,
          on_hide: Callable[[str], None] | None) -> Finished:
    if on_hide is None:  # pragma: no cover - the verifier admits HIDE in on load only
        raise AssertionError("HIDE outside a VMlet's on load")
    on_hide(f.bound.natives[ins.operands[0]].name)
    f.pc = ins.end
    return None


def _invalid(frames: list[_Frame], f: _Frame, ins: isa.Decoded,
             on_hide: object) -> Finished:  # pragma: no cover - the verifier admits none
    raise AssertionError(f"opcode 0x{ins.opcode:02x}")


_BY_OPCODE: dict[int, Step] = {
    isa.PUSH: _push, isa.POP: _pop, isa.DUP: _dup, isa.ENV: _env,
    isa.LOAD_L: _load_l, isa.STORE_L: _store_l, isa.LOAD_G: _load_g, isa.STORE_G: _store_g,
    isa.LOAD_A: _load_a, isa.STORE_A: _store_a,
    isa.NEG: _unary, isa.ABS: _unary, isa.NOT: _unary, isa.RANGE: _range,
    **{op: _binary for op in range(isa.ADD, isa.GE + 1)
       if op in isa.BY_CODE and op not in (isa.NEG, isa.ABS)},
    isa.JMP: _jmp, isa.JZ: _branch, isa.JNZ: _branch, isa.FORPREP: _forprep,
    isa.FORLOOP: _forloop, isa.RET: _return, isa.RETV: _return,
    isa.CALL: _call, isa.CALLN: _calln, isa.HIDE: _hide,
}
#: The step of every opcode 0 .. 255 (VMlet instructions from ``EXT_BASE``).
_STEP: list[Step] = [_BY_OPCODE.get(op, _ext if op >= isa.EXT_BASE else _invalid)
                     for op in range(256)]
