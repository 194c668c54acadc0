"""The VVM instruction set: the one definition of the bytecode.

Every opcode is declared once, in ``INSTRUCTIONS``; encoding, decoding, disassembly, stack
effects and cycle-cost classes are all derived from that table. The ground compiler
(``ccl.codegen``) and the onboard side (verifier, interpreter) both use this module, and
nothing else defines an opcode.

The machine is a 32-bit signed integer stack machine:

* operands are compact: indices and counts are unsigned LEB128 varints, immediates are
  zigzag-encoded signed varints;
* ``JMP``/``JZ``/``JNZ`` jump *forward* only; ``FORPREP``/``FORLOOP`` (a counted loop whose
  counter lives in a local slot and whose limit lives in the next slot) is the only backward
  edge, so every program terminates and its loops are visible in the bytecode itself;
* opcodes ``EXT_BASE`` .. 0xFF are *extension* opcodes: at load time each is bound to an
  instruction defined by a VMlet (the image's ``ext`` table says which), and then it is an
  instruction like any other: one opcode at the call site.

Cycle cost (what the VVM charges and ``ccl verify`` bounds): each executed instruction costs
the mission's cycles for its ``CostClass``. ``CALLN`` adds the native's cost formula evaluated
on its arguments. An extension opcode costs the ``ext`` dispatch plus the instructions of the
VMlet instruction's body as they execute, except that the body's ``RET``/``RETV`` are free (the
body is inlined: no call and no return). An instruction starts only when its whole cost fits
in the budget left: for an extension whose body is straight-line code of fixed cost, that
whole cost is dispatch plus body, charged at once, so it never suspends halfway; a body with
branches, loops or argument-dependent natives is charged as it runs and may suspend inside.
A body that uses other extension opcodes is of fixed cost when they all are (transitively,
through the layers), each counted at its own whole charge (``machine.CostModel``).
A trap inside a body is reported at the extension opcode. ``FORPREP`` is charged once on
entry, ``FORLOOP`` at the end of every iteration; a conditional jump costs the same taken or
not.

This module is pure (stdlib only) and allocation-light, as flight code must be.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum

INT_MIN = -(2**31)
INT_MAX = 2**31 - 1
MAX_VARINT_BYTES = 5  # a 32-bit value never needs more

EXT_BASE = 0xC0  # first extension opcode (VMlet-defined instruction 0)
EXT_COUNT = 0x100 - EXT_BASE


class Operand(Enum):
    """What an operand means: which index space it names, or how it is encoded."""

    IMM = "imm"  # signed immediate (zigzag varint)
    LOCAL = "local"  # local slot of the current code unit
    GLOBAL = "global"  # scalar global: parameter or state variable
    ARRAY = "array"  # array: table (read-only) or state array
    FUNC = "func"  # code unit of this image
    NATIVE = "native"  # entry of this image's native import table
    ENV = "env"  # entry of this image's environment import table
    FWD = "fwd"  # forward jump: bytes from the end of this instruction to the target
    BACK = "back"  # backward jump: bytes from the end of this instruction back to the target


class CostClass(Enum):
    """Cycle-cost class of an instruction. A mission profile gives cycles per class."""

    CONST = "const"
    LOCAL = "local"
    GLOBAL = "global"
    ARRAY = "array"
    ALU = "alu"
    MUL = "mul"
    DIV = "div"
    COMPARE = "compare"
    BRANCH = "branch"
    LOOP = "loop"
    CALL = "call"
    RETURN = "return"
    NATIVE = "native"  # the call itself; the native's own cost formula is added
    ENV = "env"
    CHECK = "check"
    VMLET = "vmlet"  # configuration of the machine itself (hide)
    EXT = "ext"  # dispatch of a VMlet instruction; its inlined body is added


@dataclass(frozen=True)
class OpInfo:
    """Static description of one opcode."""

    code: int
    name: str
    operands: tuple[Operand, ...]
    pops: int | None  # None: depends on the callee's signature
    pushes: int | None
    cost: CostClass
    doc: str
    ends_block: bool = False  # control never falls through (JMP, RET, RETV)


def _op(
    code: int,
    name: str,
    operands: tuple[Operand, ...],
    pops: int | None,
    pushes: int | None,
    cost: CostClass,
    doc: str,
    ends_block: bool = False,
) -> OpInfo:
    return OpInfo(code, name, operands, pops, pushes, cost, doc, ends_block)


_O = Operand
_C = CostClass

# The table. Codes are grouped by purpose; 0x00 is deliberately invalid so that erased or
# zero-filled memory never decodes as code.
INSTRUCTIONS: tuple[OpInfo, ...] = (
    _op(0x01, "PUSH", (_O.IMM,), 0, 1, _C.CONST, "push a signed immediate"),
    _op(0x02, "POP", (), 1, 0, _C.CONST, "discard the top of stack"),
    _op(0x03, "DUP", (), 1, 2, _C.CONST, "duplicate the top of stack"),
    _op(0x10, "LOAD_L", (_O.LOCAL,), 0, 1, _C.LOCAL, "push local slot"),
    _op(0x11, "STORE_L", (_O.LOCAL,), 1, 0, _C.LOCAL, "pop into local slot"),
    _op(0x12, "LOAD_G", (_O.GLOBAL,), 0, 1, _C.GLOBAL, "push scalar global"),
    _op(0x13, "STORE_G", (_O.GLOBAL,), 1, 0, _C.GLOBAL,
        "pop into a writable global; traps if outside its declared range"),
    _op(0x14, "LOAD_A", (_O.ARRAY,), 1, 1, _C.ARRAY,
        "pop index, push element; traps if out of bounds"),
    _op(0x15, "STORE_A", (_O.ARRAY,), 2, 0, _C.ARRAY,
        "pop value, pop index, store into a writable array; traps if out of bounds or range"),
    _op(0x20, "ADD", (), 2, 1, _C.ALU, "a + b; traps on 32-bit overflow"),
    _op(0x21, "SUB", (), 2, 1, _C.ALU, "a - b; traps on 32-bit overflow"),
    _op(0x22, "MUL", (), 2, 1, _C.MUL, "a * b; traps on 32-bit overflow"),
    _op(0x23, "DIV", (), 2, 1, _C.DIV, "a / b truncated toward zero; traps on b = 0 or overflow"),
    _op(0x24, "MOD", (), 2, 1, _C.DIV, "remainder of DIV (sign of a); traps on b = 0"),
    _op(0x25, "NEG", (), 1, 1, _C.ALU, "-a; traps on overflow"),
    _op(0x26, "ABS", (), 1, 1, _C.ALU, "|a|; traps on overflow"),
    _op(0x27, "MIN", (), 2, 1, _C.ALU, "smaller of a and b"),
    _op(0x28, "MAX", (), 2, 1, _C.ALU, "larger of a and b"),
    _op(0x30, "EQ", (), 2, 1, _C.COMPARE, "1 if a == b else 0"),
    _op(0x31, "NE", (), 2, 1, _C.COMPARE, "1 if a != b else 0"),
    _op(0x32, "LT", (), 2, 1, _C.COMPARE, "1 if a < b else 0"),
    _op(0x33, "LE", (), 2, 1, _C.COMPARE, "1 if a <= b else 0"),
    _op(0x34, "GT", (), 2, 1, _C.COMPARE, "1 if a > b else 0"),
    _op(0x35, "GE", (), 2, 1, _C.COMPARE, "1 if a >= b else 0"),
    _op(0x36, "NOT", (), 1, 1, _C.ALU, "1 if a == 0 else 0"),
    _op(0x38, "RANGE", (_O.IMM, _O.IMM), 1, 1, _C.CHECK,
        "trap unless lo <= top <= hi; the value stays on the stack"),
    _op(0x40, "JMP", (_O.FWD,), 0, 0, _C.BRANCH, "jump forward", ends_block=True),
    _op(0x41, "JZ", (_O.FWD,), 1, 0, _C.BRANCH, "pop; jump forward if zero"),
    _op(0x42, "JNZ", (_O.FWD,), 1, 0, _C.BRANCH, "pop; jump forward if not zero"),
    _op(0x48, "FORPREP", (_O.LOCAL, _O.FWD), 0, 0, _C.LOOP,
        "enter a counted loop: skip forward past it if local[s] >= local[s+1]"),
    _op(0x49, "FORLOOP", (_O.LOCAL, _O.BACK), 0, 0, _C.LOOP,
        "local[s] += 1; jump back to the loop body if local[s] < local[s+1]"),
    _op(0x50, "CALL", (_O.FUNC,), None, None, _C.CALL, "call a code unit of this image"),
    _op(0x51, "RET", (), 0, 0, _C.RETURN, "return without a value", ends_block=True),
    _op(0x52, "RETV", (), 1, 0, _C.RETURN, "return the top of stack", ends_block=True),
    _op(0x58, "CALLN", (_O.NATIVE,), None, None, _C.NATIVE, "call an imported host native"),
    _op(0x59, "ENV", (_O.ENV,), 0, 1, _C.ENV, "push an environment value of the host"),
    _op(0x5A, "HIDE", (_O.NATIVE,), 0, 0, _C.VMLET,
        "hide a native from programs on this VMlet (VMlet `on load` code only)"),
)

BY_CODE: dict[int, OpInfo] = {op.code: op for op in INSTRUCTIONS}
BY_NAME: dict[str, OpInfo] = {op.name: op for op in INSTRUCTIONS}
assert len(BY_CODE) == len(INSTRUCTIONS) and all(op.code < EXT_BASE for op in INSTRUCTIONS)

EXT_INFO = OpInfo(EXT_BASE, "EXT", (), None, None, CostClass.EXT,
                  "VMlet-defined instruction bound at load time (opcode - EXT_BASE = ext index)")

# Named opcode constants for code that switches on them (the compiler, the VVM).
PUSH, POP, DUP = 0x01, 0x02, 0x03
LOAD_L, STORE_L, LOAD_G, STORE_G, LOAD_A, STORE_A = 0x10, 0x11, 0x12, 0x13, 0x14, 0x15
ADD, SUB, MUL, DIV, MOD, NEG, ABS, MIN, MAX = 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28
EQ, NE, LT, LE, GT, GE, NOT, RANGE = 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x38
JMP, JZ, JNZ, FORPREP, FORLOOP = 0x40, 0x41, 0x42, 0x48, 0x49
CALL, RET, RETV, CALLN, ENV, HIDE = 0x50, 0x51, 0x52, 0x58, 0x59, 0x5A
assert all(BY_NAME[n].code == globals()[n] for n in BY_NAME)


def op_info(code: int) -> OpInfo | None:
    """The description of an opcode, or None if it is not an instruction."""
    if code >= EXT_BASE:
        return EXT_INFO
    return BY_CODE.get(code)


# --------------------------------------------------------------------------- varints


def encode_uvarint(value: int, out: bytearray) -> None:
    """Append ``value`` (>= 0) as unsigned LEB128."""
    if value < 0:
        raise ValueError(f"unsigned varint cannot hold {value}")
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def encode_svarint(value: int, out: bytearray) -> None:
    """Append a signed 32-bit ``value`` zigzag-encoded as LEB128."""
    if not INT_MIN <= value <= INT_MAX:
        raise ValueError(f"immediate {value} does not fit in 32 bits")
    encode_uvarint((value << 1) ^ (value >> 31), out)  # zigzag: small magnitudes, few bytes


def uvarint_size(value: int) -> int:
    """Bytes that ``encode_uvarint(value)`` takes."""
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


class DecodeError(ValueError):
    """Bytes that are not well-formed code, with the offset where decoding failed."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"at +{offset}: {reason}")
        self.offset = offset
        self.reason = reason


def decode_uvarint(code: bytes, pos: int) -> tuple[int, int]:
    """Read an unsigned LEB128 at ``pos``: (value, position after it)."""
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= len(code):
            raise DecodeError(start, "truncated varint")
        byte = code[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if pos - start >= MAX_VARINT_BYTES:
            raise DecodeError(start, "varint longer than 5 bytes")
    if result > 0xFFFFFFFF:
        raise DecodeError(start, "varint exceeds 32 bits")
    return result, pos


def decode_svarint(code: bytes, pos: int) -> tuple[int, int]:
    """Read a zigzag signed varint at ``pos``: (value, position after it)."""
    raw, pos = decode_uvarint(code, pos)
    return (raw >> 1) ^ -(raw & 1), pos


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class Decoded:
    """One decoded instruction."""

    offset: int
    opcode: int
    operands: tuple[int, ...]
    size: int

    @property
    def info(self) -> OpInfo:
        info = op_info(self.opcode)
        assert info is not None
        return info

    @property
    def end(self) -> int:
        return self.offset + self.size

    def target(self) -> int | None:
        """Absolute jump target of a branching instruction, else None."""
        info = self.info
        for kind, value in zip(info.operands, self.operands, strict=True):
            if kind is Operand.FWD:
                return self.end + value
            if kind is Operand.BACK:
                return self.end - value
        return None


def decode(code: bytes) -> Iterator[Decoded]:
    """Decode ``code`` instruction by instruction; raises DecodeError on malformed bytes."""
    pos = 0
    n = len(code)
    while pos < n:
        start = pos
        opcode = code[pos]
        info = op_info(opcode)
        if info is None:
            raise DecodeError(start, f"unknown opcode 0x{opcode:02x}")
        pos += 1
        values = []
        for kind in info.operands:
            if kind is Operand.IMM:
                value, pos = decode_svarint(code, pos)
                if not INT_MIN <= value <= INT_MAX:
                    raise DecodeError(start, "immediate exceeds 32 bits")
            else:
                value, pos = decode_uvarint(code, pos)
            values.append(value)
        yield Decoded(start, opcode, tuple(values), pos - start)


# --------------------------------------------------------------------------- assembling


@dataclass(eq=False)
class Label:
    """A position in code being assembled; bound by ``Assembler.place``."""

    name: str = ""


@dataclass
class Assembler:
    """Builds code from instructions and labels, resolving jumps to exact varint sizes."""

    _items: list[tuple[int, tuple[int | Label, ...]] | Label] = field(default_factory=list)

    def emit(self, opcode: int, *operands: int | Label) -> None:
        """Append one instruction; jump operands may be labels."""
        info = op_info(opcode)
        if info is None:
            raise ValueError(f"unknown opcode 0x{opcode:02x}")
        if len(operands) != len(info.operands):
            raise ValueError(f"{info.name} takes {len(info.operands)} operands")
        self._items.append((opcode, operands))

    def place(self, label: Label) -> None:
        """Bind ``label`` to the current position."""
        self._items.append(label)

    def assemble(self) -> bytes:
        """Resolve labels and return the code.

        A jump's distance depends on the encoded sizes of the instructions it spans, which
        depend on the distances: start from minimal sizes and re-encode until they settle
        (sizes only grow, so this terminates).
        """
        sizes = [0 if isinstance(it, Label) else 1 for it in self._items]
        while True:
            starts, positions = [], {}
            pos = 0
            for item, size in zip(self._items, sizes, strict=True):
                starts.append(pos)
                if isinstance(item, Label):
                    positions[id(item)] = pos
                pos += size
            out = bytearray()
            new_sizes = []
            for item, start, size in zip(self._items, starts, sizes, strict=True):
                if isinstance(item, Label):
                    new_sizes.append(0)
                    continue
                begin = len(out)
                self._encode(item, start + size, positions, out)
                new_sizes.append(max(len(out) - begin, size))
            if new_sizes == sizes:
                return bytes(out)
            sizes = new_sizes

    @staticmethod
    def _encode(
        item: tuple[int, tuple[int | Label, ...]], end: int, positions: dict[int, int],
        out: bytearray,
    ) -> None:
        opcode, operands = item
        info = op_info(opcode)
        assert info is not None
        out.append(opcode)
        for kind, value in zip(info.operands, operands, strict=True):
            if isinstance(value, Label):
                if id(value) not in positions:
                    raise ValueError(f"label {value.name or '?'} never placed")
                if kind is Operand.FWD:
                    value = positions[id(value)] - end
                elif kind is Operand.BACK:
                    value = end - positions[id(value)]
                else:
                    raise ValueError(f"{info.name}: a label is not a {kind.value}")
                if value < 0:
                    raise ValueError(f"{info.name}: label {value} is on the wrong side")
            if kind is Operand.IMM:
                encode_svarint(value, out)
            else:
                encode_uvarint(value, out)


# --------------------------------------------------------------------------- disassembly


@dataclass(frozen=True)
class Names:
    """Names for the index spaces of one code unit, so listings read like source."""

    locals: Sequence[str] = ()
    globals: Sequence[str] = ()
    arrays: Sequence[str] = ()
    functions: Sequence[str] = ()
    natives: Sequence[str] = ()
    env: Sequence[str] = ()
    ext: Sequence[str] = ()

    def name(self, kind: Operand, index: int) -> str | None:
        table: Sequence[str] = {
            Operand.LOCAL: self.locals,
            Operand.GLOBAL: self.globals,
            Operand.ARRAY: self.arrays,
            Operand.FUNC: self.functions,
            Operand.NATIVE: self.natives,
            Operand.ENV: self.env,
        }.get(kind, ())
        return table[index] if 0 <= index < len(table) else None


def disassemble(code: bytes, names: Names | None = None) -> list[str]:
    """A readable listing: offsets, labels at jump targets, symbolic operands.

    Malformed code is listed up to the first bad byte, followed by the decoding error.
    """
    names = names or Names()
    decoded: list[Decoded] = []
    error: DecodeError | None = None
    try:
        for ins in decode(code):
            decoded.append(ins)
    except DecodeError as exc:
        error = exc
    targets = sorted({t for ins in decoded if (t := ins.target()) is not None})
    labels = {t: f"L{i + 1}" for i, t in enumerate(targets)}
    lines = []
    for ins in decoded:
        if ins.offset in labels:
            lines.append(f"{labels[ins.offset]}:")
        lines.append(f"  {ins.offset:5d}  {_render(ins, names, labels)}")
    if len(code) in labels:
        lines.append(f"{labels[len(code)]}:")
    if error is not None:
        lines.append(f"  {error.offset:5d}  ?? {error.reason}")
    return lines


def _render(ins: Decoded, names: Names, labels: dict[int, str]) -> str:
    if ins.opcode >= EXT_BASE:
        k = ins.opcode - EXT_BASE
        ext = names.ext[k] if k < len(names.ext) else f"ext{k}"
        return f"{ext:<10s}  ; VMlet instruction (0x{ins.opcode:02x})"
    info = ins.info
    parts = []
    for kind, value in zip(info.operands, ins.operands, strict=True):
        if kind in (Operand.FWD, Operand.BACK):
            target = ins.target()
            assert target is not None
            parts.append(labels.get(target, f"+{target}"))
        elif kind is Operand.IMM:
            parts.append(str(value))
        else:
            name = names.name(kind, value)
            parts.append(name if name is not None else f"{kind.value}#{value}")
    return f"{info.name:<8s} {', '.join(parts)}".rstrip()
