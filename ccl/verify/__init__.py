"""``ccl verify``: Z3 proofs of safety, flight rules and budgets, with counterexamples.

The public API, stable for other tools (``ccl pack`` refuses refuted programs)::

    from ccl.verify import verify_program
    report = verify_program(compiled)           # a ccl.driver.Compiled (or an ir.Program)
    report.status                                # "proven" | "refuted" | "unknown"
    report.refuted                               # obligations with spans and counterexamples
    report.budgets                               # CPU, memory and uplink figures (Budgets)

See ``ccl.verify.program`` for what is proven and how.
"""

from ccl.verify.obligations import (
    Counterexample,
    Kind,
    Method,
    Obligation,
    Replay,
    Status,
    Value,
)
from ccl.verify.program import DEFAULT_TIMEOUT_MS, verify_program
from ccl.verify.report import Budgets, VerifyReport, WorstCase

__all__ = [
    "DEFAULT_TIMEOUT_MS", "Budgets", "Counterexample", "Kind", "Method", "Obligation", "Replay",
    "Status", "Value", "VerifyReport", "WorstCase", "verify_program",
]
