"""The sender's per-packet choice between VMlet-PLAN and VMlet-ANTS: a cost model.

With both VMlets loaded in every node, a sender may send a packet's program by value (a
PLAN packet: the code on every link it crosses) or by name (an ANTS capsule: a 16-byte
identifier, the code fetched once by each node that runs it and kept in its cache). The
first spends bytes on the wire, the second memory held in the nodes along the path. This
module prices both for one packet, from what the sender knows without asking any node:

* the packet's **shape** (:class:`Shape`): the hops it and its descendants travel, the
  nodes that evaluate it, and, for each of those, how far back the node that would serve
  it the code is, derived from the routing table (:func:`shape_of`);
* what it sent by ANTS lately (:class:`History`), from which it estimates which of those
  nodes still cache the code (:func:`estimate`) and how many more packets of this code to
  this destination it expects (the reuse);
* the profile's weights (:class:`Weights`, the ``[choice]`` table of mission.toml).

Costs are in wire-byte units: one byte crossing one link costs ``wire_byte``; one byte of
code held in one node's cache for as long as it stays costs ``cache_byte``; one byte of a
PLAN program held by a node while it loads and runs it costs ``transient_byte``. For a
program of ``C`` code bytes, a packet crossing ``L`` links in all, evaluated ``E`` times:

* PLAN: ``wire_byte * (HEADER + C) * L + transient_byte * C * E``;
* ANTS: ``wire_byte * (HEADER + ID) * L`` plus, for the ``n = 1 + reuse`` packets the
  sender expects to send while the code stays, a one-time cost shared among them:
  for each node estimated not to hold it, a code request and its response over the ``d``
  hops back to the node that serves it, ``wire_byte * (2 * (HEADER + ID) + C) * d``, and
  ``cache_byte * C`` for the code held in its cache.

The sender chooses ANTS when its cost is lower, PLAN otherwise (ties, and a code larger than
a node's cache, go PLAN). Two properties hold by construction and are tested: a bigger code
never makes PLAN more preferred (ANTS's fixed costs exceed PLAN's, so the difference
``ANTS - PLAN`` is a line in ``C`` starting above zero: once it is below zero it stays so),
and more expected reuse never makes PLAN more preferred (reuse only divides ANTS's one-time
costs).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ground.network.packet import CODE_ID_BYTES, HEADER_BYTES
from ground.network.simulator import CacheSpec, Topology
from onboard.mission import MissionProfile

#: What a [[send]] may ask for: one of the protocols, or the sender's choice.
PROTOCOLS = ("plan", "ants", "auto")
#: How a packet's program travels: evaluated at the two ends only (PLAN's OnRemote, routers
#: on the way forward it without running it) or at every node on the way (OnNeighbor).
REACHES = ("ends", "every-hop")


class ChoiceError(ValueError):
    """A ``[choice]`` table or a packet shape the model cannot price."""


@dataclass(frozen=True)
class Weights:
    """The profile's ``[choice]`` table: what a byte on the wire and a byte held cost."""

    wire_byte: float = 1.0  # one byte crossing one link
    cache_byte: float = 1.0  # one byte of code in one node's cache, for as long as it stays
    transient_byte: float = 0.01  # one byte of a PLAN program held while it loads and runs
    reuse: int = 0  # packets of a code to a destination expected beyond those seen lately
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

    ``active`` are the nodes that evaluate it, the sender's own node first; ``serve_hops``
    gives, for each of them but the sender, the hops to the node evaluated before it (which
    holds the code and would serve it); ``links`` is how many links the packet and its
    descendants cross in all, ``evaluations`` how many times it is run.
    """

    source: int
    dest: int
    active: tuple[int, ...]
    serve_hops: Mapping[int, int]
    links: int
    evaluations: int


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

    def to_json(self) -> dict[str, object]:
        return {"protocol": self.protocol, "plan": self.plan.to_json(),
                "ants": None if self.ants is None else self.ants.to_json(),
                "cached": sorted(self.estimate.cached), "reuse": self.estimate.reuse,
                "why": self.why}


def _path(topology: Topology, a: int, b: int) -> list[int]:
    """The nodes from ``a`` to ``b`` along the routing tables (``[a]`` when they are one)."""
    path = [a]
    while path[-1] != b:
        hop = topology.routes(path[-1]).get(b)
        if hop is None:
            raise ChoiceError(f"node {b} cannot be reached from node {a}")
        path.append(hop)
    return path


def shape_of(topology: Topology, source: int, dest: int, reach: str, replies: bool) -> Shape:
    """The shape of a packet from ``source`` for ``dest``: evaluated at the two ends
    (``reach="ends"``, as ping) or at every node on the way (``"every-hop"``, as
    traceroute); with ``replies``, every node that evaluates it away from the source sends
    a packet back to be evaluated at the source."""
    if reach not in REACHES:
        raise ChoiceError(f"reach `{reach}` is neither of {', '.join(REACHES)}")
    path = _path(topology, source, dest)
    hops = len(path) - 1
    active = (source, dest) if reach == "ends" and dest != source else tuple(path)
    serve = {node: (hops if reach == "ends" else 1) for node in active[1:]}
    links = hops
    evaluations = len(active)
    if replies:
        back = [len(_path(topology, node, source)) - 1 for node in active[1:]]
        links += sum(back)
        evaluations += len(back)
    return Shape(source, dest, active, serve, links, evaluations)


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
    fetched = sum((2 * capsule + code_bytes) * shape.serve_hops[node]
                  for node in missing if node != shape.source)  # the sender has it already
    packets = 1 + estimate.reuse
    wire = capsule * shape.links + fetched / packets
    held = code_bytes * len(missing) / packets
    return Cost(wire, held, 0, weights.wire_byte * wire + weights.cache_byte * held)


def choose(code_bytes: int, shape: Shape, estimate: Estimate, weights: Weights,
           cache: CacheSpec) -> Choice:
    """The cheaper protocol for one packet (PLAN on a tie, and when the code would not fit
    a node's cache)."""
    plan = plan_cost(code_bytes, shape, weights)
    if code_bytes > cache.cache_bytes:
        return Choice("plan", plan, None, estimate,
                      f"{code_bytes} bytes of code do not fit a {cache.cache_bytes}-byte cache")
    ants = ants_cost(code_bytes, shape, estimate, weights)
    protocol = "ants" if ants.total < plan.total else "plan"
    return Choice(protocol, plan, ants, estimate,
                  f"{protocol} costs {min(plan.total, ants.total):.0f} against "
                  f"{max(plan.total, ants.total):.0f}")


@dataclass(frozen=True)
class Sent:
    """A packet the sender sent: which code, to which nodes it was evaluated at, when, and
    how."""

    at_ms: int
    code: bytes  # the code identifier
    code_bytes: int
    dest: int | None  # None: a send whose destination the sender did not say
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
    how many more packets of it to ``shape.dest`` it expects.

    A node holds the code if the sender's last ANTS packet of it that the node evaluated
    left at most ``remember_ms`` ago, and the codes the sender had evaluated there by ANTS
    since then, with this one, fit the node's cache (entries and bytes: least recently used
    is evicted first). Others' traffic is unknown to it: ``remember_ms`` bounds the trust.
    The reuse expected is the packets of this code to this destination sent in the last
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
    again = sum(1 for s in recent if s.code == code and s.dest == shape.dest)
    return Estimate(frozenset(cached), again + weights.reuse)
