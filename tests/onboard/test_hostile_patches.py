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
import dataclasses

import pytest
from hostile_patches import (
    Board,
    Case,
    Corpus,
    Seed,
    Verdict,
    allocation_bound,
    hostile_case,
    judge,
    make_corpus,
)

from ccl.pack import ALL_CODECS, pack
from onboard.patching.context_mixing import decoded_length
from onboard.patching.patch_format import (
    TAG_BYTES,
    Codec,
    SectionType,
    build_frame,
    parse_frames,
    parse_header,
    retag,
    tag_ok,
)

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


def test_model_coded_patches_damaged_or_mutated_are_rejected_with_a_reason_or_run(
        corpus: Corpus, board: Board) -> None:
    """The MODEL codec (``ccl pack --model``) on hostile input: its coded bytes damaged at
    every eighth position, its length field swollen, and structure-aware mutations of a
    MODEL-coded seed re-encoded with the codec, all validly signed."""
    from support import TEST_KEY

    v9 = corpus.seeds[2]
    assert v9.name == "v9-full"
    model = pack(v9.target, list(corpus.base.vmlets), corpus.profile, TEST_KEY, seq=4,
                 base=corpus.base.config, full=True, codecs=ALL_CODECS)
    data = model.data
    parsed = parse_header(data)
    (frame,) = parse_frames(data, parsed.size, len(data) - TAG_BYTES)
    assert frame.codec_code == Codec.MODEL
    start, end = frame.payload_offset, frame.payload_offset + len(frame.payload)
    cases = [bytes(data[:i]) + bytes([data[i] ^ 0x5A]) + bytes(data[i + 1:])
             for i in range(start, end, 8)]
    # n swollen beyond the budget (a 4-byte varint: the frame's length changes with it).
    swollen = b"\xff\xff\xff\x7f" + frame.payload[2:]
    cases.append(data[:frame.offset] + build_frame(SectionType.BUNDLE, swollen, Codec.MODEL)
                 + data[-TAG_BYTES:])
    assert decoded_length(frame.payload)[1]  # primed: coded after photometry, on board
    # Mutations re-encode the sections (unprimed): a seed that names no base.
    alone = pack(v9.target, list(corpus.base.vmlets), corpus.profile, TEST_KEY, seq=4,
                 codecs=ALL_CODECS).data
    seeded = dataclasses.replace(corpus, seeds=(Seed("v9-full-model", alone, v9.target),))
    mutated = [hostile_case(seeded, number) for number in range(60)]
    assert sum(c.data != alone for c in mutated) >= 55
    outcomes: collections.Counter[str] = collections.Counter()
    for i, raw in enumerate([*cases, *(c.data for c in mutated)]):
        case = Case(i, "v9-full-model", ("damaged",), False, retag(raw, TEST_KEY))
        verdict = judge(board, case, measure=i % 10 == 0)
        # The decoder's tables (192 KiB whatever the input) stay within the bound too.
        assert verdict.peak is None or \
            verdict.peak <= allocation_bound(len(case.data), corpus.profile), verdict.peak
        outcomes[verdict.outcome] += 1
        assert verdict.host_exception is None or \
            (verdict.where or "").startswith(TRANSLATOR), (i, verdict.host_exception)
        assert verdict.located, (i, verdict.outcome)
    assert outcomes["rejected:internal-error"] == 0, outcomes
    assert outcomes["rejected:bad-section"] > 0, outcomes
