"""Patches as operators handle them: `ccl pack`, `ccl inspect`, then `vvm apply` on a state
directory, with real processes, exit codes and messages."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from support import run_in_process

from onboard.vm.image import decode_image

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
mission corot;
config watch version {version};
uses photometry;
param n : int[0..100] = 50;
param limit : int[0..65535] = {limit};
var noisy : int[0..1000000];
var last[100] : int[0..65535];
task scan every 2 s {{
    for s in 0 .. n {{
        let v = noise(s);
        if v > limit {{ noisy = min(noisy + 1, 1000000); }}
        last[s] = v;
    }}
}}
on apply {{ noisy = 0; }}
"""


def run(tool: str, *args: object) -> subprocess.CompletedProcess[str]:
    """``ccl`` or ``vvm`` (``tool``), run in this process as its own process would run it."""
    return run_in_process(tool, [str(a) for a in args])


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


def tree(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def write(tmp: Path, version: int, limit: int) -> Path:
    path = tmp / f"watch_v{version}.ccl"
    path.write_text(CONFIG.format(version=version, limit=limit))
    return path


def test_pack_inspect_apply_reproduces_the_image_on_board(tmp_path: Path) -> None:
    v1, v2 = write(tmp_path, 1, 200), write(tmp_path, 2, 300)
    ok(run("ccl", "compile", v1, "-o", tmp_path / "v1.vvmi"))
    ok(run("ccl", "compile", v2, "-o", tmp_path / "v2.vvmi"))
    full, delta = tmp_path / "v1.vvmp", tmp_path / "v2.vvmp"
    ok(run("ccl", "pack", v1, "-o", full))
    ok(run("ccl", "pack", v2, "--base", tmp_path / "v1.vvmi", "-o", delta))
    shown = json.loads(ok(run("ccl", "inspect", delta, "--json")).stdout)
    assert shown["kind"] == "delta" and shown["bytes"] == len(delta.read_bytes())
    assert len(delta.read_bytes()) <= 64  # one parameter changed

    state = tmp_path / "state"
    ok(run("vvm", "init", state, "--mission", "corot"))
    out = ok(run("vvm", "apply", state, full)).stdout
    assert "staged" in out and "active" in out
    status = json.loads(ok(run("vvm", "status", state, "--json")).stdout)
    want = decode_image((tmp_path / "v1.vvmi").read_bytes()).content_hash.hex()
    assert status["config"]["hash"] == want
    assert status["store"]["phase"] == "probation"
    out = ok(run("vvm", "run", state, "--for", "2m")).stdout
    assert "committed" in out

    ok(run("vvm", "apply", state, delta))
    assert_runs_second(state, tmp_path / "v2.vvmi")


def assert_runs_second(state: Path, image: Path) -> None:
    """After 2 minutes, the board runs ``image``, its second patch committed after the
    first, within its share."""
    ok(run("vvm", "run", state, "--for", "2m"))
    status = json.loads(ok(run("vvm", "status", state, "--json")).stdout)
    assert status["config"]["hash"] == decode_image(image.read_bytes()).content_hash.hex()
    assert [p["status"] for p in status["patches"]] == \
        ["received", "staged", "active", "committed"] * 2
    assert status["worst_frame_share_percent"] <= 100.0


def test_a_rejected_patch_changes_nothing_and_says_why(tmp_path: Path) -> None:
    v1, v2 = write(tmp_path, 1, 200), write(tmp_path, 2, 300)
    ok(run("ccl", "compile", v1, "-o", tmp_path / "v1.vvmi"))
    ok(run("ccl", "pack", v1, "-o", tmp_path / "v1.vvmp"))
    ok(run("ccl", "pack", v2, "--base", tmp_path / "v1.vvmi", "-o", tmp_path / "v2.vvmp"))
    state = tmp_path / "state"
    ok(run("vvm", "init", state, "--mission", "corot"))
    ok(run("vvm", "apply", state, tmp_path / "v1.vvmp"))
    ok(run("vvm", "run", state, "--for", "2m"))
    before = tree(state / "store"), (state / "data.bin").read_bytes()

    forged = bytearray((tmp_path / "v2.vvmp").read_bytes())
    forged[len(forged) // 2] ^= 0x10
    (tmp_path / "forged.vvmp").write_bytes(bytes(forged))
    proc = run("vvm", "apply", state, tmp_path / "forged.vvmp")
    assert proc.returncode == 1
    assert "rejected [" in proc.stdout and "byte" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert (tree(state / "store"), (state / "data.bin").read_bytes()) == before

    replayed = run("vvm", "apply", state, tmp_path / "v1.vvmp", "--json")
    assert replayed.returncode == 1
    fates = json.loads(replayed.stdout)["fates"]
    assert fates[-1]["status"] == "rejected" and fates[-1]["reason"] == "replay"
    assert (tree(state / "store"), (state / "data.bin").read_bytes()) == before

    status = json.loads(ok(run("vvm", "status", state, "--json")).stdout)
    assert [p["status"] for p in status["patches"]][-2:] == ["received", "rejected"]


def test_apply_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    ok(run("vvm", "init", tmp_path / "s", "--mission", "corot"))
    proc = run("vvm", "apply", tmp_path / "s", tmp_path / "nope.vvmp")
    assert proc.returncode == 2 and "no such file" in proc.stderr


TABLES = """\
mission corot;
config field version {version};
uses photometry;
table star_x[2000] : int[0..2032] from "{csv}" column x;
table star_y[2000] : int[0..4080] from "{csv}" column y;
var total : int[0..2000000000];
task sum_windows every 32 s {{
    total = 0;
    for s in 0 .. 2000 {{
        total = min(total + star_x[s] + star_y[s], 2000000000);
    }}
}}
"""


def test_scattered_rows_travel_in_a_format_2_patch_the_board_applies(tmp_path: Path) -> None:
    rows = [((37 * i) % 2033, (101 * i) % 4081) for i in range(2000)]
    moved = list(rows)
    for i in range(3, 2000, 41):  # 49 windows at scattered places, both coordinates
        moved[i] = (2032 - rows[i][0] or 1, 4080 - rows[i][1] or 1)
    paths = []
    for version, table in ((1, rows), (2, moved)):
        csv = tmp_path / f"v{version}.csv"
        csv.write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in table))
        path = tmp_path / f"field_v{version}.ccl"
        path.write_text(TABLES.format(version=version, csv=csv.name))
        ok(run("ccl", "compile", path, "-o", tmp_path / f"v{version}.vvmi"))
        paths.append(path)
    full, delta = tmp_path / "v1.vvmp", tmp_path / "v2.vvmp"
    ok(run("ccl", "pack", paths[0], "-o", full))
    ok(run("ccl", "pack", paths[1], "--base", tmp_path / "v1.vvmi", "-o", delta))
    shown = json.loads(ok(run("ccl", "inspect", delta, "--json", "--base",
                              tmp_path / "v1.vvmi")).stdout)
    assert {"field": "format", "offset": 2, "value": 2} in shown["header"]
    assert [s["type"] for s in shown["sections"]] == ["SCATTERED"]
    assert shown["target"]["matches_header"]
    # 49 rows among 2,000 in two tables: the positions once, then 23 bits a window.
    assert len(delta.read_bytes()) <= 35 + 16 + 10 + 49 * 23 // 8 + 49

    state = tmp_path / "state"
    ok(run("vvm", "init", state, "--mission", "corot"))
    for patch in (full, delta):
        ok(run("vvm", "apply", state, patch))
        ok(run("vvm", "run", state, "--for", "2m"))
    status = json.loads(ok(run("vvm", "status", state, "--json")).stdout)
    assert status["config"]["hash"] == \
        decode_image((tmp_path / "v2.vvmi").read_bytes()).content_hash.hex()


def test_model_coded_patches_pack_inspect_and_apply(tmp_path: Path) -> None:
    """``ccl pack --model``: the first upload (VMlet carried) and a full patch over a named
    base (coded after the VMlet on board) are smaller than without it; the board applies
    both, paying the decoder from the patch reserve; ``ccl inspect`` shows the first and
    says why it does not show the sections of the second."""
    v1, v2 = write(tmp_path, 1, 200), write(tmp_path, 2, 300)
    ok(run("ccl", "compile", v1, "-o", tmp_path / "v1.vvmi"))
    ok(run("ccl", "compile", v2, "-o", tmp_path / "v2.vvmi"))
    first, first_lz = tmp_path / "v1.vvmp", tmp_path / "v1-lz.vvmp"
    ok(run("ccl", "pack", v1, "--model", "-o", first))
    ok(run("ccl", "pack", v1, "-o", first_lz))
    assert len(first.read_bytes()) < len(first_lz.read_bytes())
    shown = json.loads(ok(run("ccl", "inspect", first, "--json")).stdout)
    assert shown["bundle"]["codec"] == "model"
    assert shown["target"]["matches_header"] is True
    full = tmp_path / "v2.vvmp"
    ok(run("ccl", "pack", v2, "--base", tmp_path / "v1.vvmi", "--full", "--model", "-o",
           full))
    shown = json.loads(ok(run("ccl", "inspect", full, "--json")).stdout)
    assert "not shown" in shown["changes"]["note"] and shown["tag"]["status"] == "verified"

    state = tmp_path / "state"
    ok(run("vvm", "init", state, "--mission", "corot"))
    ok(run("vvm", "apply", state, first))
    ok(run("vvm", "run", state, "--for", "2m"))
    ok(run("vvm", "apply", state, full))
    assert_runs_second(state, tmp_path / "v2.vvmi")
