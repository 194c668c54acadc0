"""The hand-written Python router (missions/activenet/reference/) that VMlet-PLAN and
VMlet-ANTS are measured against (benchmarks/active_networks.py) is a real router: on the
same scenarios it delivers what the VVM routers deliver, PLAN and ANTS alike; its code
cache misses, fetches and then hits; TTL and resource bound stop packets.

Ping's round trip is a time, and the two simulators model time differently (the reference
has no bandwidth and no CPU time), so pings compare by count and the rest value by value."""

from __future__ import annotations

from pathlib import Path

import pytest

from ground.network.scenario import NetScenario, load_net_scenario
from ground.network.sender import run_net_scenario
from missions.activenet.reference.network import ReferenceNetwork
from missions.activenet.reference.programs import PROGRAMS
from missions.activenet.reference.router import Packet, Router, code_id

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "missions" / "activenet" / "scenarios"


def reference_of(scenario: NetScenario) -> ReferenceNetwork:
    """The scenario's topology and sends on reference routers."""
    topology = scenario.topology
    network = ReferenceNetwork(
        {n: topology.neighbours(n) for n in topology.nodes},
        {n: topology.routes(n) for n in topology.nodes},
        {frozenset((k.a, k.b)): k.latency_us / 1000 for k in topology.links})
    for send in scenario.sends:
        code = PROGRAMS[send.program.name]
        ants = send.protocol == "ants"
        packet = Packet("capsule" if ants else "plan", False, send.node, send.node, send.ttl,
                        send.rb, send.data, code_id(code) if ants else code)
        network.inject(send.at_ms, send.node, packet, code if ants else b"")
    return network


def split(values: list[int]) -> tuple[int, list[int]]:
    """Round trips (under 256 ms here: a multicast's values too) counted; traceroute
    reports (hop * 256 + router) kept."""
    return sum(v < 256 for v in values), [v for v in values if v >= 256]


@pytest.mark.parametrize("name", ["ping_traceroute", "ants_ping_traceroute",
                                  "plan_and_ants", "multicast"])
def test_delivers_what_the_vvm_routers_deliver(name: str) -> None:
    scenario = load_net_scenario(SCENARIOS / f"{name}.toml")
    vvm = run_net_scenario(scenario)
    assert vvm.ok
    reference = reference_of(scenario).run()
    for node in scenario.topology.nodes:
        assert split(reference[node]) == split(vvm.report.delivered(node)), node
    assert any(reference.values())
    if name == "multicast":  # every member delivers each packet once, nobody else
        assert {n: v for n, v in reference.items() if v} == {5: [31, 32], 6: [31, 32],
                                                             7: [31, 32]}
    else:
        pings, reports = split(reference[1])
        assert pings >= 1 and reports[:4] == [258, 515, 772, 1029]


def test_a_capsule_miss_fetches_the_code_and_the_next_capsule_hits() -> None:
    scenario = load_net_scenario(SCENARIOS / "plan_and_ants.toml")
    network = reference_of(scenario)
    network.run()
    target = network.routers[5]
    assert target.misses == 2  # ping's code, then traceroute's: each fetched from node 4
    assert target.hits == 1  # the second ANTS ping
    assert len(target.cache) == 2 and not target.waiting
    assert {len(network.routers[n].cache) for n in (2, 3, 4)} == {1}  # traceroute only


def test_the_cache_evicts_the_least_recently_used_code() -> None:
    router = Router(1, (2,), {2: 2}, cache_entries=1)
    ping, trace = PROGRAMS["ping.ccl"], PROGRAMS["traceroute.ccl"]
    capsule = Packet("capsule", False, 1, 1, 16, 20_000, (0, 2) + (0,) * 6, code_id(ping))
    router.inject(capsule, ping, 0)
    router.inject(capsule, trace, 0)  # a second code: the first is evicted
    assert list(router.cache) == [code_id(trace)]


def test_ttl_and_resource_bound_stop_packets() -> None:
    router = Router(1, (2,), {2: 2, 3: 2})
    ping = PROGRAMS["ping.ccl"]
    out = router.inject(Packet("plan", False, 1, 1, 0, 20_000, (0, 3) + (0,) * 6, ping), b"",
                        0)
    assert out == [] and router.drops == ["ttl-exhausted"]
    out = router.inject(Packet("plan", False, 1, 1, 8, 500, (0, 3) + (0,) * 6, ping), b"", 0)
    assert out == [] and router.drops[-1] == "resource-exhausted"
    ((hop, sent),) = router.inject(Packet("plan", False, 1, 1, 8, 20_000, (0, 3) + (0,) * 6,
                                          ping), b"", 0)
    assert (hop, sent.ttl, sent.dest, sent.rb, sent.words[0]) == (2, 7, 3, 19_300, 1)
    lost = Router(9, (), {})
    assert lost.receive(sent, 0) == [] and lost.drops == ["no-route"]
