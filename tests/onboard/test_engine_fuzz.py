"""The engine that flies, fuzzed: random verifier-accepted bytecode (``bytecode_programs``)
runs on the translated engine and on the reference interpreter under several budget
slicings, and must agree exactly (``engine_oracle``): results, traps, cycles, every
suspension, native calls and data memory; no host exception, no unit left to the reference
engine by a translator failure. A sample also goes through the whole VVM (load, activate,
run the tasks on both engines).

This is the slice ``make test`` runs (seeds ``0 .. SLICE - 1``, deterministic); the long run
is ``benchmarks/engine_fuzz.py``.
"""

from __future__ import annotations

import random

from bytecode_programs import case_of, cases, describe
from engine_oracle import check, check_vvm
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

#: Programs in the ``make test`` slice, and one in how many also runs on the whole VVM.
SLICE = 3_000
VVM_EVERY = 10


def test_generated_programs_run_the_same_on_both_engines() -> None:
    accepted = 0
    failures: list[str] = []
    for seed in range(SLICE):
        case = case_of(seed)
        verdict = check(case, seed)
        accepted += verdict.accepted
        found = verdict.host_exceptions + verdict.mismatches + verdict.fallbacks
        if seed % VVM_EVERY == 0 and verdict.ok:
            found += check_vvm(case)
        failures += [f"seed {seed}: {f}" for f in found]
        if len(failures) >= 5:
            break
    assert not failures, "\n".join(failures)
    # the generator's purpose: programs the verifier accepts (so the engines run them)
    assert accepted >= 0.95 * SLICE


def test_the_generator_is_deterministic_and_varied() -> None:
    a, b = case_of(12345), case_of(12345)
    assert a.image.encode() == b.image.encode() and a.entries == b.entries
    images = {case_of(seed).image.content_hash for seed in range(50)}
    assert len(images) == 50


def test_generated_programs_reach_what_the_translator_handles_specially() -> None:
    """Over the first 300 seeds the generator makes the shapes the translator treats apart:
    loops (empty bodies too), jumps carrying values, dead code, VMlet instructions inlined
    and out of line, natives of argument-dependent cost, calls, early returns."""
    from onboard.vm import isa

    seen: set[str] = set()
    for seed in range(300):
        case = case_of(seed)
        for unit in case.image.functions:
            ins = list(isa.decode(unit.code))
            ops = [d.opcode for d in ins]
            if isa.FORPREP in ops:
                seen.add("loop")
            if any(a.opcode == isa.FORPREP and b.opcode == isa.FORLOOP
                   for a, b in zip(ins, ins[1:], strict=False)):
                seen.add("empty loop")
            if isa.CALL in ops:
                seen.add("call")
            if any(op >= isa.EXT_BASE for op in ops):
                seen.add("ext")
            if isa.CALLN in ops:
                seen.add("native")
            if ops.count(isa.RET) + ops.count(isa.RETV) > 1:
                seen.add("early return")
            if isa.DIV in ops or isa.MOD in ops:
                seen.add("division")
    assert seen == {"loop", "empty loop", "call", "ext", "native", "early return", "division"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.randoms(use_true_random=False))
def test_hypothesis_drives_the_same_generator(case: object, rng: random.Random) -> None:
    """The generator under hypothesis (``st.randoms``), so a failure shrinks to a small
    program."""
    note("\n".join(describe(case)))  # type: ignore[arg-type]
    verdict = check(case, rng.randrange(1 << 30))  # type: ignore[arg-type]
    assert verdict.ok, verdict.host_exceptions + verdict.mismatches + verdict.fallbacks
