"""Allocation is bounded before it happens: no validly signed patch of N bytes makes
``Patcher.check`` allocate more than the documented multiple of N plus the profile's memory
(``hostile_patches.allocation_bound``, docs/patch-format.md), however it declares its lengths,
counts and expansions. Each attack is rejected with a stable reason (never an internal
error), with the field or offset, and leaves the store byte for byte as it was.

The first tests are the reviewer's findings: an array whose range holds one value, and
chunks declaring 2^20 values each (4 bytes a chunk), which were expanded while the section
was decoded, before the data claim was checked: 462 bytes allocated 800 MiB, 1.6 KB raised
MemoryError out of the reconfiguration.

Attacks that are refused early run against CoRoT with exo_e1 on board. Those that get as
far as the budgets allow (the most values, entries and decompressed bytes the claims let
through) run against a CoRoT profile scaled down to 4 KiB of code and 16 KiB of data, where
the bound is tighter and the test fast; the ratio is what they check.
"""

from __future__ import annotations

import dataclasses
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hostile_patches import Board, Corpus, allocation_bound, make_corpus
from support import TEST_KEY

from ccl.pack import pack
from missions.corot.natives import make_host
from onboard.bounded_decoding import VarUInt
from onboard.patching.patch_format import (
    FORMAT_VERSION,
    NO_HASH,
    Claims,
    Codec,
    Flag,
    Header,
    Reason,
    SectionType,
    assemble,
    build_body,
    build_frame,
    bundle_payload,
    compress,
    crc16,
)
from onboard.patching.patcher import Patcher, PatchRejected
from onboard.patching.reconfiguration import Reconfiguration
from onboard.patching.store import Store
from onboard.vm.image import Array, CodeUnit, Global, Image, ImageKind
from onboard.vm.vvm import VVM

MEGA = 1 << 20


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return make_corpus()


@pytest.fixture(scope="module")
def board(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Board:
    """CoRoT with exo_e1 v5 on board."""
    return Board(corpus, tmp_path_factory.mktemp("bounds"))


@pytest.fixture(scope="module")
def small(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Board:
    """CoRoT scaled down to 4 KiB of code and 16 KiB of data, nothing on board."""
    profile = dataclasses.replace(corpus.profile, code_bytes=4096, data_bytes=16384)
    return Board(dataclasses.replace(corpus, profile=profile, base_patch=b""),
                 tmp_path_factory.mktemp("small"))


def header(corpus: Corpus, *, full: bool = True) -> Header:
    """A header that passes every check before the sections: the claims as large as the
    profile allows (what an attacker would claim), FULL with any base, or a delta on the
    corpus's base."""
    p = corpus.profile
    return Header(
        flags=Flag.FULL if full else Flag(0), mission_id=p.mission_id,
        spacecraft_id=p.spacecraft_id, seq=2, version=99,
        base_hash=NO_HASH if full else corpus.base.hash[:8], target_hash=bytes(8),
        claims=Claims(0, 0, p.code_bytes, p.data_bytes))


def signed(corpus: Corpus, frames: list[bytes], full: bool = True) -> bytes:
    return assemble(header(corpus, full=full), frames, TEST_KEY)


def frame(section: SectionType, body: bytes, codec: Codec = Codec.NONE) -> bytes:
    return build_frame(section, compress(body, codec), codec)


def raw_frame(section: SectionType, payload: bytes) -> bytes:
    """A frame around bytes the encoder would not produce."""
    head = bytes([section]) + VarUInt.build(len(payload)) + payload
    return head + crc16(head).to_bytes(2, "big")


def one_value_array(chunks: int, length: int = 1) -> bytes:
    """ARRAYS: one array of int[5..5] whose literal chunks each declare 2^20 values (4 bytes
    a chunk: the values take no bits)."""
    entry = (VarUInt.build(0) + b"\x01t" + b"\x00" + b"\x0a\x0a"  # index, name, ro, 5..5
             + VarUInt.build(length) + VarUInt.build(chunks))
    return VarUInt.build(1) + entry + VarUInt.build(MEGA << 1) * chunks


def measured_check(board: Board, data: bytes) -> tuple[PatchRejected | None, int]:
    """Check ``data``: (the rejection or None, tracemalloc peak); the store must not change."""
    before = board.snapshot()
    tracemalloc.start()
    try:
        board.patcher.check(data)
        rejected = None
    except PatchRejected as exc:
        rejected = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert board.snapshot() == before
    return rejected, peak


def assert_bounded_rejection(board: Board, data: bytes, *reasons: Reason) -> PatchRejected:
    rejected, peak = measured_check(board, data)
    assert rejected is not None, "a hostile patch was accepted"
    assert rejected.reason is not Reason.INTERNAL, rejected.__cause__
    assert rejected.reason in reasons, rejected
    assert rejected.message and (rejected.field or rejected.offset is not None)
    bound = allocation_bound(len(data), board.corpus.profile)
    assert peak <= bound, f"{len(data)} bytes allocated {peak} > {bound}"
    return rejected


# --------------------------------------------------------------------------- the findings


def test_the_462_byte_patch_is_rejected_before_expanding(corpus: Corpus, board: Board) -> None:
    data = signed(corpus, [frame(SectionType.ARRAYS, one_value_array(100))])
    assert 455 <= len(data) <= 470  # the reviewer's 462 bytes, give or take the header
    error = assert_bounded_rejection(board, data, Reason.BAD_DELTA)
    assert error.field == "arrays.chunks" and error.offset is not None
    _, peak = measured_check(board, data)
    assert peak < MEGA // 4  # it was 800 MiB


def test_the_1_6_kb_patch_is_rejected_not_a_memory_error(corpus: Corpus, board: Board) -> None:
    data = signed(corpus, [frame(SectionType.ARRAYS, one_value_array(400))])
    assert 1500 <= len(data) <= 1700
    assert_bounded_rejection(board, data, Reason.BAD_DELTA)
    fate = board.patcher.receive(data)  # as the reconfiguration sees it: a fate
    assert fate.reason is Reason.BAD_DELTA and fate.code == 0x40 + 17


def test_the_1_6_kb_patch_is_a_rejected_fate_of_the_running_reconfiguration(
        corpus: Corpus, tmp_path: Path) -> None:
    """The reviewer saw MemoryError escape the reconfiguration: now the VVM reports a
    rejection in telemetry, keeps running, and the store is unchanged."""
    patcher = Patcher(corpus.profile, Store.init(tmp_path), TEST_KEY)
    vm = VVM(corpus.profile, make_host(corpus.profile, seed=3))
    Reconfiguration(vm, patcher)
    vm.load(corpus.base.config, corpus.base.vmlets)
    before = {f.name: f.read_bytes() for f in tmp_path.iterdir()}
    vm.receive_patch(signed(corpus, [frame(SectionType.ARRAYS, one_value_array(400))]), 9)
    vm.run_for(5_000)
    assert vm.reconfiguration is not None
    fates = [(e.ticket, e.fate.status.value, e.fate.reason) for e in vm.reconfiguration.events]
    assert fates == [(9, "received", None), (9, "rejected", Reason.BAD_DELTA)]
    assert {f.name: f.read_bytes() for f in tmp_path.iterdir()} == before
    assert vm.telemetry.tasks["cosmic_filter"].runs >= 1  # the configuration kept running


def test_a_declared_length_beyond_the_claim_is_refused_before_any_chunk(
        corpus: Corpus, board: Board) -> None:
    data = signed(corpus, [frame(SectionType.ARRAYS, one_value_array(100, length=100 * MEGA))])
    error = assert_bounded_rejection(board, data, Reason.CLAIM_MISMATCH)
    assert error.field == "arrays.length" and "data claim" in error.message


def test_one_value_chunks_within_the_claim_are_bounded_by_it(corpus: Corpus,
                                                             board: Board) -> None:
    """The largest expansion the data claim allows: a table filling the data memory, every
    element a zero-bit value, in one literal chunk of 4 bytes."""
    slots = corpus.profile.data_bytes // 4
    body = (VarUInt.build(1) + VarUInt.build(0) + b"\x01t\x00\x0a\x0a" + VarUInt.build(slots)
            + VarUInt.build(1) + VarUInt.build(slots << 1))
    assert_bounded_rejection(board, signed(corpus, [frame(SectionType.ARRAYS, body)]),
                             Reason.HASH_MISMATCH)


# --------------------------------------------------------------------------- refused early


ATTACKS: dict[str, tuple[Callable[[Corpus], bytes], tuple[Reason, ...]]] = {
    # a varint count far beyond the bytes that follow
    "list count 2^60": (lambda c: signed(c, [raw_frame(
        SectionType.IMPORTS, VarUInt.build(2**60) + b"\x00\x01a")]), (Reason.BAD_SECTION,)),
    "globals count 2^60": (lambda c: signed(c, [raw_frame(
        SectionType.GLOBALS, VarUInt.build(2**60) + b"\x00" * 8)]), (Reason.CLAIM_MISMATCH,)),
    # a repeat chunk (run length) declaring far more than the array
    "run length 2^40": (lambda c: signed(c, [raw_frame(
        SectionType.ARRAYS, VarUInt.build(1) + b"\x00\x01t\x00\x00\x02"
        + VarUInt.build(8) + VarUInt.build(1) + VarUInt.build(2**40 << 1 | 1) + b"\x00")]),
        (Reason.BAD_DELTA,)),
    # the same row again and again (each entry would copy the whole base table)
    "repeated rows": (lambda c: signed(c, [frame(SectionType.ROWS, VarUInt.build(1000) + (
        VarUInt.build(0) + VarUInt.build(1) + VarUInt.build(0) + VarUInt.build(1 << 1 | 1)
        + b"\x00\x00") * 1000)], full=False), (Reason.BAD_DELTA,)),
    "rows past the table's end": (lambda c: signed(c, [frame(SectionType.ROWS, (
        VarUInt.build(1) + VarUInt.build(0) + VarUInt.build(1) + VarUInt.build(5990)
        + VarUInt.build(MEGA << 1)))], full=False), (Reason.BAD_DELTA,)),
    # deltas against the base: removal and parameter indices beyond its lists
    "removals beyond the base": (lambda c: signed(c, [frame(
        SectionType.REMOVALS, build_body(SectionType.REMOVALS, [
            {"list": 6, "indices": list(range(20_000))}]))], full=False), (Reason.BAD_DELTA,)),
    "params beyond the globals": (lambda c: signed(c, [raw_frame(
        SectionType.PARAMS, VarUInt.build(20_000) + b"".join(
            VarUInt.build(i) for i in range(20_000)))], full=False), (Reason.BAD_DELTA,)),
    # decompression bombs: one section, many carried VMlets, code beyond the claim
    "deflate bomb": (lambda c: signed(c, [build_frame(
        SectionType.IDENTITY, zlib.compress(b"\x80\x80\x40" + b"a" * (MEGA - 3), 9)[2:-4],
        Codec.DEFLATE)]), (Reason.BAD_SECTION,)),
    "vmlet bombs": (lambda c: signed(c, [frame(SectionType.VMLET, Image(
        kind=ImageKind.VMLET, name="v" * (MEGA - 100), version=i, mission="corot").encode(),
        Codec.LZMA) for i in range(40)]), (Reason.BAD_SECTION, Reason.BAD_IMAGE)),
    "lzma code beyond the claim": (lambda c: signed(c, [frame(
        SectionType.CODE, build_body(SectionType.CODE, [{
            "index": 0, "name": "f", "n_params": 0, "n_locals": 0, "returns": False,
            "max_stack": 0, "code": b"\x51" * (MEGA - 100)}]), Codec.LZMA)]),
        (Reason.CLAIM_MISMATCH, Reason.BAD_SECTION)),
    # carried VMlets with tables: elements drawn from the data claim (a byte each at
    # least) before expansion
    "carried vmlet with a long table": (lambda c: signed(c, [frame(
        SectionType.VMLET, Image(kind=ImageKind.VMLET, name="t", version=1, mission="corot",
                                 arrays=(Array("a", False, 0, 0, (0,) * 600_000),)).encode())]),
        (Reason.BAD_IMAGE,)),
    "carried vmlet tables over the claim": (lambda c: signed(c, [frame(
        SectionType.VMLET, Image(kind=ImageKind.VMLET, name="t", version=1, mission="corot",
                                 arrays=tuple(Array(f"a{i}", False, 0, 0, (0,) * 200_000)
                                              for i in range(3))).encode())]),
        (Reason.BAD_IMAGE,)),
    # sections: thousands of tiny ones
    "thousands of sections": (lambda c: signed(c, [
        raw_frame(SectionType.VMLET, b"") for _ in range(10_000)]), (Reason.BAD_IMAGE,)),
    # overlong varints (non-canonical encodings) in a section's framing and body
    "overlong section length": (lambda c: signed(c, [
        bytes([SectionType.IDENTITY]) + b"\x81\x80\x00" + b"\x01x" + b"\x00\x00"]),
        (Reason.BAD_SECTION,)),
    "overlong count": (lambda c: signed(c, [raw_frame(
        SectionType.IMPORTS, b"\x80\x00" + b"\x00\x00")]), (Reason.BAD_SECTION,)),
    # SCATTERED (format 2): counts, row counts, positions and reuse beyond what is there
    "scattered count 2^60": (lambda c: scattered(c, VarUInt.build(2**60) + b"\x00" * 8),
                             (Reason.BAD_SECTION,)),
    "scattered entries beyond the arrays": (lambda c: scattered(c, VarUInt.build(500) + (
        VarUInt.build(0) + VarUInt.build(0)) * 500), (Reason.BAD_DELTA,)),
    "scattered rows 2^40": (lambda c: scattered(c, VarUInt.build(1) + VarUInt.build(0)
                                                + VarUInt.build(2**40) + b"\x00\x01\x00"),
                            (Reason.BAD_DELTA,)),
    "scattered row past the table's end": (lambda c: scattered(
        c, VarUInt.build(1) + VarUInt.build(0) + VarUInt.build(1) + b"\x00"
        + VarUInt.build(1000) + b"\xff" * 1000 + b"\x00\x00"), (Reason.BAD_DELTA,)),
    "scattered positions that end early": (lambda c: scattered(
        c, VarUInt.build(1) + VarUInt.build(0) + VarUInt.build(2) + b"\x00"
        + VarUInt.build(1) + b"\xfe" + b"\x00" * 3), (Reason.BAD_SECTION,)),
    "scattered Rice parameter 200": (lambda c: scattered(
        c, VarUInt.build(1) + VarUInt.build(0) + VarUInt.build(1) + bytes([200])
        + VarUInt.build(30) + b"\x00" * 32), (Reason.BAD_SECTION,)),
    "scattered first entry reuses rows": (lambda c: scattered(
        c, VarUInt.build(1) + VarUInt.build(0) + VarUInt.build(0)), (Reason.BAD_SECTION,)),
    "scattered in a format-1 patch": (lambda c: signed(c, [frame(
        SectionType.SCATTERED, build_body(SectionType.SCATTERED, [
            {"index": 0, "rows": [5], "rice": 0, "values": [1]}], array_ranges=[(0, 2032)]))],
        full=False), (Reason.BAD_SECTION,)),
    # BUNDLE (format 2): what it holds, how it holds it, and bombs inside it
    "bundle beside another section": (lambda c: bundled(c, bundle_payload(
        [(SectionType.IDENTITY, b"\x01a")]), [raw_frame(SectionType.ENTRIES, b"\x00")]),
        (Reason.BAD_SECTION,)),
    "bundle holding a bundle": (lambda c: bundled(c, bundle_payload(
        [(SectionType.BUNDLE, bundle_payload([(SectionType.IDENTITY, b"\x01a")]))])),
        (Reason.BAD_SECTION,)),
    "bundle holding a compressed section": (lambda c: bundled(c, bundle_payload(
        [(int(Codec.DEFLATE) << 5 | SectionType.IDENTITY, compress(b"\x01a", Codec.DEFLATE))])),
        (Reason.BAD_SECTION,)),
    "bundled length 2^40": (lambda c: bundled(c, bytes([SectionType.IDENTITY])
                                              + VarUInt.build(2**40) + b"\x01a"),
                            (Reason.BAD_SECTION,)),
    "empty bundle": (lambda c: bundled(c, b""), (Reason.BAD_SECTION,)),
    "bundle bomb": (lambda c: bundled(c, bundle_payload(
        [(SectionType.IDENTITY, b"\x80\x80\x40" + b"a" * (MEGA - 8))]), codec=Codec.LZMA),
        (Reason.BAD_SECTION,)),
    "bundle in a format-1 patch": (lambda c: signed(c, [build_frame(
        SectionType.BUNDLE, bundle_payload([(SectionType.IDENTITY, b"\x01a")]))]),
        (Reason.BAD_SECTION,)),
}


def bundled(corpus: Corpus, payload: bytes, more: list[bytes] | None = None,
            codec: Codec = Codec.NONE) -> bytes:
    """A format-2 full patch whose first section is a BUNDLE of ``payload`` (stored with
    ``codec``), followed by ``more`` frames."""
    h = dataclasses.replace(header(corpus), format=FORMAT_VERSION)
    return assemble(h, [build_frame(SectionType.BUNDLE, compress(payload, codec), codec),
                        *(more or [])], TEST_KEY)


def scattered(corpus: Corpus, payload: bytes) -> bytes:
    """A format-2 delta on the corpus's base whose one section is SCATTERED ``payload``."""
    h = dataclasses.replace(header(corpus, full=False), format=FORMAT_VERSION)
    return assemble(h, [raw_frame(SectionType.SCATTERED, payload)], TEST_KEY)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attacks_are_rejected_early_within_the_bound(corpus: Corpus, board: Board,
                                                     name: str) -> None:
    make, reasons = ATTACKS[name]
    data = make(corpus)
    assert len(data) <= board.patcher.max_patch_bytes, len(data)
    assert_bounded_rejection(board, data, *reasons)


# --------------------------------------------------------------------------- at the budgets


def _globals(n: int) -> bytes:
    """GLOBALS: n zero-bit globals with empty names, LZMA-compressed."""
    body = build_body(SectionType.GLOBALS, {
        "entries": [{"index": i, "name": "", "writable": False, "lo": 0, "hi": 0}
                    for i in range(n)], "packed": [0] * n})
    return frame(SectionType.GLOBALS, body, Codec.LZMA)


def _lists(n: int, n_globals: int) -> list[bytes]:
    """Every list of entries at once, each LZMA-compressed, empty names: ``n_globals``
    globals, n natives, n environment keys, n tasks and n rules."""
    def section(st: SectionType, body: object) -> bytes:
        return frame(st, build_body(st, body), Codec.LZMA)

    return [_globals(n_globals),
            section(SectionType.IMPORTS, {
                "natives": [{"index": i, "name": ""} for i in range(n)],
                "env": [{"index": i, "name": ""} for i in range(n)], "ext": []}),
            section(SectionType.TASKS, [{"index": i, "name": "", "period_ms": 1,
                                         "function": 0} for i in range(n)]),
            section(SectionType.RULES, [{"index": i, "text": "", "function": 0}
                                        for i in range(n)])]


def _units(n: int, code: bytes) -> bytes:
    return frame(SectionType.CODE, build_body(SectionType.CODE, [{
        "index": i, "name": "", "n_params": 0, "n_locals": 2**40, "returns": False,
        "max_stack": 2**40, "code": code} for i in range(n)]), Codec.LZMA)


SLOTS = 16384  # values in the small profile's data memory: every value takes a byte at least
BUDGET_ATTACKS: dict[str, tuple[Callable[[Corpus], bytes], tuple[Reason, ...]]] = {
    "zero-bit globals over the claim": (lambda c: signed(c, [_globals(SLOTS + 1)]),
                                        (Reason.CLAIM_MISMATCH, Reason.BAD_SECTION)),
    # a byte per value: filling the claim with declarations reaches the decompression
    # budget first (8 x the compressed sections plus the claims)
    "zero-bit globals filling the claim": (lambda c: signed(c, [_globals(SLOTS)]),
                                           (Reason.HASH_MISMATCH, Reason.BAD_SECTION)),
    "every list at once": (lambda c: signed(c, _lists(SLOTS // 2, SLOTS)),
                           (Reason.HASH_MISMATCH, Reason.BAD_SECTION)),
    "every list, decompressing beyond the budget": (
        lambda c: signed(c, _lists(SLOTS, SLOTS)), (Reason.BAD_SECTION,)),
    "one-byte code units filling the claim": (lambda c: signed(c, [_units(4096, b"\x51")]),
                                              (Reason.HASH_MISMATCH, Reason.BAD_SECTION)),
    "empty code units": (lambda c: signed(c, [_units(30_000, b"")]),
                         (Reason.HASH_MISMATCH, Reason.BAD_SECTION)),
    "empty arrays": (lambda c: signed(c, [frame(SectionType.ARRAYS, build_body(
        SectionType.ARRAYS, [{"index": i, "name": "", "writable": False, "lo": 0, "hi": 0,
                              "length": 0, "chunks": []} for i in range(20_000)]),
        Codec.LZMA)]), (Reason.HASH_MISMATCH, Reason.BAD_SECTION)),
}


@pytest.mark.parametrize("name", list(BUDGET_ATTACKS))
def test_attacks_at_the_budgets_stay_within_the_bound(small: Board, name: str) -> None:
    make, reasons = BUDGET_ATTACKS[name]
    data = make(small.corpus)
    assert len(data) <= small.patcher.max_patch_bytes, len(data)
    assert_bounded_rejection(small, data, *reasons)


# --------------------------------------------------------------------------- a full base


def full_config(slots: int, version: int = 1) -> Image:
    """A configuration whose one table fills ``slots`` of data memory (values 0/1
    alternating: nothing compresses, nothing repeats)."""
    return Image(kind=ImageKind.CONFIG, name="big", version=version, mission="corot",
                 globals=(Global("g", False, 0, 1, 1),),
                 arrays=(Array("t", True, 0, 1, tuple(i % 2 for i in range(slots))),),
                 functions=(CodeUnit("f", 0, 0, False, 0, b"\x51"),),
                 on_apply=0)


def test_a_full_memory_and_deltas_against_it_stay_within_the_bound(
        small: Board, tmp_path: Path) -> None:
    """The profile's memory filled: installing it (a legitimate full patch, accepted) and
    hostile deltas against it (every row rewritten; the same row again and again)."""
    profile = small.corpus.profile
    slots = profile.data_bytes // 4 - 1
    base = full_config(slots)
    corpus = dataclasses.replace(small.corpus, base_patch=pack(base, [], profile, TEST_KEY,
                                                               seq=1).data)
    b = Board(corpus, tmp_path)
    full = pack(full_config(slots, version=2), [], profile, TEST_KEY, seq=2).data
    rejected, peak = measured_check(b, full)
    assert rejected is None
    assert peak <= allocation_bound(len(full), profile), peak
    h = Header(Flag(0), profile.mission_id, profile.spacecraft_id, 3, 3,
               base.content_hash[:8], bytes(8), Claims(0, 0, 1, profile.data_bytes))
    everything = build_body(SectionType.ROWS, [{"index": 0, "runs": [
        {"skip": 0, "header": slots << 1 | 1, "packed": [1]}]}], array_ranges=[(0, 1)])
    again = build_body(SectionType.ROWS, [{"index": 0, "runs": [
        {"skip": 5, "header": 1 << 1 | 1, "packed": [1]}]}] * 2000, array_ranges=[(0, 1)])
    for body, reason in ((everything, Reason.HASH_MISMATCH), (again, Reason.BAD_DELTA)):
        data = assemble(h, [frame(SectionType.ROWS, body, Codec.DEFLATE)], TEST_KEY)
        error, peak = measured_check(b, data)
        assert error is not None and error.reason is reason, error
        assert peak <= allocation_bound(len(data), profile), peak
