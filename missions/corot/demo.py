"""The CoRoT end-to-end demo (``make demo``): what exists of the pipeline, run as an operator
would, with the real ``ccl`` commands.

Each step prints the command, its output and whether the outcome is the expected one; the
demo fails (exit 1) if any is not.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CONFIGS = HERE / "configs"


def run(args: list[str], expect_rc: int, keep: int | None = None) -> bool:
    shown = " ".join(str(a).replace(str(ROOT) + "/", "") for a in args)
    print(f"\n$ ccl {shown}")
    proc = subprocess.run([sys.executable, "-m", "ccl.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)
    text = (proc.stdout + proc.stderr).rstrip()
    lines = text.splitlines()
    if keep is not None and len(lines) > keep:
        lines = lines[:keep] + [f"... ({len(text.splitlines()) - keep} more lines)"]
    print("\n".join("  " + line for line in lines))
    ok = proc.returncode == expect_rc
    print(f"  -> exit {proc.returncode} ({'as expected' if ok else f'EXPECTED {expect_rc}'})")
    return ok


def main() -> int:
    print("CoRoT demo: the CCL front end on the language contract's programs")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        print("\n== 1. check every configuration (bad_syntax must be refused)")
        for f in sorted(CONFIGS.glob("*.ccl")):
            results.append(run(["check", f], 1 if f.stem == "bad_syntax" else 0))
        print("\n== 2. compile the photometry VMlet and the exo_e1 configuration")
        results.append(run(["compile", HERE / "vmlets" / "photometry.ccl",
                            "-o", out / "photometry.vvmi"], 0))
        results.append(run(["compile", CONFIGS / "exo_e1.ccl", "-o", out / "exo_e1.vvmi"], 0))
        print("\n== 3. the image as the satellite decodes it, then the listing with source names")
        results.append(run(["disasm", out / "exo_e1.vvmi"], 0, keep=22))
        results.append(run(["disasm", CONFIGS / "exo_e1.ccl"], 0, keep=90))
    failed = results.count(False)
    print(f"\n{len(results) - failed} of {len(results)} steps as expected.")
    print("Still to come: ccl verify (issue 4), the VVM (issue 3), patches (issue 5), "
          "uplink and `ccl sim` (issue 6).")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
