"""The CoRoT end-to-end demo (``make demo``): the whole pipeline, run as an operator would,
with the real ``ccl`` commands, ending with the mission's scenarios (``ccl sim``).

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


def run(args: list[object], expect_rc: int, keep: int | None = None) -> bool:
    shown = " ".join(str(a).replace(str(ROOT) + "/", "") for a in args)
    print(f"\n$ ccl {shown}")
    proc = subprocess.run([sys.executable, "-m", "cli.ccl", *map(str, args)],
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
    print("CoRoT demo: reconfiguring the instrument software over a 140 kbit/day link, with "
          "the real `ccl` commands")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        print("\n== 1. check every configuration (bad_syntax must be refused)")
        configs = sorted(p for p in CONFIGS.glob("*.ccl") if p.stem != "bad_syntax")
        results.append(run(["check", *configs], 0))
        results.append(run(["check", CONFIGS / "bad_syntax.ccl"], 1))
        print("\n== 2. prove them: exo_e1 v5 is proven; bad_index and bad_budget are refuted "
              "with counterexamples")
        results.append(run(["verify", CONFIGS / "exo_e1.ccl"], 0))
        results.append(run(["verify", CONFIGS / "bad_index.ccl"], 1, keep=24))
        results.append(run(["verify", CONFIGS / "bad_budget.ccl"], 1, keep=24))
        print("\n== 3. the listing of the cosmic filter, as the VVM will run it")
        results.append(run(["disasm", CONFIGS / "exo_e1.ccl"], 0, keep=60))
        print("\n== 4. the passes over Kiruna and Aussaguel (SGP4 from the TLE)")
        results.append(run(["passes", "--start", "2014-06-11", "--days", "1"], 0))
        print("\n== 5. the scenarios end to end: compile, verify, pack, uplink over the passes, "
              "apply on board under the 10 % share, telemetry, ledger")
        results.append(run(["sim", HERE / "scenarios", "--ledger", out / "ledger.sqlite"], 0))
        results.append(run(["status", "--ledger", out / "ledger.sqlite"], 0))
    failed = results.count(False)
    print(f"\n{len(results) - failed} of {len(results)} steps as expected.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
