"""Packing on the ground: deltas, table runs, keys, and the pack/inspect/keygen commands."""

from __future__ import annotations

import dataclasses
import json
import lzma
import math
import random
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from support import TEST_KEY

from ccl.driver import Compiled, Compiler
from ccl.pack import (
    ALL_CODECS,
    KEY_ENV,
    PackError,
    chunks,
    diff_list,
    format_key,
    load_key,
    pack,
    parse_key,
    rice_parameter,
    row_runs,
)
from ccl.verify.verdict import Verdict
from cli import pack_commands
from cli.ccl import ccl as cli
from cli.pack_commands import describe
from onboard.patching.context_mixing import decoded_length
from onboard.patching.patch_format import (
    FORMAT_VERSION,
    MAX_RICE,
    TAG_BYTES,
    Codec,
    Flag,
    SectionType,
    check_order,
    development_key,
    expand_chunk,
    parse_frames,
    parse_header,
    unbundle,
)
from onboard.patching.patcher import FateStatus, Patcher
from onboard.patching.store import Store

ROOT = Path(__file__).resolve().parents[2]
EXO = ROOT / "missions" / "corot" / "configs" / "exo_e1.ccl"
FAST = settings(max_examples=200, deadline=None)


@pytest.fixture(scope="module")
def exo() -> Compiled:
    return Compiler().compile(EXO)


def vmlets(c: Compiled) -> list:  # type: ignore[type-arg]
    return [v.image for v in c.vmlets]


# --------------------------------------------------------------------------- diffs


@FAST
@given(st.lists(st.integers(0, 6), max_size=12), st.lists(st.integers(0, 6), max_size=12))
def test_diff_list_rebuilds_the_target(base: list[int], target: list[int]) -> None:
    removed, new, pairs = diff_list(base, target)
    kept = iter(v for i, v in enumerate(base) if i not in set(removed))
    rebuilt = [target[j] if j in set(new) else next(kept) for j in range(len(target))]
    assert rebuilt == target
    assert all(base[i] == target[j] for i, j in pairs)
    assert sorted(removed) == removed and sorted(new) == new


@FAST
@given(st.integers(0, 12), st.data())
def test_chunks_cover_the_values(bits: int, data: st.DataObject) -> None:
    hi = (1 << bits) - 1
    values = data.draw(st.lists(st.one_of(st.just(0), st.integers(0, hi)), max_size=300))
    out = chunks(values, 0, hi)
    assert [v for c in out for v in _expand(c)] == values


@FAST
@given(st.integers(1, 12), st.data())
def test_row_runs_rebuild_the_changed_table(bits: int, data: st.DataObject) -> None:
    hi = (1 << bits) - 1
    base = data.draw(st.lists(st.integers(0, hi), min_size=1, max_size=200))
    target = list(base)
    for i in data.draw(st.lists(st.integers(0, len(base) - 1), max_size=30)):
        target[i] = data.draw(st.integers(0, hi))
    rebuilt, pos = list(base), 0
    for run in row_runs(base, target, 0, hi):
        start = pos + run["skip"]
        values = _expand(run)
        rebuilt[start:start + len(values)] = values
        pos = start + len(values)
    assert rebuilt == target


def _expand(chunk: dict) -> list[int]:  # type: ignore[type-arg]
    return expand_chunk(type("C", (), {"header": chunk["header"], "packed": chunk["packed"]}))


def test_contiguous_changed_rows_cost_their_bits(exo: Compiled) -> None:
    base = [0] * 6000
    target = list(base)
    target[1000:1200] = [(7 * i) % 2033 for i in range(200)]
    runs = row_runs(base, target, 0, 2032)
    assert len(runs) <= 3  # the zeros inside the block may be a repeat chunk
    assert sum(len(r["packed"]) for r in runs) * 11 <= 200 * 11 + 8 * len(runs)


def scattered_move(exo: Compiled, rows: list[int]) -> object:
    """exo_e1 with the star windows at ``rows`` moved (both coordinates)."""
    arrays = list(exo.image.arrays)
    for k in (0, 1):
        values = list(arrays[k].values)
        for i in rows:
            values[i] = arrays[k].hi - values[i] if values[i] * 2 != arrays[k].hi else 0
        arrays[k] = dataclasses.replace(arrays[k], values=tuple(values))
    return dataclasses.replace(exo.image, arrays=tuple(arrays), version=6)


def test_scattered_rows_travel_as_positions_near_their_bound(exo: Compiled,
                                                             tmp_path: Path) -> None:
    rows = sorted(random.Random(7).sample(range(6000), 200))
    target = scattered_move(exo, rows)
    packed = pack(target, vmlets(exo), exo.mission, TEST_KEY, seq=2,  # type: ignore[arg-type]
                  base=exo.image, full=False)  # pack rebuilds it with the onboard code
    data = packed.data
    parsed = parse_header(data)
    assert parsed.header.format == FORMAT_VERSION
    outer = parse_frames(data, parsed.size, len(data) - TAG_BYTES)
    frames = unbundle(outer)  # the sections, framed apart or in a BUNDLE
    kinds = [t for t, _ in check_order(frames)]
    assert SectionType.SCATTERED in kinds and SectionType.ROWS not in kinds
    # The second table reuses the first one's rows: the positions travel once. As sent
    # (every section: framed apart, or bundled and coded together), within 1.10 of the bound.
    bound_bits = 200 * (11 + 12) + math.log2(math.comb(6000, 200))
    sent = sum(f.size for f in outer)
    assert sent * 8 <= 1.10 * bound_bits, sent
    # Applied by a patcher on board: the target, byte for byte.
    patcher = Patcher(exo.mission, Store.init(tmp_path / "state"), TEST_KEY,
                      probation_frames=1)
    for patch in (pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=1).data, data):
        assert patcher.receive(patch).status is FateStatus.STAGED
        patcher.activate()
        patcher.end_frame()
    current = patcher.store.current()
    assert current is not None and current.hash == packed.configuration.hash


def test_rows_that_runs_say_better_stay_format_1(exo: Compiled) -> None:
    packed = pack(one_param(exo), vmlets(exo), exo.mission, TEST_KEY, seq=2,  # type: ignore[arg-type]
                  base=exo.image)
    assert parse_header(packed.data).header.format == 1
    moved = scattered_move(exo, list(range(1000, 1200)))
    block = pack(moved, vmlets(exo),  # type: ignore[arg-type]
                 exo.mission, TEST_KEY, seq=2, base=exo.image, full=False, codecs=ALL_CODECS)
    parsed = parse_header(block.data)
    inner = unbundle(parse_frames(block.data, parsed.size, len(block.data) - TAG_BYTES))
    kinds = [t for t, _ in check_order(inner)]
    assert SectionType.ROWS in kinds and SectionType.SCATTERED not in kinds
    # With the MODEL codec allowed (``--model``) it is a MODEL-coded BUNDLE (format 2) only
    # if that is smaller; without it, the ROWS frame keeps its format-1 bytes.
    without = pack(moved, vmlets(exo), exo.mission, TEST_KEY, seq=2,  # type: ignore[arg-type]
                   base=exo.image, full=False)  # the default codecs: no MODEL
    assert parse_header(without.data).header.format == 1
    assert len(block.data) <= len(without.data)
    assert (parse_header(block.data).header.format == 2) == (block.data != without.data)


def test_a_full_patch_with_the_model_codec_is_smaller_still(exo: Compiled) -> None:
    """``--model``: the BUNDLE coded with the context-mixing codec, rebuilt on board by the
    onboard decoder (``pack``'s self-check), at most 0.85 x ``xz -9e`` of the image."""
    lz = pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=2,  # type: ignore[arg-type]
              base=exo.image, full=True)
    cm = pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=2,  # type: ignore[arg-type]
              base=exo.image, full=True, codecs=ALL_CODECS)
    parsed = parse_header(cm.data)
    frames = parse_frames(cm.data, parsed.size, len(cm.data) - TAG_BYTES)
    assert [(t, c) for t, c in check_order(frames)] == [(SectionType.BUNDLE, Codec.MODEL)]
    # It names its base, so it is coded after photometry, the VMlet on board.
    assert decoded_length(frames[0].payload)[1]
    assert len(cm.data) < 0.93 * len(lz.data)
    xz = len(lzma.compress(exo.image.encode(), preset=9 | lzma.PRESET_EXTREME))
    assert len(cm.data) <= 0.85 * xz, (len(cm.data), xz)


def test_a_full_patch_is_smaller_than_xz_of_the_image_it_carries(exo: Compiled) -> None:
    """Header, CRC and tag included, the sections in one BUNDLE beat ``xz -9e`` of the
    image (benchmarks/patch_size.py compares with zstd -19 too)."""
    full = pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=2,  # type: ignore[arg-type]
                base=exo.image, full=True)
    data = full.data
    parsed = parse_header(data)
    frames = parse_frames(data, parsed.size, len(data) - TAG_BYTES)
    assert [t for t, _ in check_order(frames)] == [SectionType.BUNDLE]
    assert parsed.header.format == FORMAT_VERSION
    xz = len(lzma.compress(exo.image.encode(), preset=9 | lzma.PRESET_EXTREME))
    assert len(data) < xz, (len(data), xz)


@FAST
@given(st.lists(st.integers(0, 5000), max_size=40))
def test_rice_parameter_is_the_cheapest(gaps: list[int]) -> None:
    def cost(r: int) -> int:
        return sum((g >> r) + 1 + r for g in gaps)

    best = rice_parameter(gaps)
    assert all(cost(best) <= cost(r) for r in range(MAX_RICE + 1))


# --------------------------------------------------------------------------- pack


def one_param(exo: Compiled) -> object:
    glob = list(exo.image.globals)
    glob[2] = dataclasses.replace(glob[2], value=60)
    return dataclasses.replace(exo.image, globals=tuple(glob), version=5)


def test_a_one_parameter_delta_fits_in_64_bytes(exo: Compiled) -> None:
    packed = pack(one_param(exo), vmlets(exo), exo.mission, TEST_KEY, seq=2,  # type: ignore[arg-type]
                  base=exo.image)
    assert not packed.full and len(packed.data) <= 64
    full = pack(one_param(exo), vmlets(exo), exo.mission, TEST_KEY, seq=2,  # type: ignore[arg-type]
                base=exo.image, full=True)
    assert full.full and len(full.data) > len(packed.data)


def test_pack_refuses_what_it_cannot_pack(exo: Compiled) -> None:
    vm = vmlets(exo)[0]
    cases = [
        (lambda: pack(vm, [], exo.mission, TEST_KEY, seq=1), "VMlet"),
        (lambda: pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=1, full=False),
         "needs a base"),
        (lambda: pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=0), "at least 1"),
        (lambda: pack(exo.image, [], exo.mission, TEST_KEY, seq=1), "not given"),
        (lambda: pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=1, base=vm), "VMlet"),
    ]
    for make, text in cases:
        with pytest.raises(PackError, match=text):
            make()


def test_the_unverified_flag_and_claims(exo: Compiled) -> None:
    packed = pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=1, unverified=True,
                  cycles_per_frame=4_000)
    h = parse_header(packed.data).header
    assert h.unverified and h.full
    assert h.claims.cycles_per_frame == 4_000 and h.claims.share_bp == 20  # 4000 / 2e6
    assert h.claims.code_bytes == exo.image.code_bytes() + vmlets(exo)[0].code_bytes()


# --------------------------------------------------------------------------- keys


def test_keys_from_file_environment_or_development(tmp_path: Path, exo: Compiled) -> None:
    path = tmp_path / "k"
    path.write_text(format_key(TEST_KEY, "corot"))
    assert load_key(exo.mission, path, {}).secret == TEST_KEY
    assert load_key(exo.mission, None, {KEY_ENV: TEST_KEY.hex()}).secret == TEST_KEY
    dev = load_key(exo.mission, None, {})
    assert dev.development and dev.secret == development_key("corot")
    flight = dataclasses.replace(exo.mission, flight=True)
    with pytest.raises(PackError, match="flight"):
        load_key(flight, None, {})
    assert load_key(flight, path, {}).secret == TEST_KEY
    for bad in ("zz", "00" * 8):
        with pytest.raises(PackError):
            parse_key(bad, "test")


# --------------------------------------------------------------------------- commands


@pytest.fixture
def proven(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pack_commands, "run_verifier",
                        lambda compiled, **_: Verdict("proven", 3_000, "proven"))


def run(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_keygen_writes_a_private_key_once(tmp_path: Path) -> None:
    path = tmp_path / "corot.key"
    r = run("keygen", "-o", str(path), "--mission", "corot")
    assert r.exit_code == 0  # type: ignore[attr-defined]
    assert len(parse_key(path.read_text(), "k")) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = run("keygen", "-o", str(path))
    assert again.exit_code == 2 and "exists" in again.output  # type: ignore[attr-defined]


def test_keygen_force_is_0600_and_never_follows_a_link(tmp_path: Path) -> None:
    old = tmp_path / "old.key"
    old.write_text("00" * 32)
    old.chmod(0o644)
    assert run("keygen", "-o", str(old), "--force").exit_code == 0  # type: ignore[attr-defined]
    assert stat.S_IMODE(old.stat().st_mode) == 0o600 and old.read_text() != "00" * 32
    target = tmp_path / "target.key"
    dangling = tmp_path / "dangling.key"
    dangling.symlink_to(target)
    r = run("keygen", "-o", str(dangling))
    assert r.exit_code == 2 and "exists" in r.output  # type: ignore[attr-defined]
    assert not target.exists()
    r = run("keygen", "-o", str(dangling), "--force", "--link", "--mission", "corot")
    assert r.exit_code == 0 and "link key" in r.output  # type: ignore[attr-defined]
    assert not target.exists() and not dangling.is_symlink()
    assert stat.S_IMODE(dangling.stat().st_mode) == 0o600
    assert dangling.read_text().startswith("# CCL link key for mission corot")
    assert len(parse_key(dangling.read_text(), "k")) == 32


@pytest.mark.parametrize("status, code", [("refuted", 1), ("unknown", 3), ("unavailable", 3)])
def test_pack_refuses_an_unproven_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                status: str, code: int) -> None:
    monkeypatch.setattr(pack_commands, "run_verifier",
                        lambda compiled, **_: Verdict(status, None, "because"))
    out = tmp_path / "p.vvmp"
    r = run("pack", str(EXO), "-o", str(out))
    assert r.exit_code == code and "--unverified" in r.output  # type: ignore[attr-defined]
    assert not out.exists()
    r = run("pack", str(EXO), "-o", str(out), "--unverified")
    assert r.exit_code == 0  # type: ignore[attr-defined]
    assert parse_header(out.read_bytes()).header.flags & Flag.UNVERIFIED


def test_pack_inspect_apply_round_trip(tmp_path: Path, proven: None, exo: Compiled) -> None:
    key = tmp_path / "k"
    run("keygen", "-o", str(key))
    base = tmp_path / "base.vvmi"
    run("compile", str(EXO), "-o", str(base))
    changed = tmp_path / "exo_e1.ccl"
    changed.write_text(EXO.read_text().replace("version 4", "version 5")
                       .replace("= 50;", "= 60;"))
    full, delta = tmp_path / "full.vvmp", tmp_path / "delta.vvmp"
    r = run("pack", str(EXO), "--key", str(key), "--seq", "1", "-o", str(full), "--json")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    summary = json.loads(r.stdout)  # type: ignore[attr-defined]
    assert summary["kind"] == "full" and summary["verified"]
    r = run("pack", str(changed), "--base", str(base), "--key", str(key), "--seq", "2",
            "-o", str(delta), "--json")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    assert json.loads(r.stdout)["kind"] == "delta"  # type: ignore[attr-defined]
    assert not parse_header(delta.read_bytes()).header.unverified

    r = run("inspect", str(delta), "--base", str(base), "--key", str(key), "--json")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    report = json.loads(r.stdout)  # type: ignore[attr-defined]
    assert report["tag"]["status"] == "verified"
    assert [s["type"] for s in report["sections"]] == ["PARAMS"]
    assert report["changes"]["globals"]["values"] == [{"name": "cr_k10", "from": 50, "to": 60}]
    assert report["target"]["matches_header"]
    assert {f["field"] for f in report["header"]} >= {"magic", "seq", "base", "target", "crc"}
    text = run("inspect", str(full))
    assert "cosmic_filter" in text.output  # type: ignore[attr-defined]
    assert "FAILED with the development key" in text.output  # type: ignore[attr-defined]
    assert text.exit_code == 1  # type: ignore[attr-defined]

    secret = parse_key(key.read_text(), "k")
    patcher = Patcher(exo.mission, Store.init(tmp_path / "state"), secret, probation_frames=1)
    for data in (full.read_bytes(), delta.read_bytes()):
        assert patcher.receive(data).status is FateStatus.STAGED
        patcher.activate()
        patcher.end_frame()
    current = patcher.store.current()
    assert current is not None
    assert current.hash.hex() == report["target"]["hash"]
    assert current.hash == Compiler().compile(changed).image.content_hash


def test_inspect_reports_bad_input_with_the_offset(tmp_path: Path, exo: Compiled) -> None:
    data = pack(exo.image, vmlets(exo), exo.mission, TEST_KEY, seq=1).data
    cut = tmp_path / "cut.vvmp"
    cut.write_bytes(data[:30])
    r = run("inspect", str(cut))
    assert r.exit_code == 1  # type: ignore[attr-defined]
    assert "offset" in r.output and "[truncated]" in r.output  # type: ignore[attr-defined]
    flipped = bytearray(data)
    flipped[60] ^= 0x20
    bad = tmp_path / "bad.vvmp"
    bad.write_bytes(bytes(flipped))
    r = run("inspect", str(bad))
    assert r.exit_code == 1 and "[section-crc]" in r.output  # type: ignore[attr-defined]
    wrong = tmp_path / "wrong.key"
    wrong.write_text(format_key(bytes(32)))
    good = tmp_path / "good.vvmp"
    good.write_bytes(data)
    r = run("inspect", str(good), "--key", str(wrong))
    assert r.exit_code == 1 and "FAILED" in r.output  # type: ignore[attr-defined]
    assert "the tag does not verify with" in r.output  # type: ignore[attr-defined]
    delta = tmp_path / "delta.vvmp"
    delta.write_bytes(pack(one_param(exo), vmlets(exo), exo.mission, TEST_KEY, seq=2,  # type: ignore[arg-type]
                           base=exo.image).data)
    other = tmp_path / "other.vvmi"
    other.write_bytes(one_param(exo).encode())  # type: ignore[attr-defined]
    r = run("inspect", str(delta), "--base", str(other))
    assert r.exit_code == 1 and "[wrong-base]" in r.output  # type: ignore[attr-defined]


def test_describe_a_delta_without_its_base(exo: Compiled) -> None:
    data = pack(one_param(exo), vmlets(exo), exo.mission, TEST_KEY, seq=2,  # type: ignore[arg-type]
                base=exo.image).data
    report = describe(data, None, TEST_KEY)
    assert report["kind"] == "delta" and report["tag"]["status"] == "verified"
    assert "--base" in report["changes"]["note"]
