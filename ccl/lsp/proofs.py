"""The verifier's verdict on a saved file, for ``ccl lsp`` (verify on save).

Run as a process of its own (``python -m ccl.lsp.proofs [--missions DIR]... FILE``) so that
proving, which takes seconds, never slows the answers to typing, and so that a stale run is
cancelled by ending its process. It prints one JSON object on stdout::

    {"status": "proven" | "refuted" | "unknown" | "rejected", "reused": bool,
     "diagnostics": [Diagnostic.to_json(), ...]}

``reused`` says the verdict is a kept proof of the very same configuration
(``ccl.verify.proof_cache``); a verdict proven now is kept for the next save, for
``ccl verify`` and for ``ccl pack``. Front-end errors are not repeated ("rejected", no
diagnostics): the typing path has shown them already.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ccl.diagnostics import CclError
from ccl.driver import Compiler
from ccl.limits import recursion_headroom
from ccl.verify import proof_cache
from ccl.verify.program import verify_program
from ccl.verify.report import diagnostic
from ccl.verify.verdict import keep_verdict
from onboard.mission import MissionError


def verdict(path: Path, mission_dirs: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Compile and prove ``path`` (or recall its kept proof): the JSON object above."""
    try:
        compiled = Compiler(mission_dirs=mission_dirs).compile(path)
    except CclError:
        return {"status": "rejected", "reused": False, "diagnostics": []}
    kept = proof_cache.recall(compiled)
    if kept is not None:
        return {"status": "proven", "reused": True, "diagnostics": []}
    try:
        report = verify_program(compiled)
    except MissionError as exc:
        return {"status": "rejected", "reused": False, "diagnostics": [
            {"severity": "error", "code": "E-MISSION", "message": exc.message,
             "hint": exc.hint}]}
    keep_verdict(compiled, report)
    return {"status": report.status, "reused": False,
            "diagnostics": [diagnostic(o).to_json() for o in (*report.refuted,
                                                               *report.unknown)]}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m ccl.lsp.proofs``."""
    parser = argparse.ArgumentParser(prog="python -m ccl.lsp.proofs")
    parser.add_argument("--missions", action="append", default=[], type=Path)
    parser.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    with recursion_headroom():
        result = verdict(args.file, tuple(args.missions))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
