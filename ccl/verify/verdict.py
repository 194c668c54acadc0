"""What packing needs of a proof: its status, and the cycles per frame a patch claims.

The packer does not call the prover: the commands that pack (``ccl pack``, ``ccl sim``)
prove first, with this, and hand the claim to ``ccl.pack.pack``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from ccl.compiled import Compiled
from ccl.verify.program import Step, verify_program


@dataclass(frozen=True)
class Verdict:
    """What ``ccl verify`` concluded: proven, refuted, unknown or unavailable."""

    status: str
    cycles_per_frame: int | None
    detail: str
    share_used_percent: float | None = None  # the proven worst load, % of the CPU share


def run_verifier(compiled: Compiled, step: Step | None = None) -> Verdict:
    """Prove ``compiled`` (``verify_program``) before it is packed. The cycle claim is the
    tasks' worst-case load per frame (each task's proven bound spread over its period).
    ``step``: called after each step of the proof (progress)."""
    report = verify_program(compiled, step=step)
    budgets = report.budgets
    per_second = sum((w.cycles_per_s for w in budgets.tasks), Fraction(0))
    cycles = math.ceil(per_second * budgets.frame_ms / 1000)
    failing = report.refuted or report.unknown
    detail = (f"{failing[0].where}: {failing[0].status.value}: {failing[0].stated}"
              if failing else f"worst case {cycles} cycles per frame")
    return Verdict(report.status, cycles, detail, budgets.share_used_percent)
