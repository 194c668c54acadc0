"""A deterministic discrete-event simulator of a network of active routers.

Every node is a real ``onboard.vm.vvm.VVM`` with the activenet profile and its own host
(``missions/activenet/natives.py``), with the VMlets of the scenario loaded at boot. Links
are full duplex, with a latency, a bandwidth (a packet occupies a direction of the link for
its size over the bandwidth, packets queue behind it) and a loss probability. Packets travel
as bytes (``ground.network.packet``). Time is in integer microseconds; every random draw
(losses) comes from a generator per link direction seeded by the scenario's seed and the
direction (the k-th packet sent from ``a`` to ``b`` is lost or not by that direction's k-th
draw, whatever happens elsewhere), so a run is a function of its scenario and seed.

The network may also be run one node per process (``ground.network.udp``): each process
builds a ``Network`` of the whole topology that boots only its own node (``local``), and
whose packets leave over a link by ``_carry`` (here, an event at the next hop; there, a
UDP datagram); every other line of a node's behaviour is this module's.

How a node treats a packet that arrives (docs/active-networks.md):

1. bytes that are not a packet are dropped (``malformed``);
2. a packet to be evaluated elsewhere (OnRemote, ``dest`` not this node) is forwarded to
   the next hop of this node's routing table, without running anything;
3. otherwise its program is decoded (``malformed``), verified by the VVM's load-time
   bytecode verifier and bound to this node (``refused``), then its task ``main`` runs once
   within the packet's resource bound, at most what one frame's share gives (the VVM's
   metering: ``resource-exhausted``; a trap: ``trap``);
4. when the program ends cleanly, what it delivered is delivered and the packets it asked
   for leave, each with the cycles it asked for out of what the bound has left after this
   evaluation, in the order asked (one that gets none is ``resource-exhausted``). A packet
   crosses a link only with hops left (``ttl-exhausted``) and a route (``no-route``).

Loading a program (verifying and binding it) costs the node the profile's
``verify_per_code_byte`` and ``bind_per_code_byte`` cycles per code byte, charged to the
node's CPU, not to the packet's bound; a node runs one packet at a time.

ANTS capsules (kinds 2 and 3) name their code by identifier instead of carrying it. Each
node keeps a code cache (the profile's ``[ants]`` table: entries and bytes, least recently
used evicted first) of code verified and translated once, when it enters the cache, so a
hit costs no load cycles. On a miss the capsule waits (bounded) and the node asks the node
that last evaluated the capsule (``prev``) for the code, with a request and a response of
their own (kinds 4 and 5), retrying after a timeout a bounded number of times; a response
whose image does not hash to the identifier is refused (``forged``). The trace has
``hit``, ``miss``, ``fetch``, ``serve``, ``cache`` and ``evict`` events.

What outlives an evaluation is the host's: its soft state (bounded, its bytes reported in
the node's meter after every evaluation) and timers, which are sends to the node itself
that the simulator holds for their delay (``ontimer``) before they arrive like any packet.
Every packet says which node last evaluated it (``prev``), which a program reads as
``getprev`` (a flood forwards everywhere but there).

VMlet packets (kinds 6 and 7) install a new protocol in band. A node checks one before use:
its tag, under the network's key (``forged``), then the VMlet itself, by the VVM's own
``load_vmlet``, exactly as at boot (the load-time bytecode verifier, the binding rules, its
``on load``: ``refused`` with the loader's reason), and that the VMlets it holds then still
fit its code memory (``refused``, ``code-memory``). A VMlet already installed with the same
content is a ``duplicate`` and one at a version no newer than the installed one ``stale``:
neither changes the node, nor goes further. Once installed (``install`` in the trace), a
flooded one (kind 7) goes on to every neighbour but the one it came from. A program that
``uses`` a VMlet the node lacks is dropped as ``unknown-vmlet``.

A node's memory is sampled whenever it changes (a ``memory`` event): the program in hand (a
PLAN packet's, from its load to the end of its run), the code cache, the soft state and the
code of VMlets installed in band; the VMlets it booted with and packets waiting in queues
(timers included) are not counted.
"""

from __future__ import annotations

import heapq
import random
import tomllib
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ground.network.packet import (
    CAPSULE_NEIGHBOUR,
    CAPSULE_REMOTE,
    CAPSULES,
    CODE_ID_BYTES,
    CODE_REQUEST,
    CODE_RESPONSE,
    NEIGHBOUR,
    REMOTE,
    VMLET,
    VMLET_FLOOD,
    VMLETS,
    Packet,
    PacketError,
    code_id,
    decode_packet,
    vmlet_image,
)
from onboard.mission import MissionProfile
from onboard.patching.patch_format import development_key
from onboard.vm.host import Host, mission_host
from onboard.vm.image import Image, ImageError, decode_image
from onboard.vm.loader import LoadError
from onboard.vm.machine import Limits
from onboard.vm.vvm import VVM, Program

#: The task a packet's program runs at every node that evaluates it.
ENTRY = "main"

#: Events a run handles at most: a program that floods the network stops here, reported.
MAX_EVENTS = 200_000


class StateTable(Protocol):
    """A node's soft state as the simulator meters it (natives.py, ``SoftState``)."""

    evictions: int

    @property
    def bytes(self) -> int: ...
    @property
    def peak_bytes(self) -> int: ...


class RouterHost(Host, Protocol):
    """What the simulator needs of a node's host (missions/activenet/natives.py)."""

    state: StateTable

    def place(self, address: int, neighbours: Sequence[int],
              routes: Mapping[int, int]) -> None: ...
    def begin(self, source: int, ttl: int, rb: int, words: Sequence[int],
              prev: int = ...) -> None: ...
    def end(self) -> Any: ...


@dataclass(frozen=True)
class CacheSpec:
    """A node's ANTS code cache and demand loading (the profile's ``[ants]`` table)."""

    cache_bytes: int = 1_024
    cache_entries: int = 4
    fetch_timeout_ms: int = 50
    fetch_retries: int = 2
    wait_capsules: int = 8

    @staticmethod
    def of(profile: MissionProfile) -> CacheSpec:
        """The ``[ants]`` table of ``profile``'s mission.toml (defaults where absent)."""
        path = profile.directory / "mission.toml"
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("ants", {}) \
            if path.is_file() else {}
        return CacheSpec(**{k: int(v) for k, v in table.items()
                            if k in CacheSpec.__dataclass_fields__})


@dataclass
class _Cached:
    program: Program
    name: str
    image: bytes


class TopologyError(ValueError):
    """A topology that does not describe a network (unknown node, bad link figure)."""


@dataclass(frozen=True)
class LinkSpec:
    """A full-duplex link between nodes ``a`` and ``b``."""

    a: int
    b: int
    latency_us: int
    bandwidth_bps: int
    loss: float = 0.0


@dataclass(frozen=True)
class Topology:
    """Nodes (addresses 0..254) and the links between them."""

    name: str
    nodes: tuple[int, ...]
    links: tuple[LinkSpec, ...]

    def __post_init__(self) -> None:
        if len(set(self.nodes)) != len(self.nodes):
            raise TopologyError("a node address is listed twice")
        for n in self.nodes:
            if not 0 <= n <= 254:
                raise TopologyError(f"node address {n} is outside 0..254")
        pairs = set()
        for link in self.links:
            for end in (link.a, link.b):
                if end not in self.nodes:
                    raise TopologyError(f"link {link.a}-{link.b} names node {end}, which is "
                                        "not in the topology")
            if link.a == link.b or frozenset((link.a, link.b)) in pairs:
                raise TopologyError(f"link {link.a}-{link.b} is a loop or a duplicate")
            pairs.add(frozenset((link.a, link.b)))
            if link.latency_us < 0 or link.bandwidth_bps <= 0 or not 0 <= link.loss <= 1:
                raise TopologyError(f"link {link.a}-{link.b}: latency must be >= 0, bandwidth "
                                    "> 0 and loss in [0, 1]")

    def neighbours(self, node: int) -> tuple[int, ...]:
        """The nodes adjacent to ``node``, by address."""
        return tuple(sorted({link.b if link.a == node else link.a for link in self.links
                             if node in (link.a, link.b)}))

    def link(self, a: int, b: int) -> LinkSpec:
        return next(k for k in self.links if {k.a, k.b} == {a, b})

    def routes(self, node: int) -> dict[int, int]:
        """Next hop from ``node`` to every node it can reach: shortest paths by latency,
        then by hops, ties broken by the lower next-hop address (deterministic)."""
        best: dict[int, tuple[int, int, int]] = {node: (0, 0, -1)}
        heap: list[tuple[int, int, int, int]] = [(0, 0, -1, node)]
        while heap:
            cost, hops, first, here = heapq.heappop(heap)
            if best.get(here, (cost, hops, first)) < (cost, hops, first):
                continue
            for nxt in self.neighbours(here):
                entry = (cost + self.link(here, nxt).latency_us, hops + 1,
                         nxt if first < 0 else first)
                if nxt not in best or entry < best[nxt]:
                    best[nxt] = entry
                    heapq.heappush(heap, (*entry, nxt))
        return {dest: first for dest, (_, _, first) in best.items() if dest != node}


@dataclass
class NodeMeter:
    """What one node did: the VVM's metered cycles and the node's traffic."""

    evaluations: int = 0
    cycles: int = 0  # metered cycles of the programs it ran (the VVM's own count)
    load_cycles: int = 0  # verifying and binding them
    forwarded: int = 0
    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    peak_code_bytes: int = 0  # the largest program it held (the VMlets' code aside)
    delivered: list[int] = field(default_factory=list)
    drops: Counter[str] = field(default_factory=Counter)
    cache_hits: int = 0  # ANTS: capsules whose code was in the cache
    cache_misses: int = 0
    code_fetches: int = 0  # code requests this node sent (retries included)
    code_served: int = 0  # code responses it sent
    evictions: int = 0
    cache_bytes: int = 0  # code images in its cache now
    peak_cache_bytes: int = 0
    plan_out: int = 0  # PLAN packets it sent on a link (code requests and responses aside)
    capsules_out: int = 0  # ANTS capsules it sent on a link
    state_bytes: int = 0  # its soft state now (seen marks, a transport's numbers)
    peak_state_bytes: int = 0
    state_evictions: int = 0
    timers: int = 0  # evaluations it asked to run here later (ontimer)
    installed: list[str] = field(default_factory=list)  # VMlets installed in band ("mark v1")
    memory_bytes: int = 0  # in hand, cache, state, in-band VMlets now (``memory`` events)
    peak_memory_bytes: int = 0

    def to_json(self) -> dict[str, object]:
        return {"evaluations": self.evaluations, "cycles": self.cycles,
                "load_cycles": self.load_cycles, "forwarded": self.forwarded,
                "packets_in": self.packets_in, "bytes_in": self.bytes_in,
                "packets_out": self.packets_out, "bytes_out": self.bytes_out,
                "peak_code_bytes": self.peak_code_bytes, "cache_hits": self.cache_hits,
                "cache_misses": self.cache_misses, "code_fetches": self.code_fetches,
                "code_served": self.code_served, "evictions": self.evictions,
                "cache_bytes": self.cache_bytes, "peak_cache_bytes": self.peak_cache_bytes,
                "plan_out": self.plan_out, "capsules_out": self.capsules_out,
                "state_bytes": self.state_bytes, "peak_state_bytes": self.peak_state_bytes,
                "state_evictions": self.state_evictions, "timers": self.timers,
                "memory_bytes": self.memory_bytes,
                "peak_memory_bytes": self.peak_memory_bytes,
                "delivered": list(self.delivered), "installed": list(self.installed),
                "drops": dict(sorted(self.drops.items()))}


@dataclass(frozen=True)
class TraceEvent:
    """One thing that happened: at ``t_us``, at ``node``, to packet ``packet``."""

    t_us: int
    node: int
    event: str  # choose, inject, send, lost, arrive, forward, evaluate, deliver, drop, memory
    packet: int
    detail: Mapping[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"t_ms": self.t_us / 1000, "node": self.node, "event": self.event,
                "packet": self.packet, **self.detail}


@dataclass(frozen=True)
class RunReport:
    """A finished run: the trace, each node's meter, and whether it ran to quiescence."""

    trace: tuple[TraceEvent, ...]
    nodes: Mapping[int, NodeMeter]
    end_us: int
    complete: bool  # False: stopped at MAX_EVENTS

    def drops(self, reason: str) -> list[TraceEvent]:
        return [e for e in self.trace if e.event == "drop" and e.detail.get("reason") == reason]

    def delivered(self, node: int) -> list[int]:
        return list(self.nodes[node].delivered)

    @property
    def wire_bytes(self) -> int:
        return sum(m.bytes_out for m in self.nodes.values())

    def to_json(self) -> dict[str, object]:
        return {"end_ms": self.end_us / 1000, "complete": self.complete,
                "wire_bytes": self.wire_bytes,
                "nodes": {str(n): m.to_json() for n, m in sorted(self.nodes.items())},
                "trace": [e.to_json() for e in self.trace]}


@dataclass
class _Node:
    address: int
    vvm: VVM
    host: RouterHost
    meter: NodeMeter
    routes: dict[int, int]
    spec: CacheSpec
    busy_until: int = 0
    cache: OrderedDict[bytes, _Cached] = field(default_factory=OrderedDict)
    waiting: dict[bytes, list[Packet]] = field(default_factory=dict)  # capsules, by code
    # code: (whom, tries, the request's id) of the fetch under way
    asked: dict[bytes, tuple[int, int, int]] = field(default_factory=dict)


class Network:
    """A network of VVM nodes, run by discrete events."""

    def __init__(self, topology: Topology, profile: MissionProfile,
                 vmlets: Sequence[Image] = (), seed: int = 1,
                 node_profiles: Mapping[int, MissionProfile] | None = None,
                 cache: CacheSpec | None = None, key: bytes | None = None,
                 local: Sequence[int] | None = None) -> None:
        """Boot a VVM per node with ``vmlets`` loaded (lower layers first), each with
        ``profile`` or its own in ``node_profiles`` (a variant: another CPU or memory), and
        an ANTS code cache as the profile's ``[ants]`` says, or as ``cache`` if given.
        ``key`` is the network's key, which every node holds to authenticate VMlet packets
        (default: the mission's development patch key). ``local``: boot only these nodes
        (a process of the UDP mode runs one; the others are reached through ``_carry``)."""
        self.topology = topology
        self.profile = profile
        self.key = development_key(profile.name) if key is None else key
        self.seed = seed
        self._losses: dict[tuple[int, int], random.Random] = {}  # a link direction's draws
        self.nodes: dict[int, _Node] = {}
        for address in topology.nodes if local is None else local:
            own = (node_profiles or {}).get(address, profile)
            host: RouterHost = mission_host(own, seed)  # type: ignore[assignment]
            routes = topology.routes(address)
            host.place(address, topology.neighbours(address), routes)
            vvm = VVM(own, host)
            for image in vmlets:
                vvm.load_vmlet(image)
            self.nodes[address] = _Node(address, vvm, host, NodeMeter(), routes,
                                        cache or CacheSpec.of(own))
        self._boot_code = {a: self._vmlet_code(n) for a, n in self.nodes.items()}
        self._installs: dict[int, tuple[bytes, int]] = {}  # event seq: (image, capsule)
        self._timers: dict[int, tuple[bytes, int]] = {}  # event seq: (code, request) timed out
        self._free_at: dict[tuple[int, int], int] = {}  # a link direction busy until
        # (t_us, from, seq, node, bytes): events at one microsecond, the node's own first
        # (from -1, in the order it made them), then packets off links by sending node, so
        # the order is the same when each node is a process (ground.network.udp)
        self._events: list[tuple[int, int, int, int, bytes]] = []
        self._seq = 0
        self._ids = 0
        self._handled = self._end = 0
        self._trace: list[TraceEvent] = []

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def inject(self, at_ms: int, node: int, packet: Packet, code: bytes | None = None) -> None:
        """``packet`` is handed to ``node`` at ``at_ms`` by a local sender (it is evaluated
        there first, whatever its ``dest``: the sender's own node runs it). An ANTS capsule
        comes with its ``code`` (the encoded image), which the sender's node caches first."""
        if node not in self.nodes:
            raise TopologyError(f"no node {node} to send from")
        self._log(at_ms * 1000, node, "inject", packet.id, {"bytes": packet.size})
        if packet.kind in CAPSULES:
            if code is not None:
                self._push(at_ms * 1000, node, b"")
                self._installs[self._seq] = (code, packet.id)
            packet = packet.but(kind=CAPSULE_NEIGHBOUR, prev=node)
        elif packet.kind in VMLETS:  # kind and dest are signed: it goes as the sender made it
            self._push(at_ms * 1000, node, packet.but(prev=node).encode())
            return
        else:
            packet = packet.but(kind=NEIGHBOUR, prev=node)
        self._push(at_ms * 1000, node, packet.but(dest=node).encode())

    def receive(self, at_us: int, node: int, data: bytes, sender: int = -1) -> None:
        """``data`` arrives at ``node`` at ``at_us`` as from a link (any bytes at all), sent
        by node ``sender`` if known."""
        self._push(at_us, node, data, sender)

    def refuse(self, at_ms: int, node: int, packet: int, why: str) -> None:
        """The sender at ``node`` refused to send packet ``packet`` (``why``)."""
        self._drop(at_ms * 1000, self.nodes[node], packet, "refused-at-sender", why)

    def choose(self, at_ms: int, node: int, packet: int, detail: Mapping[str, object]) -> None:
        """The sender at ``node`` chose a protocol for packet ``packet`` (``detail``: which,
        the two costs, the estimate it used; ``ground.network.choice``)."""
        self._log(at_ms * 1000, node, "choose", packet, detail)

    def run(self, until_ms: int | None = None) -> RunReport:
        """Handle events until none is left (or ``until_ms``); return the report."""
        self.advance(None if until_ms is None else until_ms * 1000)
        return self.report()

    @property
    def next_event_us(self) -> int | None:
        """When the next event is due (None: none is left)."""
        return self._events[0][0] if self._events else None

    def advance(self, limit_us: int | None) -> None:
        """Handle the events due at ``limit_us`` or before (all of them: None), at most
        ``MAX_EVENTS`` in the life of the network."""
        while self._events and self._handled < MAX_EVENTS:
            if limit_us is not None and self._events[0][0] > limit_us:
                break
            now, _, seq, node, data = heapq.heappop(self._events)
            if seq in self._installs:
                self._install(now, self.nodes[node], *self._installs.pop(seq))
            elif seq in self._timers:
                if not self._timeout(now, self.nodes[node], *self._timers.pop(seq)):
                    continue  # the code came: a stale timer is no event of the run
            else:
                self._arrive(now, self.nodes[node], data)
            self._handled += 1
            self._end = now

    def report(self) -> RunReport:
        """What the network did so far."""
        meters = {a: n.meter for a, n in self.nodes.items()}
        trace = tuple(sorted(self._trace, key=lambda e: e.t_us))  # stable: order of handling
        return RunReport(trace, meters, self._end, not self._events)

    # ------------------------------------------------------------------ events

    def _push(self, t_us: int, node: int, data: bytes, sender: int = -1) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t_us, sender, self._seq, node, data))

    def _log(self, t_us: int, node: int, event: str, packet: int,
             detail: Mapping[str, object] | None = None) -> None:
        self._trace.append(TraceEvent(t_us, node, event, packet, dict(detail or {})))

    def _drop(self, t_us: int, node: _Node, packet: int, reason: str, why: str) -> None:
        node.meter.drops[reason] += 1
        self._log(t_us, node.address, "drop", packet, {"reason": reason, "why": why})

    @staticmethod
    def _vmlet_code(node: _Node) -> int:
        return sum(v.image.code_bytes() for v in node.vvm.vmlets.values())

    def _held(self, now: int, node: _Node, in_hand: int = 0) -> None:
        """Sample ``node``'s memory at ``now`` if it changed: ``in_hand`` bytes of program
        being loaded or run, its code cache, its soft state, and the code of VMlets installed
        in band (what they add to those it booted with)."""
        meter = node.meter
        # a newer version of a boot VMlet may be smaller: nothing held beyond boot, not less
        vmlets = max(0, self._vmlet_code(node) - self._boot_code[node.address])
        held = in_hand + meter.cache_bytes + meter.state_bytes + vmlets
        if held != meter.memory_bytes:
            meter.memory_bytes = held
            meter.peak_memory_bytes = max(meter.peak_memory_bytes, held)
            self._log(now, node.address, "memory", 0,
                      {"bytes": held, "code": in_hand, "cache": meter.cache_bytes,
                       "state": meter.state_bytes, "vmlets": vmlets})

    def _arrive(self, now: int, node: _Node, data: bytes) -> None:
        if node.busy_until > now:  # one packet at a time: wait for the CPU
            self._push(node.busy_until, node.address, data)
            return
        try:
            packet = decode_packet(data)
        except PacketError as exc:
            self._drop(now, node, 0, "malformed", str(exc))
            return
        self._log(now, node.address, "arrive", packet.id, {"ttl": packet.ttl, "rb": packet.rb})
        if packet.kind in (REMOTE, CAPSULE_REMOTE, CODE_REQUEST, CODE_RESPONSE, VMLET) \
                and packet.dest != node.address:
            node.meter.forwarded += 1
            self._log(now, node.address, "forward", packet.id, {"dest": packet.dest})
            self._route(now, node, packet)
            return
        if packet.kind in CAPSULES:
            self._capsule(now, node, packet)
        elif packet.kind == CODE_REQUEST:
            self._serve(now, node, packet)
        elif packet.kind == CODE_RESPONSE:
            self._receive_code(now, node, packet)
        elif packet.kind in VMLETS:
            self._receive_vmlet(now, node, packet)
        else:
            self._evaluate(now, node, packet)

    def _load(self, now: int, node: _Node, code: bytes, packet: int
              ) -> tuple[Program, str] | None:
        """Decode, verify and bind ``code`` at ``node``, charging the node's CPU for it;
        None (and ``packet`` dropped with the reason) if it cannot run here."""
        profile = node.vvm.profile
        try:
            image = decode_image(code)
        except ImageError as exc:
            self._drop(now, node, packet, "malformed", f"program: {exc}")
            return None
        self._charge_load(now, node, self._load_cycles(image, profile))
        try:
            program = node.vvm.prepare(image)
            program.unit(ENTRY)
        except LoadError as exc:
            # a program on a VMlet this node lacks: its own reason (one installed in band
            # later, or flooded to this node, lets the next such packet run)
            reason = "unknown-vmlet" if exc.code == "missing-vmlet" else "refused"
            self._drop(now, node, packet, reason, f"{exc.code}: {exc.message}")
            return None
        except KeyError:
            self._drop(now, node, packet, "refused", f"the program has no task `{ENTRY}`")
            return None
        return program, image.name

    def _evaluate(self, now: int, node: _Node, packet: Packet) -> None:
        node.meter.peak_code_bytes = max(node.meter.peak_code_bytes, len(packet.code))
        self._held(now, node, len(packet.code))
        loaded = self._load(now, node, packet.code, packet.id)
        if loaded is not None:
            self._execute(now, node, packet, *loaded)
        else:
            self._held(node.busy_until, node)

    # ------------------------------------------------------------------ ANTS

    def _capsule(self, now: int, node: _Node, packet: Packet) -> None:
        """An ANTS capsule to evaluate here: run its cached code, or wait for it."""
        key = packet.code
        cached = node.cache.get(key)
        if cached is not None:
            node.cache.move_to_end(key)
            node.meter.cache_hits += 1
            self._log(now, node.address, "hit", packet.id, {"code": key.hex()[:8]})
            self._execute(now, node, packet, cached.program, cached.name)
            return
        node.meter.cache_misses += 1
        self._log(now, node.address, "miss", packet.id,
                  {"code": key.hex()[:8], "from": packet.prev})
        waiting = node.waiting.setdefault(key, [])
        if len(waiting) >= node.spec.wait_capsules:
            self._drop(now, node, packet.id, "code-wait-full",
                       f"{len(waiting)} capsules already wait for code {key.hex()[:8]}")
            return
        waiting.append(packet)
        if key not in node.asked:
            if packet.prev == node.address:
                del node.waiting[key]
                self._drop(now, node, packet.id, "code-fetch-failed",
                           f"code {key.hex()[:8]} is not here and no node before has it")
                return
            self._fetch(now, node, key, packet.prev, 1)

    def _fetch(self, now: int, node: _Node, key: bytes, whom: int, tries: int) -> None:
        request = Packet(CODE_REQUEST, self.next_id(), node.address, whom, 255, 0,
                         (0,) * 8, key)
        node.asked[key] = (whom, tries, request.id)
        node.meter.code_fetches += 1
        self._log(now, node.address, "fetch", request.id,
                  {"code": key.hex()[:8], "from": whom, "try": tries})
        self._push(now + node.spec.fetch_timeout_ms * 1000, node.address, b"")
        self._timers[self._seq] = (key, request.id)
        self._route(now, node, request)

    def _timeout(self, now: int, node: _Node, key: bytes, request: int) -> bool:
        """Code request ``request`` timed out: ask again or give up; False if the code had
        come (its timer is stale, also when a later fetch of the same code is under way)."""
        if key not in node.waiting or node.asked.get(key, (0, 0, 0))[2] != request:
            return False
        whom, tries, _ = node.asked[key]
        if tries <= node.spec.fetch_retries:
            self._fetch(now, node, key, whom, tries + 1)
            return True
        del node.asked[key]
        for capsule in node.waiting.pop(key):
            self._drop(now, node, capsule.id, "code-fetch-failed",
                       f"code {key.hex()[:8]} did not come from node {whom} after {tries} "
                       f"requests, {node.spec.fetch_timeout_ms} ms apart")
        return True

    def _serve(self, now: int, node: _Node, request: Packet) -> None:
        cached = node.cache.get(request.code)
        if cached is None:
            self._drop(now, node, request.id, "code-unknown",
                       f"node {request.source} asked for code {request.code.hex()[:8]}, "
                       "which is not in this node's cache")
            return
        node.cache.move_to_end(request.code)
        node.meter.code_served += 1
        response = Packet(CODE_RESPONSE, self.next_id(), node.address, request.source, 255,
                          0, (0,) * 8, request.code + cached.image)
        self._log(now, node.address, "serve", response.id,
                  {"code": request.code.hex()[:8], "to": request.source,
                   "bytes": response.size})
        self._route(now, node, response)

    def _receive_code(self, now: int, node: _Node, response: Packet) -> None:
        key, image = response.code[:CODE_ID_BYTES], response.code[CODE_ID_BYTES:]
        if key not in node.waiting:
            self._drop(now, node, response.id, "unsolicited",
                       f"code {key.hex()[:8]} was not asked for here")
            return
        if code_id(image) != key:
            self._drop(now, node, response.id, "forged",
                       f"the code sent for {key.hex()[:8]} hashes to "
                       f"{code_id(image).hex()[:8]}")
            return  # the capsules keep waiting: a retry may bring the real code
        node.asked.pop(key, None)
        capsules = node.waiting.pop(key)
        cached = self._install(now, node, image, capsules[0].id)
        for capsule in capsules:
            if cached is None:
                self._drop(now, node, capsule.id, "refused",
                           f"its code {key.hex()[:8]} cannot run here")
            else:
                self._execute(now, node, capsule, cached.program, cached.name)

    def _install(self, now: int, node: _Node, image: bytes, packet: int) -> _Cached | None:
        """Verify and translate ``image`` once and keep it in ``node``'s cache, evicting
        the least recently used codes to make room."""
        key, spec = code_id(image), node.spec
        if key in node.cache:
            node.cache.move_to_end(key)
            return node.cache[key]
        if len(image) > spec.cache_bytes:
            self._drop(now, node, packet, "code-too-large",
                       f"{len(image)} bytes of code do not fit a {spec.cache_bytes}-byte "
                       "cache")
            return None
        loaded = self._load(now, node, image, packet)
        if loaded is None:
            return None
        while node.cache and (len(node.cache) >= spec.cache_entries
                              or node.meter.cache_bytes + len(image) > spec.cache_bytes):
            old, gone = node.cache.popitem(last=False)
            node.meter.cache_bytes -= len(gone.image)
            node.meter.evictions += 1
            self._log(now, node.address, "evict", packet,
                      {"code": old.hex()[:8], "bytes": len(gone.image)})
        cached = node.cache[key] = _Cached(*loaded, image)
        node.meter.cache_bytes += len(image)
        node.meter.peak_cache_bytes = max(node.meter.peak_cache_bytes, node.meter.cache_bytes)
        self._log(now, node.address, "cache", packet,
                  {"code": key.hex()[:8], "program": cached.name, "bytes": len(image),
                   "cache_bytes": node.meter.cache_bytes})
        self._held(now, node)
        return cached

    # ------------------------------------------------------------------ VMlets in band

    def _receive_vmlet(self, now: int, node: _Node, packet: Packet) -> None:
        """A VMlet packet to install here: authenticate it, load the VMlet as at boot, and
        pass a flooded one on."""
        data = vmlet_image(packet, self.key)
        if data is None:
            self._drop(now, node, packet.id, "forged",
                       "its tag does not authenticate it with the network's key (forged, "
                       "or altered on the way); nothing installed")
            return
        try:
            image = decode_image(data)
        except ImageError as exc:
            self._drop(now, node, packet.id, "malformed", f"VMlet: {exc}")
            return
        what = f"VMlet `{image.name}` v{image.version}"
        have = node.vvm.vmlets.get(image.name)
        if have is not None and have.image.content_hash == image.content_hash:
            self._drop(now, node, packet.id, "duplicate",
                       f"{what} is installed here already: nothing to do")
            return
        if have is not None and have.image.version >= image.version:
            self._drop(now, node, packet.id, "stale",
                       f"{what} is no newer than the v{have.image.version} installed here")
            return
        memory = Limits.of(node.vvm.profile).code_bytes
        held = sum(v.image.code_bytes() for v in node.vvm.vmlets.values()
                   if v.image.name != image.name) + image.code_bytes()
        if held > memory:  # a flood of protocols must not take the node's code memory
            self._drop(now, node, packet.id, "refused",
                       f"code-memory: with {what} the VMlets would take {held} bytes of "
                       f"the node's {memory} bytes of code memory")
            return
        load = self._load_cycles(image, node.vvm.profile)
        try:
            loaded = node.vvm.load_vmlet(image)  # all or nothing: on failure, no change
        except LoadError as exc:
            self._charge_load(now, node, load)
            self._drop(now, node, packet.id, "refused", f"{exc.code}: {exc.message}")
            return
        done = self._charge_load(now, node, load + loaded.on_load_cycles)
        node.meter.installed.append(f"{image.name} v{image.version}")
        self._held(done, node)
        self._log(done, node.address, "install", packet.id,
                  {"vmlet": image.name, "version": image.version, "bytes": packet.size,
                   "code_bytes": image.code_bytes(), "from": packet.prev})
        if packet.kind == VMLET_FLOOD:
            onward = packet.but(prev=node.address)
            for hop in self.topology.neighbours(node.address):
                if hop != packet.prev:
                    self._transmit(done, node, onward, hop)

    @staticmethod
    def _load_cycles(image: Image, profile: MissionProfile) -> int:
        """Cycles a node spends verifying and binding ``image`` (the profile's figures per
        code byte), before any ``on load`` it runs."""
        return image.code_bytes() * (profile.reconfig.verify_per_code_byte
                                     + profile.reconfig.bind_per_code_byte)

    def _charge_load(self, now: int, node: _Node, cycles: int) -> int:
        """Charge ``cycles`` of loading to ``node``'s CPU; when it is done (microseconds)."""
        node.meter.load_cycles += cycles
        node.busy_until = max(now, node.busy_until) + self._us(cycles, node.vvm.profile)
        return node.busy_until

    # ------------------------------------------------------------------ running

    def _execute(self, now: int, node: _Node, packet: Packet, program: Program,
                 name: str) -> None:
        """Run ``packet``'s program at ``node`` (loaded), then carry out what it asked."""
        meter, profile = node.meter, node.vvm.profile
        node.busy_until = max(now, node.busy_until)
        node.host.advance(now // 1000)
        node.host.begin(packet.source, packet.ttl, packet.rb, packet.words, packet.prev)
        budget = min(packet.rb, Limits.of(profile).frame_budget)
        outcome = node.vvm.run(program, ENTRY, (), budget)
        asked = node.host.end()
        state = node.host.state
        meter.state_bytes, meter.state_evictions = state.bytes, state.evictions
        meter.peak_state_bytes = state.peak_bytes
        meter.evaluations += 1
        meter.cycles += outcome.cycles
        done = node.busy_until + self._us(outcome.cycles, profile)
        node.busy_until = done
        if packet.kind not in CAPSULES:  # the state it left, while its program is in hand
            self._held(done, node, len(packet.code))
        self._held(done, node)  # the program in hand, if any, is let go
        self._log(now, node.address, "evaluate", packet.id,
                  {"program": name, "cycles": outcome.cycles, "budget": budget})
        if outcome.fault is not None:
            self._drop(done, node, packet.id, "trap", str(outcome.fault))
            return
        if outcome.exhausted:
            bound = "its resource bound" if budget == packet.rb else "a frame's share"
            self._drop(done, node, packet.id, "resource-exhausted",
                       f"`{name}` used all of {bound} ({budget} cycles) and was stopped")
            return
        for value in asked.delivered:
            meter.delivered.append(value)
            self._log(done, node.address, "deliver", packet.id, {"value": value})
        left = packet.rb - outcome.cycles
        capsule = packet.kind in CAPSULES
        for send in asked.sends:
            kind = ((CAPSULE_REMOTE if send.remote else CAPSULE_NEIGHBOUR) if capsule else
                    REMOTE if send.remote else NEIGHBOUR)
            child = Packet(kind, self.next_id(), packet.source, send.dest, packet.ttl,
                           min(send.rb, left), send.words, packet.code, node.address)
            left -= child.rb
            self._log(done, node.address, "spawn", child.id,
                      {"parent": packet.id, "dest": child.dest, "rb": child.rb,
                       "asked": send.rb, "remote": send.remote,
                       **({"after_ms": send.delay_ms} if send.delay_ms else {})})
            if child.rb == 0:
                self._drop(done, node, child.id, "resource-exhausted",
                           f"asked for {send.rb} cycles when {packet.id}'s bound had none left")
                continue
            meter.timers += bool(send.delay_ms)
            self._route(done + send.delay_ms * 1000, node, child)

    def _route(self, now: int, node: _Node, packet: Packet) -> None:
        """Send ``packet`` on its way from ``node``: evaluated here if it is for here, else
        over the link to the next hop."""
        if packet.dest == node.address:
            self._push(now, node.address, packet.encode())
            return
        hop = packet.dest if packet.kind in (NEIGHBOUR, CAPSULE_NEIGHBOUR) \
            else node.routes.get(packet.dest)
        if hop is None or hop not in self.topology.nodes:
            self._drop(now, node, packet.id, "no-route", f"no route to {packet.dest}")
            return
        self._transmit(now, node, packet, hop)

    def _transmit(self, now: int, node: _Node, packet: Packet, hop: int) -> None:
        """Send ``packet`` from ``node`` over the link to its neighbour ``hop``."""
        if packet.ttl == 0:
            self._drop(now, node, packet.id, "ttl-exhausted",
                       f"no hops left to go on to {hop} (towards {packet.dest})")
            return
        data = packet.but(ttl=packet.ttl - 1).encode()
        link = self.topology.link(node.address, hop)
        start = max(now, self._free_at.get((node.address, hop), 0))
        sent = start + -(-len(data) * 8 * 1_000_000 // link.bandwidth_bps)
        self._free_at[(node.address, hop)] = sent
        node.meter.packets_out += 1
        node.meter.bytes_out += len(data)
        node.meter.plan_out += packet.kind in (REMOTE, NEIGHBOUR)
        node.meter.capsules_out += packet.kind in CAPSULES
        self._log(start, node.address, "send", packet.id, {"to": hop, "bytes": len(data)})
        draws = self._losses.setdefault(
            (node.address, hop), random.Random(f"{self.seed}:{node.address}->{hop}"))
        if link.loss and draws.random() < link.loss:
            self._log(sent, node.address, "lost", packet.id, {"to": hop})
            return
        self._carry(sent + link.latency_us, node.address, hop, data)

    def _carry(self, at_us: int, sender: int, hop: int, data: bytes) -> None:
        """``data`` from ``sender`` reaches node ``hop`` at ``at_us`` (the UDP mode sends a
        datagram)."""
        target = self.nodes[hop]
        target.meter.packets_in += 1
        target.meter.bytes_in += len(data)
        self._push(at_us, hop, data, sender)

    @staticmethod
    def _us(cycles: int, profile: MissionProfile) -> int:
        """Microseconds ``cycles`` take on a CPU of ``profile`` (rounded up)."""
        return -(-cycles * 1_000_000 // profile.clock_hz)
