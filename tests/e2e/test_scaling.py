"""Work that outgrows one machine: ``ccl verify FILE...``, ``ccl sim SCENARIO...`` and
``ccl campaign`` give the same results in this process (``--jobs 1``), on two local
processes (``--jobs 2``) and on a Ray cluster (``--ray ADDRESS``: a local Ray started here,
two CPUs, stopped afterwards even when a test fails), and fail cleanly when Ray is missing
or unreachable, when a job fails, and on Ctrl-C.

Each comparison runs the real command line; only the times a report carries differ.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scale_out import local_ray, timeless

from cli.console import EXIT_INTERNAL, Failure
from cli.executor import Executor

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "missions" / "corot" / "configs"
SCENARIOS = ROOT / "missions" / "corot" / "scenarios"
VERIFY = [CONFIGS / f for f in ("exo_e1.ccl", "bad_index.ccl", "bad_syntax.ccl",
                                "exo_e1_v6.ccl", "bad_rule.ccl")]


def ccl(*args: object, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.ccl", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env=env)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A local Ray cluster of two CPUs for this module's tests, stopped afterwards."""
    with local_ray(2) as address:
        yield address


def _same_text(text: str) -> str:
    return re.sub(r"\d+\.\d+ s\b", "T s", text)


def test_verify_of_many_files_is_the_same_serial_local_and_on_ray(ray_address: str) -> None:
    runs = {how: ccl("verify", *VERIFY, "--json", *how)
            for how in (("--jobs", "1"), ("--jobs", "2"), ("--ray", ray_address))}
    serial = runs["--jobs", "1"]
    assert serial.returncode == 1  # a refuted and a rejected file among them
    data = json.loads(serial.stdout)
    assert [f["status"] for f in data["files"]] == ["proven", "refuted", "rejected",
                                                     "proven", "refuted"]
    for how, proc in runs.items():
        assert proc.returncode == serial.returncode, (how, proc.stderr)
        assert timeless(json.loads(proc.stdout)) == timeless(data), how
    text = {how: ccl("verify", *VERIFY, *how) for how in (("--jobs", "1"), ("--jobs", "2"))}
    one, two = text["--jobs", "1"], text["--jobs", "2"]
    assert _same_text(one.stdout) == _same_text(two.stdout) and one.stderr == two.stderr
    assert "error[E-OUT-OF-RANGE]" in one.stderr and "Traceback" not in two.stderr


def test_sim_of_several_scenarios_is_the_same_serial_local_and_on_ray(
        ray_address: str, tmp_path: Path) -> None:
    # two short scenarios (half a day: one uplink pass does): one that uplinks a patch and
    # sees it committed, one whose configurations the verifier refuses
    short = []
    for name in ("02_one_parameter.toml", "04_refused_by_the_verifier.toml"):
        text = (SCENARIOS / name).read_text().replace('"../configs/', f'"{CONFIGS}/')
        short.append(tmp_path / name)
        short[-1].write_text(re.sub(r"(?m)^days = \d+", "days = 0.5", text))
    runs = {how: ccl("sim", *short, "--json", *how)
            for how in (("--jobs", "1"), ("--jobs", "2"), ("--ray", ray_address))}
    serial = runs["--jobs", "1"]
    assert serial.returncode == 0, serial.stderr
    reports = json.loads(serial.stdout)
    assert [r["ok"] for r in reports] == [True, True]
    assert any(p["verdict"] == "proven" for p in reports[0]["patches"])
    for how, proc in runs.items():
        assert proc.returncode == 0, (how, proc.stderr)
        assert json.loads(proc.stdout) == reports, how


def test_a_campaign_is_the_same_serial_local_and_on_ray(ray_address: str) -> None:
    # The solver's limit is wall-clock time: a query near it may be "unknown" on a loaded
    # machine and proven on an idle one. Far from it (these programs' queries take well
    # under 300 ms), every run decides the same.
    runs = {how: ccl("campaign", "--programs", "8", "--seed", "1", "--timeout-ms", "5000",
                     "--json", *how)
            for how in (("--jobs", "1"), ("--jobs", "2"), ("--ray", ray_address))}
    serial = runs["--jobs", "1"]
    assert serial.returncode == 0, serial.stdout[-2000:]
    data = json.loads(serial.stdout)
    assert data["programs"] == 8 and [o["seed"] for o in data["outcomes"]] == list(
        range(1, 9))
    assert data["proven"] > 0 and data["refuted"] > 0  # the slice reaches both verdicts
    for how, proc in runs.items():
        assert proc.returncode == 0, (how, proc.stderr)
        assert timeless(json.loads(proc.stdout)) == timeless(data), how
    assert json.loads(runs["--ray", ray_address].stdout)["ran_on"] == f"ray at {ray_address}"


def test_ray_missing_or_unreachable_is_a_usage_error(tmp_path: Path) -> None:
    # a Python where `import ray` fails, as where the extra is not installed
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("raise ImportError('no ray here')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = ccl("verify", VERIFY[0], VERIFY[1], "--ray", "127.0.0.1:1", env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "needs Ray" in proc.stderr and "pip install -e '.[scale]'" in proc.stderr
    proc = ccl("campaign", "--programs", "2", "--ray", "127.0.0.1:1", "--json", env=env)
    assert proc.returncode == 2 and json.loads(proc.stdout)["error"]["where"] == "--ray"
    start = time.monotonic()
    proc = ccl("verify", VERIFY[0], "--ray", f"127.0.0.1:{_free_port()}")
    assert proc.returncode == 2 and "cannot reach the Ray cluster" in proc.stderr
    assert "Traceback" not in proc.stderr and time.monotonic() - start < 30
    proc = ccl("verify", VERIFY[0], "--ray", "nowhere")
    assert proc.returncode == 2 and "not a cluster address" in proc.stderr


def _fails_on_three(n: int) -> int:
    if n == 3:
        raise ValueError("three is right out")
    return n * n


@pytest.mark.parametrize("jobs", [1, 2])
def test_results_come_in_input_order_and_a_failing_job_names_its_input(jobs: int) -> None:
    executor = Executor(jobs)
    assert list(executor.map(_fails_on_three, [5, 1, 4, 2])) == [25, 1, 16, 4]
    got = []
    with pytest.raises(Exception) as info:
        for r in executor.map(_fails_on_three, [2, 5, 3, 4]):
            got.append(r)
    assert got == [4, 25]  # everything before the failing input, in order
    # reported with its input, as one failure (exit 70: a job that raises is a bug)
    assert isinstance(info.value, Failure) and info.value.code == EXIT_INTERNAL
    assert "failed on 3: ValueError: three is right out" in info.value.message


def test_ctrl_c_stops_a_parallel_campaign_cleanly(tmp_path: Path) -> None:
    marker = "917364"  # a seed no other test uses: finds this test's workers
    proc = subprocess.Popen([sys.executable, "-m", "cli.ccl", "campaign", "--programs",
                             "400", "--seed", marker, "--jobs", "2",
                             "--failures", str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(_processes_with(marker)) < 3:  # the command and its two workers
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    time.sleep(1)  # into the programs
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    time.sleep(0.5)
    assert _processes_with(marker) == []  # no worker outlives the command


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                state = (entry / "stat").read_text().split()[2]
            except OSError:
                continue
            if marker.encode() in cmdline and b"campaign" in cmdline and state != "Z":
                found.append(int(entry.name))
    return found
