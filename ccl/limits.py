"""How deeply a CCL program may nest, and the Python recursion that walking it needs.

The parser, the checker, code generation and ``ccl verify`` walk programs recursively, so
the depth of a program must be bounded before they run. Two documented limits
(docs/language.md, "Limits") bound it, both reported as ``E-TOO-DEEP``:

* ``MAX_BRACKETS``: brackets ``( [ {`` open at most this deep (``ccl.syntax`` checks it
  before parsing; the parser spends about 18 Python frames per level);
* ``MAX_NESTING``: the nesting depth of the checked program, counted through calls
  (``ccl.sema`` checks it on the IR): every enclosing ``if``/``else if``/``for`` and every
  enclosing operator, call or index operation counts one level, and a call also counts
  the depth of the body it calls, since the verifier inlines calls. Flat operator chains
  nest (``a + b + c`` is ``(a + b) + c``), so a sum has at most ``MAX_NESTING`` terms.

Within these limits no walk of the front end or of the verifier needs more than
``RECURSION_LIMIT`` Python frames (measured by tests/ccl/test_limits.py); walks that are
not pure Python recursion (generators, ``any``) go only as deep as statements nest, at most
``MAX_BRACKETS``, which the C stack holds easily.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

MAX_BRACKETS = 256
MAX_NESTING = 1024

#: The walk that takes most frames per level, the verifier inlining a chain of calls, takes
#: about 5 per level of ``MAX_NESTING``; the parser about 13 per level of ``MAX_BRACKETS``.
#: More than twice the worst, plus the frames of the callers.
RECURSION_LIMIT = 12 * MAX_NESTING + 2000


@contextlib.contextmanager
def recursion_headroom() -> Iterator[None]:
    """Run the body with Python's recursion limit raised to at least ``RECURSION_LIMIT``,
    and restore it afterwards. (Python 3.11 runs Python-to-Python calls without growing the
    C stack, so the raised limit is safe for the pure recursion it is meant for.)"""
    previous = sys.getrecursionlimit()
    if previous >= RECURSION_LIMIT:
        yield
        return
    sys.setrecursionlimit(RECURSION_LIMIT)
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)
