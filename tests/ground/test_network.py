"""The network simulator of VVM routers (ground/network) with VMlet-PLAN, driven directly:
each node a real VVM, packets as bytes, the node's bytecode verifier and metering."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from ccl.driver import Compiler
from ground.network.packet import NEIGHBOUR, Packet, PacketError, decode_packet
from ground.network.scenario import load_net_scenario, load_topology
from ground.network.sender import judge, run_net_scenario
from ground.network.simulator import Network, Topology
from onboard.vm.image import Image

ROOT = Path(__file__).resolve().parents[2]
NET = ROOT / "missions" / "activenet"


@pytest.fixture(scope="module")
def compiler() -> Compiler:
    return Compiler()


@pytest.fixture(scope="module")
def plan(compiler: Compiler) -> Image:
    return compiler.compile(NET / "vmlets" / "plan.ccl").image


def network(compiler: Compiler, plan: Image, topology: str = "line5", seed: int = 1
            ) -> Network:
    return Network(load_topology(NET / "topologies" / f"{topology}.toml"),
                   compiler.mission("activenet"), [plan], seed)


def packet(net: Network, code: bytes, data: tuple[int, ...] = (0, 5), rb: int = 20_000,
           ttl: int = 16) -> Packet:
    return Packet(NEIGHBOUR, net.next_id(), 1, 1, ttl, rb, data + (0,) * (8 - len(data)), code)


def test_ping_and_traceroute_deliver_over_five_routers() -> None:
    result = run_net_scenario(load_net_scenario(NET / "scenarios" / "ping_traceroute.toml"))
    assert result.ok
    delivered = result.report.delivered(1)
    # the round trip in ms (4 links each way, 2 ms each plus transmission and evaluation),
    # then hop * 256 + router for routers 2, 3, 4 and the target 5
    assert 16 < delivered[0] < 60
    assert delivered[1:] == [1 * 256 + 2, 2 * 256 + 3, 3 * 256 + 4, 4 * 256 + 5]
    evaluated = {n: m.evaluations for n, m in result.report.nodes.items()}
    assert evaluated == {1: 7, 2: 1, 3: 1, 4: 1, 5: 2}  # ping: 1, 5, 1; traceroute: each
    assert result.report.nodes[3].forwarded == 4  # ping out and back, two reports home
    assert result.report.complete and not any(m.drops for m in result.report.nodes.values())


def test_ttl_and_resource_exhaustion_stop_packets_with_a_reason() -> None:
    result = run_net_scenario(load_net_scenario(NET / "scenarios" / "exhaustion.toml"))
    assert result.ok, result.expectations
    (ttl,) = result.report.drops("ttl-exhausted")
    assert ttl.node == 3 and "no hops left" in str(ttl.detail["why"])
    (rb,) = result.report.drops("resource-exhausted")
    assert rb.node == 4 and "resource bound" in str(rb.detail["why"])
    assert result.report.delivered(1) == [258, 515]


def test_a_looping_program_is_refused_at_the_sender_and_stopped_by_metering_if_forced(
        ) -> None:
    result = run_net_scenario(load_net_scenario(NET / "scenarios" / "refused.toml"))
    assert result.ok, result.expectations
    (refused,) = result.report.drops("refused-at-sender")
    assert "V-CPU-SHARE" in str(refused.detail["why"])
    (stopped,) = result.report.drops("resource-exhausted")
    assert stopped.node == 1
    assert result.report.nodes[1].cycles == 50_000  # exactly the bound, metered by the VVM
    assert result.report.wire_bytes == 0


def test_the_sender_refuses_a_bound_below_the_proven_worst_case(compiler: Compiler) -> None:
    compiled = compiler.compile(NET / "programs" / "traceroute.ccl")
    assert judge(compiled, 20_000).proven
    small = judge(compiled, 500)
    assert not small.proven and small.worst_cycles is not None and small.worst_cycles > 500


def test_a_malformed_program_is_refused_by_the_nodes_bytecode_verifier(
        compiler: Compiler, plan: Image) -> None:
    ping = compiler.compile(NET / "programs" / "ping.ccl").image
    main = ping.functions[0]
    # the last instruction replaced by a POP on an empty stack: decodes, does not verify
    forged = dataclasses.replace(ping, functions=(
        dataclasses.replace(main, code=main.code[:-1] + bytes([0x02, 0x7F])),))
    net = network(compiler, plan)
    net.inject(0, 1, packet(net, forged.encode()))
    net.inject(1, 1, packet(net, b"junk"))
    report = net.run()
    (refused,) = report.drops("refused")
    assert str(refused.detail["why"]).startswith("stack-underflow")
    (junk,) = report.drops("malformed")
    assert "magic" in str(junk.detail["why"])
    assert report.nodes[1].evaluations == 0 and report.wire_bytes == 0


def test_packets_round_trip_and_bad_bytes_say_field_and_offset() -> None:
    p = Packet(0, 7, 1, 5, 9, 1234, (1, 2, 3, 4, 5, 6, 7, 8), b"code")
    assert decode_packet(p.encode()) == p
    with pytest.raises(PacketError) as err:
        decode_packet(p.encode()[:-1])
    assert err.value.field == "code length"
    with pytest.raises(PacketError) as err:
        decode_packet(b"XX" + p.encode()[2:])
    assert (err.value.field, err.value.offset) == ("magic", 0)


def test_a_lossy_network_is_deterministic_for_a_seed(compiler: Compiler, plan: Image) -> None:
    ping = compiler.compile(NET / "programs" / "ping.ccl").image.encode()

    def run(seed: int) -> list[dict[str, object]]:
        net = network(compiler, plan, "mesh6", seed)
        for k in range(20):  # ping 5 from 4: both ways over the lossy link 4-5
            net.inject(k * 50, 4, packet(net, ping, (0, 5)))
        return [e.to_json() for e in net.run().trace]

    first, again, other = run(1), run(1), run(2)
    assert first == again
    assert first != other
    lost = [e for e in first if e["event"] == "lost"]
    assert 0 < len(lost) < 20  # 30 % loss on up to 40 crossings
    delivered = net_deliveries = [e for e in first if e["event"] == "deliver"]
    assert 0 < len(delivered) < 20 and len(net_deliveries) + len(lost) == 20


def test_routes_follow_latency_not_hops() -> None:
    mesh = load_topology(NET / "topologies" / "mesh6.toml")
    # the chord 2-5 is 20 ms; 2-3-4-5 and 2-1-6-5 are 6 ms: the lower next hop wins the tie
    assert mesh.routes(2)[5] == 1
    assert mesh.routes(3)[5] == 4
    with pytest.raises(ValueError):
        Topology("bad", (1, 1), ())


def test_each_node_runs_its_own_profile(tmp_path: Path) -> None:
    scenario = tmp_path / "slow.toml"
    scenario.write_text(f"""
[scenario]
topology = "{NET / 'topologies' / 'line5_slow.toml'}"
[[send]]
node = 1
program = "{NET / 'programs' / 'traceroute.ccl'}"
data = [0, 5]
rb = 30000
[[send]]
at_ms = 200
node = 3
program = "{NET / 'programs' / 'refused' / 'spin.ccl'}"
rb = 50000
unverified = true
""")
    result = run_net_scenario(load_net_scenario(scenario))
    assert result.report.delivered(1) == [258, 515, 772, 1029]  # through the slow router
    (stopped,) = result.report.drops("resource-exhausted")
    assert stopped.node == 3 and "a frame's share (10000 cycles)" in str(stopped.detail["why"])
    assert result.report.nodes[3].cycles == 683 + 10_000
    # the slow router takes four times as long for the same cycles
    evaluations = {e.node: e for e in result.report.trace if e.event == "evaluate"
                   and e.detail["program"] == "traceroute" and e.node in (2, 3)}
    spans = {}
    for node, e in evaluations.items():
        spawn = next(s for s in result.report.trace if s.event == "spawn"
                     and s.node == node and s.detail["parent"] == e.packet)
        spans[node] = spawn.t_us - e.t_us
    assert spans[3] == pytest.approx(4 * spans[2], rel=0.01)


def test_nothing_in_onboard_or_ccl_knows_about_networks() -> None:
    words = ("activenet", "onremote", "onneighbor", "getttl", "ground.network")
    for package in ("onboard", "ccl"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert not [w for w in words if w in text], path


def test_mutated_packets_never_break_a_node(compiler: Compiler, plan: Image) -> None:
    """A traceroute packet with up to 4 random bytes changed, 150 times, and images of the
    wrong kind: each is run, forwarded or dropped with a reason; the simulator never fails."""
    good = compiler.compile(NET / "programs" / "traceroute.ccl").image.encode()
    corot = compiler.compile(ROOT / "missions" / "corot" / "configs" / "exo_e1.ccl").image
    rng = random.Random(16)
    net = network(compiler, plan)
    base = packet(net, good).encode()
    for k in range(150):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        net.receive(k * 1000, 1, bytes(data))
    net.inject(200, 1, packet(net, corot.encode()))
    net.inject(201, 1, packet(net, plan.encode()))
    report = net.run()
    assert report.complete
    reasons = {str(e.detail["reason"]) for e in report.trace if e.event == "drop"}
    # a name in `uses` mutated asks for a VMlet no node has; a kind mutated to a VMlet
    # packet's (6, 7) fails its tag
    assert reasons <= {"malformed", "refused", "trap", "resource-exhausted", "no-route",
                       "ttl-exhausted", "unknown-vmlet", "forged"}
    assert {"malformed", "refused"} <= reasons
    whys = [str(e.detail["why"]) for e in report.drops("refused")]
    assert any(w.startswith("wrong-mission") for w in whys)
    assert any(w.startswith("not-a-config") for w in whys)
