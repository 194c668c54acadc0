"""Benchmark: how long the commands take to start, as a user runs them.

Wall time of the real console scripts, each a fresh process: ``ccl --help`` (target
0.15 s), ``ccl check`` of a small configuration (``exo_e1.ccl``, 58 lines, which compiles
the ``photometry`` VMlet it uses; target 0.3 s) and ``vvm --help``, beside ``python -c pass``
(the floor: the interpreter's own start). Bytecode is cached (one warm-up run each, with
``PYTHONDONTWRITEBYTECODE`` unset), as after any installation. The commands run in turn,
round after round, so that a burst of load on the machine hits them all alike.

One JSON line per command: ``{"benchmark": "startup", "metric": "ccl_help_s", "value":
MEDIAN, "unit": "s", "min": ..., "max": ..., "spread": max-min over median, "above_floor":
median minus the floor's median, "runs": N, "target": ...}``.

Usage: ``python benchmarks/startup.py [--runs N]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the console scripts sit beside this interpreter
SMALL = ROOT / "missions" / "corot" / "configs" / "exo_e1.ccl"

#: metric -> (command line, target in seconds or None)
COMMANDS: dict[str, tuple[list[str], float | None]] = {
    "python_floor_s": ([sys.executable, "-c", "pass"], None),
    "ccl_help_s": ([str(BIN / "ccl"), "--help"], 0.15),
    "ccl_check_small_s": ([str(BIN / "ccl"), "check", str(SMALL)], 0.3),
    "vvm_help_s": ([str(BIN / "vvm"), "--help"], None),
}


def wall(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from start to exit of one run of ``argv`` (which must succeed)."""
    t = time.perf_counter()
    subprocess.run(argv, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    missing = [c[0][0] for c in COMMANDS.values() if not Path(c[0][0]).exists()]
    if missing:
        sys.exit(f"startup: no {', '.join(missing)} (install the package: pip install -e .)")
    for command, _ in COMMANDS.values():  # warm-up: writes the bytecode caches
        wall(command, env)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, (command, _) in COMMANDS.items():
            times[name].append(wall(command, env))
    floor = statistics.median(times["python_floor_s"])
    common = {"runs": args.runs, "cpus": os.cpu_count(),
              "load_1min": round(os.getloadavg()[0], 2), "python": sys.version.split()[0]}
    for name, (command, target) in COMMANDS.items():
        runs = times[name]
        median = statistics.median(runs)
        figure = {"benchmark": "startup", "metric": name, "value": round(median, 4),
                  "unit": "s", "min": round(min(runs), 4), "max": round(max(runs), 4),
                  "spread": round((max(runs) - min(runs)) / median, 3),
                  "above_floor": round(median - floor, 4),
                  "command": " ".join(Path(command[0]).name if i == 0 else a
                                      for i, a in enumerate(command)).replace(str(ROOT) + "/", ""),
                  **({"target": target} if target is not None else {}), **common}
        print(json.dumps(figure), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
