"""Long fuzzing run of the onboard patcher, two ways:

* byte-level: hypothesis-mutated patches (bit flips, byte edits, insertions, deletions,
  truncations, splices; half of them re-signed so that they reach the decoders), each of
  which must be rejected with a reason code or, if accepted, rebuild the very configuration
  the original patch targets (the engine and oracle of ``tests/onboard/test_patcher.py``);
* signed hostile: structure-aware mutations of real patches, re-encoded and validly signed
  (``tests/onboard/hostile_patches.py``), which reach the bytecode verifier, the rebuild and,
  when accepted, the loader, the translator and a running VVM. Each must be rejected with a
  reason (never ``internal-error``, the store byte-identical) or load and run a few frames
  without a host exception. ``Patcher.check``'s tracemalloc peak is measured against the
  documented bound (512 x N + 64 x the profile's memory).

    python benchmarks/patch_fuzz.py                                # 10,000 + 1,000
    python benchmarks/patch_fuzz.py --examples 0 --hostile 100000  # the long run
    python benchmarks/patch_fuzz.py --hostile 5000 --start 100000 --failures bad.jsonl

``make test`` runs 2,500 byte-level examples and hostile cases 0..399. Prints JSON lines:
patches, rate, rejections by reason, accepted (ran, load refused, trapped), host exceptions
(those inside onboard/vm/translator/ counted apart), and peak_alloc_ratio (the largest peak
over its bound; at most 1). Exits 1 if the invariant breaks outside the translator.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests" / "onboard"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(ROOT / "tests"))  # tests/support.py, the shared test helpers
TRANSLATOR = "onboard/vm/translator/"


def _load_tests() -> Any:
    spec = importlib.util.spec_from_file_location("patcher_tests", TESTS / "test_patcher.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _figure(metric: str, value: float, unit: str, **context: Any) -> None:
    print(json.dumps({"benchmark": "patch_fuzz", "metric": metric, "value": value,
                      "unit": unit, **context}), flush=True)


def byte_level(examples: int) -> None:
    """The hypothesis byte-mutation run."""
    t = _load_tests()
    from ccl.pack import pack

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        a = t.small(d)
        b = t.small(d, version=2, gain=300, bump=11)
        patcher = t.new_patcher(d / "state", a.mission)
        key = t.TEST_KEY
        images = [v.image for v in b.vmlets]
        t.install(patcher, pack(a.image, images, a.mission, key, seq=1).data)
        seeds = [pack(b.image, images, a.mission, key, seq=2, base=a.image, full=False).data,
                 pack(b.image, images, a.mission, key, seq=3).data]
        outcomes: collections.Counter[str] = collections.Counter()

        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(seed=st.integers(0, 1), ops=st.lists(t.MUTATION, min_size=1, max_size=3),
               resign=st.booleans())
        def run(seed: int, ops: list[tuple[str, int, int]], resign: bool) -> None:
            outcomes[t.fuzz_one(patcher, seeds, b.image.content_hash, seed, ops,
                                resign)] += 1

        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
    total = sum(outcomes.values())
    _figure("examples", total, "patches", kind="byte-level", seconds=round(elapsed, 1),
            per_second=round(total / elapsed, 1), failures=0)
    for outcome, count in sorted(outcomes.items(), key=lambda kv: -kv[1]):
        _figure("outcome", count, "patches", kind="byte-level", outcome=outcome)


def signed_hostile(count: int, start: int, measure_every: int,
                   failures: Path | None) -> bool:
    """The signed hostile run; True if the invariant held outside the translator."""
    import hostile_patches as hp

    corpus = hp.make_corpus()
    board = hp.new_board(corpus)
    outcomes: collections.Counter[str] = collections.Counter()
    broken: list[int] = []
    translator: list[int] = []
    trapped = 0
    worst_ratio, worst_peak, worst_per_byte = 0.0, 0, 0.0
    began = time.perf_counter()
    sink = failures.open("w") if failures is not None else None
    for number in range(start, start + count):
        case = hp.hostile_case(corpus, number)
        measure = measure_every > 0 and number % measure_every == 0
        verdict = hp.judge(board, case, measure=measure)
        outcomes[verdict.outcome] += 1
        trapped += verdict.traps > 0
        if verdict.peak is not None:
            bound = hp.allocation_bound(len(case.data), corpus.profile)
            worst_ratio = max(worst_ratio, verdict.peak / bound)
            worst_peak = max(worst_peak, verdict.peak)
            worst_per_byte = max(worst_per_byte, verdict.peak / len(case.data))
        if verdict.host_exception is not None:
            (translator if (verdict.where or "").startswith(TRANSLATOR) else broken).append(number)
            line = {"case": number, "where": verdict.where, "seed": case.seed,
                    "mutations": list(case.mutations), "fixed_up": case.fixed_up,
                    "exception": verdict.host_exception, "patch": case.data.hex()}
            print(json.dumps(line), file=sys.stderr)
            if sink is not None:
                sink.write(json.dumps(line) + "\n")
    if sink is not None:
        sink.close()
    elapsed = time.perf_counter() - began
    accepted = {k: v for k, v in outcomes.items() if k.startswith("accepted")}
    rejected = {k.split(":", 1)[1]: v for k, v in outcomes.items() if k.startswith("rejected")}
    _figure("signed_hostile", count, "patches", first_case=start,
            seconds=round(elapsed, 1), per_second=round(count / elapsed, 1))
    for reason, n in sorted(rejected.items(), key=lambda kv: -kv[1]):
        _figure("rejected_by_reason", n, "patches", reason=reason)
    _figure("accepted", sum(accepted.values()), "patches",
            ran=outcomes["accepted:ran"], trapped=trapped,
            load_refused=sum(v for k, v in accepted.items() if "load-refused" in k))
    _figure("host_exceptions", len(broken) + len(translator), "patches",
            translator=len(translator), elsewhere=len(broken),
            cases=(broken + translator)[:20])
    _figure("internal_errors", rejected.get("internal-error", 0), "patches")
    if worst_peak:
        _figure("peak_alloc_ratio", round(worst_ratio, 4), "of the bound",
                max_peak_bytes=worst_peak, max_peak_per_patch_byte=round(worst_per_byte),
                measured_every=measure_every)
    return not broken and not rejected.get("internal-error", 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000,
                        help="byte-level examples (0: none)")
    parser.add_argument("--hostile", type=int, default=1_000,
                        help="signed hostile cases (0: none)")
    parser.add_argument("--start", type=int, default=0, help="first hostile case number")
    parser.add_argument("--measure-every", type=int, default=1,
                        help="measure the allocation peak of every k-th case (0: never)")
    parser.add_argument("--failures", type=Path, help="write broken cases here (JSON lines)")
    args = parser.parse_args(argv)
    if args.examples:
        byte_level(args.examples)
    ok = True
    if args.hostile:
        ok = signed_hostile(args.hostile, args.start, args.measure_every, args.failures)
        _figure("patches", args.examples + args.hostile, "patches",
                signed_hostile=args.hostile, byte_level=args.examples)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
