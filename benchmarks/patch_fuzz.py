"""Long fuzzing run of the onboard patcher: hypothesis-mutated patches (bit flips, byte edits,
insertions, deletions, truncations, splices; half of them re-signed so that they reach the
decoders), each of which must be rejected with a reason code or, if accepted, rebuild the
very configuration the original patch targets. Any other exception fails the run.

    python benchmarks/patch_fuzz.py                    # 10,000 examples
    python benchmarks/patch_fuzz.py --examples 100000  # the long run

The mutation engine and the oracle are the ones of ``tests/onboard/test_patcher.py``
(``make test`` runs 2,500 examples of the same property). Prints JSON lines: the number of
examples and the rate, and how many ended with each outcome.
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

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _load_tests() -> object:
    spec = importlib.util.spec_from_file_location(
        "patcher_tests", ROOT / "tests" / "onboard" / "test_patcher.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000)
    args = parser.parse_args(argv)
    t: object = _load_tests()
    from ccl.pack import pack

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        a = t.small(d)  # type: ignore[attr-defined]
        b = t.small(d, version=2, gain=300, bump=11)  # type: ignore[attr-defined]
        patcher = t.new_patcher(d / "state", a.mission)  # type: ignore[attr-defined]
        key = t.KEY  # type: ignore[attr-defined]
        images = [v.image for v in b.vmlets]
        t.install(patcher, pack(a.image, images, a.mission, key, seq=1).data)  # type: ignore[attr-defined]
        seeds = [pack(b.image, images, a.mission, key, seq=2, base=a.image, full=False).data,
                 pack(b.image, images, a.mission, key, seq=3).data]
        outcomes: collections.Counter[str] = collections.Counter()

        @settings(max_examples=args.examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(seed=st.integers(0, 1), ops=st.lists(t.MUTATION, min_size=1, max_size=3),  # type: ignore[attr-defined]
               resign=st.booleans())
        def run(seed: int, ops: list[tuple[str, int, int]], resign: bool) -> None:
            outcomes[t.fuzz_one(patcher, seeds, b.image.content_hash, seed, ops,  # type: ignore[attr-defined]
                                resign)] += 1

        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
    total = sum(outcomes.values())
    print(json.dumps({"benchmark": "patch_fuzz", "metric": "examples", "value": total,
                      "unit": "patches", "seconds": round(elapsed, 1),
                      "per_second": round(total / elapsed, 1), "failures": 0}))
    for outcome, count in sorted(outcomes.items(), key=lambda kv: -kv[1]):
        print(json.dumps({"benchmark": "patch_fuzz", "metric": "outcome", "value": count,
                          "unit": "patches", "outcome": outcome}))


if __name__ == "__main__":
    main()
