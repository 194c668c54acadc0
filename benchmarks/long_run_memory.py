"""Memory of a long ``vvm run``: the peak resident memory of the real command over 30
simulated days of ``exo_e1`` (target: 60 MiB), beside that of one day (the growth between
them is what a run's length costs).

Metrics ``peak_rss_1d`` and ``peak_rss_30d`` (MiB, the ``vvm run`` process alone, from
``wait4``), and ``growth_per_day`` (KiB a simulated day between them: the recent windows
of telemetry and of the simulated instrument fill in the first two to four days, after
which nothing grows). ``--days N`` for another length than 30 (about 6 minutes of an idle
core for 30 days).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ccl.driver import Compiler  # noqa: E402

TARGET_MIB = 60


def vvm(*args: str) -> None:
    """Run a ``vvm`` command that must succeed."""
    subprocess.run([sys.executable, "-m", "cli.vvm", *args], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)


def peak_rss_mib(*args: str) -> tuple[float, float]:
    """Run ``vvm ARGS``: its own peak resident memory (MiB) and host seconds."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "cli.vvm", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"long_run_memory: vvm {' '.join(args)} failed")
    return usage.ru_maxrss / 1024, time.perf_counter() - t  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=30)
    days = parser.parse_args().days
    compiled = Compiler().compile(ROOT / "missions/corot/configs/exo_e1.ccl")
    with tempfile.TemporaryDirectory() as tmp:
        images = []
        for n, image in enumerate([*(v.image for v in compiled.vmlets), compiled.image]):
            path = Path(tmp) / f"{n}.vvmi"
            path.write_bytes(image.encode())
            images.append(str(path))
        figures = {}
        for length in (1, days):
            state = str(Path(tmp) / f"sat{length}")
            vvm("init", state, "--mission", "corot")
            vvm("load", state, *images)
            figures[length] = peak_rss_mib("run", state, "--for", f"{length}d")
    (one, _), (long, seconds) = figures[1], figures[days]
    for metric, value, unit, extra in (
            ("peak_rss_1d", one, "MiB", {}),
            (f"peak_rss_{days}d", long, "MiB", {"target": TARGET_MIB,
                                                "host_seconds": round(seconds, 1)}),
            ("growth_per_day", (long - one) * 1024 / max(1, days - 1), "KiB/day", {})):
        print(json.dumps({"benchmark": "long_run_memory", "metric": metric,
                          "value": round(value, 1), "unit": unit, **extra}), flush=True)


if __name__ == "__main__":
    main()
