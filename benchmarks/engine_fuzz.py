"""The engine that flies, fuzzed at length: random verifier-accepted bytecode
(``tests/onboard/bytecode_programs.py``) on the translated engine and the reference
interpreter under several budget slicings (``tests/onboard/engine_oracle.py``), in parallel
over the machine's cores. Program ``i`` is seed ``start + i``: any finding is reproduced by
its seed alone (``python benchmarks/engine_fuzz.py --programs 1 --start SEED``).

    python benchmarks/engine_fuzz.py                              # 1,000,000 programs
    python benchmarks/engine_fuzz.py --programs 20000 --workers 2
    python benchmarks/engine_fuzz.py --programs 5000 --start 7000000 --failures bad.jsonl

One in ``--vvm-every`` programs (default 20) also runs through the whole VVM: loaded,
activated (``on apply`` first) and its tasks run for 700 ms on both engines, telemetry and
memory compared. Prints JSON lines (``programs``, ``accepted`` by the verifier,
``host_exceptions``, ``mismatches``, ``fallbacks`` (units the translator gave up on),
``vvm_checks``, ``rate`` in programs per second, with ``start`` and ``workers`` as context);
progress goes to stderr. Exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "onboard"))

CHUNK = 500  # programs per task handed to a worker


def run_chunk(job: tuple[int, int, int]) -> dict[str, Any]:
    """Check seeds ``first .. first + count - 1``; counts and the findings (with seeds)."""
    from bytecode_programs import case_of
    from engine_oracle import check, check_vvm

    first, count, vvm_every = job
    out: dict[str, Any] = {"programs": 0, "accepted": 0, "host_exceptions": 0,
                           "mismatches": 0, "fallbacks": 0, "vvm_checks": 0, "findings": []}
    for seed in range(first, first + count):
        case = case_of(seed)
        verdict = check(case, seed)
        out["programs"] += 1
        out["accepted"] += verdict.accepted
        for kind in ("host_exceptions", "mismatches", "fallbacks"):
            found = getattr(verdict, kind)
            out[kind] += bool(found)
            out["findings"] += [{"seed": seed, "kind": kind, "what": f} for f in found[:1]]
        if vvm_every and seed % vvm_every == 0 and verdict.ok:
            out["vvm_checks"] += 1
            found = check_vvm(case)
            out["host_exceptions"] += bool(found)
            out["findings"] += [{"seed": seed, "kind": "vvm", "what": f} for f in found[:1]]
    return out


def _figure(metric: str, value: float, unit: str, **context: Any) -> None:
    print(json.dumps({"benchmark": "engine_fuzz", "metric": metric, "value": value,
                      "unit": unit, **context}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=1_000_000)
    parser.add_argument("--start", type=int, default=0, help="seed of the first program")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--vvm-every", type=int, default=20,
                        help="one program in N also runs on the whole VVM (0: none)")
    parser.add_argument("--failures", type=Path, help="write every finding here (JSON lines)")
    args = parser.parse_args(argv)
    if args.programs < 0 or args.workers < 1 or args.vvm_every < 0:
        parser.error("--programs and --vvm-every must be >= 0, --workers >= 1")

    jobs = [(first, min(CHUNK, args.start + args.programs - first), args.vvm_every)
            for first in range(args.start, args.start + args.programs, CHUNK)]
    totals: dict[str, Any] = {"programs": 0, "accepted": 0, "host_exceptions": 0,
                              "mismatches": 0, "fallbacks": 0, "vvm_checks": 0,
                              "findings": []}
    t0 = time.perf_counter()
    last = t0
    context = {"start": args.start, "workers": args.workers}
    with multiprocessing.Pool(args.workers) as pool:
        for part in pool.imap_unordered(run_chunk, jobs):
            for key, value in part.items():
                totals[key] += value
            now = time.perf_counter()
            if now - last > 30:
                last = now
                print(f"engine_fuzz: {totals['programs']:,} programs, "
                      f"{totals['programs'] / (now - t0):.0f}/s, "
                      f"{len(totals['findings'])} findings", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0
    findings = sorted(totals.pop("findings"), key=lambda f: f["seed"])
    if args.failures is not None:
        args.failures.write_text("".join(json.dumps(f) + "\n" for f in findings))
    for key in ("programs", "accepted", "host_exceptions", "mismatches", "fallbacks",
                "vvm_checks"):
        _figure(key, totals[key], "programs", **context)
    _figure("rate", round(totals["programs"] / seconds, 1) if seconds else 0,
            "programs/s", seconds=round(seconds, 1), **context)
    for f in findings[:10]:
        print(f"engine_fuzz: seed {f['seed']}: {f['kind']}: {f['what']}", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
