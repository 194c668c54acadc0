"""VMlets in band (issue 16, point 5: the "active active network"): a VMlet packet carries a
new protocol (VMlet-MARK), every node checks its tag with the network's key and loads it as
at boot (the load-time bytecode verifier, the binding rules), installs it once, and programs
on it run from then on; PLAN and ANTS stay loaded."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ccl.driver import Compiler
from ground.network.packet import (
    HEADER_BYTES,
    NEIGHBOUR,
    VMLET,
    VMLET_FLOOD,
    Packet,
    PacketError,
    decode_packet,
    sign_vmlet,
    vmlet_image,
)
from ground.network.scenario import NetScenarioError, load_net_scenario, load_topology
from ground.network.sender import FORGER_KEY, run_net_scenario
from ground.network.simulator import Network, RunReport
from onboard.patching.patch_format import TAG_BYTES, development_key
from onboard.vm.image import Image
from onboard.vm.isa import POP

ROOT = Path(__file__).resolve().parents[2]
NET = ROOT / "missions" / "activenet"
KEY = development_key("activenet")  # the network's key: the mission's patch key (dev)
PATH_1_TO_4 = 0x1234  # record route 1 -> 4 on line5: one hexadecimal digit per node


@pytest.fixture(scope="module")
def compiler() -> Compiler:
    return Compiler()


@pytest.fixture(scope="module")
def boot(compiler: Compiler) -> list[Image]:
    """VMlet-PLAN and VMlet-ANTS, as every node boots them (MARK comes in band)."""
    ants = compiler.compile(NET / "vmlets" / "ants.ccl")
    return [*(v.image for v in ants.vmlets), ants.image]


@pytest.fixture(scope="module")
def mark(compiler: Compiler) -> Image:
    return compiler.compile(NET / "vmlets" / "mark.ccl").image


@pytest.fixture(scope="module")
def recordroute(compiler: Compiler) -> bytes:
    return compiler.compile(NET / "programs" / "recordroute.ccl").image.encode()


def network(compiler: Compiler, boot: list[Image], topology: str = "line5") -> Network:
    return Network(load_topology(NET / "topologies" / f"{topology}.toml"),
                   compiler.mission("activenet"), boot, key=KEY)


def install(net: Network, image: Image, *, flood: bool = True, dest: int = 1,
            key: bytes = KEY) -> Packet:
    packet = Packet(VMLET_FLOOD if flood else VMLET, net.next_id(), 1, dest, 16, 0, (0,) * 8,
                    b"")
    return sign_vmlet(packet, image.encode(), key)


def route(net: Network, code: bytes, target: int = 4) -> Packet:
    return Packet(NEIGHBOUR, net.next_id(), 1, 1, 16, 20_000, (target,) + (0,) * 7, code)


def installs(report: RunReport) -> list[int]:
    return sorted(e.node for e in report.trace if e.event == "install")


def test_the_scenario_installs_mark_in_band_then_a_program_on_it_runs() -> None:
    result = run_net_scenario(load_net_scenario(NET / "scenarios" / "inband.toml"))
    assert result.ok, result.expectations
    report = result.report
    assert installs(report) == [1, 2, 3, 4, 5, 6]  # each node once, whatever came round
    assert len(report.drops("duplicate")) >= 2  # the ring's copies, and the replay
    assert report.delivered(4) == [PATH_1_TO_4] * 2  # by PLAN, then by ANTS
    # the VMlet packet: header, MARK's image, the tag
    assert [size for _, _, size in result.installs] == [
        HEADER_BYTES + len(Compiler().compile(NET / "vmlets" / "mark.ccl").image.encode())
        + TAG_BYTES] * 3
    used = report.drops("unknown-vmlet")[0]
    assert used.t_us == 0 and "`mark` v1" in str(used.detail["why"])


def test_installed_then_used_plan_and_ants_stay_loaded(
        compiler: Compiler, boot: list[Image], mark: Image, recordroute: bytes) -> None:
    net = network(compiler, boot)
    net.inject(0, 1, install(net, mark))
    net.inject(50, 1, route(net, recordroute))
    report = net.run()
    assert installs(report) == [1, 2, 3, 4, 5]
    assert report.delivered(4) == [PATH_1_TO_4]
    for node in net.nodes.values():
        assert list(node.vvm.vmlets) == ["plan", "ants", "mark"]
        assert node.meter.installed == ["mark v1"]
    assert not any(m.drops for m in report.nodes.values())


def test_used_before_installed_is_dropped_as_unknown_vmlet(
        compiler: Compiler, boot: list[Image], mark: Image, recordroute: bytes) -> None:
    net = network(compiler, boot)
    # installed at node 1 only (kind 6, for node 1): at node 2 the program has no MARK
    net.inject(0, 1, install(net, mark, flood=False, dest=1))
    net.inject(50, 1, route(net, recordroute))
    report = net.run()
    assert installs(report) == [1]
    (drop,) = report.drops("unknown-vmlet")
    assert drop.node == 2 and "missing-vmlet" in str(drop.detail["why"])
    assert report.nodes[1].evaluations == 1 and report.delivered(4) == []


def test_an_install_for_one_node_is_forwarded_not_installed_on_the_way(
        compiler: Compiler, boot: list[Image], mark: Image) -> None:
    net = network(compiler, boot)
    net.inject(0, 1, install(net, mark, flood=False, dest=4))
    report = net.run()
    assert installs(report) == [4]
    assert [report.nodes[n].forwarded for n in (2, 3)] == [1, 1]
    assert "mark" not in net.nodes[3].vvm.vmlets and "mark" in net.nodes[4].vvm.vmlets


def _state(net: Network) -> dict[int, tuple[object, ...]]:
    return {a: tuple(n.vvm.vmlets.items()) for a, n in net.nodes.items()}


@pytest.mark.parametrize("how", ["wrong key", "image altered", "kind altered",
                                 "dest altered", "tag altered"])
def test_a_forged_or_altered_install_is_refused_and_nothing_changes(
        compiler: Compiler, boot: list[Image], mark: Image, how: str) -> None:
    net = network(compiler, boot)
    before = _state(net)
    good = install(net, mark, flood=False, dest=1)
    data = bytearray(good.encode())
    if how == "wrong key":
        data = bytearray(install(net, mark, flood=False, dest=1, key=FORGER_KEY).encode())
    elif how == "image altered":
        data[HEADER_BYTES + 40] ^= 0x01
    elif how == "kind altered":  # turned into a flood: the kind is signed
        data[3] = VMLET_FLOOD
    elif how == "dest altered":  # routers on the way forward it; node 2 checks the tag
        data[9] = 2
    else:
        data[-1] ^= 0x80
    net.receive(0, 1, bytes(data))
    report = net.run()
    (drop,) = report.drops("forged")
    at = 2 if how == "dest altered" else 1
    assert drop.node == at and "network's key" in str(drop.detail["why"])
    assert _state(net) == before and installs(report) == []
    assert report.nodes[at].load_cycles == report.nodes[at].packets_out == 0  # not passed on


def test_the_tag_survives_forwarding_but_not_another_key(mark: Image) -> None:
    packet = sign_vmlet(Packet(VMLET_FLOOD, 7, 1, 1, 16, 0, (0,) * 8, b""), mark.encode(), KEY)
    hopped = decode_packet(packet.but(ttl=3, prev=5, id=99).encode())
    assert vmlet_image(hopped, KEY) == mark.encode()  # ttl, prev and id are not signed
    assert vmlet_image(hopped, FORGER_KEY) is None
    with pytest.raises(PacketError, match="tag"):
        decode_packet(packet.but(code=b"x" * TAG_BYTES).encode())
    with pytest.raises(ValueError):
        sign_vmlet(packet.but(kind=NEIGHBOUR), mark.encode(), KEY)


def test_bytecode_that_fails_the_load_time_verifier_is_refused_with_its_reason(
        compiler: Compiler, boot: list[Image], mark: Image) -> None:
    instr = mark.functions[0]
    # the first instruction (LOAD_L, 2 bytes) replaced by two POPs on the empty stack:
    # decodes, does not verify; signed with the network's key, so only the node's own
    # verifier can refuse it
    broken = dataclasses.replace(mark, functions=(
        dataclasses.replace(instr, code=bytes([POP, POP]) + instr.code[2:]),))
    net = network(compiler, boot)
    before = _state(net)
    net.inject(0, 1, install(net, broken))
    report = net.run()
    (refused,) = report.drops("refused")
    assert str(refused.detail["why"]).startswith("stack-underflow")
    assert _state(net) == before and installs(report) == [] and report.wire_bytes == 0
    assert report.nodes[1].load_cycles > 0  # the node paid for verifying it


def test_a_configuration_or_a_vmlet_on_a_missing_layer_is_refused_by_the_loader(
        compiler: Compiler, boot: list[Image], mark: Image, recordroute: bytes) -> None:
    net = Network(load_topology(NET / "topologies" / "line5.toml"),
                  compiler.mission("activenet"), [], key=KEY)  # no PLAN below MARK
    program = compiler.compile(NET / "programs" / "recordroute.ccl").image
    net.inject(0, 1, install(net, mark))
    net.inject(1, 1, install(net, program))  # a configuration is not a VMlet
    report = net.run()
    whys = sorted(str(e.detail["why"]).split(":")[0] for e in report.drops("refused"))
    assert whys == ["missing-vmlet", "not-a-vmlet"]
    assert all(not n.vvm.vmlets for n in net.nodes.values())


def test_vmlets_beyond_the_nodes_code_memory_are_refused(
        compiler: Compiler, boot: list[Image], mark: Image) -> None:
    profile = compiler.mission("activenet")
    held = sum(v.code_bytes() for v in boot)
    small = dataclasses.replace(profile, code_bytes=held + mark.code_bytes() - 1)
    net = Network(load_topology(NET / "topologies" / "line5.toml"), profile, boot,
                  node_profiles={2: small}, key=KEY)
    net.inject(0, 1, install(net, mark))
    report = net.run()
    (refused,) = report.drops("refused")
    assert refused.node == 2 and str(refused.detail["why"]).startswith("code-memory")
    assert installs(report) == [1] and "mark" not in net.nodes[2].vvm.vmlets


def test_a_replayed_install_is_idempotent_and_an_older_version_is_stale(
        compiler: Compiler, boot: list[Image], mark: Image, tmp_path: Path) -> None:
    source = (NET / "vmlets" / "mark.ccl").read_text(encoding="utf-8")
    (tmp_path / "mark.ccl").write_text(source.replace("vmlet mark version 1;",
                                                      "vmlet mark version 2;"))
    newer = compiler.compile(tmp_path / "mark.ccl").image
    net = network(compiler, boot)
    first = install(net, mark).encode()
    net.receive(0, 1, first)
    net.receive(100_000, 1, first)  # the same bytes again: a replay
    net.receive(100_000, 3, first)  # ... elsewhere in the network
    report = net.run()
    assert installs(report) == [1, 2, 3, 4, 5]
    assert [e.node for e in report.drops("duplicate")] == [1, 3]
    loaded = {a: n.vvm.vmlets["mark"] for a, n in net.nodes.items()}
    # a newer version replaces it everywhere; the old one replayed after it is stale
    net.inject(200, 1, install(net, newer))
    net.receive(300_000, 1, first)
    report = net.run()
    assert [e.node for e in report.drops("stale")] == [1]
    for a, n in net.nodes.items():
        assert n.vvm.vmlets["mark"].image.version == 2 and n.vvm.vmlets["mark"] is not loaded[a]
        assert n.meter.installed == ["mark v1", "mark v2"]


def test_the_sender_sends_only_a_proven_vmlet(tmp_path: Path) -> None:
    missions = tmp_path / "missions"
    shutil.copytree(NET, missions / "activenet")
    source = (NET / "vmlets" / "mark.ccl").read_text(encoding="utf-8")
    unguarded = source.replace("vmlet mark version 1;", "vmlet sloppy version 1;").replace(
        "    if path >= 16777216 { return path; }\n", "")  # path * 16 may leave the range
    (missions / "activenet" / "vmlets" / "sloppy.ccl").write_text(unguarded)
    scenario = tmp_path / "s.toml"
    scenario.write_text(f'[scenario]\ntopology = "{NET}/topologies/line5.toml"\n'
                        'vmlets = ["plan"]\n'
                        '[[install]]\nnode = 1\nvmlet = "sloppy"\n'
                        '[[install]]\nat_ms = 10\nnode = 1\nvmlet = "sloppy"\n'
                        'unverified = true\n')
    result = run_net_scenario(load_net_scenario(scenario),
                              Compiler(mission_dirs=(missions,)), KEY)
    (refused,) = result.report.drops("refused-at-sender")
    assert refused.t_us == 0 and "V-" in str(refused.detail["why"])
    (proof, _), (forced, _) = [(v, size) for _, v, size in result.installs]
    assert proof is not None and not proof.proven and forced is None
    # forced through: the nodes' checks are structural (tag, bytecode, binding) and pass;
    # the overflow the proof found is the VVM's to trap at run time
    assert installs(result.report) == [1, 2, 3, 4, 5]


def test_the_scenario_file_checks_installs(tmp_path: Path) -> None:
    body = ('[scenario]\ntopology = "{top}"\n[[install]]\nnode = 1\nvmlet = "{v}"\n'
            'flood = false\ndest = {d}\n')
    top = NET / "topologies" / "line5.toml"
    for vmlet, dest, field in (("../mark", 3, "vmlet"), ("mark", 9, "dest")):
        path = tmp_path / "s.toml"
        path.write_text(body.format(top=top, v=vmlet, d=dest))
        with pytest.raises(NetScenarioError) as caught:
            load_net_scenario(path)
        assert caught.value.where.endswith(f".{field}")


def ccl(*args: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CCL_PATCH_KEY", None)
    proc = subprocess.run([sys.executable, "-m", "cli.ccl", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


def test_ccl_net_sim_reports_the_install_and_takes_the_network_key(tmp_path: Path) -> None:
    scenario = NET / "scenarios" / "inband.toml"
    ok = ccl("net", "sim", scenario)
    assert ok.returncode == 0, ok.stderr
    assert "install VMlet mark from 1 at 20 ms (231 bytes, flooded): proven" in ok.stdout
    assert "installed in band: mark v1" in ok.stdout
    # another network key (sender and nodes share it): the same run; a key file that holds
    # no key is one clear refusal
    key = tmp_path / "net.key"
    key.write_text("# a key\n" + "ab" * 32 + "\n")
    keyed = ccl("net", "sim", scenario, "--key", key, "--json")
    assert keyed.returncode == 0, keyed.stderr
    out = json.loads(keyed.stdout)
    assert [i["bytes"] for i in out["installs"]] == [231] * 3
    assert out["nodes"]["4"]["delivered"] == [PATH_1_TO_4] * 2
    key.write_text("not hex\n")
    bad = ccl("net", "sim", scenario, "--key", key)
    assert bad.returncode == 1 and "not a hex key" in bad.stderr
