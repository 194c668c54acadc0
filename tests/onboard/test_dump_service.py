"""The onboard dump service over the real link: an authenticated dump request is answered
with the values by name, in what patch handling leaves of the patch reserve, chunk by
chunk; hostile requests are refused with a reason in telemetry, and leave the board exactly
as a board that never received them."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ccl.driver import Compiled
from ground import framing
from ground.telemetry import DumpLog
from onboard.link.downlink import decode_downlink
from onboard.link.dump_format import MAX_NAMES, encode_request
from onboard.link.link_security import SecurityAssociation
from onboard.link.receiver import Outcome, decode_report
from onboard.mission import MissionProfile, find_mission
from onboard.sim.dump_service import (
    BATCH,
    ELEMENT_CYCLES,
    MAX_WAITING,
    DumpService,
)
from onboard.sim.spacecraft import Spacecraft
from onboard.vm.readback import read_back
from tests.support import compile_text

PATCH_KEY, LINK_KEY = bytes(range(32)), bytes(range(32, 64))
EPOCH = datetime(2014, 6, 11, tzinfo=UTC)

SOURCE = """
mission corot;
config rb version 1;
param gain : int[0..100] = 7;
var count : int[0..1000000] = 0;
table t[3] : int[-5..9] = [1, -2, 3];
var hist[{n}] : int[0..16777215];
task tick every 1 s {{
    count = count + gain;
    hist[0] = hist[0] + 1;
}}
"""


@pytest.fixture(scope="module")
def profile() -> MissionProfile:
    return find_mission("corot:flight")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    return compile_text(tmp_path_factory.mktemp("small"), SOURCE.format(n=2000))


@pytest.fixture(scope="module")
def huge(tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    # 9,000 elements of up to 4 bytes: more than the 32 KiB dump buffer at worst
    return compile_text(tmp_path_factory.mktemp("huge"), SOURCE.format(n=9000))


class Ground:
    """The ground side of the link for these tests: framing and the dump log."""

    def __init__(self, sc: Spacecraft, profile: MissionProfile, key: bytes = LINK_KEY) -> None:
        self.sc, self.profile = sc, profile
        self.link = SecurityAssociation(profile.receiver.spi, key)
        self.counters = framing.Counters()
        self.log = DumpLog(EPOCH)

    def frame(self, data: bytes) -> bytes:
        raw, self.counters = framing.request_frame(data, self.profile.spacecraft_id,
                                                   self.counters, self.link)
        return raw

    def ask(self, request: int, names: list[str]) -> Outcome:
        return self.sc.receive(self.frame(encode_request(request, names))).outcome

    def read(self) -> DumpLog:
        self.log.learn(decode_downlink(self.sc.downlink()))
        return self.log


def board(tmp_path: Path, profile: MissionProfile, compiled: Compiled | None,
          name: str = "store") -> Spacecraft:
    sc = Spacecraft.create(profile, tmp_path / name, PATCH_KEY, LINK_KEY)
    if compiled is not None:
        sc.install(compiled.image, [v.image for v in compiled.vmlets])
    sc.run_until(5_000)
    return sc


def test_a_request_is_answered_with_the_values_by_name(
        tmp_path: Path, profile: MissionProfile, small: Compiled) -> None:
    sc = board(tmp_path, profile, small)
    ground = Ground(sc, profile)
    assert ground.ask(1, ["gain", "t", "count", "hist"]) is Outcome.REQUEST
    sc.run_until(10_000)
    answer = ground.read().answer(1)
    assert answer is not None and answer.refused is None
    got = {v.name: v for v in answer.values}
    assert [v.name for v in answer.values] == ["gain", "t", "count", "hist"]
    assert got["gain"].values == (7,) and got["gain"].kind == "param"
    assert got["t"].values == (1, -2, 3) and (got["t"].lo, got["t"].hi) == (-5, 9)
    assert got["count"].kind == "state" and got["count"].values[0] > 0
    assert len(got["hist"].values) == 2000 and got["hist"].values[0] >= 5
    # a parameter and a table read back exactly what the program holds
    assert sc.vvm.program is not None
    assert read_back(sc.vvm.program, ["gain", "t"]) == (got["gain"], got["t"])


def test_a_large_answer_is_read_in_chunks_within_the_reserve(
        tmp_path: Path, profile: MissionProfile, small: Compiled) -> None:
    sc = board(tmp_path, profile, small)
    reserve = sc.vvm.scheduler.background
    assert reserve is not None
    spent: list[tuple[int, int]] = []   # (budget, used) of the whole reserve, every frame
    dumps: list[int] = []               # cycles the dump service took, every frame
    step, service_step = reserve.step, sc.dumps.step

    def recorded(t: int, budget: int) -> int:
        used = step(t, budget)
        spent.append((budget, used))
        return used

    def service(t: int, budget: int) -> int:
        used = service_step(t, budget)
        dumps.append(used)
        return used

    reserve.step = recorded                     # type: ignore[method-assign]
    sc.dumps.step = service                     # type: ignore[method-assign]
    Ground(sc, profile).ask(1, ["hist"])
    sc.run_until(10_000)
    limit = profile.patch_reserve_cycles_per_frame
    assert all(used <= budget == limit for budget, used in spent)
    busy = [d for d in dumps if d]
    assert len(busy) >= 2000 * ELEMENT_CYCLES // limit   # spread over several frames
    assert max(busy) <= limit
    assert sum(busy) >= 2000 * ELEMENT_CYCLES            # every element paid for
    packets = [p for p in decode_downlink(sc.downlink()).dumps if p.request == 1]
    assert len(packets) > 1 and packets[-1].last
    assert len({p.time_ms for p in packets}) > 1         # read over several frames
    assert sc.vvm.status()["worst_frame_share_percent"] <= 100


def test_dumps_take_only_what_patch_handling_leaves(
        tmp_path: Path, profile: MissionProfile, small: Compiled) -> None:
    sc = board(tmp_path, profile, small)

    class Greedy:
        """Patch handling that wants 7,000 cycles of every frame."""
        busy = True

        def next_event_ms(self) -> int | None:
            return sc.vvm.now_ms

        def step(self, t: int, budget: int) -> int:
            return min(7_000, budget)

        def end_frame(self, t: int, faults: int) -> None:
            pass

    reserve = sc.vvm.scheduler.background
    reserve.parts = (Greedy(), sc.dumps)        # type: ignore[union-attr]
    taken: list[int] = []
    service_step = sc.dumps.step
    sc.dumps.step = lambda t, b: taken.append(b) or service_step(t, b)  # type: ignore
    Ground(sc, profile).ask(1, ["hist"])
    sc.run_until(8_000)
    assert taken and max(taken) == profile.patch_reserve_cycles_per_frame - 7_000


@pytest.mark.parametrize(("data", "reason"), [
    (b"\x00\x09\x01\x04nope", "unknown-name"),
    (b"\x00\x09" + bytes([MAX_NAMES + 1]) + b"\x04gain" * (MAX_NAMES + 1), "too-many-names"),
    (b"\x00\x09\x01\x09gain", "malformed"),
    (b"\x00\x09\x01\x04ga;n", "malformed"),
    (b"\x00\x09", "malformed"),
])
def test_hostile_requests_are_refused_with_a_reason(
        tmp_path: Path, profile: MissionProfile, small: Compiled, data: bytes,
        reason: str) -> None:
    sc = board(tmp_path, profile, small)
    ground = Ground(sc, profile)
    assert sc.receive(ground.frame(data)).outcome is Outcome.REQUEST
    sc.run_until(6_000)
    answer = ground.read().answer(9)
    assert answer is not None and answer.refused is not None
    assert answer.refused.startswith(reason + ": ")


def test_too_large_an_answer_is_refused_before_anything_is_read(
        tmp_path: Path, profile: MissionProfile, huge: Compiled) -> None:
    sc = board(tmp_path, profile, huge)
    ground = Ground(sc, profile)
    ground.ask(3, ["hist"])
    sc.run_until(6_000)
    answer = ground.read().answer(3)
    assert answer is not None and answer.refused is not None
    assert answer.refused.startswith("too-large: ") and "fewer names" in answer.refused
    ground.ask(4, ["gain", "t"])                 # a smaller one still goes through
    sc.run_until(7_000)
    small_answer = ground.read().answer(4)
    assert small_answer is not None and [v.name for v in small_answer.values] == ["gain", "t"]


def test_nothing_on_board_is_a_refusal(tmp_path: Path, profile: MissionProfile) -> None:
    sc = board(tmp_path, profile, None)
    ground = Ground(sc, profile)
    ground.ask(5, ["gain"])
    sc.run_until(6_000)
    answer = ground.read().answer(5)
    assert answer is not None and answer.refused is not None
    assert answer.refused.startswith("no-configuration: ")


def test_a_flood_of_requests_is_refused_busy(
        tmp_path: Path, profile: MissionProfile, small: Compiled) -> None:
    sc = board(tmp_path, profile, small)
    ground = Ground(sc, profile)
    for r in range(1, MAX_WAITING + 3):
        ground.ask(r, ["gain"])
    sc.run_until(6_000)
    log = ground.read()
    answers = [log.answer(r) for r in range(1, MAX_WAITING + 3)]
    assert all(a is not None for a in answers)
    assert [a.refused is None for a in answers if a] == \
        [True] * MAX_WAITING + [False, False]
    assert all(a.refused.startswith("busy: ") for a in answers[MAX_WAITING:] if a and a.refused)


def test_unauthenticated_and_replayed_requests_reach_nothing(
        tmp_path: Path, profile: MissionProfile, small: Compiled) -> None:
    sc = board(tmp_path, profile, small)
    forger = Ground(sc, profile, key=bytes(32))
    assert forger.ask(1, ["gain"]) is Outcome.UNAUTHENTICATED
    ground = Ground(sc, profile)
    raw = ground.frame(encode_request(2, ["gain"]))
    assert sc.receive(raw).outcome is Outcome.REQUEST
    assert sc.receive(raw).outcome is Outcome.REPLAYED
    sc.run_until(6_000)
    d = decode_downlink(sc.downlink())
    assert [(p.request, p.refused) for p in d.dumps] == [(2, False)]   # answered once
    report = decode_report(d.report)
    assert (report.frames_unauthenticated, report.frames_replayed) == (1, 1)


def test_a_switch_during_a_dump_interrupts_it(
        tmp_path: Path, profile: MissionProfile, small: Compiled) -> None:
    sc = board(tmp_path, profile, small)
    ground = Ground(sc, profile)
    ground.ask(6, ["hist"])
    sc.run_until(5_300)                         # a few frames: part of it is read
    assert sc.dumps.dump is not None
    sc.vvm.activate(sc.vvm.prepare(small.image))
    sc.run_until(6_000)
    answer = ground.read().answer(6)
    assert answer is not None and answer.refused is not None
    assert answer.refused.startswith("interrupted: ")


def _fingerprint(sc: Spacecraft) -> tuple[object, ...]:
    """What a dump must never change: data memory, the tasks' record (runs, cycles, faults),
    the store's bytes, the patches' fates. (The reserve's own accounting, the cycles it
    used, is what does change.)"""
    program = sc.vvm.program
    assert program is not None
    store = hashlib.sha256()
    for f in sorted(p for p in sc.store.directory.rglob("*") if p.is_file()):
        store.update(f.name.encode() + f.read_bytes())
    summary = sc.vvm.status()
    return (list(program.memory.globals), [list(a) for a in program.memory.arrays],
            {k: summary[k] for k in ("time_ms", "config", "tasks", "fault_count", "faults",
                                     "store", "patches", "patches_waiting")},
            store.hexdigest(), sc.config_hash())


def test_requests_leave_the_board_as_one_that_never_got_them(
        tmp_path: Path, profile: MissionProfile, small: Compiled) -> None:
    quiet = board(tmp_path, profile, small, "quiet")
    asked = board(tmp_path, profile, small, "asked")
    ground = Ground(asked, profile)
    sends = [encode_request(1, ["hist", "count"]), b"\x00\x02\x01\x04nope", b"\xff" * 40,
             b"\x00\x03" + bytes([MAX_NAMES + 1]), b"\x00", encode_request(4, ["gain"])]
    for data in sends:
        asked.receive(ground.frame(data))
    Ground(asked, profile, key=bytes(32)).ask(5, ["gain"])
    for t in (5_200, 9_000, 30_000):
        quiet.run_until(t)
        asked.run_until(t)
        assert _fingerprint(asked) == _fingerprint(quiet)
    assert len(ground.read().answer(1).values) == 2   # type: ignore[union-attr]


def test_the_service_alone_never_spends_more_than_its_budget(
        tmp_path: Path, profile: MissionProfile, small: Compiled) -> None:
    sc = board(tmp_path, profile, small)
    service = DumpService(sc.vvm, sc.dumps.outbox)
    service.request(encode_request(1, ["hist", "t", "gain"]), sc.now_ms)
    spent = []
    for budget in [0, 1, 19, 20, 21, 500, BATCH * ELEMENT_CYCLES, 3] * 40:
        used = service.step(sc.now_ms, budget)
        assert 0 <= used <= budget
        spent.append(used)
        if not service.busy:
            break
    assert not service.busy
    answer = DumpLog(EPOCH)
    answer.learn(decode_downlink(sc.downlink()))
    got = answer.answer(1)
    assert got is not None and [v.name for v in got.values] == ["hist", "t", "gain"]
