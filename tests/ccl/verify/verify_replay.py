"""Running what the verifier found on the VVM (``ccl.verify.replay``), as the tests name it:
the trap each kind of obligation stands for, and a run of one entry point."""

from __future__ import annotations

from ccl.driver import Compiled
from ccl.verify import Kind, Replay
from ccl.verify.replay import run_entry
from onboard.vm.faults import TrapCode
from onboard.vm.vvm import Outcome

#: The trap the VVM raises when an obligation of this kind fails.
TRAP_OF = {
    Kind.OVERFLOW: TrapCode.OVERFLOW, Kind.DIV_ZERO: TrapCode.DIV_ZERO,
    Kind.INDEX: TrapCode.INDEX, Kind.RANGE: TrapCode.RANGE, Kind.ARGUMENT: TrapCode.RANGE,
    Kind.RESULT: TrapCode.RANGE, Kind.NATIVE_ARG: TrapCode.NATIVE_ARG,
}


def run(compiled: Compiled, unit: str, replay: Replay, args: tuple[int, ...] = ()) -> Outcome:
    """Load ``compiled`` on a fresh VVM, set the replay's state and run ``unit`` once."""
    return run_entry(compiled, unit, replay, args)


def unit_of(where: str) -> str:
    """The code unit an obligation's procedure runs as: `task mark > clamp` runs in `mark`."""
    head = where.split(" > ")[0]
    return head.removeprefix("task ").removeprefix("fn ").removeprefix("instr ")
