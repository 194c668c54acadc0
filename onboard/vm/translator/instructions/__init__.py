"""The emitters of the instructions, one module per family (as a single-pass compiler has
one parse function per rule): ``data`` (constants, stack, locals, globals, arrays),
``arithmetic`` (arithmetic, comparisons, range checks), ``jumps`` (branches, loops,
returns) and ``calls`` (calls, natives, VMlet instructions)."""

from __future__ import annotations

from onboard.vm import isa
from onboard.vm.translator.instructions import arithmetic, calls, data, jumps
from onboard.vm.translator.state import Emitter

#: The emitter of each built-in opcode.
EMITTERS: dict[int, Emitter] = {**data.EMITTERS, **arithmetic.EMITTERS, **jumps.EMITTERS,
                                **calls.EMITTERS}


def emitter_for(opcode: int) -> Emitter:
    """The function that writes the Python of an instruction with ``opcode``."""
    if opcode >= isa.EXT_BASE:
        return calls.vmlet_instruction
    emitter = EMITTERS.get(opcode)
    if emitter is None:  # the verifier admits no other opcode
        raise ValueError(f"opcode 0x{opcode:02x} has no translation")
    return emitter
