"""Pausing Python's cyclic garbage collector while a compile or a verification runs.

Two reasons, one mechanism. A compile builds a large graph of objects (the syntax tree,
the IR, the code) that all live until it ends: the collector would traverse them again and
again, for a third of the compile time, and find nothing to free. A verification must not
depend on *when* the collector runs at all: Z3 reuses the ids of freed terms, and those ids
order its internal work, so which model (counterexample, worst-case witness) it returns
depends on which terms were freed before a query. Terms held by reference cycles are freed
when the collector runs, and when it runs depends on everything the process allocated
before (its generation counters), not on the program being verified. With the collector
paused, terms are freed by reference counting alone, at the same points of every run.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the duration (re-entrant: an inner pause
    leaves it to the outer one to resume). What became cyclic garbage meanwhile is
    collected afterwards as usual."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
