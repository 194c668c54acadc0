"""`ccl verify` on the files of several applications: each proven in its part, the set
proven within the share, and a set over the share refused (exit 1, the clause shown)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

APP = """\
mission corot;
config {name} version 1;
application {name} share {share} %;
var acc : int[0..1000000] = 0;
task work every 1 s {{ acc = (acc + 7) % 1000000; }}
"""


def ccl(*args: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "cli.ccl", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


def write(tmp_path: Path, name: str, share: int) -> Path:
    path = tmp_path / f"{name}.ccl"
    path.write_text(APP.format(name=name, share=share), encoding="utf-8")
    return path


def test_a_set_within_the_share_is_proven(tmp_path: Path) -> None:
    a, b = write(tmp_path, "channel_a", 6), write(tmp_path, "channel_b", 3)
    done = ccl("verify", a, b, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert report["applications"]["parts_cycles_per_frame"] == 180_000
    assert [f["budgets"]["cpu"]["application"] for f in report["files"]] == \
        ["channel_a", "channel_b"]


def test_a_set_over_the_share_is_refused_at_the_clause(tmp_path: Path) -> None:
    a, b = write(tmp_path, "channel_a", 6), write(tmp_path, "channel_b", 4)
    refused = ccl("verify", a, b)
    assert refused.returncode == 1
    assert f"{b}:3:1: error[V-SHARE-SUM]" in refused.stdout + refused.stderr
    assert "^^^^" in refused.stdout + refused.stderr
    as_json = ccl("verify", a, b, "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and "V-SHARE-SUM" in report["error"]["message"]
    # each file alone is proven: only the set is over
    assert ccl("verify", b).returncode == 0
