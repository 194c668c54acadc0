"""Power cuts at every write of every file the VVM keeps -- the store's slots and journal and
the simulator's own files alike -- and again during the writes of the reboot that follows,
each time rebooting through the real path: ``Simulator.open``, exactly as ``vvm`` opens a
state directory (``onboard.patching.boot.start`` under it). After every final reboot:

* never a crash: opening, running and reading the state raise nothing;
* never a mix: the store is consistent, its current configuration is the old or the new one,
  and the VVM runs exactly that one (on probation only if it is being tried and counted);
* never stuck: probation resolves, the state then reopens cleanly, and a new patch is
  accepted (and, at the first level of cuts, applied and committed).

The cut is ``onboard.patching.disk.FaultyDisk``: every persistent write of the VVM goes through one
``Disk``, which raises ``PowerLoss`` at the chosen primitive and leaves a torn file.
``benchmarks/power_loss.py`` runs the same sweep over more operations and deeper chains of
cuts. A few cases also drive the real ``vvm`` command in separate processes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ccl.driver import Compiled, Compiler
from ccl.pack import pack
from onboard.patching.disk import Disk, FaultyDisk, PowerLoss
from onboard.patching.patch_format import development_key
from onboard.patching.patcher import FateStatus, PatchRejected
from onboard.patching.store import Phase
from onboard.sim.simulator import Simulator, StateError
from onboard.vm.image import Image

ROOT = Path(__file__).resolve().parents[2]
KEY = development_key("corot")
PROBATION_MS = 61_000  # the CoRoT profile's 600 frames, and one more

CONFIG = """\
mission corot;
config watch version {version};
uses photometry;
param n : int[0..40] = 10;
param limit : int[0..65535] = {limit};
var noisy : int[0..1000000];
var runs : int[0..1000000];
var level : int[0..10];
var last[40] : int[0..65535];
task scan every 1 s {{
    for s in 0 .. n {{
        let v = noise(s);
        if v > limit {{ noisy = min(noisy + 1, 1000000); }}
        last[s] = v;
    }}
    runs = min(runs + 1, 1000000);
}}
on apply {{ {on_apply} }}
"""


@dataclass(frozen=True)
class Configs:
    """The configurations of the sweeps, compiled once."""

    by_name: dict[str, Compiled]

    def image(self, name: str) -> Image:
        return self.by_name[name].image

    def patch(self, name: str, seq: int, base: Image | None) -> bytes:
        c = self.by_name[name]
        return pack(c.image, [v.image for v in c.vmlets], c.mission, KEY, seq=seq,
                    base=base).data

    def name_of(self, config_hash: bytes | None) -> str | None:
        if config_hash is None:
            return None
        return next(n for n, c in self.by_name.items() if c.image.content_hash == config_hash)


def compile_configs(directory: Path) -> Configs:
    versions = {"v1": (1, 200, "noisy = 0;"), "v2": (2, 300, "noisy = 0;"),
                "v3": (3, 400, "noisy = 0;"),
                # its on apply divides by zero (level is 0): active, then rolled back
                "trap": (4, 500, "level = 10 / level;")}
    out = {}
    for name, (version, limit, on_apply) in versions.items():
        path = directory / f"{name}.ccl"
        path.write_text(CONFIG.format(version=version, limit=limit, on_apply=on_apply))
        out[name] = Compiler().compile(path)
    return Configs(out)


# --------------------------------------------------------------------------- the operations

#: A step of an operation: what one ``vvm`` command does, given the disk it writes through.
Step = Callable[[Path, Configs, Disk], None]


def init(directory: Path, configs: Configs, disk: Disk) -> None:
    Simulator.init(directory, "corot", 1, disk=disk)


def apply(name: str) -> Step:
    """``vvm apply`` of ``name``, packed against what the store holds (as the ground would,
    from telemetry), with the next sequence number."""
    def step(directory: Path, configs: Configs, disk: Disk) -> None:
        sim = Simulator.open(directory, disk=disk)
        store = sim.reconfiguration.patcher.store
        current = store.current()
        sim.apply(configs.patch(name, store.last_seq + 1,
                                current.config if current is not None else None))
    return step


def run(ms: int) -> Step:
    def step(directory: Path, configs: Configs, disk: Disk) -> None:
        Simulator.open(directory, disk=disk).run(ms)
    return step


def load(name: str) -> Step:
    """``vvm load photometry.vvmi NAME.vvmi``: a bench load, VMlet then configuration."""
    def step(directory: Path, configs: Configs, disk: Disk) -> None:
        sim = Simulator.open(directory, disk=disk)
        c = configs.by_name[name]
        for v in c.vmlets:
            sim.load(v.image)
        sim.load(c.image)
    return step


@dataclass(frozen=True)
class Operation:
    """Steps run on a fresh template (``before``) and then, under the cuts, ``steps``; the
    configuration is ``old`` before and ``new`` after (names; None: no configuration)."""

    name: str
    before: tuple[Step, ...]
    steps: tuple[Step, ...]
    old: str | None
    new: str | None
    also: frozenset[str] = frozenset()  # other configurations it may pass through


OPERATIONS = {
    "init": Operation("init", (), (init,), None, None),
    "first-patch": Operation("first-patch", (init,), (apply("v1"), run(PROBATION_MS)),
                             None, "v1"),
    "delta": Operation("delta", (init, apply("v1"), run(PROBATION_MS)),
                       (apply("v2"), run(PROBATION_MS)), "v1", "v2"),
    "rolled-back": Operation("rolled-back", (init, apply("v1"), run(PROBATION_MS)),
                             (apply("trap"), run(PROBATION_MS)), "v1", "v1",
                             frozenset({"trap"})),
    "bench-load": Operation("bench-load", (init, apply("v1"), run(PROBATION_MS)),
                            (load("v2"),), "v1", "v2"),
}


# --------------------------------------------------------------------------- the sweep


@dataclass
class Figures:
    """What a sweep counted (the benchmark prints these)."""

    cut_points: int = 0  # power cuts made (in operations and in reboots)
    reboots: int = 0  # openings that found a reset to recover from
    stuck: int = 0  # probation unresolved, a state that does not reopen cleanly, or the
    #                 next patch refused or not committed
    crashes: int = 0  # an exception out of opening, running or reading the state
    mixed: int = 0  # a configuration neither old nor new, or not the one that runs
    failures: list[str] = field(default_factory=list)  # what went wrong, for messages

    def fail(self, kind: str, where: str, what: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self.failures.append(f"{kind} at {where}: {what}")


def _copy(source: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return target


def _run(steps: tuple[Step, ...], directory: Path, configs: Configs, disk: Disk) -> None:
    for step in steps:
        step(directory, configs, disk)


def _open(directory: Path, disk: Disk, op: Operation) -> Simulator:
    """Open as ``vvm`` does; an ``init`` cut short is simply done again."""
    try:
        return Simulator.open(directory, disk=disk)
    except StateError:
        if op.name != "init":
            raise
    return Simulator.init(directory, "corot", 1, disk=disk)


def sweep(op: Operation, configs: Configs, work: Path, *, depth: int = 1, torn: bool = True,
          full_check_depth: int = 0, cut_filter: Callable[[str], bool] | None = None,
          figures: Figures | None = None) -> Figures:
    """Cut the power at every write of ``op``'s steps; after each cut, reboot -- cutting the
    reboot's own writes too, ``depth`` levels deep -- and check the invariants. Reboots up
    to ``full_check_depth`` levels of cuts deep also apply and commit a new patch."""
    figures = figures or Figures()
    template = work / f"{op.name}-template"
    if template.exists():
        shutil.rmtree(template)
    template.mkdir(parents=True)
    _run(op.before, template, configs, Disk())
    probe = _copy(template, work / "probe")
    counter = FaultyDisk()
    _run(op.steps, probe, configs, counter)
    for k, what in enumerate(counter.log):
        if cut_filter is not None and not cut_filter(what):
            continue
        directory = _copy(template, work / "cut")
        try:
            _run(op.steps, directory, configs, FaultyDisk(k, torn=torn))
        except PowerLoss:
            pass
        else:
            figures.fail("stuck", f"{op.name} write {k}", "no power loss at a counted write")
            continue
        figures.cut_points += 1
        _recover(op, configs, directory, f"{op.name} cut {k} ({what})", depth, torn,
                 full_check_depth, figures, work, level=0)
    shutil.rmtree(template)
    shutil.rmtree(probe)
    shutil.rmtree(work / "cut", ignore_errors=True)
    return figures


def _recover(op: Operation, configs: Configs, directory: Path, where: str, depth: int,
             torn: bool, full_check_depth: int, figures: Figures, work: Path,
             level: int) -> None:
    if level < depth:  # cut the reboot's own writes, then recover from that
        counter = FaultyDisk()
        probe = _copy(directory, work / f"reboot-probe-{level}")
        try:
            _open(probe, counter, op)
        except Exception as exc:
            figures.fail("crashes", where, f"{type(exc).__name__}: {exc}")
            return
        for j, what in enumerate(counter.log):
            nested = _copy(directory, work / f"reboot-{level}")
            try:
                _open(nested, FaultyDisk(j, torn=torn), op)
            except PowerLoss:
                figures.cut_points += 1
                _recover(op, configs, nested, f"{where}, reboot cut {j} ({what})", depth,
                         torn, full_check_depth, figures, work, level + 1)
            except Exception as exc:
                figures.fail("crashes", f"{where}, reboot cut {j}", f"{type(exc).__name__}: "
                                                                    f"{exc}")
        shutil.rmtree(probe)
    check(op, configs, directory, where, figures, full=level <= full_check_depth)


def check(op: Operation, configs: Configs, directory: Path, where: str, figures: Figures, *,
          full: bool) -> None:
    """Reboot ``directory`` through the real path and check the invariants (see the module
    docstring); count what fails."""
    allowed = {op.old, op.new} | set(op.also)
    try:
        sim = _open(directory, Disk(), op)
    except Exception as exc:
        figures.fail("crashes", where, f"open: {type(exc).__name__}: {exc}")
        return
    figures.reboots += sim.rebooted
    try:
        rc = sim.reconfiguration
        store = rc.patcher.store
        state = store.state()
        running = sim.vvm.program.image.content_hash if sim.vvm.program else None
        if store.check() or state.phase is Phase.STAGED \
                or configs.name_of(state.current) not in allowed or running != state.current \
                or (state.phase is Phase.PROBATION) != (rc.probation_end_ms is not None):
            figures.fail("mixed", where, f"store {state.phase.value} "
                         f"{configs.name_of(state.current)}, running "
                         f"{configs.name_of(running)}, problems {store.check()}")
            return
        sim.vvm.status()
        sim.run(PROBATION_MS)  # probation resolves
        state = store.state()
        if state.phase is not Phase.IDLE or configs.name_of(state.current) not in allowed:
            figures.fail("stuck", where, f"after a run: {state.phase.value} "
                         f"{configs.name_of(state.current)}")
            return
        again = Simulator.open(directory)
        if again.rebooted:
            figures.fail("stuck", where, "a clean save did not reopen cleanly")
            return
        current = store.current()
        base = current.config if current is not None else None
        data = configs.patch("v3", state.last_seq + 1, base)
        if not full:
            again.reconfiguration.patcher.check(data)  # accepted (raises if refused)
            return
        fates = again.apply(data)
        again.run(PROBATION_MS)
        if fates[-1].fate.status is not FateStatus.ACTIVE \
                or again.reconfiguration.events[-1].fate.status is not FateStatus.COMMITTED \
                or again.vvm.telemetry.config_hash != configs.image("v3").content_hash:
            figures.fail("stuck", where, f"the next patch: "
                         f"{[e.fate.status.value for e in again.reconfiguration.events]}")
    except PatchRejected as exc:
        figures.fail("stuck", where, f"the next patch is refused: {exc}")
    except Exception as exc:
        figures.fail("crashes", where, f"{type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> Configs:
    return compile_configs(tmp_path_factory.mktemp("configs"))


def test_a_delta_and_its_commit_cut_at_every_write_and_every_reboot_write(
        tmp_path: Path, configs: Configs) -> None:
    """The whole path of a delta (stage, switch, save; commit, save), cut at each of its
    writes, and each reboot cut at each of its own writes, then rebooted."""
    figures = sweep(OPERATIONS["delta"], configs, tmp_path, depth=1)
    assert figures.failures == []
    assert figures.cut_points >= 18 + 30  # every write, and the writes of the reboots
    assert figures.reboots > 0 and figures.stuck == figures.crashes == figures.mixed == 0


@pytest.mark.parametrize("name", ["init", "rolled-back", "bench-load"])
def test_other_operations_cut_at_every_write(tmp_path: Path, configs: Configs,
                                             name: str) -> None:
    figures = sweep(OPERATIONS[name], configs, tmp_path, depth=0)
    assert figures.failures == []
    assert figures.cut_points >= 5


def test_a_torn_write_is_a_clean_one_too(tmp_path: Path, configs: Configs) -> None:
    """A cut that writes nothing (rather than half) of the interrupted file."""
    figures = sweep(OPERATIONS["first-patch"], configs, tmp_path, depth=0, torn=False)
    assert figures.failures == [] and figures.cut_points >= 10


# ---- the cases of the report, one by one


def _state_with_v1(tmp_path: Path, configs: Configs) -> Path:
    directory = tmp_path / "sat"
    _run((init, apply("v1"), run(PROBATION_MS)), directory, configs, Disk())
    return directory


def _cut_after(directory: Path, configs: Configs, steps: tuple[Step, ...], write: str,
               nth: int = 1) -> None:
    """Run ``steps`` and cut the power right after the ``nth`` write named ``write``."""
    probe = _copy(directory, directory.with_name("probe"))
    counter = FaultyDisk()
    _run(steps, probe, configs, counter)
    at = [i for i, what in enumerate(counter.log) if what == write][nth - 1] + 1
    with pytest.raises(PowerLoss):
        _run(steps, directory, configs, FaultyDisk(at))


def test_a_cut_after_the_probation_record_is_resolved_at_reboot(tmp_path: Path,
                                                               configs: Configs) -> None:
    """The switch's journal record (probation) is written, the simulator's state is not:
    the reboot rolls back, and the next patch is not refused ``busy``."""
    directory = _state_with_v1(tmp_path, configs)
    _cut_after(directory, configs, (apply("v2"),), "write journal.0")
    sim = Simulator.open(directory)
    assert sim.rebooted
    store = sim.reconfiguration.patcher.store
    assert store.phase is Phase.IDLE
    assert sim.vvm.telemetry.config_hash == configs.image("v1").content_hash
    last = sim.reconfiguration.events[-1].fate
    assert last.status is FateStatus.ROLLED_BACK and "reset" in last.message
    fates = sim.apply(configs.patch("v3", store.last_seq + 1, configs.image("v1")))
    assert [e.fate.status.value for e in fates] == ["received", "staged", "active"]
    sim.run(PROBATION_MS)
    assert sim.reconfiguration.events[-1].fate.status is FateStatus.COMMITTED


def test_a_cut_after_the_commit_record_brings_no_stale_probation_back(
        tmp_path: Path, configs: Configs) -> None:
    """The commit's journal record is written, the simulator's state (saved on probation)
    is not: the reboot finds the store idle, tells the commit again, and runs on."""
    directory = _state_with_v1(tmp_path, configs)
    apply("v2")(directory, configs, Disk())
    _cut_after(directory, configs, (run(PROBATION_MS),), "write journal.1")
    for _ in range(2):  # and every later opening is clean
        sim = Simulator.open(directory)
        assert sim.reconfiguration.probation_end_ms is None
        assert sim.reconfiguration.patcher.store.phase is Phase.IDLE
        assert sim.vvm.telemetry.config_hash == configs.image("v2").content_hash
        sim.run(PROBATION_MS)
    statuses = [e.fate.status.value for e in sim.reconfiguration.events]
    assert statuses[-1] == "committed"
    assert "before the reset" in sim.reconfiguration.events[-1].fate.message


def test_a_cut_between_the_state_and_its_files_takes_the_new_files(
        tmp_path: Path, configs: Configs) -> None:
    """``state.json`` (the commit point) is in place, the renames of the ``.new`` files are
    not: opening finishes them, and the data is the new one."""
    directory = _state_with_v1(tmp_path, configs)
    _cut_after(directory, configs, (run(5_000),), "rename state.json.tmp -> state.json")
    assert (directory / "data.bin.new").exists()
    sim = Simulator.open(directory)
    assert not sim.rebooted  # the snapshot matches the store: a plain resume
    assert not (directory / "data.bin.new").exists()
    reference = _state_with_v1(tmp_path / "reference", configs)
    run(5_000)(reference, configs, Disk())
    assert (directory / "data.bin").read_bytes() == (reference / "data.bin").read_bytes()
    assert sim.vvm.global_value("runs") == Simulator.open(reference).vvm.global_value("runs")


def test_the_spacecraft_model_reboots_through_the_same_path(tmp_path: Path,
                                                           configs: Configs) -> None:
    from onboard.link.link_security import development_link_key
    from onboard.sim.spacecraft import Spacecraft

    v1 = configs.by_name["v1"]
    sc = Spacecraft.create(v1.mission, tmp_path / "store", KEY,
                           development_link_key(v1.mission.name), probation_frames=20)
    sc.install(v1.image, [v.image for v in v1.vmlets])
    sc.run_until(3_000)
    sc.vvm.receive_patch(configs.patch("v2", 1, v1.image), 1)
    sc.run_until(4_000)
    assert sc.store.phase is Phase.PROBATION
    sc.reboot()  # a reset on probation: rolled back
    assert sc.store.phase is Phase.IDLE and sc.now_ms == 4_000
    assert sc.config_hash() == v1.image.content_hash
    assert sc.vvm.reconfiguration is not None
    assert sc.vvm.reconfiguration.events[-1].fate.status is FateStatus.ROLLED_BACK
    sc.vvm.receive_patch(configs.patch("v3", 2, v1.image), 2)
    sc.run_until(5_000)
    sc.reboot()  # still staged, or already on probation: either way not v3 half-done
    assert sc.config_hash() in (v1.image.content_hash, configs.image("v3").content_hash)
    sc.run_until(10_000)
    assert sc.store.phase is Phase.IDLE


# ---- the real command


LAUNCHER = """
import sys
from onboard.sim import simulator
from onboard.patching.disk import FaultyDisk
disk = FaultyDisk(int(sys.argv[1]))
simulator.Disk = lambda: disk  # every write of this `vvm` process goes through it
from cli.vvm import main
main(sys.argv[2:])
"""


def vvm(*args: object, cut: int | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cli.vvm"] if cut is None else \
        [sys.executable, "-c", LAUNCHER, str(cut)]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_the_vvm_command_recovers_from_cuts_in_apply_and_in_its_own_reboot(
        tmp_path: Path, configs: Configs) -> None:
    directory = _state_with_v1(tmp_path, configs)
    patch = tmp_path / "v2.vvmp"
    patch.write_bytes(configs.patch("v2", 2, configs.image("v1")))
    # writes of `vvm apply`: slot, journal (staged), journal (probation), then the state
    for cut in (3, 5):  # right after the probation record; inside the save
        state = _copy(directory, tmp_path / f"cut{cut}")
        died = vvm("apply", state, patch, cut=cut)
        assert died.returncode != 0 and "PowerLoss" in died.stderr
        again = vvm("run", state, "--for", "2m", cut=0)  # and the reboot is cut too
        assert again.returncode != 0 and "PowerLoss" in again.stderr
        status = vvm("status", state, "--json")
        assert status.returncode == 0, status.stderr
        assert "rebooted" in status.stderr and "Traceback" not in status.stderr
        shown = json.loads(status.stdout)
        assert shown["store"]["phase"] == "idle"
        assert shown["config"]["hash"] == configs.image("v1").content_hash.hex()
        ran = vvm("run", state, "--for", "2m")
        assert ran.returncode == 0 and "rebooted" not in ran.stderr
        assert vvm("apply", state, patch).returncode == 1  # its sequence number is used
        fixed = tmp_path / "v3.vvmp"
        fixed.write_bytes(configs.patch("v3", 3, configs.image("v1")))
        assert vvm("apply", state, fixed).returncode == 0
        assert "committed" in vvm("run", state, "--for", "2m").stdout


# ---- the cases of the report through the command; the crash is `os._exit` (nothing after
# it runs), placed with what exists before and after this change alike


CRASHING = """
import os, sys
from onboard.vm import loader
from onboard.sim import simulator
from onboard.patching import store
where = sys.argv[1]
def crash(*args, **kwargs):
    os._exit(75)  # the power goes: no cleanup, no later write
if where == "before the probation record":
    store.Store.activate = crash
elif where == "after the store, before the state":
    simulator.Simulator.save = crash
elif where == "translating v2 fails":
    translate = loader.translate
    def failing(bound, *args, **kwargs):
        if bound.image.version == 2:
            raise IndentationError("expected an indented block")
        return translate(bound, *args, **kwargs)
    loader.translate = failing
from cli.vvm import main
main(sys.argv[2:])
"""


def vvm_where(where: str, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CRASHING, where, *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def _patches(tmp_path: Path, configs: Configs) -> tuple[Path, Path]:
    v2, v3 = tmp_path / "v2.vvmp", tmp_path / "v3.vvmp"
    v2.write_bytes(configs.patch("v2", 2, configs.image("v1")))
    v3.write_bytes(configs.patch("v3", 3, configs.image("v1")))
    return v2, v3


def _idle_on(state: Path, configs: Configs, name: str) -> dict[str, Any]:
    """``vvm status --json``, checked: exit 0, the store idle, configuration ``name``."""
    shown = vvm("status", state, "--json")
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    status: dict[str, Any] = json.loads(shown.stdout)
    assert status["store"]["phase"] == "idle"
    assert status["config"]["hash"] == configs.image(name).content_hash.hex()
    return status


def test_cli_an_activation_failure_rolls_back_with_the_reason(tmp_path: Path,
                                                             configs: Configs) -> None:
    state = _state_with_v1(tmp_path, configs)
    v2, v3 = _patches(tmp_path, configs)
    applied = vvm_where("translating v2 fails", "apply", state, v2)
    assert "Traceback" not in applied.stderr, applied.stderr
    assert applied.returncode == 1 and "rolled-back" in applied.stdout
    assert "IndentationError" in applied.stdout
    _idle_on(state, configs, "v1")
    assert vvm("apply", state, v3).returncode == 0


def test_cli_a_staged_configuration_failing_after_a_reset_is_rolled_back_once(
        tmp_path: Path, configs: Configs) -> None:
    state = _state_with_v1(tmp_path, configs)
    v2, v3 = _patches(tmp_path, configs)
    assert vvm_where("before the probation record", "apply", state, v2).returncode == 75
    for _ in range(2):  # the first reboot rolls it back; the second does not try it again
        ran = vvm_where("translating v2 fails", "run", state, "--for", "10s")
        assert ran.returncode == 0 and "Traceback" not in ran.stderr, ran.stderr
    shown = _idle_on(state, configs, "v1")
    fates = [p for p in shown["patches"] if p["seq"] == 2]
    assert [p["status"] for p in fates] == ["rolled-back"]
    assert "IndentationError" in fates[0]["message"]
    assert vvm("apply", state, v3).returncode == 0


def test_cli_a_cut_after_the_probation_record_does_not_leave_probation_forever(
        tmp_path: Path, configs: Configs) -> None:
    state = _state_with_v1(tmp_path, configs)
    v2, v3 = _patches(tmp_path, configs)
    assert vvm_where("after the store, before the state", "apply", state, v2).returncode == 75
    assert vvm("run", state, "--for", "2m").returncode == 0
    _idle_on(state, configs, "v1")
    applied = vvm("apply", state, v3)  # before: refused `busy`, forever
    assert applied.returncode == 0 and "busy" not in applied.stdout, applied.stdout
    assert "committed" in vvm("run", state, "--for", "2m").stdout


def test_cli_a_cut_after_the_commit_record_reboots_cleanly(tmp_path: Path,
                                                          configs: Configs) -> None:
    state = _state_with_v1(tmp_path, configs)
    v2, _ = _patches(tmp_path, configs)
    assert vvm("apply", state, v2).returncode == 0
    assert vvm_where("after the store, before the state", "run", state, "--for",
                     "2m").returncode == 75
    for _ in range(2):  # before: every later command raised (a stale probation)
        ran = vvm("run", state, "--for", "2m")
        assert ran.returncode == 0 and "Traceback" not in ran.stderr, ran.stderr
    _idle_on(state, configs, "v2")


def test_a_patch_waiting_behind_one_on_probation_survives_cuts_at_every_write(
        tmp_path: Path, configs: Configs) -> None:
    """``vvm apply`` of v2 while v1 is on probation: v2 waits, and the queue is saved with
    the snapshot (``waiting/``). Cut at each write of that command, then reopened and run:
    never a crash, the store settles on a configuration it may hold, and every patch the
    state knows of ends with a final fate -- none is left waiting or forgotten."""
    template = tmp_path / "template"
    _run((init, apply("v1")), template, configs, Disk())  # v1 on probation

    def queued(directory: Path, configs: Configs, disk: Disk) -> None:
        sim = Simulator.open(directory, disk=disk)
        # packed against v1, as the ground would: v1 is what the store holds as current
        fates = sim.apply(configs.patch("v2", 2, configs.image("v1")))
        assert fates[-1].fate.status is FateStatus.RECEIVED  # it waits behind v1

    counter = FaultyDisk()
    queued(_copy(template, tmp_path / "probe"), configs, counter)
    assert any("waiting" in what for what in counter.log)  # the queue is written
    final = {FateStatus.REJECTED, FateStatus.COMMITTED, FateStatus.ROLLED_BACK}
    for k in range(len(counter.log) + 1):  # every write, and no cut at all
        directory = _copy(template, tmp_path / "cut")
        try:
            queued(directory, configs, FaultyDisk(k) if k < len(counter.log) else Disk())
        except PowerLoss:
            pass
        sim = Simulator.open(directory)
        sim.run(3 * PROBATION_MS)
        store = sim.reconfiguration.patcher.store
        where = f"cut {k} ({counter.log[k] if k < len(counter.log) else 'none'})"
        assert store.phase is Phase.IDLE, where
        assert configs.name_of(store.state().current) in {None, "v1", "v2"}, where
        last: dict[int, FateStatus] = {}
        for e in sim.reconfiguration.events:
            last[e.ticket] = e.fate.status
        assert all(status in final for status in last.values()), (where, last)
        assert not sim.reconfiguration.pending, where
        assert list((directory / "waiting").glob("*.vvmp")) == [], where
        if k == len(counter.log):  # not cut: v1 then v2, each committed in turn
            assert last == {1: FateStatus.COMMITTED, 2: FateStatus.COMMITTED}
