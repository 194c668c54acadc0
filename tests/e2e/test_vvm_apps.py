"""Several applications in one `vvm` state directory, through the real command: a patch
adds an application within the share (refused over it, with the reason), `vvm run`
drives the whole board, `vvm status` and `vvm dump` per application, and a power cut in
one application's apply leaves the other untouched and both come back."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from support import compile_text, proven, run_in_process

from ccl.driver import Compiled
from ccl.pack import pack
from onboard.patching.disk import FaultyDisk, PowerLoss
from onboard.patching.patch_format import development_key
from onboard.sim.board_state import BoardState

CHANNEL = """\
mission corot;
config {name} version {version};
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


def channel(tmp_path: Path, name: str, version: int, gain: int) -> Compiled:
    return compile_text(tmp_path, CHANNEL.format(name=name, version=version, gain=gain),
                        f"{name}_v{version}")


def full_patch(tmp_path: Path, c: Compiled, seq: int, name: str) -> Path:
    path = tmp_path / f"{name}.vvmp"
    path.write_bytes(pack(c.image, [v.image for v in c.vmlets], c.mission,
                          development_key(c.mission.name), seq=seq,
                          cycles_per_frame=proven(c)).data)
    return path


def vvm(*args: object) -> tuple[int, str, str]:
    done = run_in_process("vvm", [str(a) for a in args])
    return done.returncode, done.stdout, done.stderr


@pytest.fixture()
def board(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A state directory with the default application running channel_a v1, and a patch
    of channel_b v1 not applied yet."""
    state = tmp_path / "state"
    assert vvm("init", state, "--mission", "corot")[0] == 0
    a = full_patch(tmp_path, channel(tmp_path, "channel_a", 1, 100), 1, "a1")
    b = full_patch(tmp_path, channel(tmp_path, "channel_b", 1, 50), 1, "b1")
    code, out, err = vvm("apply", state, a)
    assert code == 0, err
    return state, a, b


def test_a_patch_adds_an_application_within_the_share_and_run_drives_both(
        board: tuple[Path, Path, Path]) -> None:
    state, _, b = board
    # an application not on board needs its part of the share
    code, _, err = vvm("apply", state, b, "--app", "channel_b")
    assert code == 2 and "--share" in err and "no application `channel_b`" in err
    # over the share: refused with the reason, nothing added
    code, _, err = vvm("apply", state, b, "--app", "channel_b", "--share", "11")
    assert code == 1 and "channel_b" in err and "share are left" in err
    assert not (state / "apps.json").exists()
    code, out, err = vvm("--json", "apply", state, b, "--app", "channel_b", "--share", "3")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["application"] == "channel_b" and answer["fates"][-1]["status"] == "active"
    assert (state / "apps" / "channel_b" / "store").is_dir()
    code, out, err = vvm("--json", "run", state, "--for", "30s")
    assert code == 0, err
    ran = json.loads(out)
    assert ran["ran_ms"] >= 30_000
    assert ran["applications"]["channel_b"]["ran_ms"] >= 30_000
    # one clock for the board after a run
    assert ran["applications"]["channel_b"]["time_ms"] == ran["time_ms"]
    assert ran["applications"]["channel_b"]["fault_count"] == 0
    # per application: status and dump, each its own configuration and values
    code, out, _ = vvm("--json", "status", state, "--app", "channel_b")
    assert code == 0
    status_b = json.loads(out)
    assert status_b["config"]["name"] == "channel_b"
    assert status_b["applications"]["channel_b"]["share_percent"] == 3
    part = status_b["applications"]["channel_b"]["part_cycles"]
    assert status_b["worst_frame_cycles"] <= part
    code, out, _ = vvm("--json", "status", state)
    assert json.loads(out)["config"]["name"] == "channel_a"
    code, out, _ = vvm("--json", "dump", state, "gain", "--app", "channel_b")
    assert code == 0 and json.loads(out)["values"][0]["value"] == 50
    code, out, _ = vvm("--json", "dump", state, "gain")
    assert code == 0 and json.loads(out)["values"][0]["value"] == 100
    code, _, err = vvm("status", state, "--app", "nope")
    assert code == 1 and "no application `nope`" in err


def test_a_single_application_state_directory_is_as_it_was(
        board: tuple[Path, Path, Path]) -> None:
    state, _, _ = board
    code, out, _ = vvm("--json", "run", state, "--for", "5s")
    assert code == 0 and "applications" not in json.loads(out)
    code, out, _ = vvm("--json", "status", state)
    assert code == 0 and "applications" not in json.loads(out)
    assert not (state / "apps").exists()


def test_a_power_cut_in_one_applications_apply_leaves_the_other_and_both_come_back(
        tmp_path: Path, board: tuple[Path, Path, Path]) -> None:
    state, _, b = board
    assert vvm("apply", state, b, "--app", "channel_b", "--share", "3")[0] == 0
    assert vvm("run", state, "--for", "70s")[0] == 0  # channel_b v1 past probation
    b2 = full_patch(tmp_path, channel(tmp_path, "channel_b", 2, 700), 2, "b2")
    outcomes = set()
    for cut in (1, 3, 5):  # in the slot, in the journal, in the snapshot's save
        copy = tmp_path / f"cut{cut}"
        shutil.copytree(state, copy)
        default_files = {p: p.read_bytes() for p in sorted(copy.rglob("*"))
                         if p.is_file() and "apps" not in p.relative_to(copy).parts}
        disk = FaultyDisk(cut)
        opened = BoardState.open(copy, disk=disk)
        with pytest.raises(PowerLoss):
            opened.app("channel_b").apply(b2.read_bytes())
        # the default application's files: byte for byte as before
        assert {p: p.read_bytes() for p in default_files} == default_files
        # both come back, through the one boot path
        again = BoardState.open(copy)
        a = again.app("default")
        assert not a.rebooted and a.vvm.program is not None
        assert a.vvm.program.image.name == "channel_a"
        sim_b = again.app("channel_b")
        assert sim_b.vvm.program is not None
        assert again.run(2_000)
        outcomes.add(sim_b.vvm.global_value("gain"))
        code, out, _ = vvm("--json", "dump", copy, "gain", "--app", "channel_b")
        assert code == 0 and json.loads(out)["values"][0]["value"] in (50, 700)
        code, out, _ = vvm("--json", "dump", copy, "gain")
        assert code == 0 and json.loads(out)["values"][0]["value"] == 100
    assert outcomes <= {50, 700}


def test_the_rvm_lists_the_boards_applications_with_part_cycles_and_state(
        tmp_path: Path, board: tuple[Path, Path, Path]) -> None:
    import os
    import subprocess
    import sys

    state, _, b = board
    assert vvm("apply", state, b, "--app", "channel_b", "--share", "3")[0] == 0
    assert vvm("run", state, "--for", "5s")[0] == 0
    root = Path(__file__).resolve().parents[2]
    env = os.environ | {"PYTHONPATH": str(root), "CCL_PROOF_CACHE": str(tmp_path / "proofs")}
    proc = subprocess.run([sys.executable, "-m", "cli.vvm", "repl", str(state)],
                          input=":apps\n", capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    head = [line for line in lines if not line.startswith("  ")]
    assert head[0].startswith("default: the rest of the share (")
    assert head[1].startswith("channel_b: 3 % (")
    code, out, _ = vvm("--json", "status", state, "--app", "channel_b")
    status_b = json.loads(out)
    part = status_b["applications"]["channel_b"]["part_cycles"]
    assert f"({part} cycles per frame), worst frame {status_b['worst_frame_cycles']} " \
           f"cycles" in head[1]
    assert "0 faults" in head[1]
    assert any(line.startswith("  channel_a v1 ") for line in lines)
    assert any(line.startswith("  channel_b v1 ") for line in lines)


#: A channel summing every star 400 times a second: proven to need 64,011 cycles per
#: frame, more than a 3 % part (60,000), less than a 4 % one (80,000).
HEAVY = """\
mission corot;
config {name} version {version};
uses photometry;
var total : int[0..268435455];
task scan every 1 s {{
    total = 0;
    for r in 0 .. 400 {{
        for s in 0 .. 16 {{ total = min(total + flux(s), 268435455); }}
    }}
}}
"""


def files(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_patch_needing_more_than_its_applications_part_is_refused_and_fits_a_larger_one(
        tmp_path: Path, board: tuple[Path, Path, Path]) -> None:
    state, _, b = board
    assert vvm("apply", state, b, "--app", "channel_b", "--share", "3")[0] == 0
    assert vvm("run", state, "--for", "70s")[0] == 0  # channel_b v1 committed
    heavy_b = compile_text(tmp_path, HEAVY.format(name="channel_b", version=2), "heavy_b")
    assert 60_000 < proven(heavy_b) <= 80_000
    patch = full_patch(tmp_path, heavy_b, 2, "heavy_b")
    app_dir = state / "apps" / "channel_b"
    before = files(app_dir / "store"), (app_dir / "data.bin").read_bytes(), files(state / "store")
    code, out, err = vvm("apply", state, patch, "--app", "channel_b")
    assert code == 1
    assert "Traceback" not in out + err
    assert err.count("vvm: error:") == 1, err
    assert err.startswith(f"vvm: error: {patch}: patch rejected (over-budget")
    assert f"claims {proven(heavy_b)} cycles per frame" in err and "60000" in err
    assert "channel_b" in err and "3 %" in err
    assert (files(app_dir / "store"), (app_dir / "data.bin").read_bytes(),
            files(state / "store")) == before
    code, out, _ = vvm("--json", "status", state, "--app", "channel_b")
    status_b = json.loads(out)
    assert status_b["config"]["name"] == "channel_b" and status_b["config"]["version"] == 1
    assert status_b["patches"][-1]["status"] == "rejected"
    assert status_b["patches"][-1]["reason"] == "over-budget"
    # the same configuration for an application with a part of 4 %: active
    heavy_c = compile_text(tmp_path, HEAVY.format(name="channel_c", version=1), "heavy_c")
    code, out, err = vvm("--json", "apply", state, full_patch(tmp_path, heavy_c, 1, "c1"),
                         "--app", "channel_c", "--share", "4")
    assert code == 0, err
    assert json.loads(out)["fates"][-1]["status"] == "active"


def test_a_part_that_would_leave_the_default_application_less_than_it_needs_is_refused(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert vvm("init", state, "--mission", "corot")[0] == 0
    # channel_a on the default application, its patch claiming the whole share less the
    # reserve (190,000 cycles per frame: packed without a proof's figure)
    a = channel(tmp_path, "channel_a", 1, 100)
    whole = tmp_path / "a_whole.vvmp"
    whole.write_bytes(pack(a.image, [v.image for v in a.vmlets], a.mission,
                           development_key(a.mission.name), seq=1).data)
    assert vvm("apply", state, whole)[0] == 0
    b = full_patch(tmp_path, channel(tmp_path, "channel_b", 1, 50), 1, "b1")
    code, _, err = vvm("apply", state, b, "--app", "channel_b", "--share", "3")
    assert code == 1 and err.count("vvm: error:") == 1, err
    assert "would keep 130000 cycles per frame" in err and "proven to need 190000" in err
    assert not (state / "apps.json").exists()
