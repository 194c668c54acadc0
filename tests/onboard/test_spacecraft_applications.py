"""A spacecraft of several applications (``onboard.sim.spacecraft`` over a ``Board``): a
patch over the TC link reaches the application its APID names, a trapping one there is
rolled back on that application's probation while the other runs exactly as if nothing
happened, every application reports in its own TM packet, and a reset restarts each from
its own store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import compile_text, proven

from ccl.driver import Compiled, Compiler
from ccl.pack import pack
from ground import framing
from ground.erasure import encode
from ground.tm_stream import TmReader
from onboard.link.downlink import decode_downlink
from onboard.link.link_security import SecurityAssociation, development_link_key
from onboard.link.receiver import Outcome, decode_report
from onboard.link.tc_frames import parse_packet, patch_apid
from onboard.mission import find_mission
from onboard.patching.patch_format import Reason, development_key
from onboard.patching.patcher import FateStatus, read_fate_code
from onboard.sim.spacecraft import Spacecraft
from onboard.sim.tm_packets import APPLICATION_APID, split_packets
from onboard.vm.loader import LoadError

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = ROOT / "missions" / "corot" / "configs" / "channels"
PROFILE = find_mission("corot")
KEY, LINK_KEY = development_key("corot"), development_link_key("corot")
APPS = (("channel_a", 4), ("channel_b", 3))


@pytest.fixture(scope="module")
def configs() -> dict[str, Compiled]:
    compiler = Compiler()
    return {f.stem: compiler.compile(f) for f in sorted(CHANNELS.glob("*.ccl"))}


def spacecraft(directory: Path, configs: dict[str, Compiled]) -> Spacecraft:
    """Channel A v1 and channel B v2 (the healthy one) installed, run for a minute."""
    sc = Spacecraft.create(PROFILE, directory, KEY, LINK_KEY, seed=3, applications=APPS)
    for app, stem in (("channel_a", "channel_a"), ("channel_b", "channel_b_v2")):
        c = configs[stem]
        sc.install(c.image, [v.image for v in c.vmlets], application=app)
    sc.run_until(60_000)
    return sc


def observed(sc: Spacecraft, app: str) -> dict[str, Any]:
    """Everything of an application's run another must not change."""
    vm = sc.application(app).vvm
    assert vm.program is not None
    t = vm.telemetry
    return {"tasks": {n: s.as_dict() for n, s in t.tasks.items()}, "cycles": t.cycles_used,
            "frames": list(t.frames), "frame_cycles": list(t.cycles), "faults": t.fault_count,
            "globals": list(vm.program.memory.globals),
            "arrays": [list(a) for a in vm.program.memory.arrays],
            "hash": vm.program.image.content_hash}


def send(sc: Spacecraft, data: bytes, transfer: int, application: int) -> int:
    """Every share of ``data`` on ``application``'s APID; the APID the frames carried."""
    enc = encode(data, 512)
    frames, _ = framing.frames(enc, transfer, range(enc.k), PROFILE.spacecraft_id,
                               framing.Counters(transfer * 16, transfer * 16,
                                                transfer * 1000),
                               SecurityAssociation(PROFILE.receiver.spi, LINK_KEY),
                               application=application)
    outcomes = [sc.receive(f.raw) for f in frames]
    assert outcomes[-1].outcome is Outcome.COMPLETED, outcomes
    assert outcomes[-1].application == application
    return parse_packet(frames[0].raw[11:-18]).apid


def test_a_patch_rolled_back_in_one_application_leaves_the_other_untouched(
        tmp_path: Path, configs: dict[str, Compiled]) -> None:
    sc = spacecraft(tmp_path / "sc", configs)
    reference = spacecraft(tmp_path / "ref", configs)
    # channel_b gets the version that traps (never proven; the demo profile takes it)
    bad, good = configs["channel_b"], configs["channel_b_v2"]
    data = pack(bad.image, [v.image for v in bad.vmlets], PROFILE, KEY, seq=1,
                base=good.image, unverified=True, cycles_per_frame=proven(bad)).data
    assert send(sc, data, 1, application=1) == patch_apid(1) == 0x161
    sc.run_until(sc.now_ms + 120_000)
    reference.run_until(reference.now_ms + 120_000)
    b = sc.application("channel_b")
    statuses = [e.fate.status for e in b.reconfiguration.events]
    assert statuses[-2:] == [FateStatus.ACTIVE, FateStatus.ROLLED_BACK]
    assert b.vvm.telemetry.fault_count >= 1  # it trapped, in its own VVM
    assert b.vvm.program is not None
    assert b.vvm.program.image.content_hash == good.image.content_hash  # back to v2
    # channel_a: the same runs, cycles, memory and store as on a spacecraft with no patch
    assert observed(sc, "channel_a") == observed(reference, "channel_a")
    assert sc.application("channel_a").reconfiguration.events == []
    store_a = tmp_path / "sc" / "channel_a"
    for f in sorted(store_a.iterdir()):
        assert f.read_bytes() == (tmp_path / "ref" / "channel_a" / f.name).read_bytes()
    # the downlink tells the ground the fate of transfer 1, and its application
    packet = decode_downlink(sc.downlink())
    entry = decode_report(packet.report).transfer(1)
    assert entry is not None and entry.application == 1
    assert read_fate_code(entry.fate)[0] is FateStatus.ROLLED_BACK
    # the whole board never left the share, the reserve included
    assert sc.board is not None
    assert 0 < sc.board.worst_total_cycles <= PROFILE.share_cycles_per_frame


def test_every_application_reports_in_its_own_tm_packet(
        tmp_path: Path, configs: dict[str, Compiled]) -> None:
    sc = spacecraft(tmp_path / "sc", configs)
    bad = configs["channel_b"]
    sc.install(bad.image, [v.image for v in bad.vmlets], application="channel_b")
    sc.run_until(sc.now_ms + 10_000)
    packets = sc.tm_packets()
    apids = [apid for raw in packets for apid, _ in split_packets(raw)]
    assert apids.count(APPLICATION_APID) == 2
    reader = TmReader([c.image for c in configs.values()])
    apps = {p.values["name"]: p.values for p in reader.read(b"".join(packets))
            if p.apid == APPLICATION_APID}
    a, b = apps["channel_a"], apps["channel_b"]
    assert (a["application"], b["application"]) == (0, 1)
    assert (a["share_percent"], b["share_percent"]) == (4, 3)
    assert a["part_cycles"] == PROFILE.frame_cycles * 4 // 100
    assert a["traps"] == 0 and a["task_runs"] > 0
    assert b["traps"] == 10 and b["config_version"] == 1  # one trap a second
    assert a["config_hash"] == configs["channel_a"].image.content_hash
    # the reserve is split between the two, within the mission's
    assert a["reserve_cycles"] + b["reserve_cycles"] <= PROFILE.patch_reserve_cycles_per_frame


def test_a_reset_restarts_each_application_from_its_own_store(
        tmp_path: Path, configs: dict[str, Compiled]) -> None:
    sc = spacecraft(tmp_path / "sc", configs)
    before = {n: a.vvm.program.image.content_hash for n, a in sc.applications.items()
              if a.vvm.program is not None}
    sc.reboot()
    sc.run_until(sc.now_ms + 5_000)
    after = {n: a.vvm.program.image.content_hash for n, a in sc.applications.items()
             if a.vvm.program is not None}
    assert after == before and len(after) == 2
    assert sc.vvm is sc.application("channel_a").vvm
    assert sc.application("channel_b").vvm.telemetry.tasks["average"].runs >= 4


def test_parts_over_the_share_are_refused_before_any_store_is_made(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as refused:
        Spacecraft.create(PROFILE, tmp_path / "sc", KEY, LINK_KEY,
                          applications=(("channel_a", 6), ("channel_b", 4)))
    assert refused.value.code == "over-share"
    assert not (tmp_path / "sc").exists()


#: Channel B summing every star 400 times a second: proven to need 64,011 cycles per frame,
#: more than channel_b's part of 3 % (60,000) and within the share less the reserve.
HEAVY_B = """\
mission corot;
config channel_b version 3;
uses photometry;
var mean : int[0..16777215];
var total : int[0..268435455];
task average every 1 s {
    total = 0;
    for r in 0 .. 400 {
        for s in 0 .. 16 { total = min(total + flux(s), 268435455); }
    }
    mean = min(total / 6400, 16777215);
}
"""


def test_a_patch_claiming_more_than_its_applications_part_is_refused_on_the_tc_path(
        tmp_path: Path, configs: dict[str, Compiled]) -> None:
    sc = spacecraft(tmp_path / "sc", configs)
    reference = spacecraft(tmp_path / "ref", configs)
    heavy, good = compile_text(tmp_path, HEAVY_B, "heavy_b"), configs["channel_b_v2"]
    need = proven(heavy)
    part = PROFILE.frame_cycles * 3 // 100
    assert part < need <= PROFILE.share_cycles_per_frame - PROFILE.patch_reserve_cycles_per_frame
    store_b = tmp_path / "sc" / "channel_b"
    before = {f.name: f.read_bytes() for f in sorted(store_b.iterdir())}
    data = pack(heavy.image, [v.image for v in heavy.vmlets], PROFILE, KEY, seq=1,
                base=good.image, cycles_per_frame=need).data
    send(sc, data, 1, application=1)
    sc.run_until(sc.now_ms + 30_000)
    reference.run_until(reference.now_ms + 30_000)
    b = sc.application("channel_b")
    last = b.reconfiguration.events[-1].fate
    assert last.status is FateStatus.REJECTED and last.reason is Reason.OVER_BUDGET
    assert last.field == "cycles" and last.offset is not None
    assert f"claims {need} cycles per frame" in last.message and f"{part}" in last.message
    assert "channel_b" in last.message
    # nothing of the refused patch on board: its store byte for byte, v2 still running
    assert {f.name: f.read_bytes() for f in sorted(store_b.iterdir())} == before
    assert b.vvm.program is not None
    assert b.vvm.program.image.content_hash == good.image.content_hash
    assert b.vvm.telemetry.fault_count == 0
    # the other application ran exactly as if nothing had been sent
    assert observed(sc, "channel_a") == observed(reference, "channel_a")
    # the reason reaches the ground: the fate of transfer 1 in the downlinked report
    entry = decode_report(decode_downlink(sc.downlink()).report).transfer(1)
    assert entry is not None and entry.application == 1
    assert read_fate_code(entry.fate) == (FateStatus.REJECTED, Reason.OVER_BUDGET)


def test_the_same_patch_is_accepted_by_an_application_whose_part_holds_it(
        tmp_path: Path, configs: dict[str, Compiled]) -> None:
    heavy = compile_text(tmp_path, HEAVY_B, "heavy_b")
    sc = Spacecraft.create(PROFILE, tmp_path / "sc", KEY, LINK_KEY, seed=3,
                           applications=(("channel_a", 4), ("channel_b", 4)))
    good = configs["channel_b_v2"]
    sc.install(good.image, [v.image for v in good.vmlets], application="channel_b")
    data = pack(heavy.image, [v.image for v in heavy.vmlets], PROFILE, KEY, seq=1,
                base=good.image, cycles_per_frame=proven(heavy)).data
    send(sc, data, 1, application=1)
    sc.run_until(sc.now_ms + 120_000)
    b = sc.application("channel_b")
    assert [e.fate.status for e in b.reconfiguration.events][-1] is FateStatus.COMMITTED
    assert b.vvm.program is not None
    assert b.vvm.program.image.content_hash == heavy.image.content_hash
    assert b.vvm.telemetry.fault_count == 0
