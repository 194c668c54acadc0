"""The workloads beside ping and traceroute (issue 16, point 5): a flood with duplicate
suppression, a multicast that branches where routes diverge, and a reliable transfer over
lossy links; each a CCL program proven at the sender, run as PLAN packets and as ANTS
capsules on real VVM nodes (ground/network), with the node's soft state and timers of
VMlet-SoftState (missions/activenet/vmlets/softstate.ccl)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ccl.driver import Compiler
from ground.network.packet import NEIGHBOUR, Packet
from ground.network.scenario import Injection, NetScenario, load_net_scenario, load_topology
from ground.network.sender import NetResult, run_net_scenario
from ground.network.simulator import LinkSpec, Network, RunReport, Topology
from onboard.vm.host import mission_host
from onboard.vm.image import Image

ROOT = Path(__file__).resolve().parents[2]
NET = ROOT / "missions" / "activenet"
SCENARIOS = NET / "scenarios"
PROTOCOLS = ("plan", "ants")


@pytest.fixture(scope="module")
def compiler() -> Compiler:
    return Compiler()


def scenario(name: str) -> NetScenario:
    return load_net_scenario(SCENARIOS / f"{name}.toml")


def run(compiler: Compiler, sc: NetScenario, *, seed: int | None = None,
        protocol: str | None = None, sends: tuple[Injection, ...] | None = None) -> NetResult:
    """``sc`` run with another seed, or its sends all in ``protocol``, or other sends."""
    chosen = sends if sends is not None else sc.sends
    if protocol is not None:
        chosen = tuple(replace(s, protocol=protocol) for s in chosen)
    return run_net_scenario(replace(sc, seed=sc.seed if seed is None else seed,
                                    sends=chosen), compiler)


def program_sends(report: RunReport) -> list[dict[str, object]]:
    """The link crossings of the workload's packets (code requests and responses aside:
    those are the ``fetch``/``serve`` packets)."""
    code = {e.packet for e in report.trace if e.event in ("fetch", "serve")}
    return [e.to_json() for e in report.trace if e.event == "send" and e.packet not in code]


# ---------------------------------------------------------------------- the flood


def test_flood_scenario_delivers_once_everywhere_in_both_protocols(compiler: Compiler) -> None:
    result = run_net_scenario(scenario("flood"), compiler)
    assert result.ok, result.expectations
    assert all(v is not None and v.proven for _, v in result.verdicts)
    for node, meter in result.report.nodes.items():
        assert meter.delivered == [11, 22], node
        # two floods from node 1 marked at every node: two entries of the soft state
        assert meter.peak_state_bytes == meter.state_bytes == 2 * 12
    assert not any(m.drops for m in result.report.nodes.values())


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_flood_suppresses_duplicates_and_never_sends_back(compiler: Compiler, protocol: str,
                                                           seed: int) -> None:
    sc = scenario("flood")
    result = run(compiler, sc, seed=seed, protocol=protocol, sends=sc.sends[:1])
    report = result.report
    assert all(m.delivered == [11] for m in report.nodes.values())
    # every node passes the flood on once, to all its neighbours but the one it came from:
    # sum of degrees (14 on mesh6) less the 5 links the flood arrived on first, lost or not
    topology = sc.topology
    crossings = program_sends(report)
    assert len(crossings) == sum(len(topology.neighbours(n)) for n in topology.nodes) - 5
    # a PLAN packet carries the program (50 + 295 bytes), a capsule its identifier (50 + 16)
    size = 50 + (result.program_bytes["flood.ccl"] if protocol == "plan" else 16)
    assert sum(int(str(c["bytes"])) for c in crossings) == 9 * size
    if protocol == "plan":
        assert report.wire_bytes == 9 * size
    else:  # the rest is demand loading: a code request and its response per fetch
        fetches = sum(m.code_fetches for m in report.nodes.values())
        assert report.wire_bytes > 9 * size and fetches >= 5
    lost = {e.packet for e in report.trace if e.event == "lost"}
    evaluated = sum(m.evaluations for m in report.nodes.values())
    arrived = len([c for c in crossings if c["packet"] not in lost])
    assert evaluated == 1 + arrived  # the source's own evaluation, then one per arrival
    suppressed = evaluated - len(topology.nodes)
    assert suppressed > 0  # mesh6 brings copies by a second path: dropped where they arrive
    # a suppressed copy sends nothing: only first evaluations spawn
    parents = {e.detail["parent"] for e in report.trace if e.event == "spawn"}
    assert len(parents) == len(topology.nodes)


# ---------------------------------------------------------------------- the multicast


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_multicast_branches_where_routes_diverge_and_beats_unicasts(compiler: Compiler,
                                                                    protocol: str) -> None:
    sc = scenario("multicast")
    one = sc.sends[0]
    multicast = run(compiler, sc, protocol=protocol, sends=(one,)).report
    assert {n: m.delivered for n, m in multicast.nodes.items()} == \
        {1: [], 2: [], 3: [], 4: [], 5: [31], 6: [31], 7: [31]}
    crossings = [(e["node"], e["to"]) for e in program_sends(multicast)]
    # one copy a link: 1-2, then it branches at 2 (to 3 for 5 and 6, to 4 for 7) and at 3
    assert sorted(crossings) == [(1, 2), (2, 3), (2, 4), (3, 5), (3, 6), (4, 7)]
    # the same value to each member alone (a group of one is a hop-by-hop unicast)
    unicasts = tuple(replace(one, at_ms=100 * k, data=(31, 0, member) + (255,) * 5)
                     for k, member in enumerate((5, 6, 7)))
    unicast = run(compiler, sc, protocol=protocol, sends=unicasts).report
    assert [unicast.delivered(n) for n in (5, 6, 7)] == [[31], [31], [31]]
    assert len(program_sends(unicast)) == 9  # 1-2 three times, 2-3 twice
    assert multicast.wire_bytes < unicast.wire_bytes
    if protocol == "plan":  # the packet is the same size everywhere: 6 copies against 9
        sizes = {int(str(e["bytes"])) for e in program_sends(multicast)}
        assert len(sizes) == 1 and multicast.wire_bytes == 6 * sizes.pop()
        assert unicast.wire_bytes == 9 * multicast.wire_bytes // 6


def test_multicast_member_on_the_way_delivers_and_the_rest_go_on(compiler: Compiler) -> None:
    sc = scenario("multicast")
    send = replace(sc.sends[0], data=(40, 0, 3, 5, 2, 3, 255, 255))  # 3 listed twice
    report = run(compiler, sc, sends=(send,)).report
    assert {n: m.delivered for n, m in report.nodes.items()} == \
        {1: [], 2: [40], 3: [40], 4: [], 5: [40], 6: [], 7: []}
    assert sorted((e["node"], e["to"]) for e in program_sends(report)) == \
        [(1, 2), (2, 3), (3, 5)]


# ---------------------------------------------------------------------- reliable transfer


EXPECTED = [100 + s for s in range(8)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_reliable_transfer_exactly_once_in_order_despite_loss(compiler: Compiler,
                                                              protocol: str, seed: int) -> None:
    sc = scenario("reliable")
    result = run(compiler, sc, seed=seed, protocol=protocol, sends=sc.sends[:8])
    report = result.report
    assert report.complete
    assert report.delivered(4) == EXPECTED  # each segment once, in order
    assert all(report.delivered(n) == [] for n in (1, 2, 3))  # the source gave up on none
    assert any(e.event == "lost" for e in report.trace)  # the links did lose packets
    source = report.nodes[1]
    # every segment's timer ran at least once (the last acknowledgement cannot come back
    # before it fires at 100 ms), and lost segments were sent again
    segments = [e for e in program_sends(report) if e["node"] == 1]
    assert source.timers >= 8 and len(segments) > 8
    # the numbers kept: the source's acknowledged count, the destination's next segment
    assert source.peak_state_bytes == 12
    assert report.nodes[4].state_bytes == 12
    assert not report.nodes[1].drops and not report.nodes[4].drops.get("trap")


def test_reliable_scenario_two_flows_plan_then_ants(compiler: Compiler) -> None:
    result = run_net_scenario(scenario("reliable"), compiler)
    assert result.ok, result.expectations
    assert result.report.delivered(4) == EXPECTED + [200 + s for s in range(8)]


def test_a_dead_path_stops_the_transport_by_its_tries_and_bound(compiler: Compiler) -> None:
    """Over a link that loses everything, the source sends a segment at most 30 times (its
    program's TRIES), and never more than its resource bound pays for."""
    sc = scenario("reliable")
    dead = Topology("dead", (1, 2), (LinkSpec(1, 2, 2000, 1_000_000, 1.0),))
    one = replace(sc.sends[0], data=(0, 2, 1, 0, 100, 0, 20, 0))
    tries = run_net_scenario(replace(sc, topology=dead, sends=(one,)), compiler).report
    assert tries.complete and tries.delivered(2) == []
    # 30 sends, each with its timer; the last timer finds it unacknowledged and gives up,
    # telling node 1's application which segment
    assert len(program_sends(tries)) == 30 and tries.nodes[1].timers == 30
    assert tries.delivered(1) == [0]
    poor = run_net_scenario(replace(sc, topology=dead, sends=(replace(one, rb=30_000),)),
                            compiler).report
    assert poor.complete and len(program_sends(poor)) < 30
    assert poor.drops("resource-exhausted")


# ---------------------------------------------------------------------- the services


def test_soft_state_is_bounded_by_source_and_counted(compiler: Compiler) -> None:
    host = mission_host(compiler.mission("activenet"), 1)
    seen, get, put = (host.native(n) for n in ("seen", "getstate", "setstate"))
    assert seen is not None and get is not None and put is not None
    begin = host.begin  # type: ignore[attr-defined]
    state = host.state  # type: ignore[attr-defined]
    assert (state.spec.entries, state.spec.entry_bytes) == (64, 12)  # mission.toml [state]
    begin(1, 8, 100, (0,) * 8, 3)
    assert (seen(7), seen(7)) == (0, 1)
    begin(2, 8, 100, (0,) * 8, 3)
    assert seen(7) == 0  # another source, another key
    for key in range(100, 163):
        put(key, key)
    assert state.bytes == 64 * 12 and state.evictions == 1
    begin(1, 8, 100, (0,) * 8, 3)
    assert seen(7) == 0  # source 1's mark was the least recently used: evicted
    begin(2, 8, 100, (0,) * 8, 3)
    assert get(162) == 162 and get(100) == 100 and get(99) == 0
    put(100, 0)  # 0 removes
    assert get(100) == 0 and state.bytes == 63 * 12


WHENCE = """
mission activenet;
config whence version 1;
uses softstate;
task main every 10 ms {
    deliver(getprev() * 1000 + min(now_ms(), 999));
    if arg(0) == 0 {
        setarg(0, 1);
        onneighbor(min(arg(1), 254), 20000);
        setarg(0, 2);
        ontimer(40, 20000);
    }
}
"""


def test_getprev_is_the_node_that_last_evaluated_and_timers_wait(compiler: Compiler,
                                                                 tmp_path: Path) -> None:
    """A PLAN packet says where it was last evaluated (``prev``: itself at its source);
    a timer comes back to its node after its delay, crossing no link."""
    source = tmp_path / "whence.ccl"
    source.write_text(WHENCE, encoding="utf-8")
    soft = compiler.compile(NET / "vmlets" / "softstate.ccl")
    vmlets: list[Image] = [*(v.image for v in soft.vmlets), soft.image]
    net = Network(load_topology(NET / "topologies" / "line5.toml"),
                  compiler.mission("activenet"), vmlets)
    code = compiler.compile(source).image.encode()
    net.inject(0, 3, Packet(NEIGHBOUR, net.next_id(), 3, 3, 16, 100_000,
                            (0, 4) + (0,) * 6, code))
    report = net.run()
    assert report.delivered(3) == [3000, 3040]  # at the source, then its timer at 40 ms
    assert report.delivered(4) == [3000 + report.delivered(4)[0] % 1000]  # sent from 3
    timer = next(e for e in report.trace if e.event == "spawn" and "after_ms" in e.detail)
    assert (timer.node, timer.detail["after_ms"]) == (3, 40)
    back = [e for e in report.trace if e.event == "arrive" and e.packet == timer.packet]
    assert [(e.node, e.t_us) for e in back] == [(3, timer.t_us + 40_000)]
    assert report.nodes[3].timers == 1 and report.nodes[3].packets_out == 1
