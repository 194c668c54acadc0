"""Several applications on one board (``onboard.vm.board``), on the real scheduler and the
real patcher: each within its part of the share, none disturbed by another's trap, overrun,
rollback or new version, and the mission's share never exceeded in total."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import TEST_KEY, compile_text

from ccl.diagnostics import CclError
from ccl.driver import Compiled
from ccl.pack import pack
from ccl.verify.program import verify_program
from missions.corot.natives import make_host
from onboard.patching.patcher import Fate, Patcher
from onboard.patching.reconfiguration import Reconfiguration
from onboard.patching.store import Store
from onboard.vm.board import Board, part_cycles
from onboard.vm.faults import TrapCode
from onboard.vm.loader import LoadError
from onboard.vm.vvm import VVM

DAY_MS = 24 * 3600 * 1000

HEALTHY = """\
mission corot;
config channel_a version {version};
uses photometry;
param gain : int[0..2047] = {gain};
var hits : int[0..1000000];
var seen[16] : int[0..16777215];
task scan every 1 s {{
    for s in 0 .. 16 {{
        seen[s] = flux(s);
        if seen[s] > gain {{ hits = min(hits + 1, 1000000); }}
    }}
}}
"""

# Traps every second (division by a zero state variable, after some work).
TRAPPING = """\
mission corot;
config channel_b version 1;
var zero : int[0..10] = 0;
var out : int[0..100] = 0;
var acc : int[0..1000000] = 0;
task divide every 1 s {
    for i in 0 .. 200 { acc = (acc + i) % 1000000; }
    out = 10 / zero;
}
"""

# Overruns every period: needs far more than its part of a 100 ms period.
OVERRUNNING = """\
mission corot;
config channel_b version 1;
var acc : int[0..1000000] = 0;
task hog every 100 ms {
    for i in 0 .. 30000 { acc = (acc + i) % 1000000; }
}
"""


def healthy(tmp_path: Path, version: int = 1, gain: int = 100) -> Compiled:
    return compile_text(tmp_path, HEALTHY.format(version=version, gain=gain),
                        f"channel_a_v{version}_{gain}")


def loaded(board: Board, name: str, share: int, c: Compiled, seed: int) -> VVM:
    vm = board.add(name, share, make_host(c.mission, seed))
    for v in c.vmlets:
        vm.load_vmlet(v.image)
    vm.load(c.image)
    return vm


def observed(vm: VVM) -> dict[str, Any]:
    """Everything of an application's run that another must not change."""
    t = vm.telemetry
    return {
        "tasks": {n: s.as_dict() for n, s in t.tasks.items()},
        "cycles_used": t.cycles_used, "busy_frames": t.busy_frames,
        "worst": t.worst_cycles, "frames": list(t.frames), "frame_cycles": list(t.cycles),
        "faults": t.fault_count,
        "hits": vm.global_value("hits"), "seen": vm.array_values("seen"),
    }


def test_a_trapping_application_beside_a_healthy_one_for_a_simulated_day(
        tmp_path: Path) -> None:
    a = healthy(tmp_path)
    b = compile_text(tmp_path, TRAPPING, "channel_b")
    alone = Board(a.mission)
    loaded(alone, "channel_a", 6, a, seed=5)
    alone.run_for(DAY_MS)

    both = Board(a.mission)
    vm_a = loaded(both, "channel_a", 6, a, seed=5)
    vm_b = loaded(both, "channel_b", 3, b, seed=9)
    for _ in range(24):  # an hour at a time: the board's frame totals are folded hourly
        both.run_for(3600 * 1000)

    # the trapping one really traps, all day long
    stats_b = vm_b.telemetry.tasks
    assert stats_b["divide"].traps == DAY_MS // 1000
    assert {f.code for f in vm_b.telemetry.faults} == {TrapCode.DIV_ZERO}
    # it never uses more than its part in any frame, and the healthy one is untouched
    assert vm_b.telemetry.worst_cycles <= part_cycles(b.mission, 3)
    assert observed(vm_a) == observed(alone.app("channel_a"))
    assert vm_a.telemetry.tasks["scan"].runs == DAY_MS // 1000
    assert vm_a.telemetry.fault_count == 0
    # the total never exceeds the mission's share (10 %), the patch reserve included
    share = a.mission.share_cycles_per_frame
    assert both.worst_total_cycles <= share - a.mission.patch_reserve_cycles_per_frame
    # both run in the same frames: the board adds them up
    assert both.worst_total_cycles > max(vm_a.telemetry.worst_cycles,
                                         vm_b.telemetry.worst_cycles)
    assert both.worst_total_share() <= a.mission.share_percent / 100


def test_an_overrunning_application_never_eats_anothers_part(tmp_path: Path) -> None:
    a = healthy(tmp_path)
    b = compile_text(tmp_path, OVERRUNNING, "channel_b")
    alone = Board(a.mission)
    loaded(alone, "channel_a", 6, a, seed=5)
    alone.run_for(60_000)
    both = Board(a.mission)
    vm_a = loaded(both, "channel_a", 6, a, seed=5)
    vm_b = loaded(both, "channel_b", 3, b, seed=9)
    both.run_for(60_000)
    assert vm_b.telemetry.tasks["hog"].overruns >= 590
    assert vm_b.telemetry.worst_cycles <= part_cycles(b.mission, 3)
    assert vm_b.telemetry.worst_cycles > part_cycles(b.mission, 3) * 9 // 10  # it fills it
    assert observed(vm_a) == observed(alone.app("channel_a"))
    assert both.worst_total_cycles <= a.mission.share_cycles_per_frame
    # telemetry per application: each its own part, tasks and faults
    status = both.status()
    apps = status["applications"]
    assert set(apps) == {"channel_a", "channel_b"}
    assert apps["channel_b"]["part_cycles"] == part_cycles(b.mission, 3)
    assert apps["channel_b"]["task_budget_per_frame"] == part_cycles(b.mission, 3)
    assert apps["channel_a"]["config"]["name"] == "channel_a"
    assert apps["channel_b"]["fault_count"] == vm_b.telemetry.fault_count > 0
    assert apps["channel_a"]["fault_count"] == 0
    assert status["worst_total_frame_cycles"] == both.worst_total_cycles


def test_parts_over_the_share_are_refused_by_the_board(tmp_path: Path) -> None:
    a = healthy(tmp_path)
    board = Board(a.mission)
    board.add("channel_a", 6, make_host(a.mission, 1))
    with pytest.raises(LoadError) as refused:
        board.add("channel_b", 4, make_host(a.mission, 2))  # 6 + 4 + the reserve > 10 %
    assert refused.value.code == "over-share"
    assert "channel_a 6 %" in str(refused.value)
    assert list(board.applications) == ["channel_a"]
    board.add("channel_b", 3, make_host(a.mission, 2))  # 6 + 3 + the reserve fits
    with pytest.raises(LoadError):
        board.add("channel_b", 1, make_host(a.mission, 2))  # a name is one application


def patching_board(tmp_path: Path, a: Compiled, b: Compiled) -> Board:
    """Two applications, each taking patches over its own store, each given its first
    configuration as a full patch and run past probation."""
    board = Board(a.mission)
    for name, c, seed in (("channel_a", a, 5), ("channel_b", b, 9)):
        vm = board.add(name, 4, make_host(c.mission, seed), takes_patches=True)
        Reconfiguration(vm, Patcher(c.mission, Store.init(tmp_path / name), TEST_KEY,
                                    probation_frames=20))
        board.receive_patch(name, pack(c.image, [v.image for v in c.vmlets], c.mission,
                                       TEST_KEY, seq=1).data, 1)
    board.run_for(10_000)
    for name in ("channel_a", "channel_b"):
        vm = board.app(name)
        assert vm.reconfiguration is not None
        assert vm.reconfiguration.status()  # it reports
        assert vm.program is not None
    return board


def fates(vm: VVM) -> list[Fate]:
    """What happened to the patches of an application, in order."""
    assert isinstance(vm.reconfiguration, Reconfiguration)
    return [e.fate for e in vm.reconfiguration.events]


def memory_of(vm: VVM) -> tuple[list[int], list[list[int]]]:
    assert vm.program is not None
    return list(vm.program.memory.globals), [list(a) for a in vm.program.memory.arrays]


def test_a_patch_for_one_application_leaves_the_other_byte_identical(tmp_path: Path) -> None:
    a1, a2 = healthy(tmp_path, 1, gain=100), healthy(tmp_path, 2, gain=900)
    other = compile_text(tmp_path, HEALTHY.format(version=1, gain=50).replace(
        "channel_a", "channel_c"), "channel_c")
    board = patching_board(tmp_path, a1, other)
    reference = patching_board(tmp_path / "ref", a1, other)
    vm_a, vm_c = board.app("channel_a"), board.app("channel_b")
    # each application's patch handling has its slice of the reserve
    assert vm_a.scheduler.reserve_per_frame + vm_c.scheduler.reserve_per_frame \
        <= a1.mission.patch_reserve_cycles_per_frame
    delta = pack(a2.image, [v.image for v in a2.vmlets], a2.mission, TEST_KEY, seq=2,
                 base=a1.image)
    board.receive_patch("channel_a", delta.data, 2)
    board.run_for(30_000)
    reference.run_for(30_000)
    assert vm_a.program is not None and vm_a.program.image.content_hash == a2.image.content_hash
    assert vm_a.global_value("gain") == 900
    # the other application: the same memory, runs and store as on a board that got no patch
    assert memory_of(vm_c) == memory_of(reference.app("channel_b"))
    assert observed(vm_c) == observed(reference.app("channel_b"))
    assert (tmp_path / "channel_b").is_dir()
    for f in sorted((tmp_path / "channel_b").iterdir()):
        assert f.read_bytes() == (tmp_path / "ref" / "channel_b" / f.name).read_bytes()
    # a delta on channel_a's configuration is refused by channel_b (its base is not there)
    wrong = pack(a2.image, [v.image for v in a2.vmlets], a2.mission, TEST_KEY, seq=3,
                 base=a1.image)
    board.receive_patch("channel_b", wrong.data, 3)
    board.run_for(5_000)
    last = fates(vm_c)[-1]
    assert last.status.value == "rejected" and last.reason is not None
    assert last.reason.value == "wrong-base"


def test_one_applications_rollback_leaves_the_others_state_untouched(tmp_path: Path) -> None:
    a1 = healthy(tmp_path, 1)
    # version 2 traps in its first run: rolled back on probation
    bad = compile_text(tmp_path, HEALTHY.format(version=2, gain=100).replace(
        "task scan", "var zero : int[0..1] = 0;\ntask boom every 1 s { hits = 1 / zero; }\n"
        "task scan"), "channel_a_bad")
    other = compile_text(tmp_path, HEALTHY.format(version=1, gain=50).replace(
        "channel_a", "channel_c"), "channel_c")
    board = patching_board(tmp_path, a1, other)
    reference = patching_board(tmp_path / "ref", a1, other)
    vm_a, vm_c = board.app("channel_a"), board.app("channel_b")
    before = vm_a.program
    board.receive_patch("channel_a", pack(bad.image, [v.image for v in bad.vmlets],
                                          bad.mission, TEST_KEY, seq=2, base=a1.image).data, 2)
    board.run_for(20_000)
    reference.run_for(20_000)
    assert [f.status.value for f in fates(vm_a)][-2:] == ["active", "rolled-back"]
    assert vm_a.program is before
    assert memory_of(vm_c) == memory_of(reference.app("channel_b"))
    assert observed(vm_c) == observed(reference.app("channel_b"))
    assert fates(vm_c)[-1].status.value == "committed"


EXPORTER = """\
mission corot;
config channel_b version 1;
application channel_b share 3 %;
param gain : int[1..10] = 10;
var ticks : int[0..1000000] = 0;
export fn scale(x : int[0..100]) -> int[0..1000] {
    let y : int[0..1000] = 0;
    for i in 0 .. x { y = min(y + gain, 1000); }
    return y;
}
task tick every 1 s { ticks = min(ticks + 1, 1000000); }
"""

IMPORTER = """\
mission corot;
config channel_a version 1;
application channel_a share 6 %;
import channel_b.scale;
var out : int[0..1000] = 0;
task use every 1 s { out = channel_b.scale(7); }
"""


def test_a_cross_application_call_is_charged_to_the_caller_and_proven(
        tmp_path: Path) -> None:
    b = compile_text(tmp_path, EXPORTER, "channel_b")
    a = compile_text(tmp_path, IMPORTER, "channel_a")
    # the verifier sees the callee's proven bound and range: the caller's worst case has it
    callee_report, caller_report = verify_program(b), verify_program(a)
    assert callee_report.status == caller_report.status == "proven"
    bound = next(w.bound for w in callee_report.budgets.worst_cases if w.name == "scale")
    native = a.mission.natives["channel_b.scale"]
    assert native.cost.evaluate({"x": 0}) == bound and native.result == (0, 1000)
    use = next(w for w in caller_report.budgets.worst_cases if w.name == "use")
    assert use.bound > bound
    # on board: the call runs the callee's code on its memory, charged to the caller
    alone = Board(b.mission)
    loaded(alone, "channel_b", 3, b, seed=9)
    board = Board(b.mission)
    vm_b = loaded(board, "channel_b", 3, b, seed=9)
    vm_a = board.add("channel_a", 6, make_host(a.mission, 5), imports=[native])
    vm_a.load(a.image)
    board.run_for(10_000)
    alone.run_for(10_000)
    assert vm_a.global_value("out") == 70
    stats = vm_a.telemetry.tasks["use"]
    assert stats.runs == 10 and stats.traps == 0
    assert bound < stats.worst_cycles <= use.bound  # the callee's bound is the caller's
    # the callee's own runs and cycles are exactly those it has alone
    callee_alone = alone.app("channel_b").telemetry
    assert vm_b.telemetry.tasks["tick"].as_dict() == callee_alone.tasks["tick"].as_dict()
    assert vm_b.telemetry.cycles_used == callee_alone.cycles_used
    assert vm_b.global_value("ticks") == alone.app("channel_b").global_value("ticks") == 10


def test_an_import_of_what_is_not_exported_is_refused(tmp_path: Path) -> None:
    compile_text(tmp_path, EXPORTER.replace("export fn", "fn"), "channel_b")
    with pytest.raises(CclError) as refused:
        compile_text(tmp_path, IMPORTER, "channel_a")
    d = refused.value.diagnostics[0]
    assert d.code == "E-IMPORT" and d.span is not None and d.span.line == 4
    assert "exports no function `scale`" in d.message
    assert len(refused.value.diagnostics) == 1  # its call says nothing more


def test_an_export_that_writes_its_applications_state_cannot_be_imported(
        tmp_path: Path) -> None:
    compile_text(tmp_path, EXPORTER.replace("    return y;", "    ticks = 0;\n    return y;"),
                 "channel_b")
    with pytest.raises(CclError) as refused:
        compile_text(tmp_path, IMPORTER, "channel_a")
    d = refused.value.diagnostics[0]
    assert d.code == "E-IMPORT" and "writes `ticks`" in d.message


def test_an_import_charged_more_than_the_callers_part_is_refuted(tmp_path: Path) -> None:
    # scale's worst case (x up to 1000) is charged in one piece: more than 1 % of a frame
    compile_text(tmp_path, EXPORTER.replace("int[0..100]", "int[0..1000]"), "channel_b")
    a = compile_text(tmp_path, IMPORTER.replace("share 6 %", "share 1 %"), "channel_a")
    charge = a.mission.natives["channel_b.scale"].cost.evaluate({"x": 0})
    assert charge > part_cycles(a.mission, 1)
    report = verify_program(a)
    refuted = [o for o in report.refuted if o.kind.value == "frame-charge"]
    assert refuted and "of application channel_a" in refuted[0].message


def test_a_patch_over_the_tc_link_reaches_the_application_its_apid_names(
        tmp_path: Path) -> None:
    """Frames on application 1's APID rebuild a patch that only channel_b's patcher sees;
    frames on the patch APID of old still go to the default application (number 0); a
    segment for an application the board does not have is refused before it takes
    storage."""
    from ground.erasure import encode
    from ground.framing import Counters, frames
    from onboard.link.link_security import SecurityAssociation
    from onboard.link.receiver import Outcome, Receiver
    from onboard.link.tc_frames import PATCH_APID, parse_packet, patch_apid

    a1 = healthy(tmp_path, 1, gain=100)
    b1 = compile_text(tmp_path, HEALTHY.format(version=1, gain=50).replace(
        "channel_a", "channel_c"), "channel_c")
    b2 = compile_text(tmp_path, HEALTHY.format(version=2, gain=700).replace(
        "channel_a", "channel_c"), "channel_c2")
    board = patching_board(tmp_path, a1, b1)
    reference = patching_board(tmp_path / "ref", a1, b1)
    assert (board.number("channel_a"), board.number("channel_b")) == (0, 1)
    link = SecurityAssociation(1, bytes(range(32)))
    default = board.route(0)
    assert default is not None and board.route(2) is None
    receiver = Receiver(a1.mission.spacecraft_id, default, 1 << 20, link,
                        routes=board.route)
    delta = pack(b2.image, [v.image for v in b2.vmlets], b2.mission, TEST_KEY, seq=2,
                 base=b1.image)
    sent, counters = frames(encode(delta.data, 200), 7, range(encode(delta.data, 200).k),
                            a1.mission.spacecraft_id, Counters(), link, application=1)
    # the application is in the (authenticated) packet's APID
    assert parse_packet(sent[0].raw[11:-18]).apid == patch_apid(1) != PATCH_APID
    outcomes = [receiver.accept(f.raw, board.now_ms) for f in sent]
    assert outcomes[-1].outcome is Outcome.COMPLETED and outcomes[-1].application == 1
    board.run_for(5_000)
    reference.run_for(5_000)
    vm_b = board.app("channel_b")
    assert vm_b.program is not None and vm_b.program.image.content_hash == b2.image.content_hash
    assert vm_b.global_value("gain") == 700
    assert fates(vm_b)[-1].status.value in ("committed", "active")
    vm_a = board.app("channel_a")
    assert memory_of(vm_a) == memory_of(reference.app("channel_a"))
    assert fates(vm_a) == fates(reference.app("channel_a"))
    # an old transfer (the patch APID, application 0) goes to the default application
    a2 = healthy(tmp_path, 2, gain=900)
    old = pack(a2.image, [v.image for v in a2.vmlets], a2.mission, TEST_KEY, seq=2,
               base=a1.image)
    enc = encode(old.data, 200)
    sent, counters = frames(enc, 8, range(enc.k), a1.mission.spacecraft_id, counters, link)
    assert [receiver.accept(f.raw, board.now_ms).outcome for f in sent][-1] \
        is Outcome.COMPLETED
    board.run_for(5_000)
    assert vm_a.global_value("gain") == 900 and vm_b.global_value("gain") == 700
    # telemetry names each transfer's application (the default one's entry as before)
    from onboard.link.receiver import TransferState, decode_report
    report = decode_report(receiver.report(board.now_ms))
    seven, eight = report.transfer(7), report.transfer(8)
    assert seven is not None and eight is not None
    assert (seven.application, seven.state) == (1, TransferState.COMPLETE)
    assert (eight.application, eight.state) == (0, TransferState.COMPLETE)
    # no application 3 on this board: refused, no transfer opened
    sent, _ = frames(enc, 9, range(enc.k), a1.mission.spacecraft_id, counters, link,
                     application=3)
    got = receiver.accept(sent[0].raw, board.now_ms)
    assert got.outcome is Outcome.NO_APPLICATION and got.application == 3
    assert receiver.held_bytes() == 0 and receiver.state(9) is None
