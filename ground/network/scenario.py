"""Network scenarios as data: a topology (TOML), the VMlets every node boots with, the
programs senders inject, and what must happen (expectations).

A scenario file (``missions/activenet/scenarios/*.toml``)::

    [scenario]
    name = "ping"
    mission = "activenet"                 # the profile every node runs (default activenet)
    topology = "../topologies/line5.toml" # relative to this file
    vmlets = ["plan"]                     # from the mission's vmlets/, lower layers first
    seed = 1                              # losses are drawn from it
    protocol = "plan"                     # the sends' default protocol (default plan)
    until_ms = 60_000                     # optional: stop the clock there

    [[send]]                              # a packet injected at `node` at `at_ms`
    at_ms = 0
    node = 1
    program = "../programs/ping.ccl"
    data = [0, 5]                         # its data words (up to 8, the rest 0)
    rb = 20_000                           # resource bound, cycles
    ttl = 16                              # hops
    unverified = false                    # true: sent without the sender's proof
    protocol = "plan"                     # or "ants": a capsule naming its code (cached);
                                          # or "auto": the sender's choice (ground.network.choice)
    dest = 5                              # auto: the node the packet is for
    reach = "ends"                        # auto: evaluated at the ends only, or "every-hop"
    replies = true                        # auto: each node that runs it answers the source

    [[install]]                           # a VMlet packet: a protocol installed in band
    at_ms = 0
    node = 1                              # the sender's node (it installs it first)
    vmlet = "mark"                        # from the mission's vmlets/, compiled and proven
    flood = true                          # every node installs it once (false: at `dest`)
    dest = 3                              # without flood: the node to install it at
    ttl = 16
    forged = false                        # true: tagged with a key not the network's
    unverified = false                    # true: sent without the sender's proof

    [[expect]]                            # at node 1, exactly these values delivered
    node = 1
    delivered = [1282, 771]               # or `deliveries = N`: how many
    [[expect]]
    drop = "ttl-exhausted"                # at least one packet dropped for that reason
    count = 1                             # optional: exactly that many
    [[expect]]
    protocols = ["plan", "ants"]          # the protocol each send went by, in order
    [[expect]]
    installed = "mark"                    # exactly these nodes installed VMlet mark in band
    nodes = [1, 2, 3, 4, 5]

A topology file::

    [topology]
    name = "line5"
    nodes = [1, 2, 3, 4, 5]
    [[link]]
    a = 1
    b = 2
    latency_ms = 2.0                      # default 1
    bandwidth_bps = 1_000_000             # default 1 Mbit/s
    loss = 0.0                            # default 0
    [topology.variant]                    # optional: nodes running a variant of the
    3 = "slow"                            # profile ([variant.slow.*] of mission.toml)
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ground.network.choice import PROTOCOLS, REACHES
from ground.network.simulator import LinkSpec, Topology, TopologyError


class NetScenarioError(ValueError):
    """A scenario or topology file that cannot be run: ``where`` is the file and key."""

    def __init__(self, message: str, where: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.where, self.hint = message, where, hint


@dataclass(frozen=True)
class Injection:
    """A packet a sender injects."""

    at_ms: int
    node: int
    program: Path
    data: tuple[int, ...]
    rb: int
    ttl: int
    unverified: bool
    protocol: str = "plan"  # "plan": the packet carries its code; "ants": its identifier;
    # "auto": the sender chooses (ground.network.choice), from the packet's shape:
    dest: int | None = None  # the node it is for
    reach: str = "ends"  # evaluated at the two ends or at "every-hop" on the way
    replies: bool = True  # every node that evaluates it away from the source answers home


@dataclass(frozen=True)
class Install:
    """A VMlet packet a sender injects: the VMlet ``vmlet`` of the mission, installed at
    every node it reaches (``flood``) or at ``dest`` only."""

    at_ms: int
    node: int
    vmlet: str
    flood: bool
    dest: int
    ttl: int
    forged: bool = False  # tagged with a key other than the network's
    unverified: bool = False  # sent without the sender's proof


@dataclass(frozen=True)
class Expectation:
    """What a run must show: deliveries at a node, drops for a reason, or the nodes that
    installed a VMlet in band."""

    node: int | None = None
    delivered: tuple[int, ...] | None = None
    deliveries: int | None = None
    drop: str | None = None
    count: int | None = None
    protocols: tuple[str, ...] | None = None  # the protocol of each send, in order
    installed: str | None = None
    nodes: tuple[int, ...] = ()

    def describe(self) -> str:
        if self.protocols is not None:
            return f"sends go by {list(self.protocols)}"
        if self.installed is not None:
            return f"VMlet {self.installed} installed at nodes {list(self.nodes)}"
        if self.drop is not None:
            return f"packets dropped as {self.drop}" + \
                (f": exactly {self.count}" if self.count is not None else ": at least one")
        if self.delivered is not None:
            return f"node {self.node} delivers {list(self.delivered)}"
        return f"node {self.node} delivers {self.deliveries} values"


@dataclass(frozen=True)
class NetScenario:
    """A scenario, read and checked."""

    name: str
    path: Path
    mission: str
    topology: Topology
    vmlets: tuple[str, ...]
    seed: int
    until_ms: int | None
    sends: tuple[Injection, ...]
    expect: tuple[Expectation, ...]
    variants: Mapping[int, str] = field(default_factory=dict)  # node -> profile variant
    installs: tuple[Install, ...] = ()  # VMlet packets


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise NetScenarioError(f"cannot read {path}: {exc.strerror}", str(path)) from None
    except UnicodeDecodeError:
        raise NetScenarioError(f"{path} is not UTF-8 text", str(path),
                               "give a scenario file (TOML)") from None
    except tomllib.TOMLDecodeError as exc:
        raise NetScenarioError(f"{path}: not valid TOML: {exc}", str(path)) from None


def _int(table: Mapping[str, Any], key: str, where: str, default: int | None = None,
         lo: int = 0, hi: int = 1 << 31) -> int:
    value = table.get(key, default)
    if type(value) is not int or not lo <= value <= hi:
        raise NetScenarioError(f"`{key}` must be an integer in {lo}..{hi}, not {value!r}",
                               f"{where}.{key}")
    return value


def _beside(path: Path, name: object) -> Path:
    """``name``, relative to the folder of ``path``, without ``..`` steps (as shown)."""
    return Path(os.path.normpath(path.parent / str(name)))


def load_topology(path: Path) -> Topology:
    """Read a topology file."""
    return _topology(path)[0]


def _topology(path: Path) -> tuple[Topology, dict[int, str]]:
    """A topology file's topology and the profile variants of its nodes."""
    data = _read(path)
    where = f"{path}: [topology]"
    table = data.get("topology")
    if not isinstance(table, dict) or not isinstance(table.get("nodes"), list):
        raise NetScenarioError("no [topology] table with `nodes = [...]`", where)
    nodes = tuple(_int({"node": n}, "node", where, hi=254) for n in table["nodes"])
    links = []
    for k, link in enumerate(data.get("link", [])):
        at = f"{path}: [[link]] {k + 1}"
        latency = link.get("latency_ms", 1)
        loss = link.get("loss", 0.0)
        if not isinstance(latency, int | float) or not isinstance(loss, int | float):
            raise NetScenarioError("latency_ms and loss must be numbers", at)
        links.append(LinkSpec(_int(link, "a", at, hi=254), _int(link, "b", at, hi=254),
                              round(latency * 1000),
                              _int(link, "bandwidth_bps", at, 1_000_000, lo=1),
                              float(loss)))
    variants = {}
    for node, variant in dict(table.get("variant", {})).items():
        if not str(node).isdigit() or int(node) not in nodes or not isinstance(variant, str):
            raise NetScenarioError(f"variant of `{node}`: give a node of the topology and "
                                   "a variant name", f"{where}.variant")
        variants[int(node)] = variant
    try:
        return Topology(str(table.get("name", path.stem)), nodes, tuple(links)), variants
    except TopologyError as exc:
        raise NetScenarioError(str(exc), where) from None


def load_net_scenario(path: Path) -> NetScenario:
    """Read and check a scenario file and its topology (paths relative to the file)."""
    data = _read(path)
    head = data.get("scenario")
    where = f"{path}: [scenario]"
    if not isinstance(head, dict) or "topology" not in head:
        raise NetScenarioError("no [scenario] table with a `topology`", where,
                               "see missions/activenet/scenarios/ping_traceroute.toml")
    topology, variants = _topology(_beside(path, head["topology"]))
    vmlets = tuple(str(v) for v in head.get("vmlets", ["plan"]))
    default = _protocol(head.get("protocol", "plan"), f"{where}.protocol", vmlets)
    sends = []
    for k, s in enumerate(data.get("send", [])):
        at = f"{path}: [[send]] {k + 1}"
        words = s.get("data", [])
        if not isinstance(words, list) or len(words) > 8:
            raise NetScenarioError("`data` must be a list of at most 8 words", f"{at}.data")
        data_words = tuple(_int({"data": w}, "data", at, hi=1_000_000_000) for w in words)
        node = _int(s, "node", at, hi=254)
        if node not in topology.nodes:
            raise NetScenarioError(f"node {node} is not in topology `{topology.name}`",
                                   f"{at}.node")
        if "program" not in s:
            raise NetScenarioError("no `program`", at)
        protocol = _protocol(s.get("protocol", default), f"{at}.protocol", vmlets)
        dest = _node(s, "dest", at, topology) if "dest" in s else None
        if protocol == "auto" and dest is None:
            raise NetScenarioError("protocol `auto` needs `dest`: the node the packet is for",
                                   f"{at}.dest", "the sender prices the packet's way there")
        reach = str(s.get("reach", "ends"))
        if reach not in REACHES:
            raise NetScenarioError(f"reach `{reach}` is neither of {', '.join(REACHES)}",
                                   f"{at}.reach")
        sends.append(Injection(_int(s, "at_ms", at, 0), node, _beside(path, s["program"]),
                               data_words + (0,) * (8 - len(data_words)),
                               _int(s, "rb", at, 20_000, hi=1_000_000),
                               _int(s, "ttl", at, 16, hi=255), bool(s.get("unverified")),
                               protocol, dest, reach, bool(s.get("replies", True))))
    installs = []
    for k, i in enumerate(data.get("install", [])):
        at = f"{path}: [[install]] {k + 1}"
        node = _node(i, "node", at, topology)
        if not isinstance(i.get("vmlet"), str) or not i["vmlet"].isidentifier():
            raise NetScenarioError("`vmlet` must name a VMlet of the mission (`vmlets/NAME.ccl`)",
                                   f"{at}.vmlet")
        flood = bool(i.get("flood", True))
        installs.append(Install(_int(i, "at_ms", at, 0), node, i["vmlet"], flood,
                                node if flood else _node(i, "dest", at, topology, node),
                                _int(i, "ttl", at, 16, hi=255), bool(i.get("forged")),
                                bool(i.get("unverified"))))
    expect = []
    for k, e in enumerate(data.get("expect", [])):
        at = f"{path}: [[expect]] {k + 1}"
        if "protocols" in e:
            chosen = e["protocols"]
            if not isinstance(chosen, list) or any(p not in ("plan", "ants") for p in chosen):
                raise NetScenarioError("`protocols` must list `plan` or `ants` for each send",
                                       f"{at}.protocols")
            expect.append(Expectation(protocols=tuple(chosen)))
        elif "installed" in e:
            nodes = e.get("nodes", [])
            if not isinstance(nodes, list):
                raise NetScenarioError("`nodes` must be a list of node addresses",
                                       f"{at}.nodes")
            expect.append(Expectation(installed=str(e["installed"]), nodes=tuple(sorted(
                _node({"nodes": n}, "nodes", at, topology) for n in nodes))))
        elif "drop" in e:
            expect.append(Expectation(drop=str(e["drop"]),
                                      count=_int(e, "count", at) if "count" in e else None))
        elif "delivered" in e or "deliveries" in e:
            node = _int(e, "node", at, hi=254)
            delivered = e.get("delivered")
            expect.append(Expectation(
                node=node,
                delivered=None if delivered is None else
                tuple(_int({"v": v}, "v", at, hi=1_000_000_000) for v in delivered),
                deliveries=_int(e, "deliveries", at) if "deliveries" in e else None))
        else:
            raise NetScenarioError("an expectation needs `drop`, `protocols`, `installed`, or "
                                   "`node` with `delivered` or `deliveries`", at)
    until = head.get("until_ms")
    return NetScenario(str(head.get("name", path.stem)), path,
                       str(head.get("mission", "activenet")), topology,
                       vmlets,
                       _int(head, "seed", where, 1),
                       None if until is None else _int(head, "until_ms", where),
                       tuple(sends), tuple(expect), variants, tuple(installs))


def _node(table: Mapping[str, Any], key: str, where: str, topology: Topology,
          default: int | None = None) -> int:
    """``table[key]``: a node of ``topology``."""
    node = _int(table, key, where, default, hi=254)
    if node not in topology.nodes:
        raise NetScenarioError(f"node {node} is not in topology `{topology.name}`",
                               f"{where}.{key}")
    return node


def _protocol(value: object, where: str, vmlets: tuple[str, ...]) -> str:
    """A send's protocol: ``auto`` only with VMlet-ANTS loaded (it chooses between both)."""
    if value not in PROTOCOLS:
        raise NetScenarioError(f"protocol `{value}` is neither `plan`, `ants` nor `auto`",
                               where)
    if value == "auto" and "ants" not in vmlets:
        raise NetScenarioError("protocol `auto` chooses between PLAN and ANTS: load both",
                               where, 'vmlets = ["plan", "ants"]')
    return str(value)
