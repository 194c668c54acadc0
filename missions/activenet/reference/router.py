"""A hand-written Python active router, for comparison with VMlet-PLAN and VMlet-ANTS.

What a node of ``ccl net sim`` does, written directly in Python for the size comparison of
issue 16 (benchmarks/active_networks.py): PLAN packets that carry their program and are
evaluated at their destination (OnRemote) or at a neighbour (OnNeighbor), forwarded hop by
hop with a TTL; PLAN's services and idioms (``thisnode``, ``getsrc``, ``onremote``,
``toward``, ``bounce``, ...); a resource bound split between a packet and the packets it
sends; ANTS capsules that name their code by a 16-byte SHA-256 identifier, a bounded code
cache (least recently used evicted) and demand loading from the node that last evaluated
the capsule.

A program here is Python source text defining ``main(api)`` (``programs.py``), compiled
when a node loads it. The comparison is honest only with what this router does *not* do:
it trusts the code it runs (no verifier: a program may do anything Python allows, and a
loop never ends), charges a fixed cost per evaluation instead of metering it, has no wire
format (packets are objects), and sends a code request once, without a timer. The VVM
router does all of these (the profile, the VMlets, the simulator).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

NONE = 255
WORDS = 8
EVALUATION_COST = 700  # what one evaluation takes of a packet's bound (about the VVM's)
CODE_ID_BYTES = 16


def code_id(code: bytes) -> bytes:
    """The identifier a capsule names its code by."""
    return hashlib.sha256(code).digest()[:CODE_ID_BYTES]


@dataclass(frozen=True)
class Packet:
    """A PLAN packet (``code``: the program) or an ANTS capsule (``code``: its identifier),
    or a code request (``code``: the identifier) or response (``code``: the program)."""

    kind: str  # "plan", "capsule", "request", "response"
    remote: bool  # evaluated at ``dest`` only (OnRemote), or at the neighbour ``dest``
    source: int
    dest: int
    ttl: int
    rb: int
    words: tuple[int, ...]
    code: bytes
    prev: int = NONE  # the node that last evaluated it


@dataclass
class Api:
    """The services a program sees while it runs at one node (PLAN's, and ANTS's send)."""

    router: Router
    packet: Packet
    clock_ms: int
    out: list[int] = field(default_factory=list)
    sends: list[tuple[bool, int, int, tuple[int, ...]]] = field(default_factory=list)
    delivered: list[int] = field(default_factory=list)

    def thisnode(self) -> int:
        return self.router.address

    def getsrc(self) -> int:
        return self.packet.source

    def getttl(self) -> int:
        return self.packet.ttl

    def getrb(self) -> int:
        return self.packet.rb

    def arg(self, i: int) -> int:
        return self.packet.words[i]

    def setarg(self, i: int, v: int) -> None:
        self.out[i] = v

    def onremote(self, dest: int, rb: int) -> int:
        self.sends.append((True, dest, rb, tuple(self.out)))
        return 1

    def onneighbor(self, n: int, rb: int) -> int:
        if n not in self.router.neighbours:
            return 0
        self.sends.append((False, n, rb, tuple(self.out)))
        return 1

    def deliver(self, v: int) -> None:
        self.delivered.append(v)

    def neighbours(self) -> int:
        return len(self.router.neighbours)

    def neighbour(self, i: int) -> int:
        return self.router.neighbours[i] if i < len(self.router.neighbours) else NONE

    def route(self, dest: int) -> int:
        return self.router.routes.get(dest, NONE)

    def now_ms(self) -> int:
        return self.clock_ms

    def adjacent(self, n: int) -> int:
        return int(n in self.router.neighbours)

    def toward(self, dest: int, rb: int) -> int:
        hop = self.route(dest)
        return 0 if hop == NONE else self.onneighbor(hop, rb)

    def bounce(self, rb: int) -> int:
        return self.onremote(self.packet.source, rb)

    def forward(self, dest: int, rb: int) -> int:  # ANTS's send to a remote node
        return self.onremote(dest, rb)


Program = Callable[[Api], None]


@dataclass
class Router:
    """One node: its place in the network, its code cache and what it did."""

    address: int
    neighbours: Sequence[int]
    routes: Mapping[int, int]
    cache_entries: int = 4
    cache_bytes: int = 1_024
    cache: OrderedDict[bytes, tuple[bytes, Program]] = field(default_factory=OrderedDict)
    waiting: dict[bytes, list[Packet]] = field(default_factory=dict)
    delivered: list[int] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)
    hits: int = 0
    misses: int = 0

    def receive(self, packet: Packet, now_ms: int) -> list[tuple[int, Packet]]:
        """Handle ``packet``; the packets to send, each with the neighbour it goes to."""
        if packet.remote and packet.dest != self.address:
            return self._send(packet)
        if packet.kind == "plan":
            return self._evaluate(packet, self._load(packet.code), now_ms)
        if packet.kind == "capsule":
            return self._capsule(packet, now_ms)
        if packet.kind == "request":
            cached = self.cache.get(packet.code)
            if cached is None:
                self.drops.append("code-unknown")
                return []
            return self._send(Packet("response", True, self.address, packet.source, 255, 0,
                                     (0,) * WORDS, cached[0]))
        return self._code_arrived(packet, now_ms)

    def inject(self, packet: Packet, code: bytes, now_ms: int) -> list[tuple[int, Packet]]:
        """A local sender hands ``packet`` to this node; a capsule's ``code`` is cached."""
        if packet.kind == "capsule":
            self._install(code)
        return self.receive(replace(packet, remote=False, dest=self.address,
                                    prev=self.address), now_ms)

    def _capsule(self, packet: Packet, now_ms: int) -> list[tuple[int, Packet]]:
        cached = self.cache.get(packet.code)
        if cached is not None:
            self.hits += 1
            self.cache.move_to_end(packet.code)
            return self._evaluate(packet, cached[1], now_ms)
        self.misses += 1
        self.waiting.setdefault(packet.code, []).append(packet)
        if len(self.waiting[packet.code]) > 1:
            return []  # a request is on its way
        return self._send(Packet("request", True, self.address, packet.prev, 255, 0,
                                 (0,) * WORDS, packet.code))

    def _code_arrived(self, response: Packet, now_ms: int) -> list[tuple[int, Packet]]:
        key = code_id(response.code)
        if key not in self.waiting:
            self.drops.append("unsolicited")
            return []
        program = self._install(response.code)
        out: list[tuple[int, Packet]] = []
        for capsule in self.waiting.pop(key):
            out += self._evaluate(capsule, program, now_ms)
        return out

    def _install(self, code: bytes) -> Program:
        key = code_id(code)
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key][1]
        while self.cache and (len(self.cache) >= self.cache_entries or
                              sum(len(c) for c, _ in self.cache.values()) + len(code)
                              > self.cache_bytes):
            self.cache.popitem(last=False)
        program = self._load(code)
        self.cache[key] = (code, program)
        return program

    @staticmethod
    def _load(code: bytes) -> Program:
        namespace: dict[str, object] = {"__builtins__": {"min": min, "max": max, "len": len,
                                                         "range": range}}
        exec(compile(code.decode(), "<packet>", "exec"), namespace)  # noqa: S102 (trusted)
        main = namespace["main"]
        assert callable(main)
        return main  # type: ignore[no-any-return]

    def _evaluate(self, packet: Packet, program: Program, now_ms: int
                  ) -> list[tuple[int, Packet]]:
        if packet.rb < EVALUATION_COST:
            self.drops.append("resource-exhausted")
            return []
        api = Api(self, packet, now_ms, list(packet.words))
        program(api)
        self.delivered += api.delivered
        left = packet.rb - EVALUATION_COST
        out: list[tuple[int, Packet]] = []
        for remote, dest, rb, words in api.sends:
            child = replace(packet, remote=remote, dest=dest, rb=min(rb, left), words=words,
                            prev=self.address)
            left -= child.rb
            if child.rb == 0:
                self.drops.append("resource-exhausted")
                continue
            out += self._send(child)
        return out

    def _send(self, packet: Packet) -> list[tuple[int, Packet]]:
        if packet.dest == self.address:
            return [(self.address, packet)]
        hop = packet.dest if not packet.remote else self.routes.get(packet.dest)
        if hop is None:
            self.drops.append("no-route")
            return []
        if packet.ttl == 0:
            self.drops.append("ttl-exhausted")
            return []
        return [(hop, replace(packet, ttl=packet.ttl - 1))]
