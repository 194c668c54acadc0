"""A live Yamcs: `ccl yamcs serve` starts it with CoRoT's XTCE and a UDP TM link (free ports
chosen at run time), `ccl sim --yamcs` streams a scenario's telemetry into it, and the values
read back through `yamcs-client` are those of the scenario's own report and of the packets
recorded in the same run. The server is stopped whatever happens (SIGTERM to `ccl yamcs
serve`, which stops Yamcs; its process group killed if that fails)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from yamcs.client import YamcsClient

from ground.tm_stream import TmReader
from onboard.patching.patcher import read_fate_code

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "missions" / "corot" / "scenarios" / "02_one_parameter.toml"
CONFIG = ROOT / "missions" / "corot" / "configs" / "exo_e1_v6.ccl"
START_TIMEOUT_S = 240


def _stop(serve: subprocess.Popen[str]) -> None:
    if serve.poll() is None:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()


@pytest.fixture
def yamcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A running `ccl yamcs serve` and what it printed (url, tm, started_s, folder)."""
    folder = tmp_path_factory.mktemp("yamcs") / "server"
    serve = subprocess.Popen(
        [sys.executable, "-m", "cli.ccl", "yamcs", "serve", "--mission", "corot", str(CONFIG),
         "--http-port", "0", "--tm-port", "0", "--dir", str(folder), "--json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, start_new_session=True)
    try:
        text, deadline = "", time.monotonic() + START_TIMEOUT_S
        info: dict[str, Any] | None = None
        assert serve.stdout is not None
        while info is None and time.monotonic() < deadline:
            line = serve.stdout.readline()
            if not line:
                break
            text += line
            if line.startswith("}"):
                info = json.loads(text)
        if info is None:
            _stop(serve)
            raise AssertionError(f"Yamcs did not start: {text} {serve.stderr.read()}")
        info["log"] = folder / "yamcs.log"
        yield info
    finally:
        _stop(serve)
    assert serve.returncode == 0, serve.stderr.read() if serve.stderr else ""
    assert not any("org.yamcs.YamcsServer" in _cmdline(p) and str(folder) in _cmdline(p)
                   for p in Path("/proc").iterdir() if p.name.isdigit())


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_a_scenario_streamed_into_yamcs_reads_back(yamcs: dict[str, Any],
                                                   tmp_path: Path) -> None:
    assert yamcs["ok"] and yamcs["instance"] == "corot"
    tm = tmp_path / "sent.tm"
    run = subprocess.run([sys.executable, "-m", "cli.ccl", "sim", str(SCENARIO), "--yamcs",
                          yamcs["tm"], "--tm", str(tm), "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)[0]
    sent = TmReader().read(tm.read_bytes())

    client = YamcsClient(yamcs["url"].removeprefix("http://"))
    link = client.get_link("corot", "vvm-tm").get_info()
    deadline = time.monotonic() + 30
    while link.in_count < len(sent) and time.monotonic() < deadline:
        time.sleep(0.5)
        link = client.get_link("corot", "vvm-tm").get_info()
    assert link.in_count == len(sent)

    processor = client.get_processor("corot", "realtime")

    def value(name: str) -> Any:
        v = processor.get_parameter_value(f"/corot/{name}")
        assert v is not None, f"{name}: no value in Yamcs"
        return v.eng_value

    last = {p.name: p for p in sent}  # the last packet of each kind
    onboard = report["onboard"]["config"]
    assert value("Housekeeping_config_name") == onboard["name"] == "exo_e1"
    assert value("Housekeeping_config_version") == onboard["version"] == 6
    assert bytes(value("Housekeeping_config_hash")).hex() == onboard["hash"]
    hk = last["Housekeeping"].values
    for field in ("worst_frame_cycles", "worst_share_ppm", "task_runs", "store_phase",
                  "probation_needed"):
        assert value(f"Housekeeping_{field}") == hk[field], field
    assert value("LinkReport_frames_ok") == last["LinkReport"].values["frames_ok"] >= 1
    fate = last["FateReport"].values
    assert read_fate_code(value("FateReport_code"))[0].value == "committed"
    assert value("FateReport_message") == fate["message"]
    assert report["patches"][0]["fates"][-1]["status"] == "committed"

    # One test (one server even under xdist): the start-up time `ccl yamcs serve` reports,
    # and the database loaded without error.
    assert 0 < yamcs["started_s"] < START_TIMEOUT_S
    log = yamcs["log"].read_text(errors="replace")
    assert "Started 1 of 1 instances" in log
    assert " SEVERE " not in log and "Exception" not in log
