"""The sender's per-packet choice between PLAN and ANTS (ground/network/choice.py): the cost
model's properties, its wire bytes against the simulator's, the sender's estimate of what
the path caches, and every workload delivering the same with ``auto`` as by PLAN or ANTS."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccl.driver import Compiler
from ground.network.choice import (
    REACHES,
    ChoiceError,
    Estimate,
    History,
    Sent,
    Shape,
    Weights,
    ants_cost,
    choose,
    estimate,
    plan_cost,
    shape_of,
)
from ground.network.packet import code_id
from ground.network.scenario import (
    NetScenario,
    NetScenarioError,
    load_net_scenario,
    load_topology,
)
from ground.network.sender import NetResult, run_net_scenario
from ground.network.simulator import CacheSpec, LinkSpec, Topology

ROOT = Path(__file__).resolve().parents[2]
NET = ROOT / "missions" / "activenet"
LINE5 = load_topology(NET / "topologies" / "line5.toml")
CACHE = CacheSpec()  # the profile's [ants]: 4 entries, 1,024 bytes


@pytest.fixture(scope="module")
def compiler() -> Compiler:
    return Compiler()


@pytest.fixture(scope="module")
def choice_run(compiler: Compiler) -> NetResult:
    return run_net_scenario(load_net_scenario(NET / "scenarios" / "choice.toml"), compiler)


# ---------------------------------------------------------------- the model's properties

@st.composite
def topologies(draw: st.DrawFn) -> Topology:
    """A connected network of 2..8 nodes: a random tree and a few more links."""
    n = draw(st.integers(2, 8))
    links = {frozenset((k, draw(st.integers(1, k - 1)))) for k in range(2, n + 1)}
    for _ in range(draw(st.integers(0, 4))):
        a, b = draw(st.integers(1, n)), draw(st.integers(1, n))
        if a != b:
            links.add(frozenset((a, b)))
    return Topology("random", tuple(range(1, n + 1)),
                    tuple(LinkSpec(min(pair), max(pair), draw(st.integers(1, 5)) * 1000,
                                   1_000_000) for pair in sorted(links, key=sorted)))


@st.composite
def situations(draw: st.DrawFn) -> tuple[Shape, Estimate, Weights]:
    """A packet's shape on a random network, a random estimate and random weights."""
    topology = draw(topologies())
    source = draw(st.sampled_from(topology.nodes))
    dest = draw(st.sampled_from(topology.nodes))
    shape = shape_of(topology, source, dest, draw(st.sampled_from(REACHES)),
                     draw(st.booleans()))
    cached = draw(st.sets(st.sampled_from(shape.active)))
    weight = st.floats(0, 10, allow_nan=False)
    weights = Weights(draw(weight), draw(weight), draw(weight))
    return shape, Estimate(frozenset(cached), draw(st.integers(0, 20))), weights


@settings(max_examples=300, deadline=None)
@given(situations(), st.integers(0, CACHE.cache_bytes), st.integers(0, CACHE.cache_bytes))
def test_a_bigger_code_never_prefers_plan_more(situation: tuple[Shape, Estimate, Weights],
                                               a: int, b: int) -> None:
    shape, guess, weights = situation
    small, big = sorted((a, b))
    if choose(small, shape, guess, weights, CACHE).protocol == "ants":
        assert choose(big, shape, guess, weights, CACHE).protocol == "ants"


@settings(max_examples=300, deadline=None)
@given(situations(), st.integers(0, CACHE.cache_bytes), st.integers(0, 40),
       st.integers(0, 40))
def test_more_expected_reuse_never_prefers_plan_more(
        situation: tuple[Shape, Estimate, Weights], code: int, a: int, b: int) -> None:
    shape, guess, weights = situation
    less, more = sorted((a, b))
    if choose(code, shape, dataclasses.replace(guess, reuse=less), weights,
              CACHE).protocol == "ants":
        assert choose(code, shape, dataclasses.replace(guess, reuse=more), weights,
                      CACHE).protocol == "ants"


@settings(max_examples=200, deadline=None)
@given(situations(), st.integers(0, CACHE.cache_bytes))
def test_more_nodes_caching_the_code_never_prefers_plan_more(
        situation: tuple[Shape, Estimate, Weights], code: int) -> None:
    shape, guess, weights = situation
    if choose(code, shape, dataclasses.replace(guess, cached=frozenset()), weights,
              CACHE).protocol == "ants":
        assert choose(code, shape, guess, weights, CACHE).protocol == "ants"


def test_a_code_larger_than_a_cache_goes_plan_and_says_why() -> None:
    shape = shape_of(LINE5, 1, 5, "every-hop", True)
    choice = choose(CACHE.cache_bytes + 1, shape, Estimate(frozenset(), 100),
                    Weights(cache_byte=0), CACHE)
    assert choice.protocol == "plan" and choice.ants is None
    assert "do not fit a 1024-byte cache" in choice.why


def test_shapes_of_ping_and_traceroute_on_line5() -> None:
    ping = shape_of(LINE5, 1, 5, "ends", True)
    assert (ping.active, dict(ping.serve_hops), ping.links, ping.evaluations) == \
        ((1, 5), {5: 4}, 8, 3)
    trace = shape_of(LINE5, 1, 5, "every-hop", True)
    assert trace.active == (1, 2, 3, 4, 5) and set(trace.serve_hops.values()) == {1}
    assert (trace.links, trace.evaluations) == (4 + 1 + 2 + 3 + 4, 9)
    one_way = shape_of(LINE5, 2, 4, "ends", False)
    assert (one_way.active, one_way.links, one_way.evaluations) == ((2, 4), 2, 2)
    with pytest.raises(ChoiceError, match="cannot be reached"):
        shape_of(Topology("two", (1, 2), ()), 1, 2, "ends", True)


def test_the_documented_prices_of_a_ping() -> None:
    shape, weights = shape_of(LINE5, 1, 5, "ends", True), Weights()
    assert plan_cost(216, shape, weights).wire_bytes == (50 + 216) * 8
    first = ants_cost(216, shape, Estimate(frozenset(), 0), weights)
    assert first.wire_bytes == 66 * 8 + (66 + 66 + 216) * 4 and first.cache_bytes == 2 * 216
    shared = ants_cost(216, shape, Estimate(frozenset(), 1), weights)
    assert shared.total == 66 * 8 + ((66 + 66 + 216) * 4 + 2 * 216) / 2
    assert ants_cost(216, shape, Estimate(frozenset({1, 5}), 0), weights).total == 66 * 8


# ---------------------------------------------------------------- the sender's estimate

def sent(at_ms: int, code: bytes, size: int, dest: int, active: tuple[int, ...],
         protocol: str = "ants") -> Sent:
    return Sent(at_ms, code, size, dest, active, protocol)


def test_the_estimate_trusts_recent_ants_sends_only() -> None:
    weights, ping = Weights(), b"p" * 16
    shape = shape_of(LINE5, 1, 5, "ends", True)
    history = History().after(sent(0, ping, 216, 5, (1, 5)))
    assert estimate(history, 500, ping, 216, shape, weights, CACHE) == \
        Estimate(frozenset({1, 5}), 1)
    assert estimate(history, 1_001, ping, 216, shape, weights, CACHE) == \
        Estimate(frozenset(), 0)  # forgotten after remember_ms
    by_plan = History().after(sent(0, ping, 216, 5, (1, 5), "plan"))
    assert estimate(by_plan, 500, ping, 216, shape, weights, CACHE) == \
        Estimate(frozenset(), 1)  # reuse expected, nothing cached
    assert estimate(history, 500, ping, 216, shape, Weights(reuse=3), CACHE).reuse == 4


def test_the_estimate_follows_lru_eviction_and_partial_paths() -> None:
    weights, trace = Weights(), b"t" * 16
    to5 = shape_of(LINE5, 1, 5, "every-hop", True)
    history = History().after(sent(0, trace, 271, 3, (1, 2, 3)))
    assert estimate(history, 10, trace, 271, to5, weights, CACHE).cached == {1, 2, 3}
    # three other codes through nodes 1, 2 and 3 since: with this one, four entries: kept
    for k, code in enumerate((b"a" * 16, b"b" * 16, b"c" * 16)):
        history = history.after(sent(20 + k, code, 100, 3, (1, 2, 3)))
    assert estimate(history, 30, trace, 271, to5, weights, CACHE).cached == {1, 2, 3}
    # a fourth: five codes for 4 entries, the least recently used (this one) evicted
    history = history.after(sent(25, b"d" * 16, 100, 2, (1, 2)))
    assert estimate(history, 30, trace, 271, to5, weights, CACHE).cached == {3}
    # one big code since at node 2 only: 271 + 800 bytes do not fit 1,024
    history = History().after(sent(0, trace, 271, 3, (1, 2, 3))).after(
        sent(5, b"big".ljust(16), 800, 2, (1, 2)))
    assert estimate(history, 10, trace, 271, to5, weights, CACHE).cached == {3}


# ---------------------------------------------------------------- the model against the simulator

def test_the_models_wire_bytes_are_what_the_simulator_measures(choice_run: NetResult) -> None:
    """Each send of choice.toml is alone on the network in its window: the bytes the model
    predicts for the protocol chosen are the bytes the simulator sent."""
    sends = choice_run.scenario.sends
    ends = [s.at_ms for s in sends[1:]] + [10**9]
    for k, (send, end) in enumerate(zip(sends, ends, strict=True)):
        choice = choice_run.choices[k]
        assert choice is not None and send.dest is not None
        measured = sum(int(str(e.detail["bytes"])) for e in choice_run.report.trace
                       if e.event == "send" and send.at_ms * 1000 <= e.t_us < end * 1000)
        code = choice_run.program_bytes[send.program.name]
        shape = shape_of(choice_run.scenario.topology, send.node, send.dest, send.reach,
                         send.replies)
        once = dataclasses.replace(choice.estimate, reuse=0)  # the fetches not shared
        predicted = plan_cost(code, shape, Weights()) if choice.protocol == "plan" else \
            ants_cost(code, shape, once, Weights())
        assert predicted.wire_bytes == measured, (send.program.name, send.at_ms)


def test_choice_scenario_flips_as_documented(choice_run: NetResult) -> None:
    assert choice_run.ok, choice_run.expectations
    went = [choice_run.protocol(k) for k in range(len(choice_run.verdicts))]
    assert went == ["plan", "ants", "ants", "plan", "ants", "ants", "plan"]
    assert choice_run.protocols == {"plan": 3, "ants": 4, "auto_plan": 3, "auto_ants": 4}
    chooses = [e for e in choice_run.report.trace if e.event == "choose"]
    assert len(chooses) == 7 and chooses[2].detail["cached"] == [1, 5]
    assert chooses[1].detail["reuse"] == 1 and chooses[1].detail["cached"] == []
    meters = choice_run.report.nodes
    assert sum(m.plan_out for m in meters.values()) == 8 + 4 + 8 + 0  # ping, notify, ping
    assert not any(m.drops for m in meters.values())


# ---------------------------------------------------------------- same deliveries

def forced(scenario: NetScenario, protocol: str) -> NetScenario:
    return dataclasses.replace(scenario, sends=tuple(
        dataclasses.replace(s, protocol=protocol) for s in scenario.sends))


def first_of(scenario: NetScenario, program: str) -> NetScenario:
    """``scenario`` with the sends of ``program`` only, each three times (a reuse)."""
    sends = [s for s in scenario.sends if s.program.name == program][:1]
    return dataclasses.replace(scenario, expect=(), sends=tuple(
        dataclasses.replace(sends[0], at_ms=100 * k) for k in range(3)))


@pytest.mark.parametrize("program", ["ping.ccl", "traceroute.ccl", "survey.ccl",
                                     "notify.ccl"])
def test_each_workload_delivers_the_same_with_auto_as_by_plan_or_ants(
        compiler: Compiler, program: str) -> None:
    base = first_of(load_net_scenario(NET / "scenarios" / "choice.toml"), program)
    runs = {p: run_net_scenario(forced(base, p), compiler) for p in ("plan", "ants", "auto")}
    delivered = {p: {n: r.report.delivered(n) for n in r.report.nodes}
                 for p, r in runs.items()}
    if program == "ping.ccl":  # round trips differ: the same number of them
        assert {p: len(d[1]) for p, d in delivered.items()} == \
            {"plan": 3, "ants": 3, "auto": 3}
    else:
        assert delivered["auto"] == delivered["plan"] == delivered["ants"]
        assert any(delivered["auto"].values())
    for run in runs.values():
        assert not any(m.drops for m in run.report.nodes.values())
    assert runs["auto"].protocols["auto_plan"] + runs["auto"].protocols["auto_ants"] == 3


def test_ping_and_traceroute_cost_by_protocol(compiler: Compiler) -> None:
    """plan_and_ants-like runs (ping three times, then a traceroute): auto spends fewer bytes
    on the wire than PLAN, and holds no more code than ANTS."""
    scenario = load_net_scenario(NET / "scenarios" / "plan_and_ants.toml")
    sends = tuple(dataclasses.replace(s, dest=5, reach="every-hop" if "trace" in s.program.name
                                      else "ends") for s in scenario.sends)
    scenario = dataclasses.replace(scenario, sends=sends, expect=())
    runs = {p: run_net_scenario(forced(scenario, p), compiler) for p in ("plan", "ants", "auto")}
    wire = {p: r.report.wire_bytes for p, r in runs.items()}
    peak = {p: max(m.peak_cache_bytes for m in r.report.nodes.values()) for p, r in runs.items()}
    assert wire["auto"] < wire["plan"] and peak["auto"] <= peak["ants"]
    assert [runs["auto"].protocol(k) for k in range(4)] == ["plan", "ants", "ants", "ants"]


# ---------------------------------------------------------------- scenarios refused cleanly

def scenario_text(tmp_path: Path, head: str, send: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(f'[scenario]\ntopology = "{NET / "topologies" / "line5.toml"}"\n{head}\n'
                    f'[[send]]\nnode = 1\nprogram = "{NET / "programs" / "ping.ccl"}"\n{send}\n')
    return path


@pytest.mark.parametrize(("head", "send", "message"), [
    ('vmlets = ["plan", "ants"]', 'protocol = "auto"', "protocol `auto` needs `dest`"),
    ('vmlets = ["plan"]', 'protocol = "auto"\ndest = 5', "chooses between PLAN and ANTS"),
    ('vmlets = ["plan", "ants"]\nprotocol = "auto"', "", "protocol `auto` needs `dest`"),
    ('vmlets = ["plan", "ants"]', 'protocol = "auto"\ndest = 9', "node 9 is not in topology"),
    ('vmlets = ["plan", "ants"]', 'protocol = "auto"\ndest = 5\nreach = "all"',
     "reach `all` is neither of ends, every-hop"),
])
def test_bad_auto_sends_are_one_message(tmp_path: Path, head: str, send: str,
                                        message: str) -> None:
    with pytest.raises(NetScenarioError, match=message):
        load_net_scenario(scenario_text(tmp_path, head, send))


def test_a_bad_protocols_expectation_is_one_message(tmp_path: Path) -> None:
    path = scenario_text(tmp_path, "", "")
    path.write_text(path.read_text() + '[[expect]]\nprotocols = ["plan", "udp"]\n')
    with pytest.raises(NetScenarioError, match="`protocols` must list"):
        load_net_scenario(path)


def test_weights_of_the_profile_and_bad_tables(compiler: Compiler, tmp_path: Path) -> None:
    assert Weights.of(compiler.mission("activenet")) == \
        Weights(1.0, 1.0, 0.01, 0, 1_000)
    with pytest.raises(ChoiceError, match="must be >= 0"):
        Weights(cache_byte=-1)

    class Profile:  # what Weights.of reads of a profile: its directory
        directory = tmp_path

    (tmp_path / "mission.toml").write_text('[choice]\nwire_byte = "a lot"\n')
    with pytest.raises(ChoiceError, match="wire_byte must be a number"):
        Weights.of(Profile())  # type: ignore[arg-type]
    (tmp_path / "mission.toml").write_text("[choice]\nbyte = 1\n")
    with pytest.raises(ChoiceError, match="has no figure `byte`"):
        Weights.of(Profile())  # type: ignore[arg-type]
    assert code_id(b"x") != code_id(b"y")  # the history's keys tell codes apart


def test_a_bad_choice_table_stops_the_scenario_with_one_message(
        compiler: Compiler, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_profile: object) -> Weights:
        raise ChoiceError("[choice] cache_byte must be >= 0, not -1")

    monkeypatch.setattr("ground.network.sender.Weights.of", refuse)
    with pytest.raises(NetScenarioError) as caught:
        run_net_scenario(load_net_scenario(NET / "scenarios" / "choice.toml"), compiler)
    assert "mission.toml: [choice]" in caught.value.where
    assert "cache_byte must be >= 0" in caught.value.message
