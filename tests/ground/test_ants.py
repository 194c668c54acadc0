"""VMlet-ANTS in the network simulator (ground/network): capsules that name their code by
identifier, each node's bounded code cache, demand loading from the node before; every node
a real VVM with VMlet-PLAN and VMlet-ANTS loaded at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccl.driver import Compiler
from ground.network.packet import (
    CAPSULE_NEIGHBOUR,
    CAPSULE_REMOTE,
    CODE_ID_BYTES,
    CODE_REQUEST,
    CODE_RESPONSE,
    Packet,
    PacketError,
    code_id,
    decode_packet,
)
from ground.network.scenario import load_net_scenario, load_topology
from ground.network.sender import run_net_scenario
from ground.network.simulator import CacheSpec, LinkSpec, Network, RunReport, Topology
from onboard.vm.image import Image

ROOT = Path(__file__).resolve().parents[2]
NET = ROOT / "missions" / "activenet"


@pytest.fixture(scope="module")
def compiler() -> Compiler:
    return Compiler()


@pytest.fixture(scope="module")
def vmlets(compiler: Compiler) -> list[Image]:
    """VMlet-PLAN and VMlet-ANTS (layered on PLAN), as every node boots them."""
    ants = compiler.compile(NET / "vmlets" / "ants.ccl")
    return [*(v.image for v in ants.vmlets), ants.image]


@pytest.fixture(scope="module")
def codes(compiler: Compiler) -> dict[str, bytes]:
    return {name: compiler.compile(NET / "programs" / f"{name}.ccl").image.encode()
            for name in ("ping", "traceroute")}


def network(compiler: Compiler, vmlets: list[Image], topology: Topology | None = None,
            seed: int = 1, cache: CacheSpec | None = None) -> Network:
    return Network(topology or load_topology(NET / "topologies" / "line5.toml"),
                   compiler.mission("activenet"), vmlets, seed, cache=cache)


def capsule(net: Network, code: bytes, data: tuple[int, ...] = (0, 5), rb: int = 20_000
            ) -> Packet:
    return Packet(CAPSULE_NEIGHBOUR, net.next_id(), 1, 1, 16, rb,
                  data + (0,) * (8 - len(data)), code_id(code))


def events(report: RunReport, kind: str, node: int | None = None) -> list[dict[str, object]]:
    return [e.to_json() for e in report.trace
            if e.event == kind and (node is None or e.node == node)]


def test_ping_and_traceroute_deliver_as_ants_capsules_beside_plan() -> None:
    ants = run_net_scenario(load_net_scenario(NET / "scenarios" / "ants_ping_traceroute.toml"))
    plan = run_net_scenario(load_net_scenario(NET / "scenarios" / "ping_traceroute.toml"))
    assert ants.ok, ants.expectations
    got = ants.report.delivered(1)
    assert got[1:] == plan.report.delivered(1)[1:] == [258, 515, 772, 1029]
    assert got[0] > plan.report.delivered(1)[0]  # the first ping waits for code fetches
    nodes = ants.report.nodes
    # the sender holds both codes; every other evaluating node fetched each code it ran once
    assert nodes[1].code_fetches == 0 and nodes[1].cache_hits == 7
    assert [nodes[n].code_fetches for n in (2, 3, 4, 5)] == [1, 1, 1, 2]
    assert nodes[5].peak_cache_bytes == sum(ants.program_bytes.values())  # both codes held
    assert not any(m.drops for m in nodes.values())
    # capsules carry 16 bytes of identifier, not the program: the routers' load cycles are
    # paid once per code, not once per packet
    assert nodes[1].load_cycles < plan.report.nodes[1].load_cycles


def test_a_miss_fetches_the_code_and_the_next_capsule_hits(
        compiler: Compiler, vmlets: list[Image], codes: dict[str, bytes]) -> None:
    net = network(compiler, vmlets)
    for at in (0, 200):
        net.inject(at, 1, capsule(net, codes["ping"]), codes["ping"])
    report = net.run()
    assert report.delivered(1)[1] < report.delivered(1)[0]  # the second ping waits for none
    (fetch,) = events(report, "fetch")
    assert fetch["node"] == 5 and fetch["from"] == 1
    (served,) = events(report, "serve")
    assert served["node"] == 1 and served["bytes"] == 50 + CODE_ID_BYTES + len(codes["ping"])
    assert report.nodes[5].cache_misses == 1 and report.nodes[5].cache_hits == 1
    assert report.nodes[5].load_cycles > 0
    assert report.nodes[1].cache_hits == 4  # two pings, each evaluated twice at home


def test_a_full_cache_evicts_the_least_recently_used_code(
        compiler: Compiler, vmlets: list[Image], codes: dict[str, bytes]) -> None:
    net = network(compiler, vmlets, cache=CacheSpec(cache_entries=1))
    net.inject(0, 1, capsule(net, codes["ping"]), codes["ping"])
    net.inject(100, 1, capsule(net, codes["traceroute"]), codes["traceroute"])
    net.inject(300, 1, capsule(net, codes["ping"]), codes["ping"])
    report = net.run()
    assert len(report.delivered(1)) == 6  # ping, four traceroute reports, ping
    evicted = events(report, "evict", 1)
    assert [e["code"] for e in evicted] == [code_id(codes["ping"]).hex()[:8],
                                            code_id(codes["traceroute"]).hex()[:8]]
    assert report.nodes[5].evictions == 2  # ping, then traceroute, then ping again
    assert report.nodes[5].code_fetches == 3
    assert all(m.cache_bytes <= max(map(len, codes.values())) for m in report.nodes.values())


def test_code_whose_hash_does_not_match_is_refused_as_forged(
        compiler: Compiler, vmlets: list[Image], codes: dict[str, bytes]) -> None:
    net = network(compiler, vmlets)
    net.inject(0, 1, capsule(net, codes["ping"]), codes["ping"])
    # before node 1's answer reaches node 5, someone answers its request with other code
    forged = Packet(CODE_RESPONSE, 999, 4, 5, 1, 0, (0,) * 8,
                    code_id(codes["ping"]) + codes["traceroute"])
    assert decode_packet(forged.encode()) == forged
    net.receive(15_000, 5, forged.encode())  # node 5 waits from 10.7 ms
    report = net.run()
    (drop,) = report.drops("forged")
    assert drop.node == 5 and drop.packet == 999
    assert code_id(codes["traceroute"]).hex()[:8] in str(drop.detail["why"])
    cached = events(report, "cache", 5)
    assert [c["program"] for c in cached] == ["ping"]  # the real code, after the forgery
    assert len(report.delivered(1)) == 1


def lossy(loss: float) -> Topology:
    return Topology("lossy3", (1, 2, 3), (LinkSpec(1, 2, 2000, 1_000_000, loss),
                                          LinkSpec(2, 3, 2000, 1_000_000, loss)))


def test_the_code_fetch_retries_under_loss_or_drops_with_a_reason(
        compiler: Compiler, vmlets: list[Image], codes: dict[str, bytes]) -> None:
    outcomes = set()
    for seed in range(30):  # the draws are per link direction: 30 seeds show both outcomes
        net = network(compiler, vmlets, lossy(0.3), seed)
        net.inject(0, 1, capsule(net, codes["ping"], (0, 3)), codes["ping"])
        report = net.run()
        retried = any(f["try"] > 1 for f in events(report, "fetch"))
        failed = report.drops("code-fetch-failed")
        assert len(events(report, "fetch", 3)) <= 1 + CacheSpec().fetch_retries
        if failed:
            assert "did not come from node 1 after 3 requests" in str(failed[0].detail["why"])
        outcomes.add((retried, bool(report.delivered(1)), bool(failed)))
    assert (True, True, False) in outcomes  # a lost request or answer, asked again, delivered
    assert (True, False, True) in outcomes  # every request or answer lost: dropped, why
    net = network(compiler, vmlets, lossy(1.0))  # nothing crosses: asked 3 times, dropped
    net.receive(0, 3, capsule(net, codes["ping"], (1, 3)).but(prev=1).encode())
    report = net.run()
    (failed,) = report.drops("code-fetch-failed")
    assert failed.node == 3 and len(events(report, "fetch", 3)) == 3


def test_a_node_that_lost_the_code_answers_nothing_and_the_capsule_is_dropped(
        compiler: Compiler, vmlets: list[Image], codes: dict[str, bytes]) -> None:
    net = network(compiler, vmlets)
    net.receive(0, 3, capsule(net, codes["ping"], (1, 3)).but(prev=1).encode())
    report = net.run()
    assert len(report.drops("code-unknown")) == 3 and report.drops("code-fetch-failed")


def test_ants_runs_are_deterministic_for_a_seed(
        compiler: Compiler, vmlets: list[Image], codes: dict[str, bytes]) -> None:
    def run(seed: int) -> list[dict[str, object]]:
        net = network(compiler, vmlets, lossy(0.3), seed)
        net.inject(0, 1, capsule(net, codes["traceroute"], (0, 3), 30_000),
                   codes["traceroute"])
        return [e.to_json() for e in net.run().trace]

    assert run(4) == run(4)


def test_plan_packets_and_ants_capsules_share_nodes_with_both_vmlets_loaded() -> None:
    result = run_net_scenario(load_net_scenario(NET / "scenarios" / "plan_and_ants.toml"))
    assert result.ok, result.expectations
    assert result.scenario.vmlets == ("plan", "ants")
    plan_rtt, first_rtt, cached_rtt, *reports = result.report.delivered(1)
    assert reports == [258, 515, 772, 1029]
    # by value: the program reloaded at every evaluation; by name: the first capsule waits
    # for its code, the next finds it cached and carries 16 bytes instead of 216
    assert cached_rtt < plan_rtt < first_rtt
    node5 = result.report.nodes[5]
    assert node5.evaluations == 4 and node5.cache_hits == 1 and node5.cache_misses == 2
    kinds = {e.packet: e.event for e in result.report.trace if e.node == 5
             and e.event in ("hit", "miss")}
    assert len(kinds) == 3  # the PLAN ping's evaluation at 5 touched no cache


def test_capsules_and_code_packets_round_trip_and_a_short_identifier_is_malformed(
        codes: dict[str, bytes]) -> None:
    key = code_id(codes["ping"])
    assert len(key) == CODE_ID_BYTES == 16
    for kind, code in ((CAPSULE_REMOTE, key), (CODE_REQUEST, key),
                       (CODE_RESPONSE, key + codes["ping"])):
        p = Packet(kind, 3, 1, 5, 9, 100, (1,) * 8, code, prev=2)
        assert decode_packet(p.encode()) == p
    assert Packet(CAPSULE_REMOTE, 3, 1, 5, 9, 100, (1,) * 8, key).size == 66
    with pytest.raises(PacketError) as err:
        decode_packet(Packet(CAPSULE_REMOTE, 3, 1, 5, 9, 100, (1,) * 8, key[:8]).encode())
    assert (err.value.field, err.value.offset) == ("code", 50)
    with pytest.raises(PacketError) as err:
        decode_packet(Packet(CODE_REQUEST, 3, 1, 5, 9, 100, (1,) * 8, key, prev=255).encode())
    assert (err.value.field, err.value.offset) == ("prev", 11)
