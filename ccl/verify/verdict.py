"""What packing needs of a proof: its status, and the cycles per frame a patch claims.

The packer does not call the prover: the commands that pack (``ccl pack``, ``ccl sim``)
prove first, with this, and hand the claim to ``ccl.pack.pack``. A proven verdict is kept
(``ccl.verify.proof_cache``), so that packing after ``ccl verify`` can reuse it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction

from ccl.compiled import Compiled
from ccl.verify import proof_cache
from ccl.verify.program import Step, verify_program
from ccl.verify.report import VerifyReport


@dataclass(frozen=True)
class Verdict:
    """What ``ccl verify`` concluded: proven, refuted, unknown or unavailable."""

    status: str
    cycles_per_frame: int | None
    detail: str
    share_used_percent: float | None = None  # the proven worst load, % of the CPU share
    reused: bool = False  # a kept proof of the same configuration, not proven again now


def verdict_of(report: VerifyReport) -> Verdict:
    """The verdict of a verification. The cycle claim is the tasks' worst-case load per
    frame (each task's proven bound spread over its period)."""
    budgets = report.budgets
    per_second = sum((w.cycles_per_s for w in budgets.tasks), Fraction(0))
    cycles = math.ceil(per_second * budgets.frame_ms / 1000)
    failing = report.refuted or report.unknown
    detail = (f"{failing[0].where}: {failing[0].status.value}: {failing[0].stated}"
              if failing else f"worst case {cycles} cycles per frame")
    return Verdict(report.status, cycles, detail, budgets.share_used_percent)


def keep_verdict(compiled: Compiled, report: VerifyReport) -> None:
    """Keep the verdict of ``report`` if it is proven, for a later ``run_verifier``."""
    verdict = dataclasses.asdict(verdict_of(report))
    verdict.pop("reused")
    proof_cache.keep(compiled, verdict)


def run_verifier(compiled: Compiled, step: Step | None = None, reuse: bool = False) -> Verdict:
    """Prove ``compiled`` (``verify_program``) before it is packed; with ``reuse``, a kept
    proof of the very same configuration (sources, images, mission, verifier) instead.
    ``step``: called after each step of the proof (progress)."""
    kept = proof_cache.recall(compiled) if reuse else None
    if kept is not None:
        try:
            return Verdict(**kept, reused=True)  # type: ignore[arg-type]
        except TypeError:  # kept by another version of this dataclass: prove again
            pass
    report = verify_program(compiled, step=step)
    keep_verdict(compiled, report)
    return verdict_of(report)
