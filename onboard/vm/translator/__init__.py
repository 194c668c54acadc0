"""The execution engine: verified bytecode translated into Python generator functions.

Each code unit becomes one generator function, compiled once when its image is loaded.
The operand stack disappears (stack slots become Python locals and expressions), counted
loops become Python ``for`` loops, forward jumps become ``if``/``else`` where the code is
structured that way (and a guarded chain of blocks where it is not), and the bytecode of a
straight-line VMlet instruction is inlined at each use, so that a VMlet-defined instruction
costs what a built-in one would: one level of interpretation.

Metering is exact and cheap. Every basic block knows its static cost; when the budget
covers the whole block it is charged at once (fast path), otherwise the block runs
instruction by instruction and yields the remaining budget exactly before the first
instruction that does not fit (slow path): the same behaviour as ``onboard.vm.reference``,
cycle for cycle. A trap in the fast path gives back the cost of the block's instructions
after the trapping one, so charges stay exact.

Checks that cannot fail are left out: a flow-insensitive range analysis (declared ranges of
globals, arrays, native results and environment values, constants, and the ranges of what is
stored in each local, iterated to a fixpoint) proves most overflow, bounds and range checks
unnecessary. It relies only on invariants the VVM itself enforces.

Where nothing can suspend the code (a loop charged as a whole or per batch, or no metering),
no other task can change data memory under it: a load is written where its value is used
(flushed before a store into the same array or global, a call, or a change of a local it
reads), and a loop whose counter only loads one array it does not store iterates a slice of
that array, as a programmer would. The host has no handle on data memory, so a native call
keeps such loads waiting. What remains are the checks the specification asks for: a
native's result is an integer within its declared range (``isinstance`` and two plain
comparisons), whatever the host.

Verified code never makes loading fail: a unit the translator cannot translate (it raises,
or emits code Python refuses: a translator bug) runs on the reference interpreter instead,
as units with dead code do; ``Translated.fallbacks`` and the VVM's status name such units.
``tests/onboard/test_engine_fuzz.py`` (and ``benchmarks/engine_fuzz.py`` at length) runs
random verifier-accepted bytecode on both engines and counts every fallback as a failure.

The package, in the order a unit goes through it: ``image`` (every unit of an image, the
out-of-line VMlet code, the fallbacks), ``unit`` (one unit, the range analysis iterated to a
fixpoint), ``structure`` (blocks, loops, if/else trees), ``regions`` (control flow written as
Python, loops metered as a whole), ``blocks`` (one block metered: fast and slow paths),
``instructions`` (one emitter per instruction, by family), ``inlining`` (calls and VMlet
instructions translated in place); beneath them ``state`` (one unit's translation in
progress), ``costs`` (static cycles, inlining decisions), ``ranges``, ``values``,
``context`` and ``writer``.
"""

from onboard.vm.translator.image import Translated, translate

__all__ = ["Translated", "translate"]
