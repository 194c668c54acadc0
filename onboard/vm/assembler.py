"""The assembler: the text form of bytecode back to bytes, the inverse of ``isa.disassemble``.

It reads what the disassembler writes (``ccl disasm``, ``vvm inspect``) and the shorter
form the hand-written test cases use (``tests/onboard/verifier_cases/*.vasm``)::

    L1:                                   a label, placed at the next instruction
      12  LOAD_L   v                      an offset (ignored: the assembler recomputes it),
                                          a mnemonic and its operands, comma-separated
    JZ L2                                 no offset; a jump's operand is a label ...
    JMP 3                                 ... or a raw distance in bytes
    photometry.med3  ; VMlet instruction  an extension opcode by the name ``Names.ext``
    EXT0                                  gives it, or by number (``ext0`` too)

An index operand (local, global, array, function, native, environment entry) is a number,
the disassembler's ``kind#N`` (``global#0``), or a name from the ``Names`` given, which must
name one index only. ``;`` starts a comment. A line ``?? reason``, which the disassembler
writes where the bytes stop decoding, cannot be assembled.

For code whose varints are minimal (all the compiler and this assembler write) and whose
jumps land on instructions, ``assemble(disassemble(code, names), names) == code``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from onboard.vm import isa

_OFFSET = re.compile(r"\d+\s+")
_EXT = re.compile(r"ext(\d+)", re.IGNORECASE)
_INDEXED = re.compile(r"([a-z]+)#(\d+)")
_NUMBER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class AssemblyError(ValueError):
    """Text that is not bytecode: what is wrong, and on which line (1-based)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def assemble(text: str | Iterable[str], names: isa.Names | None = None) -> bytes:
    """The bytecode that ``text`` (a string, or its lines) spells, resolving labels and
    the symbolic operands ``names`` gives. Raises ``AssemblyError`` on text that is not
    bytecode."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    reader = _Reader(names or isa.Names())
    for number, line in enumerate(lines, start=1):
        try:
            reader.read(line)
        except ValueError as exc:
            raise AssemblyError(number, str(exc)) from None
    try:
        return reader.asm.assemble()
    except ValueError as exc:  # a label used but never placed, a jump the wrong way
        raise AssemblyError(len(lines), str(exc)) from None


class _Reader:
    """Feeds one line after another to an ``isa.Assembler``."""

    def __init__(self, names: isa.Names) -> None:
        self.names = names
        self.asm = isa.Assembler()
        self.labels: dict[str, isa.Label] = {}
        self.tables: dict[isa.Operand, dict[str, list[int]]] = {}

    def label(self, name: str) -> isa.Label:
        return self.labels.setdefault(name, isa.Label(name))

    def read(self, line: str) -> None:
        text = line.partition(";")[0].strip()
        if not text:
            return
        if text.endswith(":"):
            self.asm.place(self.label(text[:-1].strip()))
            return
        text = _OFFSET.sub("", text, count=1) if _OFFSET.match(text) else text
        if text.startswith("??"):
            raise ValueError(f"the listing marks undecodable bytes here ({text[2:].strip()})")
        mnemonic, _, rest = text.partition(" ")
        tokens = [t.strip() for t in rest.split(",")] if rest.strip() else []
        opcode = self.opcode(mnemonic)
        info = isa.op_info(opcode)
        assert info is not None  # opcode() returns known opcodes only
        if len(tokens) != len(info.operands):
            raise ValueError(f"{info.name} takes {len(info.operands)} operand(s), "
                             f"got {len(tokens)}")
        self.asm.emit(opcode, *(self.operand(kind, token)
                                for kind, token in zip(info.operands, tokens, strict=True)))

    def opcode(self, mnemonic: str) -> int:
        ext = _EXT.fullmatch(mnemonic)
        if ext:
            if int(ext.group(1)) >= isa.EXT_COUNT:
                raise ValueError(f"{mnemonic}: there are {isa.EXT_COUNT} extension opcodes")
            return isa.EXT_BASE + int(ext.group(1))
        if mnemonic in self.names.ext:
            return isa.EXT_BASE + list(self.names.ext).index(mnemonic)
        if mnemonic in isa.BY_NAME:
            return isa.BY_NAME[mnemonic].code
        raise ValueError(f"unknown instruction {mnemonic!r}")

    def operand(self, kind: isa.Operand, token: str) -> int | isa.Label:
        if _NUMBER.fullmatch(token):
            value = int(token)
            if kind is not isa.Operand.IMM and not 0 <= value <= 0xFFFFFFFF:
                raise ValueError(f"a {kind.value} operand is in 0 .. 2**32 - 1, not {value}")
            return value
        if kind in (isa.Operand.FWD, isa.Operand.BACK):
            return self.label(token)
        if kind is isa.Operand.IMM:
            raise ValueError(f"an immediate is a number, not {token!r}")
        indexed = _INDEXED.fullmatch(token)
        if indexed:
            if indexed.group(1) != kind.value:
                raise ValueError(f"{token} where a {kind.value} is expected")
            return int(indexed.group(2))
        found = self.index_of(kind).get(token, [])
        if len(found) != 1:
            why = "names no" if not found else f"names {len(found)} entries of the"
            raise ValueError(f"{token!r} {why} {kind.value} table")
        return found[0]

    def index_of(self, kind: isa.Operand) -> dict[str, list[int]]:
        """The indices each name of ``kind``'s table stands for (built on first use)."""
        if kind not in self.tables:
            table: dict[str, list[int]] = {}
            i = 0
            while (name := self.names.name(kind, i)) is not None:
                table.setdefault(name, []).append(i)
                i += 1
            self.tables[kind] = table
        return self.tables[kind]
