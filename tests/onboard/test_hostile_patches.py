"""Validly signed hostile patches (``hostile_patches``): structure-aware mutations of real
patches, re-encoded and signed with the test key, so that they reach the decoders, the
rebuild, the bytecode verifier and, when accepted, the loader, the translator and a VVM
running them. A fixed, deterministic slice runs here; ``benchmarks/patch_fuzz.py`` runs the
long one.

The invariant: each patch is rejected with a reason (never ``internal-error``) and the store
is byte for byte unchanged, or it is accepted and then loads and runs for a few frames
without a host exception (traps are the program's own). A host exception inside
``onboard/vm/translator/`` (being fixed in parallel) is collected and reported as an expected
failure naming the case; anywhere else it fails the test.
"""

from __future__ import annotations

import collections

import pytest
from hostile_patches import Board, Corpus, Verdict, hostile_case, judge, make_corpus

from onboard.patching.patch_format import parse_header, tag_ok

#: The slice `make test` runs (about 40 s on an idle machine).
SLICE = range(0, 400)
TRANSLATOR = "onboard/vm/translator/"


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return make_corpus()


@pytest.fixture(scope="module")
def board(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Board:
    return Board(corpus, tmp_path_factory.mktemp("hostile"))


def test_cases_are_signed_deterministic_and_hostile(corpus: Corpus) -> None:
    from support import TEST_KEY

    cases = [hostile_case(corpus, i) for i in range(40)]
    assert [c.data for c in cases] == [hostile_case(corpus, i).data for i in range(40)]
    assert all(tag_ok(TEST_KEY, c.data) and parse_header(c.data).crc_ok for c in cases)
    seeds = {s.data for s in corpus.seeds}
    assert sum(c.data not in seeds for c in cases) >= 38  # mutated, not replayed seeds
    assert sum(c.fixed_up for c in cases) >= 15  # target hash and claims match the sections


def test_signed_hostile_patches_are_rejected_with_a_reason_or_run(corpus: Corpus,
                                                                  board: Board) -> None:
    outcomes: collections.Counter[str] = collections.Counter()
    broken: list[str] = []  # host exceptions outside the translator: bugs to fix here
    unlocated: list[str] = []  # rejections that name neither a field nor an offset
    translator: list[str] = []  # inside it: recorded, being fixed in the translator
    for number in SLICE:
        case = hostile_case(corpus, number)
        verdict: Verdict = judge(board, case)
        outcomes[verdict.outcome.rsplit(":", 1)[0] if "load-refused" in verdict.outcome
                 else verdict.outcome] += 1
        if not verdict.located:
            unlocated.append(f"{case.describe()}: {verdict.outcome}")
        if verdict.host_exception is None:
            continue
        line = f"{case.describe()}\n    -> {verdict.host_exception}"
        (translator if (verdict.where or "").startswith(TRANSLATOR) else broken).append(line)
    assert not broken, "\n".join(broken)
    assert not unlocated, "\n".join(unlocated)
    assert outcomes["rejected:internal-error"] == 0
    # The slice reaches every stage: decoding, rebuilding, the hash and claims, the bytecode
    # verifier, and patches accepted and run.
    for stage in ("rejected:bad-section", "rejected:bad-delta", "rejected:hash-mismatch",
                  "rejected:claim-mismatch", "rejected:verifier", "rejected:missing-vmlet",
                  "rejected:bad-image", "accepted:ran"):
        assert outcomes[stage] > 0, (stage, outcomes)
    assert outcomes["rejected:verifier"] >= 40 and outcomes["accepted:ran"] >= 80, outcomes
    if translator:
        pytest.xfail("translator crashes on accepted patches (onboard/vm/translator/ is being "
                     "fixed in parallel):\n" + "\n".join(translator))
