"""The sender's per-packet choice between VMlet-PLAN and VMlet-ANTS: a cost model.

With both VMlets loaded in every node, a sender may send a packet's program by value (a
PLAN packet: the code on every link it crosses) or by name (an ANTS capsule: a 16-byte
identifier, the code fetched once by each node that runs it and kept in its cache). The
first spends bytes on the wire, the second memory held in the nodes along the path. This
module prices both for one packet, from what the sender knows without asking any node:

* the packet's **shape** (:class:`Shape`): the links it and its descendants cross, the
  nodes that evaluate it, and, for each of those, the node that would serve it the code,
  derived from the routing tables and the links' loss figures (:func:`shape_of`): a packet
  run at its ends or at every hop (ping, traceroute), resent until its reply comes home (a
  reliable transfer), a flood, or a multicast to members named in its data words;
* what it sent by ANTS lately (:class:`History`), from which it estimates which of those
  nodes still cache the code (:func:`estimate`) and how many more packets of this code to
  the same targets it expects (the reuse);
* the profile's weights (:class:`Weights`, the ``[choice]`` table of mission.toml).

On a lossy path the figures are expectations: a packet sent along a path crosses a link
only if it got that far, a fetch is repeated until its request and its response both
arrive, and a node's fetch and cache entry count with the chance that the packet runs
there. On a lossless network they are exact counts.

Costs are in wire-byte units: one byte crossing one link costs ``wire_byte``; one byte of
code held in one node's cache for as long as it stays costs ``cache_byte``; one byte of a
PLAN program held by a node while it loads and runs it costs ``transient_byte``. For a
program of ``C`` code bytes, a packet crossing ``L`` links in all, evaluated ``E`` times:

* PLAN: ``wire_byte * (HEADER + C) * L + transient_byte * C * E``;
* ANTS: ``wire_byte * (HEADER + ID) * L`` plus, for the ``n = 1 + reuse`` packets the
  sender expects to send while the code stays, a one-time cost shared among them:
  for each node estimated not to hold it, a code request and its response over the ``d``
  hops back to the node that serves it, ``wire_byte * (2 * (HEADER + ID) + C) * d`` on a
  lossless path, and ``cache_byte * C`` for the code held in its cache.

The sender chooses ANTS when its cost is lower, PLAN otherwise (ties, and a code larger than
a node's cache, go PLAN). Two properties hold by construction and are tested: a bigger code
never makes PLAN more preferred (ANTS's fixed costs exceed PLAN's and the shape does not
depend on ``C``, so the difference ``ANTS - PLAN`` is a line in ``C`` starting at zero or
above: once it is below zero it stays so),
and more expected reuse never makes PLAN more preferred (reuse only divides ANTS's one-time
costs).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ground.network.packet import CODE_ID_BYTES, HEADER_BYTES
from ground.network.simulator import CacheSpec, Topology
from onboard.mission import MissionProfile

#: What a [[send]] may ask for: one of the protocols, or the sender's choice.
PROTOCOLS = ("plan", "ants", "auto")
#: How a packet's program travels: evaluated at the two ends only (PLAN's OnRemote, routers
#: on the way forward it without running it), at every node on the way (OnNeighbor), at
#: every node of the network (a flood: each node passes it on once, on every link but the
#: one it came by) or along the routes to the members named in its data words (a
#: multicast: one copy a link, branching where the routes diverge).
REACHES = ("ends", "every-hop", "flood", "members")
#: Reaches whose packets are for several nodes: no ``dest``, and no replies by default.
GROUP_REACHES = ("flood", "members")
#: A data word naming no member of a multicast (programs/multicast.ccl's ``NONE``).
NO_MEMBER = 255


class ChoiceError(ValueError):
    """A ``[choice]`` table or a packet shape the model cannot price."""


@dataclass(frozen=True)
class Weights:
    """The profile's ``[choice]`` table: what a byte on the wire and a byte held cost."""

    wire_byte: float = 1.0  # one byte crossing one link
    cache_byte: float = 1.0  # one byte of code in one node's cache, for as long as it stays
    transient_byte: float = 0.01  # one byte of a PLAN program held while it loads and runs
    reuse: int = 0  # packets of a code to its targets expected beyond those seen lately
    remember_ms: int = 1_000  # how long the sender trusts that a code it sent stays cached

    def __post_init__(self) -> None:
        for name in ("wire_byte", "cache_byte", "transient_byte", "reuse", "remember_ms"):
            if getattr(self, name) < 0:
                raise ChoiceError(f"[choice] {name} must be >= 0, not {getattr(self, name)}")

    @staticmethod
    def of(profile: MissionProfile) -> Weights:
        """The ``[choice]`` table of ``profile``'s mission.toml (defaults where absent)."""
        path = profile.directory / "mission.toml"
        table: Mapping[str, Any] = tomllib.loads(path.read_text(encoding="utf-8")).get(
            "choice", {}) if path.is_file() else {}
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key not in Weights.__dataclass_fields__:
                raise ChoiceError(f"[choice] has no figure `{key}`")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ChoiceError(f"[choice] {key} must be a number, not {value!r}")
            values[key] = int(value) if key in ("reuse", "remember_ms") else float(value)
        return Weights(**values)


@dataclass(frozen=True)
class Shape:
    """Where one packet and its descendants go, as its sender plans it.

    ``targets`` are the nodes it is for (its destination, the members, every node of a
    flood): packets of one code to the same targets are what the sender expects to reuse
    a cached code. ``active`` are the nodes that evaluate it, the sender's own node first;
    ``serve_hops`` gives, for each of them but the sender, the hops to the node that
    evaluated it before (which holds the code and would serve it), and ``fetch`` the
    expected links a code request and its response cross for one fetch that succeeds
    (``serve_hops`` each on a lossless path; ``inf`` if none can), ``chance`` the
    probability that it runs there at all (1 without loss). ``links`` is how many
    links the packet and its descendants are expected to cross in all, ``evaluations`` how
    many times they are expected to run, ``tries`` how many times the packet is sent (more
    than one: resent until its reply comes home); ``note`` says it in words.
    """

    source: int
    targets: frozenset[int]
    active: tuple[int, ...]
    serve_hops: Mapping[int, int]
    fetch: Mapping[int, tuple[float, float]]
    chance: Mapping[int, float]
    links: float
    evaluations: float
    tries: float = 1.0
    note: str = ""


@dataclass(frozen=True)
class Estimate:
    """What the sender believes of the path for one code: the nodes that still hold it and
    the packets of it it expects to send beyond this one."""

    cached: frozenset[int]
    reuse: int


@dataclass(frozen=True)
class Cost:
    """One protocol's price for one packet: its parts and their weighted sum."""

    wire_bytes: float  # bytes times links crossed (one-time costs shared among the packets)
    cache_bytes: float  # bytes held in caches (shared likewise)
    transient_bytes: float  # PLAN: bytes held while loading and running
    total: float

    def to_json(self) -> dict[str, float]:
        return {"wire_bytes": round(self.wire_bytes, 2),
                "cache_bytes": round(self.cache_bytes, 2),
                "transient_bytes": round(self.transient_bytes, 2),
                "total": round(self.total, 2)}


@dataclass(frozen=True)
class Choice:
    """The sender's decision for one packet, with both prices and the estimate used."""

    protocol: str  # "plan" or "ants"
    plan: Cost
    ants: Cost | None  # None: the code does not fit a node's cache
    estimate: Estimate
    why: str
    shape: str = ""  # the packet's shape in words (Shape.note)

    def to_json(self) -> dict[str, object]:
        return {"protocol": self.protocol, "plan": self.plan.to_json(),
                "ants": None if self.ants is None else self.ants.to_json(),
                "cached": sorted(self.estimate.cached), "reuse": self.estimate.reuse,
                "why": self.why, "shape": self.shape}


def _path(topology: Topology, a: int, b: int) -> list[int]:
    """The nodes from ``a`` to ``b`` along the routing tables (``[a]`` when they are one)."""
    path = [a]
    while path[-1] != b:
        hop = topology.routes(path[-1]).get(b)
        if hop is None:
            raise ChoiceError(f"node {b} cannot be reached from node {a}")
        path.append(hop)
    return path


def _along(topology: Topology, path: Sequence[int]) -> tuple[float, float]:
    """One packet sent along ``path``: the links it is expected to cross (it is sent on a
    link only if it got there; a lost packet has crossed the link it was lost on), and the
    probability that it arrives."""
    crossed, arrives = 0.0, 1.0
    for a, b in zip(path, path[1:], strict=False):
        crossed += arrives
        arrives *= 1 - topology.link(a, b).loss
    return crossed, arrives


@dataclass
class _Walk:
    """A shape being built: the links crossed and evaluations so far (expected), and the
    nodes reached, each with the probability it is and the node that would serve it."""

    topology: Topology
    source: int
    links: float = 0.0
    evaluations: float = 1.0  # the sender's own
    reached: dict[int, float] = field(default_factory=dict)
    server: dict[int, int] = field(default_factory=dict)

    def send(self, at: int, chance: float, path: Sequence[int]) -> float:
        """A packet evaluated at ``at`` (with probability ``chance``) goes along ``path``
        to be evaluated at its end; the probability that it is."""
        crossed, arrives = _along(self.topology, path)
        self.links += chance * crossed
        self.evaluations += chance * arrives
        end = path[-1]
        if end not in self.reached and end != self.source:
            self.reached[end], self.server[end] = chance * arrives, at
        return chance * arrives

    def shape(self, targets: frozenset[int], replies: bool, tries: float, note: str
              ) -> Shape:
        """The shape walked, each of its packets sent ``tries`` times (the first
        evaluation, at the source, once)."""
        if replies:  # every node that evaluated it answers home, where the answer runs
            for node, chance in list(self.reached.items()):
                self.send(node, chance, _path(self.topology, node, self.source))
        serve_hops, fetch = {}, {}
        for node, server in self.server.items():
            ask = _path(self.topology, node, server)
            asked, there = _along(self.topology, ask)
            answered, back = _along(self.topology, _path(self.topology, server, node))
            serve_hops[node] = len(ask) - 1
            # a request and its response are sent until both arrive: 1 / (there * back) times
            fetch[node] = (asked / (there * back), there * answered / (there * back)) \
                if there * back > 0 else (math.inf, math.inf)
        return Shape(self.source, targets, (self.source, *self.reached), serve_hops, fetch,
                     dict(self.reached), self.links * tries,
                     (self.evaluations - 1) * tries + 1, tries, note)


def shape_of(topology: Topology, source: int, dest: int | None, reach: str, replies: bool,
             members: Sequence[int] = (), retransmit: bool = False) -> Shape:
    """The shape of a packet from ``source``, from the routing tables and the links' loss.

    ``reach``: evaluated at ``source`` and ``dest`` only (``"ends"``, as ping), at every
    node on the way to ``dest`` (``"every-hop"``, as traceroute), at every node of the
    network (``"flood"``: each node passes it on once to every neighbour but the one it
    came from, duplicates suppressed where they arrive; every node is assumed reached, as a
    flood's redundancy is there for) or along the routes to ``members`` (``"members"``: at
    each node the members still to reach are grouped by next hop, one copy per group). With
    ``replies``, every node that evaluates it away from the source sends a packet back to
    be evaluated at the source. With ``retransmit`` (``"ends"`` with replies) the source
    sends it again until a reply comes home, and runs it once per send (its timer)."""
    if reach not in REACHES:
        raise ChoiceError(f"reach `{reach}` is neither of {', '.join(REACHES)}")
    walk = _Walk(topology, source, reached={}, server={})
    if reach == "flood":
        return _flood(walk, replies)
    if reach == "members":
        return _members(walk, tuple(members), replies)
    if dest is None:
        raise ChoiceError(f"reach `{reach}` needs the node the packet is for")
    path = _path(topology, source, dest)
    if reach == "ends":
        if dest != source:
            walk.send(source, 1.0, path)
    else:
        chance = 1.0
        for here, there in zip(path, path[1:], strict=False):
            chance = walk.send(here, chance, (here, there))
    if not retransmit:
        return walk.shape(frozenset({dest}), replies, 1.0,
                          f"{'run at its ends' if reach == 'ends' else 'run at every hop'} "
                          f"to {dest}" + (", answered" if replies else ""))
    if reach != "ends" or not replies or dest == source:
        raise ChoiceError("a packet resent until its reply comes home goes to another node "
                          "(reach `ends`) and is answered (replies)")
    arrives = _along(topology, path)[1]
    returns = _along(topology, _path(topology, dest, source))[1]
    if arrives * returns == 0:
        raise ChoiceError(f"no packet from node {source} to node {dest} and back arrives: "
                          "a link on the way loses everything")
    tries = 1 / (arrives * returns)
    shape = walk.shape(frozenset({dest}), True, tries, "")
    # each send arms a timer, run at the source: one more evaluation per try; and the
    # destination runs it for sure, sooner or later
    return replace(shape, evaluations=shape.evaluations + tries, chance={dest: 1.0}, note=(
        f"end to end to {dest}, resent until acknowledged: {tries:.2f} sends expected "
        f"({arrives * returns:.0%} of round trips succeed)"))


def _flood(walk: _Walk, replies: bool) -> Shape:
    """Every node runs the flood's first copy and sends it on to every neighbour but the
    one it came from; every copy that arrives is run (a duplicate is suppressed there).
    The first copy is taken to come along the route from the source (routes are the
    fastest paths): that node would serve the code."""
    topology, source = walk.topology, walk.source
    ways = {n: _path(topology, source, n) for n in topology.routes(source)}
    came = {n: way[-2] for n, way in ways.items()}
    for node in sorted(came, key=lambda n: (len(ways[n]), n)):  # the first copies
        walk.send(came[node], 1.0, (came[node], node))
        walk.reached[node] = 1.0  # a flood reaches a node by another path if one is lost
    for node in (source, *walk.reached):  # the other copies: duplicates
        for after in topology.neighbours(node):
            if after != came.get(node) and came.get(after) != node:
                walk.send(node, 1.0, (node, after))
    nodes = len(walk.reached) + 1
    return walk.shape(frozenset((source, *walk.reached)), replies, 1.0,
                      f"a flood: {nodes} nodes, {walk.links:.3g} link crossings")


def _members(walk: _Walk, members: tuple[int, ...], replies: bool) -> Shape:
    """The copies of a multicast, as the program sends them: at each node the members
    still to reach are grouped by this node's next hop to them, one copy a group."""
    topology = walk.topology
    if not members:
        raise ChoiceError("a multicast needs at least one member")
    copies = [(walk.source, 1.0, frozenset(members))]
    while copies:
        here, chance, group = copies.pop(0)
        routes = topology.routes(here)
        rest = sorted(m for m in group if m != here)
        for member in rest:
            if member not in routes:
                raise ChoiceError(f"member {member} cannot be reached from node {here}")
        for hop in sorted({routes[m] for m in rest}):
            behind = frozenset(m for m in rest if routes[m] == hop)
            copies.append((hop, walk.send(here, chance, (here, hop)), behind))
    return walk.shape(frozenset(members), replies, 1.0,
                      f"a multicast to {len(members)} members: {walk.links:.3g} link "
                      "crossings")


def plan_cost(code_bytes: int, shape: Shape, weights: Weights) -> Cost:
    """PLAN's price: the program on every link, held briefly at every evaluation."""
    wire = (HEADER_BYTES + code_bytes) * shape.links
    transient = code_bytes * shape.evaluations
    return Cost(wire, 0, transient, weights.wire_byte * wire + weights.transient_byte * transient)


def ants_cost(code_bytes: int, shape: Shape, estimate: Estimate, weights: Weights) -> Cost:
    """ANTS's price: capsules on every link, plus a fetch and a cache entry at each node
    estimated not to hold the code, shared among the ``1 + reuse`` packets expected."""
    capsule = HEADER_BYTES + CODE_ID_BYTES
    missing = [node for node in shape.active if node not in estimate.cached]
    fetched = sum(shape.chance[node] * (capsule * shape.fetch[node][0]
                                        + (capsule + code_bytes) * shape.fetch[node][1])
                  for node in missing  # the sender has it already; a node never reached
                  if node != shape.source and shape.chance[node] > 0)  # fetches nothing
    packets = 1 + estimate.reuse
    wire = capsule * shape.links + fetched / packets
    held = code_bytes * sum(shape.chance.get(node, 1.0) for node in missing) / packets
    return Cost(wire, held, 0, weights.wire_byte * wire + weights.cache_byte * held)


def choose(code_bytes: int, shape: Shape, estimate: Estimate, weights: Weights,
           cache: CacheSpec) -> Choice:
    """The cheaper protocol for one packet (PLAN on a tie, and when the code would not fit
    a node's cache)."""
    plan = plan_cost(code_bytes, shape, weights)
    if code_bytes > cache.cache_bytes:
        return Choice("plan", plan, None, estimate,
                      f"{code_bytes} bytes of code do not fit a {cache.cache_bytes}-byte cache",
                      shape.note)
    ants = ants_cost(code_bytes, shape, estimate, weights)
    if math.isinf(ants.wire_bytes):
        return Choice("plan", plan, None, estimate, "its code could not be fetched: a link "
                      "on the way back to a node that holds it loses everything", shape.note)
    protocol = "ants" if ants.total < plan.total else "plan"
    return Choice(protocol, plan, ants, estimate,
                  f"{protocol} costs {min(plan.total, ants.total):.0f} against "
                  f"{max(plan.total, ants.total):.0f}", shape.note)


@dataclass(frozen=True)
class Sent:
    """A packet the sender sent: which code, to which nodes it was evaluated at, when, and
    how."""

    at_ms: int
    code: bytes  # the code identifier
    code_bytes: int
    targets: frozenset[int] | None  # None: a send whose targets the sender did not say
    active: tuple[int, ...]
    protocol: str


@dataclass(frozen=True)
class History:
    """What one sender sent, oldest first; it never reads the nodes' state."""

    sent: tuple[Sent, ...] = ()

    def after(self, sent: Sent) -> History:
        """This history with ``sent`` appended."""
        return History((*self.sent, sent))


def estimate(history: History, at_ms: int, code: bytes, code_bytes: int, shape: Shape,
             weights: Weights, cache: CacheSpec) -> Estimate:
    """Which nodes of ``shape`` the sender believes still cache ``code`` at ``at_ms``, and
    how many more packets of it to ``shape.targets`` it expects.

    A node holds the code if the sender's last ANTS packet of it that the node evaluated
    left at most ``remember_ms`` ago, and the codes the sender had evaluated there by ANTS
    since then, with this one, fit the node's cache (entries and bytes: least recently used
    is evicted first). Others' traffic is unknown to it: ``remember_ms`` bounds the trust.
    The reuse expected is the packets of this code to these targets sent in the last
    ``remember_ms`` (by either protocol: the sender takes its recent past for its near
    future), plus the profile's ``reuse``.
    """
    recent = [s for s in history.sent if at_ms - s.at_ms <= weights.remember_ms]
    cached = set()
    for node in shape.active:
        uses = [k for k, s in enumerate(recent) if s.protocol == "ants" and node in s.active]
        last = max((k for k in uses if recent[k].code == code), default=None)
        if last is None:
            continue
        since = {recent[k].code: recent[k].code_bytes for k in uses[uses.index(last) + 1:]
                 if recent[k].code != code}
        if len(since) + 1 <= cache.cache_entries \
                and sum(since.values()) + code_bytes <= cache.cache_bytes:
            cached.add(node)
    again = sum(1 for s in recent if s.code == code and s.targets == shape.targets)
    return Estimate(frozenset(cached), again + weights.reuse)
