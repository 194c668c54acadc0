"""``ccl net sim`` and ``ccl verify`` on active-network programs, as real processes: exit
codes, JSON, traces with reasons, and bad input answered with one message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NET = ROOT / "missions" / "activenet"


def ccl(*args: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "cli.ccl", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text and proc.returncode != 70, text
    return proc


def test_net_sim_runs_ping_and_traceroute_with_a_trace() -> None:
    proc = ccl("net", "sim", NET / "scenarios" / "ping_traceroute.toml", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ok"] and out["complete"]
    assert out["nodes"]["1"]["delivered"][1:] == [258, 515, 772, 1029]
    events = {e["event"] for e in out["trace"]}
    assert {"inject", "evaluate", "forward", "send", "arrive", "deliver"} <= events
    assert [s["worst_cycles"] for s in out["sends"]] == [294, 683]  # ccl verify's figures
    text = ccl("net", "sim", NET / "scenarios" / "ping_traceroute.toml", "--trace")
    assert text.returncode == 0
    assert "expect node 1 delivers 5 values: met" in text.stdout
    assert "forward" in text.stdout and "deliver" in text.stdout


def test_net_sim_reports_exhaustion_and_refusal_reasons() -> None:
    out = json.loads(ccl("net", "sim", NET / "scenarios" / "exhaustion.toml",
                         "--json").stdout)
    reasons = [e["reason"] for e in out["trace"] if e["event"] == "drop"]
    assert sorted(reasons) == ["resource-exhausted", "ttl-exhausted"]
    proc = ccl("net", "sim", NET / "scenarios" / "refused.toml")
    assert proc.returncode == 0, proc.stderr
    assert "REFUSED by the sender" in proc.stdout and "V-CPU-SHARE" in proc.stdout
    assert "resource-exhausted: `spin` used all of its resource bound (50000 cycles)" \
        in proc.stdout


def test_ccl_verify_refuses_the_looping_program_and_proves_the_others() -> None:
    bad = ccl("verify", NET / "programs" / "refused" / "spin.ccl")
    assert bad.returncode == 1
    assert "V-CPU-SHARE" in bad.stdout + bad.stderr
    good = ccl("verify", NET / "programs" / "ping.ccl", NET / "programs" / "traceroute.ccl",
               NET / "vmlets" / "plan.ccl")
    assert good.returncode == 0, good.stdout + good.stderr


def test_an_unmet_expectation_exits_1(tmp_path: Path) -> None:
    text = (NET / "scenarios" / "ping_traceroute.toml").read_text()
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(text.replace("deliveries = 5", "deliveries = 6").replace(
        "../topologies", str(NET / "topologies")).replace("../programs",
                                                          str(NET / "programs")))
    proc = ccl("net", "sim", wrong, "--json")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert not out["ok"]
    assert [e["met"] for e in out["expectations"]] == [False, True]


def test_bad_scenarios_are_one_message(tmp_path: Path) -> None:
    missing = ccl("net", "sim", tmp_path / "nothing.toml")
    assert missing.returncode == 2 and "no such file" in missing.stderr
    notone = ccl("net", "sim", NET / "mission.toml", "--json")
    assert notone.returncode == 1
    assert "no [scenario] table" in json.loads(notone.stdout)["error"]["message"]
    broken = tmp_path / "broken.toml"
    broken.write_text(f'[scenario]\ntopology = "{NET / "topologies" / "line5.toml"}"\n'
                      f'[[send]]\nnode = 9\nprogram = "x.ccl"\n')
    proc = ccl("net", "sim", broken)
    assert proc.returncode == 1 and "node 9 is not in topology `line5`" in proc.stderr


def test_net_sim_runs_ants_capsules_with_the_code_cache_in_the_trace(tmp_path: Path) -> None:
    scenario = NET / "scenarios" / "ants_ping_traceroute.toml"
    out = json.loads(ccl("net", "sim", scenario, "--json").stdout)
    assert out["ok"] and out["nodes"]["1"]["delivered"][1:] == [258, 515, 772, 1029]
    events = {e["event"] for e in out["trace"]}
    assert {"hit", "miss", "fetch", "serve", "cache"} <= events
    assert out["nodes"]["5"]["code_fetches"] == 2 and out["nodes"]["1"]["code_served"] == 2
    text = ccl("net", "sim", scenario)
    assert text.returncode == 0 and "code cache: 7 hits, 0 misses" in text.stdout
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(f'[scenario]\ntopology = "{NET / "topologies" / "line5.toml"}"\n'
                     f'[[send]]\nnode = 1\nprogram = "x.ccl"\nprotocol = "udp"\n')
    proc = ccl("net", "sim", wrong)
    assert proc.returncode == 1
    assert "protocol `udp` is neither `plan`, `ants` nor `auto`" in proc.stderr


def test_net_sim_shows_the_senders_choice_between_plan_and_ants(tmp_path: Path) -> None:
    scenario = NET / "scenarios" / "choice.toml"
    proc = ccl("net", "sim", scenario, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ok"] and out["protocols"] == {"plan": 3, "ants": 4, "auto_plan": 3,
                                              "auto_ants": 4}
    assert [s["protocol"] for s in out["sends"]] == \
        ["plan", "ants", "ants", "plan", "ants", "ants", "plan"]
    chooses = [e for e in out["trace"] if e["event"] == "choose"]
    assert [e["protocol"] for e in chooses] == [s["protocol"] for s in out["sends"]]
    first = chooses[0]
    assert first["plan"]["wire_bytes"] == 2128 and first["ants"]["wire_bytes"] == 1920
    assert first["cached"] == [] and first["reuse"] == 0
    assert chooses[2]["cached"] == [1, 5] and chooses[2]["ants"]["total"] == 528
    assert out["sends"][0]["choice"]["why"] == "plan costs 2134 against 2352"
    assert sum(n["capsules_out"] for n in out["nodes"].values()) > 0
    text = ccl("net", "sim", scenario)
    assert text.returncode == 0
    assert "chose plan: plan 2,134, ants 2,352 (code cached at no node, 0 more expected)" \
        in text.stdout
    assert "sent by plan 3, by ants 4 (the sender chose plan 3, ants 4)" in text.stdout
    assert "2,091 bytes out (3 PLAN packets, 4 capsules)" in text.stdout  # node 1's
    no_dest = tmp_path / "no_dest.toml"
    no_dest.write_text(f'[scenario]\ntopology = "{NET / "topologies" / "line5.toml"}"\n'
                       f'vmlets = ["plan", "ants"]\n[[send]]\nnode = 1\n'
                       f'program = "{NET / "programs" / "ping.ccl"}"\nprotocol = "auto"\n')
    proc = ccl("net", "sim", no_dest)
    assert proc.returncode == 1 and "protocol `auto` needs `dest`" in proc.stderr
