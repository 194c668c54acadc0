"""The host services of an active router: what a node offers the programs packets carry.

The VVM imports this file by path and calls :func:`make_host` (keep that name); a module
imported so is not in ``sys.modules``, hence named tuples here, not dataclasses. A host is
one node of a network. The network simulator (``ground/network``) tells it where it is
(``place``: its address, neighbours and routing table) and, around each evaluation of a
packet's program, which packet is running (``begin``) and what the evaluation asked for
(``end``: the packets to send and the values delivered). The host decides nothing about
links, time or resources: it records requests, and the simulator carries them out, so the
same host serves PLAN's packets and ANTS's capsules.

What outlives one evaluation is the node's **soft state** (:class:`SoftState`): a bounded
table of small integer values by (packet source, key), the least recently used entry
evicted first, its bytes counted in the node's meter. Flooding marks the packets it has
seen there (``seen``); a transport keeps its sequence numbers there (``getstate``,
``setstate``). A program asks to be run again here later with ``ontimer``: a send to this
node that the simulator holds for the delay.

Natives do not check their arguments: the VVM checks them against the profile's ranges.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from onboard.mission import MissionProfile
from onboard.vm.host import NativeFn

#: "No such node": the answer of ``route`` and ``neighbour`` when there is none.
NONE = 255

#: Data words a packet carries.
WORDS = 8

#: Packets one evaluation may ask to send; further requests are refused (answer 0).
MAX_SENDS = 16


class Send(NamedTuple):
    """A packet an evaluation asked for: evaluate the same program at ``dest`` (``remote``:
    routed hop by hop, evaluated there only) or at the neighbour ``dest`` (not ``remote``),
    with data ``words`` and ``rb`` cycles asked of the running packet's bound. A timer
    (``ontimer``) is a send to this node itself, evaluated ``delay_ms`` later."""

    remote: bool
    dest: int
    rb: int
    words: tuple[int, ...]
    delay_ms: int = 0


class StateSpec(NamedTuple):
    """The soft-state table of a node (the profile's ``[state]`` table): at most
    ``entries`` entries of ``entry_bytes`` each (source u8, key u32, value u32 and the
    u16 link of the recency list, padded: 12 bytes)."""

    entries: int = 64
    entry_bytes: int = 12


class SoftState:
    """A node's state that outlives one evaluation: values by (source, key), bounded,
    the least recently used entry evicted to make room (ANTS's soft state). A value of 0
    is no entry: reading an absent or evicted key gives 0, so a program must treat 0 as
    "nothing known" (``seen`` stores 1)."""

    def __init__(self, spec: StateSpec) -> None:
        self.spec = spec
        self._values: OrderedDict[tuple[int, int], int] = OrderedDict()
        self.evictions = 0
        self.peak_entries = 0

    @property
    def bytes(self) -> int:
        """The table's memory now: its entries times the bytes of one."""
        return len(self._values) * self.spec.entry_bytes

    @property
    def peak_bytes(self) -> int:
        return self.peak_entries * self.spec.entry_bytes

    def get(self, source: int, key: int) -> int:
        """The value of ``key`` for packets of ``source`` (0: none); makes it recent."""
        entry = (source, key)
        if entry not in self._values:
            return 0
        self._values.move_to_end(entry)
        return self._values[entry]

    def set(self, source: int, key: int, value: int) -> None:
        """Set ``key`` for packets of ``source``; 0 removes it."""
        entry = (source, key)
        if value == 0:
            self._values.pop(entry, None)
            return
        if entry not in self._values:
            while len(self._values) >= self.spec.entries:
                self._values.popitem(last=False)
                self.evictions += 1
        self._values[entry] = value
        self._values.move_to_end(entry)
        self.peak_entries = max(self.peak_entries, len(self._values))

    @staticmethod
    def spec_of(profile: MissionProfile) -> StateSpec:
        """The ``[state]`` table of ``profile``'s mission.toml (defaults where absent)."""
        table = profile.raw.get("state", {})
        return StateSpec(**{k: int(v) for k, v in table.items() if k in StateSpec._fields})


class Arrival(NamedTuple):
    """What a node knows of the packet whose program it is about to run: ``prev`` is the
    node that last evaluated it (the neighbour it came from, for an OnNeighbor packet)."""

    source: int
    ttl: int
    rb: int
    words: tuple[int, ...]
    prev: int = NONE


class Requests:
    """What one evaluation asked for, in the order it asked."""

    def __init__(self) -> None:
        self.sends: list[Send] = []
        self.delivered: list[int] = []


class RouterHost:
    """One node's host services (implements ``onboard.vm.host.Host``)."""

    def __init__(self, profile: MissionProfile, seed: int) -> None:
        self.profile = profile
        self.seed = seed
        self.address = 0
        self.neighbours: tuple[int, ...] = ()
        self.routes: dict[int, int] = {}
        self.now_ms = 0
        self.state = SoftState(SoftState.spec_of(profile))
        self._arrival = Arrival(0, 0, 0, (0,) * WORDS)
        self._out = list(self._arrival.words)
        self._requests = Requests()
        self._natives: dict[str, NativeFn] = {
            "thisnode": lambda: self.address,
            "getsrc": lambda: self._arrival.source,
            "getttl": lambda: self._arrival.ttl,
            "getrb": lambda: self._arrival.rb,
            "arg": lambda i: self._arrival.words[i],
            "setarg": self._setarg,
            "onremote": lambda dest, rb: self._send(True, dest, rb),
            "onneighbor": lambda n, rb: self._send(False, n, rb),
            "deliver": self._deliver,
            "neighbours": lambda: len(self.neighbours),
            "neighbour": lambda i: self.neighbours[i] if i < len(self.neighbours) else NONE,
            "route": lambda dest: self.routes.get(dest, NONE),
            "now_ms": lambda: min(self.now_ms, 1_000_000_000),
            "getprev": lambda: self._arrival.prev,
            "seen": self._seen,
            "getstate": lambda key: self.state.get(self._arrival.source, key),
            "setstate": lambda key, v: self.state.set(self._arrival.source, key, v),
            "ontimer": self._ontimer,
        }

    # -- the simulator's side

    def place(self, address: int, neighbours: Sequence[int], routes: Mapping[int, int]) -> None:
        """This node is ``address``, adjacent to ``neighbours`` (at most 16, in the order
        ``neighbour(i)`` gives them); ``routes`` maps a destination to its next hop."""
        self.address = address
        self.neighbours = tuple(neighbours)[:16]
        self.routes = dict(routes)

    def begin(self, source: int, ttl: int, rb: int, words: Sequence[int],
              prev: int = NONE) -> None:
        """A packet's program is about to run here: the packet came from ``source`` with
        ``ttl`` hops and ``rb`` cycles left, and data ``words``, last evaluated at
        ``prev``."""
        arrival = Arrival(source, ttl, rb, tuple(words), prev)
        self._arrival = arrival
        self._out = list(arrival.words)
        self._requests = Requests()

    def end(self) -> Requests:
        """What the evaluation since ``begin`` asked for."""
        requests, self._requests = self._requests, Requests()
        return requests

    # -- the Host protocol

    def native(self, name: str) -> NativeFn | None:
        return self._natives.get(name)

    def env(self, key: str) -> int:
        return 0

    def advance(self, now_ms: int) -> None:
        self.now_ms = now_ms

    # -- natives

    def _setarg(self, i: int, v: int) -> None:
        self._out[i] = v

    def _send(self, remote: bool, dest: int, rb: int) -> int:
        if len(self._requests.sends) >= MAX_SENDS:
            return 0
        if not remote and dest not in self.neighbours:
            return 0
        self._requests.sends.append(Send(remote, dest, rb, tuple(self._out)))
        return 1

    def _ontimer(self, delay_ms: int, rb: int) -> int:
        if len(self._requests.sends) >= MAX_SENDS:
            return 0
        self._requests.sends.append(Send(False, self.address, rb, tuple(self._out), delay_ms))
        return 1

    def _seen(self, key: int) -> int:
        source = self._arrival.source
        if self.state.get(source, key):
            return 1
        self.state.set(source, key, 1)
        return 0

    def _deliver(self, v: int) -> None:
        self._requests.delivered.append(v)


def make_host(profile: MissionProfile, seed: int) -> RouterHost:
    """A node of no network yet (address 0, no neighbours): the simulator places it."""
    return RouterHost(profile, seed)
