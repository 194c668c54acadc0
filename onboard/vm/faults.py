"""Traps: the run-time errors that stop a task, and the fault records telemetry carries.

A trap stops the task that raised it at an instruction boundary: the trapping instruction
has no effect (no partial store), it is charged in full, and the fault names the code unit
and the byte offset of the instruction.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class TrapCode(IntEnum):
    OVERFLOW = 1  # 32-bit signed overflow
    DIV_ZERO = 2  # division or modulo by zero
    INDEX = 3  # array index out of bounds
    RANGE = 4  # value outside a declared range (store, RANGE check)
    NATIVE_ARG = 5  # native argument outside its declared range
    NATIVE_RESULT = 6  # native returned a value outside its declared range (host fault)
    OVERRUN = 7  # task not finished by its next release (raised by the scheduler)
    INTERNAL = 8  # the engine itself failed running the job (a VVM bug): stopped as a trap


class Trap(Exception):
    """Raised by executing code. ``remaining`` is the budget left once the trapping
    instruction is charged in full, so the caller knows exactly what the run cost."""

    __slots__ = ("code", "unit", "offset", "remaining")

    def __init__(self, code: TrapCode, unit: int, offset: int, remaining: int = 0) -> None:
        super().__init__(code, unit, offset)
        self.code = code
        self.unit = unit
        self.offset = offset
        self.remaining = remaining


@dataclass(frozen=True)
class Fault:
    """A trap as telemetry reports it."""

    time_ms: int
    task: str
    code: TrapCode
    unit: str
    offset: int

    def __str__(self) -> str:
        return f"t={self.time_ms} ms {self.task}: {self.code.name.lower()} in {self.unit} " \
               f"+{self.offset}"
