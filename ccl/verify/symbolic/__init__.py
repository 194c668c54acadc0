"""Symbolic execution of the typed IR: obligations where the VVM could trap, and cycle costs.

One ``Executor`` runs one procedure (a task, ``on apply``, ``on load``, a rule, or a function
or VMlet instruction on its own) over symbolic inputs (``ccl.verify.inputs``), with the VVM's
semantics (``onboard/vm/reference.py`` is the specification):

* values are 32-bit; ``+ - * / % neg abs`` trap on overflow (``INT_MIN % -1`` included),
  ``/`` and ``%`` on a zero divisor, array accesses out of bounds, stores outside the declared
  range of a state variable or element, ``RANGE`` checks (ranged locals, arguments, results),
  native arguments outside the mission's ranges. Each is an obligation, checked in
  evaluation order, under the path condition that reaches it (``ccl.verify.solver``);
* ``if`` forks the state and merges it with if-then-else terms; ``&&``/``||`` short-circuit;
* calls of functions and VMlet instructions are inlined (there is no recursion);
* a ``for`` body is executed once, for an arbitrary iteration: the counter is unknown between
  the bounds, and what the body writes (locals, state, arrays) is unknown within its declared
  range, both on entry to the body and after the loop. Sound because the VVM enforces the
  ranges on every store: ranged types are the loop invariants.

Alongside, every instruction ``ccl.codegen`` emits is charged its mission cycles, following
codegen's choices exactly (short-circuit jumps, ``RANGE`` only where codegen emits one, the
``JMP`` over an ``else``, the trailing ``RET``), giving the procedure's cost expression
(``ccl.verify.cost``). A loop costs its trip count times the arbitrary iteration's cost,
which is the exact worst case when an iteration's cost depends neither on its counter nor on
what earlier iterations left. When it does (a window that widens with the counter, a branch
on the first iteration, a flag set once), that product can be far above anything a run
reaches, so the first iterations are executed again one by one, from the actual state with
the actual counter, for their cost only: all of them when the loop has at most
``UNROLL_TRIPS`` iterations (exact), the first ``PEEL_TRIPS`` otherwise, the arbitrary
iteration standing for the rest. A loop that may ``return`` costs, on the path that
returns, the iterations before the one that returns, then that one up to its ``return``.
"""

from ccl.verify.symbolic.executor import Executor
from ccl.verify.symbolic.loops import PEEL_TRIPS, UNROLL_BUDGET, UNROLL_TRIPS
from ccl.verify.symbolic.state import needs_range_check

__all__ = ["PEEL_TRIPS", "UNROLL_BUDGET", "UNROLL_TRIPS", "Executor", "needs_range_check"]
