"""Benchmark: how parallel work scales out (``cli.executor``): the soundness campaign
(``ccl campaign``) and ``ccl verify`` of many files, serial vs 2 local processes vs a local
Ray cluster of 2 CPUs, side by side.

Each measurement is the real command line in a fresh process (cold: no proof cache,
``CCL_PROOF_CACHE=off``; imports, forking the workers, or joining Ray and shipping the job
included), wall clock. The modes are interleaved within each repeat (serial, local, Ray,
serial, ...), so that the load of a shared machine falls on all of them alike, and the
speed-up is taken per repeat (serial time / parallel time of the same repeat): the figures
are its median and its spread (min, max) over the repeats. The results of every mode are
checked equal to the serial ones, whole (times and where they ran aside:
``tests/scale_out.py``), before any figure is printed.

Prints one JSON line per figure::

    {"benchmark": "scaling", "metric": "speedup_<work>_<mode>", "value": ..., "unit": "x",
     "min": ..., "max": ..., "serial_s": ..., "repeats": ..., "cores": ...}

and ``seconds_<work>_<mode>`` (median wall time); ``cpu_ratio_<work>_local2``: the CPU
time of the parallel run (the command and its workers) over the serial one's, which the
other users of the machine do not change: what parallelism costs in work, so that N idle
cores could give at most N / cpu_ratio. The load average of the machine during the run is
in the context. What it does not cover: more than this
machine's cores (a Ray cluster of many nodes: see docs/scaling.md for what grows with it),
the per-program time of a long campaign (here a few dozen programs, so the fixed start-up
weighs more than in a campaign of thousands), memory, and a loaded Ray cluster.

Usage: ``python benchmarks/scaling.py [--programs N] [--repeats N] [--no-ray]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/scale_out.py: a local Ray, started here

from scale_out import local_ray, timeless  # noqa: E402

NAME = "scaling"
CONFIGS = sorted(str(p) for p in (ROOT / "missions" / "corot" / "configs").glob("*.ccl"))


def _figure(metric: str, value: float, unit: str, **context: Any) -> None:
    print(json.dumps({"benchmark": NAME, "metric": metric, "value": value, "unit": unit,
                      **context}), flush=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(args: list[str]) -> tuple[float, float, Any]:
    """Wall seconds of ``ccl ARGS --json`` in a fresh process, the CPU seconds it and its
    local workers used (not Ray's workers: they are not its children), and its output."""
    env = {**os.environ, "CCL_PROOF_CACHE": "off"}
    cpu = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cli.ccl", *args, "--json", "--quiet"],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - start
    cpu = _children_cpu() - cpu
    if proc.returncode not in (0, 1):  # verify of the bad configurations exits 1
        raise SystemExit(f"scaling: ccl {' '.join(args)} exited {proc.returncode}: "
                         f"{proc.stderr[-1000:]}{proc.stdout[-1000:]}")
    return seconds, cpu, json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=40, help="campaign size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-ray", action="store_true", help="local processes only")
    args = parser.parse_args(argv)
    work = {"campaign": ["campaign", "--programs", str(args.programs), "--seed", "1"],
            "verify": ["verify", *CONFIGS]}
    ray_installed = importlib.util.find_spec("ray") is not None
    with local_ray(2) if ray_installed and not args.no_ray else _nothing() as address:
        modes = {"serial": ["--jobs", "1"], "local2": ["--jobs", "2"]}
        if address is not None:
            modes["ray2"] = ["--ray", address]
        seconds: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        loads = [os.getloadavg()[0]]
        for _ in range(args.repeats):
            for w, command in work.items():
                reference = None
                for mode, extra in modes.items():
                    took, used, data = _run([*command, *extra])
                    if reference is None:
                        reference = timeless(data)
                    elif timeless(data) != reference:
                        raise SystemExit(f"scaling: {w} on {mode} differs from serial")
                    seconds.setdefault((w, mode), []).append(took)
                    cpu.setdefault((w, mode), []).append(used)
            loads.append(os.getloadavg()[0])
    # a shared machine: the other users' load is what a wall-clock speed-up competes with
    context = {"repeats": args.repeats, "cores": os.cpu_count(), "programs": args.programs,
               "files": len(CONFIGS), "load_avg_min": round(min(loads), 1),
               "load_avg_max": round(max(loads), 1)}
    for w in work:
        serial = seconds[w, "serial"]
        for mode in modes:
            times = seconds[w, mode]
            _figure(f"seconds_{w}_{mode}", round(statistics.median(times), 2), "s",
                    min=round(min(times), 2), max=round(max(times), 2), **context)
            if mode == "serial":
                continue
            ratios = [s / t for s, t in zip(serial, times, strict=True)]
            _figure(f"speedup_{w}_{mode}", round(statistics.median(ratios), 3), "x",
                    min=round(min(ratios), 3), max=round(max(ratios), 3),
                    serial_s=round(statistics.median(serial), 2), **context)
            if mode.startswith("local"):  # CPU of all the workers / CPU of one process
                shares = [p / s for s, p in zip(cpu[w, "serial"], cpu[w, mode], strict=True)]
                _figure(f"cpu_ratio_{w}_{mode}", round(statistics.median(shares), 3), "x",
                        min=round(min(shares), 3), max=round(max(shares), 3),
                        serial_cpu_s=round(statistics.median(cpu[w, "serial"]), 2),
                        **context)
    return 0


@contextmanager
def _nothing() -> Iterator[str | None]:
    yield None


if __name__ == "__main__":
    sys.exit(main())
