"""The onboard patcher: round trips, every rejection reason (state untouched), probation,
rollback, and hypothesis-mutated patches."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import TEST_KEY, compile_text

from ccl.driver import Compiled, Compiler
from ccl.pack import pack, sections
from onboard.mission import MissionProfile
from onboard.patching.patch_format import (
    NO_HASH,
    TAG_BYTES,
    Flag,
    FormatError,
    Reason,
    SectionType,
    assemble,
    build_body,
    build_frame,
    build_header,
    check_order,
    crc16,
    development_key,
    parse_frames,
    parse_header,
    retag,
    unbundle,
)
from onboard.patching.patcher import (
    Accepted,
    FateStatus,
    KeyRefused,
    Patcher,
    PatchRejected,
)
from onboard.patching.store import FaultyDisk, Phase, PowerLoss, Store
from onboard.vm.image import CodeUnit, Image, ImageKind

ROOT = Path(__file__).resolve().parents[2]
EXO = ROOT / "missions" / "corot" / "configs" / "exo_e1.ccl"

SMALL = """\
mission corot;
config small version {version};
uses photometry;
param gain : int[0..2047] = {gain};
param n : int[0..40] = 10;
table win_x[40] : int[0..2032] = [{rows}];
var hits : int[0..1000000];
fn clamp(v: int, lo: int, hi: int) -> int {{
    if v < lo {{ return lo; }}
    if v > hi {{ return hi; }}
    return v;
}}
task scan every 1 s {{
    for s in 0 .. n {{
        if flux(win_x[s]) > gain {{ hits = clamp(hits + 1, 0, 1000000); }}
    }}
}}
on apply {{ hits = 0; }}
"""


def small(directory: Path, version: int = 1, gain: int = 100, bump: int = 0) -> Compiled:
    rows = ", ".join(str((7 * i + (bump if i == 5 else 0)) % 2033) for i in range(40))
    return compile_text(directory, SMALL.format(version=version, gain=gain, rows=rows),
                        f"small_v{version}_{gain}_{bump}")


@pytest.fixture(scope="module")
def exo() -> Compiled:
    return Compiler().compile(EXO)


@pytest.fixture(scope="module")
def smalls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Compiled, Compiled]:
    d = tmp_path_factory.mktemp("small")
    return small(d), small(d, version=2, gain=300, bump=11)


def vmlets(c: Compiled) -> list[Image]:
    return [v.image for v in c.vmlets]


def snapshot(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir())}


def new_patcher(directory: Path, profile: MissionProfile, **kw: object) -> Patcher:
    return Patcher(profile, Store.init(directory), TEST_KEY, probation_frames=3, **kw)  # type: ignore[arg-type]


def install(patcher: Patcher, data: bytes) -> None:
    """Receive, activate and commit a patch."""
    fate = patcher.receive(data)
    assert fate.status is FateStatus.STAGED, fate
    patcher.activate()
    while patcher.store.phase is Phase.PROBATION:
        patcher.end_frame()


def assert_rejected(patcher: Patcher, data: bytes, reason: Reason) -> PatchRejected:
    before = snapshot(patcher.store.directory)
    state = patcher.store.state()
    fate = patcher.receive(data)
    assert fate.status is FateStatus.REJECTED and fate.reason is reason, fate
    assert snapshot(patcher.store.directory) == before  # byte-identical
    assert patcher.store.state() == state
    with pytest.raises(PatchRejected) as info:
        patcher.check(data)
    assert info.value.reason is reason and info.value.message
    return info.value


# --------------------------------------------------------------------------- round trips


def test_full_then_delta_round_trip(tmp_path: Path, exo: Compiled) -> None:
    p = new_patcher(tmp_path, exo.mission)
    full = pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=1)
    assert full.full and parse_header(full.data).header.base_hash == NO_HASH
    fate = p.receive(full.data)
    assert fate.status is FateStatus.STAGED
    staged = p.store.staged()
    assert staged is not None and staged.hash == exo.image.content_hash
    assert staged.vmlets == tuple(vmlets(exo))
    p.activate()
    for _ in range(3):
        p.end_frame()
    assert p.store.phase is Phase.IDLE and p.store.current() == staged

    glob = list(exo.image.globals)
    glob[2] = dataclasses.replace(glob[2], value=60)
    new = dataclasses.replace(exo.image, globals=tuple(glob), version=5)
    delta = pack(new, vmlets(exo), exo.mission, TEST_KEY, seq=2, base=exo.image)
    assert not delta.full and len(delta.data) <= 64
    install(p, delta.data)
    current = p.store.current()
    assert current is not None and current.hash == new.content_hash
    assert [f.status for f in p.fates] == [
        FateStatus.RECEIVED, FateStatus.STAGED, FateStatus.ACTIVE, FateStatus.COMMITTED,
        FateStatus.RECEIVED, FateStatus.STAGED, FateStatus.ACTIVE, FateStatus.COMMITTED]


def test_delta_with_new_functions_rows_and_removals(tmp_path: Path,
                                                    smalls: tuple[Compiled, Compiled]) -> None:
    a, b = smalls
    p = new_patcher(tmp_path, a.mission)
    install(p, pack(a.image, vmlets(a), a.mission, TEST_KEY, seq=1).data)
    # A third version: drop the task and the table, rename the configuration.
    c = dataclasses.replace(b.image, name="smaller", tasks=(), arrays=b.image.arrays[:0],
                            functions=b.image.functions[:1] + b.image.functions[2:])
    c = dataclasses.replace(c, on_apply=None)
    for target, seq in ((b.image, 2), (c, 3)):
        base = p.store.current()
        assert base is not None
        patch = pack(target, vmlets(b), a.mission, TEST_KEY, seq=seq, base=base.config, full=False)
        install(p, patch.data)
        current = p.store.current()
        assert current is not None and current.hash == target.content_hash


def test_a_new_vmlet_travels_with_the_configuration(tmp_path: Path, exo: Compiled) -> None:
    vm = vmlets(exo)[0]
    vm2 = dataclasses.replace(vm, version=2, exposes=(*vm.exposes, "window_sum"))
    uses = (dataclasses.replace(exo.image.uses[0], version=2, hash=vm2.content_hash),)
    new = dataclasses.replace(exo.image, uses=uses, version=5)
    p = new_patcher(tmp_path, exo.mission)
    install(p, pack(exo.image, [vm], exo.mission, TEST_KEY, seq=1).data)
    patch = pack(new, [vm2], exo.mission, TEST_KEY, seq=2, base=exo.image)
    install(p, patch.data)
    current = p.store.current()
    assert current is not None and current.vmlets == (vm2,)


def test_full_patch_reuses_the_vmlets_on_board(tmp_path: Path, exo: Compiled) -> None:
    p = new_patcher(tmp_path, exo.mission)
    install(p, pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=1).data)
    again = pack(dataclasses.replace(exo.image, version=9), vmlets(exo), exo.mission, TEST_KEY,
                 seq=2, base=exo.image, full=True)
    assert again.full
    data = again.data
    inner = unbundle(parse_frames(data, parse_header(data).size, len(data) - TAG_BYTES))
    kinds = [t for t, _ in check_order(inner)]
    assert SectionType.USES in kinds and SectionType.VMLET not in kinds  # the reference only
    assert len(again.data) < len(pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=3).data)
    install(p, again.data)


# --------------------------------------------------------------------------- rejections


@pytest.fixture
def ready(tmp_path: Path, exo: Compiled) -> Patcher:
    """A patcher with exo_e1 committed (seq 1)."""
    p = new_patcher(tmp_path, exo.mission)
    install(p, pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=1).data)
    return p


def bumped(exo: Compiled, version: int = 5) -> Image:
    glob = list(exo.image.globals)
    glob[0] = dataclasses.replace(glob[0], value=glob[0].value + 1)
    return dataclasses.replace(exo.image, globals=tuple(glob), version=version)


def delta(exo: Compiled, seq: int = 2, **kw: object) -> bytes:
    return pack(bumped(exo), vmlets(exo), exo.mission, TEST_KEY, seq=seq, base=exo.image,
                **kw).data  # type: ignore[arg-type]


def field_offset(data: bytes, name: str) -> int:
    return parse_header(data).offsets[name]


def edited(data: bytes, name: str, value: bytes, *, resign: bool = True) -> bytes:
    at = field_offset(data, name)
    out = data[:at] + value + data[at + len(value):]
    return retag(out, TEST_KEY) if resign else out


def test_oversize(ready: Patcher, exo: Compiled) -> None:
    data = delta(exo)
    ready.max_patch_bytes = len(data) - 1
    assert assert_rejected(ready, data, Reason.OVERSIZE).offset == len(data) - 1


@pytest.mark.parametrize("cut", [1, 5, 20, 40])
def test_truncated(ready: Patcher, exo: Compiled, cut: int) -> None:
    data = delta(exo)
    assert_rejected(ready, data[:-cut] if cut < 40 else data[:cut], Reason.TRUNCATED)


@pytest.mark.parametrize("name, value, reason", [
    ("magic", b"VQ", Reason.BAD_MAGIC),
    ("format", b"\x09", Reason.BAD_VERSION),
    ("flags", b"\x80", Reason.BAD_HEADER),
    ("mission", b"\x02", Reason.WRONG_MISSION),
    ("spacecraft", b"\xef", Reason.WRONG_SPACECRAFT),
])
def test_header_fields(ready: Patcher, exo: Compiled, name: str, value: bytes,
                       reason: Reason) -> None:
    data = delta(exo)
    error = assert_rejected(ready, edited(data, name, value), reason)
    assert (error.field, error.offset) == (name, field_offset(data, name))


def test_header_crc(ready: Patcher, exo: Compiled) -> None:
    data = delta(exo)
    bad = edited(data, "share", b"\x01", resign=False)
    assert assert_rejected(ready, bad, Reason.HEADER_CRC).field == "crc"


def test_section_crc(ready: Patcher, exo: Compiled) -> None:
    data = bytearray(delta(exo))
    data[len(data) - TAG_BYTES - 3] ^= 0x04  # inside the last section's payload
    assert_rejected(ready, bytes(data), Reason.SECTION_CRC)


def test_forged_tag(ready: Patcher, exo: Compiled) -> None:
    forged = pack(bumped(exo), vmlets(exo), exo.mission, bytes(32), seq=2,
                  base=exo.image).data
    error = assert_rejected(ready, forged, Reason.BAD_TAG)
    assert error.offset == len(forged) - TAG_BYTES


def test_replay_and_reordered_sequence(ready: Patcher, exo: Compiled) -> None:
    assert_rejected(ready, pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=1).data,
                    Reason.REPLAY)
    later = delta(exo, seq=5)
    assert ready.receive(later).status is FateStatus.STAGED
    ready.abort("test")
    assert_rejected(ready, later, Reason.REPLAY)  # even after its rollback
    assert_rejected(ready, delta(exo, seq=4), Reason.REPLAY)  # older than the last accepted


def test_busy_while_staged_or_on_probation(ready: Patcher, exo: Compiled) -> None:
    assert ready.receive(delta(exo, seq=2)).status is FateStatus.STAGED
    assert_rejected(ready, delta(exo, seq=3), Reason.BUSY)
    ready.activate()
    assert_rejected(ready, delta(exo, seq=3), Reason.BUSY)


def test_wrong_base(ready: Patcher, exo: Compiled) -> None:
    other = bumped(exo, version=7)
    data = pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=2, base=other).data
    assert assert_rejected(ready, data, Reason.WRONG_BASE).field == "base"


@pytest.mark.parametrize("field, value", [("cycles", 190_001), ("share", 1001),
                                          ("code", 65_537), ("data", 524_289)])
def test_claims_over_the_limits(ready: Patcher, exo: Compiled, field: str, value: int) -> None:
    data = delta(exo)
    header = dataclasses.replace(parse_header(data).header)
    claims = dataclasses.replace(header.claims, **{
        {"cycles": "cycles_per_frame", "share": "share_bp", "code": "code_bytes",
         "data": "data_bytes"}[field]: value})
    frames = [data[parse_header(data).size:-TAG_BYTES]]
    bad = assemble(dataclasses.replace(header, claims=claims), frames, TEST_KEY)
    assert assert_rejected(ready, bad, Reason.OVER_BUDGET).field == field


def test_claims_that_do_not_match_the_image(ready: Patcher, exo: Compiled) -> None:
    data = delta(exo)
    parsed = parse_header(data)
    claims = dataclasses.replace(parsed.header.claims,
                                 code_bytes=parsed.header.claims.code_bytes + 1)
    bad = assemble(dataclasses.replace(parsed.header, claims=claims),
                   [data[parsed.size:-TAG_BYTES]], TEST_KEY)
    assert assert_rejected(ready, bad, Reason.CLAIM_MISMATCH).field == "code"


def test_target_hash_mismatch(ready: Patcher, exo: Compiled) -> None:
    data = delta(exo)
    assert assert_rejected(ready, edited(data, "target", bytes(8)),
                           Reason.HASH_MISMATCH).field == "target"


def _patch(exo: Compiled, frames: list[bytes], *, full: bool = False, seq: int = 2) -> bytes:
    header = parse_header(delta(exo)).header
    flags = Flag.FULL if full else Flag(0)
    return assemble(dataclasses.replace(header, flags=flags, seq=seq), frames, TEST_KEY)


def test_sections_out_of_order(ready: Patcher, exo: Compiled) -> None:
    a = build_frame(SectionType.ENTRIES, build_body(SectionType.ENTRIES, {"on_apply": 0}))
    b = build_frame(SectionType.IDENTITY, build_body(SectionType.IDENTITY, {"name": "x"}))
    assert_rejected(ready, _patch(exo, [a, b]), Reason.BAD_SECTION)


def test_removal_outside_the_base(ready: Patcher, exo: Compiled) -> None:
    body = build_body(SectionType.REMOVALS, [{"list": 6, "indices": [99]}])
    assert_rejected(ready, _patch(exo, [build_frame(SectionType.REMOVALS, body)]),
                    Reason.BAD_DELTA)


def test_new_entry_index_beyond_the_target(ready: Patcher, exo: Compiled) -> None:
    body = build_body(SectionType.TASKS, [{"index": 5, "name": "t", "period_ms": 1000,
                                           "function": 1}])
    assert_rejected(ready, _patch(exo, [build_frame(SectionType.TASKS, body)]),
                    Reason.BAD_DELTA)


def test_missing_vmlet(tmp_path: Path, exo: Compiled) -> None:
    p = new_patcher(tmp_path, exo.mission)
    empty = Image(kind=ImageKind.CONFIG, name="", version=0, mission="corot")
    frames = [build_frame(s, b) for s, b in sections(exo.image, vmlets(exo), empty,
                                                     vmlets(exo))]
    data = _patch(exo, frames, full=True, seq=1)
    data = edited(data, "base", NO_HASH)
    assert_rejected(p, data, Reason.MISSING_VMLET)


def test_a_carried_image_that_is_not_a_vmlet(ready: Patcher, exo: Compiled) -> None:
    for payload in (b"VVMI\x01garbage", exo.image.encode()):
        frame = build_frame(SectionType.VMLET, payload)
        assert_rejected(ready, _patch(exo, [frame]), Reason.BAD_IMAGE)


def test_the_bytecode_verifier_runs_last(ready: Patcher, exo: Compiled) -> None:
    units = list(exo.image.functions)
    units[0] = CodeUnit(units[0].name, units[0].n_params, units[0].n_locals, True, 2,
                        b"\x00")
    broken = dataclasses.replace(exo.image, functions=tuple(units), version=5)
    data = pack(broken, vmlets(exo), exo.mission, TEST_KEY, seq=2, base=exo.image).data
    error = assert_rejected(ready, data, Reason.VERIFIER)
    assert "bad-opcode" in error.message


def test_flight_profile_refuses_the_development_key_and_unverified_patches(
        tmp_path: Path, exo: Compiled) -> None:
    flight = dataclasses.replace(exo.mission, flight=True)
    with pytest.raises(KeyRefused):
        Patcher(flight, Store.init(tmp_path / "a"), development_key("corot"))
    p = Patcher(flight, Store.init(tmp_path / "b"), TEST_KEY)
    data = pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=1, unverified=True).data
    assert_rejected(p, data, Reason.UNVERIFIED)
    dev = new_patcher(tmp_path / "c", exo.mission)  # a demo profile takes it
    assert dev.receive(data).status is FateStatus.STAGED


# --------------------------------------------------------------------------- probation


def test_a_fault_during_probation_rolls_back(ready: Patcher, exo: Compiled) -> None:
    assert ready.receive(delta(exo)).status is FateStatus.STAGED
    ready.activate()
    assert ready.end_frame() is None
    fate = ready.end_frame(fault=True)
    assert fate is not None and fate.status is FateStatus.ROLLED_BACK
    current = ready.store.current()
    assert current is not None and current.hash == exo.image.content_hash
    assert ready.end_frame() is None  # nothing on probation any more


def test_a_reset_during_probation_rolls_back(ready: Patcher, exo: Compiled) -> None:
    ready.receive(delta(exo))
    ready.activate()
    rebooted = Patcher(exo.mission, Store.open(ready.store.directory), TEST_KEY)
    fate = rebooted.boot()
    assert fate is not None and fate.status is FateStatus.ROLLED_BACK
    assert "reset" in fate.message and rebooted.store.phase is Phase.IDLE
    assert rebooted.boot() is None


def test_probation_commits_after_the_configured_frames(ready: Patcher, exo: Compiled) -> None:
    ready.receive(delta(exo))
    ready.activate()
    assert [ready.end_frame() is None for _ in range(2)] == [True, True]
    fate = ready.end_frame()
    assert fate is not None and fate.status is FateStatus.COMMITTED
    assert fate.to_json()["status"] == "committed"


# --------------------------------------------------------------------------- fuzzing


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory,
                smalls: tuple[Compiled, Compiled]) -> Iterator[tuple[Patcher, list[bytes],
                                                                     bytes]]:
    a, b = smalls
    p = new_patcher(tmp_path_factory.mktemp("fuzz"), a.mission)
    install(p, pack(a.image, vmlets(a), a.mission, TEST_KEY, seq=1).data)
    seeds = [pack(b.image, vmlets(b), a.mission, TEST_KEY, seq=2, base=a.image, full=False).data,
             pack(b.image, vmlets(b), a.mission, TEST_KEY, seq=3).data]
    yield p, seeds, b.image.content_hash


MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("byte"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 8)),
    st.tuples(st.just("splice"), st.integers(0, 10**6), st.integers(0, 10**6)),
    # Structural edits that keep the framing valid, so that the decoders see them:
    st.tuples(st.just("field"), st.integers(0, 10**6), st.integers(0, 2**20)),
    st.tuples(st.sampled_from(["pflip", "pbyte", "pinsert", "pdelete"]),
              st.integers(0, 10**6), st.integers(0, 255)),
)
FIELDS = ("seq", "version", "cycles", "share", "code", "data", "mission", "spacecraft",
          "flags", "base", "target")


def _field_edit(data: bytes, which: int, value: int) -> bytes:
    """Set one header field to ``value`` (framing and CRCs stay consistent)."""
    try:
        parsed = parse_header(data)
    except FormatError:
        return data
    h = parsed.header
    name = FIELDS[which % len(FIELDS)]
    c = h.claims
    change: dict[str, Any]
    if name in ("base", "target"):
        change = {f"{name}_hash": value.to_bytes(8, "big")}
        h = dataclasses.replace(h, **change)
    elif name == "flags":
        h = dataclasses.replace(h, flags=Flag(value & 3))
    elif name in ("cycles", "share", "code", "data"):
        attr = {"cycles": "cycles_per_frame", "share": "share_bp", "code": "code_bytes",
                "data": "data_bytes"}[name]
        h = dataclasses.replace(h, claims=dataclasses.replace(c, **{attr: value}))
    else:
        change = {{"seq": "seq", "version": "version", "mission": "mission_id",
                   "spacecraft": "spacecraft_id"}[name]: value}
        h = dataclasses.replace(h, **change)
    return build_header(h) + data[parsed.size:]


def _payload_edit(data: bytes, op: str, at: int, value: int) -> bytes:
    """Edit a byte inside one section's payload and rebuild that frame's length and CRC."""
    try:
        size = parse_header(data).size
        frames = parse_frames(data, size, len(data) - TAG_BYTES)
    except FormatError:
        return data
    if not frames:
        return data
    f = frames[at % len(frames)]
    payload = bytearray(f.payload)
    i = (at // len(frames)) % (len(payload) + 1)
    if op == "pflip" and i < len(payload):
        payload[i] ^= 1 << (value % 8)
    elif op == "pbyte" and i < len(payload):
        payload[i] = value
    elif op == "pinsert":
        payload[i:i] = bytes([value])
    elif op == "pdelete":
        del payload[i:i + 1 + value % 4]
    new = build_frame(SectionType.IDENTITY, bytes(payload))
    new = bytes([f.kind]) + new[1:-2]
    new += crc16(new).to_bytes(2, "big")
    return data[:f.offset] + new + data[f.offset + f.size:]


def mutate(data: bytes, other: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for op, at, arg in ops:
        i = at % (len(out) + 1)
        if op == "flip" and i < len(out):
            out[i] ^= 1 << arg
        elif op == "truncate":
            del out[i:]
        elif op == "byte" and i < len(out):
            out[i] = arg
        elif op == "insert":
            out[i:i] = bytes([arg])
        elif op == "delete":
            del out[i:i + arg]
        elif op == "splice":
            j = arg % len(other)
            out[i:] = other[j:j + len(out) - i]
        elif op == "field":
            out = bytearray(_field_edit(bytes(out), at, arg))
        elif op.startswith("p"):
            out = bytearray(_payload_edit(bytes(out), op, at, arg))
    return bytes(out)


def fuzz_one(patcher: Patcher, seeds: list[bytes], target: bytes, seed: int,
             ops: list[tuple[str, int, int]], resign: bool) -> str:
    """Check one mutated patch: rejected with a reason, or accepted only as the original
    configuration. Returns the outcome (a reason code or 'accepted')."""
    original = seeds[seed % len(seeds)]
    data = mutate(original, seeds[(seed + 1) % len(seeds)], ops)
    if resign:
        data = retag(data, TEST_KEY)
    try:
        accepted = patcher.check(data)
    except PatchRejected as exc:
        assert isinstance(exc.reason, Reason) and exc.message
        assert exc.reason is not Reason.INTERNAL, (exc, exc.__cause__)
        return exc.reason.value
    assert isinstance(accepted, Accepted)
    assert accepted.configuration.hash == target, "a mutated patch changed the configuration"
    assert resign or data in seeds  # unsigned: only an untouched (or spliced whole) seed
    return "accepted"


@settings(max_examples=2500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 1), ops=st.lists(MUTATION, min_size=1, max_size=3),
       resign=st.booleans())
def test_mutated_patches_are_rejected_with_a_reason_or_unchanged(
        fuzz_target: tuple[Patcher, list[bytes], bytes], seed: int,
        ops: list[tuple[str, int, int]], resign: bool) -> None:
    patcher, seeds, target = fuzz_target
    before = patcher.store.state()
    fuzz_one(patcher, seeds, target, seed, ops, resign)
    assert patcher.store.state() == before


def test_power_loss_while_receiving_or_switching(tmp_path: Path, exo: Compiled) -> None:
    """Through the patcher: a power cut at each write ends in the old or the new
    configuration, and resending the patch afterwards completes the change."""
    full = pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=1).data
    for fail_at in range(4):  # stage: slot + journal; activate: journal; commit: journal
        directory = tmp_path / f"run{fail_at}"
        Store.init(directory)
        p = Patcher(exo.mission, Store.open(directory, FaultyDisk(fail_at)), TEST_KEY,
                    probation_frames=1)
        with pytest.raises(PowerLoss):
            install(p, full)
        after = Patcher(exo.mission, Store.open(directory), TEST_KEY, probation_frames=1)
        assert after.store.check() == []
        after.boot()
        current = after.store.current()
        assert current is None or current.hash == exo.image.content_hash
        if after.store.phase is Phase.STAGED:  # staged survived: switch at the next frame
            after.activate()
            after.end_frame()
        elif current is None:  # not staged, or rolled back at boot: the ground resends
            seq = after.store.last_seq + 1
            install(after, pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=seq).data)
        current = after.store.current()
        assert current is not None and current.hash == exo.image.content_hash


def test_fate_codes_are_distinct_bytes() -> None:
    from onboard.patching.patch_format import REASON_NUMBERS
    from onboard.patching.patcher import Fate

    codes = [Fate(FateStatus.REJECTED, reason=r).code for r in Reason]
    codes += [Fate(s).code for s in FateStatus if s is not FateStatus.REJECTED]
    assert len(set(codes)) == len(codes) and all(0 <= c <= 0xFF for c in codes)
    assert Fate(FateStatus.STAGED).code == 0  # what onboard.link.receiver calls accepted
    assert Fate(FateStatus.REJECTED, reason=Reason.REPLAY).code == 0x40 + REASON_NUMBERS[
        Reason.REPLAY]
