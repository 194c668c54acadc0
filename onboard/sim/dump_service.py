"""The onboard dump service: answers the ground's dump requests, inside the patch reserve.

An authenticated dump request (``onboard.link.dump_format``; the receiver routes it here)
waits in a short queue; the service then works on it in the cycles the patch reserve has
left in each frame after patch handling (``onboard.vm.reserve.SharedReserve``), never more,
so the tasks' budget and the 10 % share are untouched. The work is cut into steps, each
paid in full before its effect takes place (as in ``onboard.patching.reconfiguration``)::

    start    REQUEST_CYCLES + NAME_CYCLES x names: decode the request, look the names up
             in the running configuration, bound the answer -> refused, or:
    read     ELEMENT_CYCLES x elements, at most BATCH elements a step: read them from the
             running program's memory *now* and append them to the dump stream; every
             CHUNK_BYTES of stream close a dump packet stamped with the onboard time

An array longer than a frame's worth of elements is read over several frames (each packet
says when its elements were read), as a PUS memory dump would; a scalar is read at once.
If the configuration switches during a dump, the dump ends with a refusal ``interrupted``.

Refusals (a packet flagged refused, ``REASON: message``): ``malformed``, ``too-many-names``,
``unknown-name``, ``too-large`` (worst case above ``DUMP_BUFFER_BYTES``), ``busy`` (more than
``MAX_WAITING`` requests wait), ``no-configuration``, ``interrupted``. A request that is not
authenticated never reaches this module: the receiver counts and drops it.

The service only *reads* the VVM: whatever a request holds, the memory, the store and the
tasks' timing are exactly those of a board that never received it.

The answers wait in the ``DumpOutbox``, bounded to ``DUMP_BUFFER_BYTES`` of packet data
(oldest dropped first), numbered, and repeated in every downlink until they drop out; like
the patch event log it is kept across a reset.

Onboard behaviour never depends on host time. Stdlib only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from onboard.link.dump_format import (
    CHUNK_BYTES,
    LAST,
    MAX_NAMES,
    REFUSED,
    DumpPacket,
    Refusal,
    RequestError,
    decode_request,
    refusal_text,
)
from onboard.vm.dump_stream import element, value_head, worst_case_bytes
from onboard.vm.loader import Program
from onboard.vm.readback import Value, read_back
from onboard.vm.vvm import VVM

#: Cycles of the patch reserve: decoding a request, looking up one name, reading and
#: encoding one element (the DPU's figures, as ``[reconfiguration]``'s for patches).
REQUEST_CYCLES = 500
NAME_CYCLES = 200
ELEMENT_CYCLES = 20
#: Most elements one read step takes (so a step stays well under a frame's reserve).
BATCH = 64
#: Requests waiting beyond the one being answered.
MAX_WAITING = 4
#: Bytes of dump packet data kept for the downlink; also the largest answer.
DUMP_BUFFER_BYTES = 32 * 1024


class DumpOutbox:
    """The bounded, numbered dump packets waiting for the downlink."""

    def __init__(self, capacity_bytes: int = DUMP_BUFFER_BYTES) -> None:
        self.capacity_bytes = capacity_bytes
        self.count = 0  # packets ever made: the number of the latest
        self._packets: deque[DumpPacket] = deque()
        self._bytes = 0

    def add(self, request: int, index: int, flags: int, time_ms: int, data: bytes) -> None:
        """Queue the next packet for the downlink, dropping the oldest beyond capacity."""
        self.count += 1
        self._packets.append(DumpPacket(self.count, request, index, flags, time_ms, data))
        self._bytes += len(data)
        while self._bytes > self.capacity_bytes and len(self._packets) > 1:
            self._bytes -= len(self._packets.popleft().data)

    @property
    def packets(self) -> tuple[DumpPacket, ...]:
        return tuple(self._packets)


@dataclass
class _Dump:
    """A request being answered: what is left to read and the stream not yet packed."""

    request: int
    program: Program
    todo: deque[tuple[Value, int, bool, int]]  # value, memory index, is an array, next elt
    stream: bytearray = field(default_factory=bytearray)
    packets: int = 0


class DumpService:
    """Answers dump requests within what the reserve leaves it; see the module docstring."""

    def __init__(self, vvm: VVM, outbox: DumpOutbox) -> None:
        self.vvm = vvm
        self.outbox = outbox
        self.waiting: deque[bytes] = deque()
        self.dump: _Dump | None = None
        self._owed = 0  # cycles still to pay for the step in progress
        self._effect: Callable[[int], None] | None = None

    # ------------------------------------------------------------------ input

    def request(self, data: bytes, now_ms: int) -> None:
        """An authenticated dump request arrives (the receiver's callback). Never raises."""
        if len(self.waiting) >= MAX_WAITING:
            ident = int.from_bytes(data[:2], "big") if len(data) >= 2 else 0  # best effort
            self._refuse(ident, 0, now_ms, Refusal.BUSY,
                         f"{len(self.waiting)} requests already wait")
            return
        self.waiting.append(bytes(data))

    # ------------------------------------------------------------------ Background

    @property
    def busy(self) -> bool:
        """Whether the service has work for the coming frame."""
        return self._effect is not None or self.dump is not None or bool(self.waiting)

    def next_event_ms(self) -> int | None:
        return self.vvm.now_ms if self.busy else None

    def step(self, t: int, budget: int) -> int:
        """Spend at most ``budget`` cycles of frame ``t`` on dumps; returns the cycles used."""
        used = 0
        while used < budget:
            if self._effect is None and not self._plan_next():
                break
            pay = min(self._owed, budget - used)
            self._owed -= pay
            used += pay
            if self._owed:
                break
            effect, self._effect = self._effect, None
            assert effect is not None
            effect(t)
        return used

    def end_frame(self, t: int, faults: int) -> None:
        """Nothing to do after a frame: dumps do not watch the tasks."""

    # ------------------------------------------------------------------ steps

    def _plan_next(self) -> bool:
        """Set the next step and its cost; False when there is nothing to do."""
        if self.dump is not None:
            d = self.dump
            value, _, _, at = d.todo[0]
            count = min(BATCH, len(value.values) - at)
            self._owed, self._effect = ELEMENT_CYCLES * count, self._read
            return True
        if not self.waiting:
            return False
        raw = self.waiting.popleft()
        names = raw[2] if len(raw) > 2 else 0  # the count the request claims
        self._owed = REQUEST_CYCLES + NAME_CYCLES * min(names, MAX_NAMES)
        self._effect = lambda t: self._start(raw, t)
        return True

    def _start(self, raw: bytes, t: int) -> None:
        try:
            req = decode_request(raw)
        except RequestError as exc:
            self._refuse(exc.request, 0, t, exc.reason, exc.message)
            return
        program = self.vvm.program
        if program is None:
            self._refuse(req.request, 0, t, Refusal.NO_CONFIGURATION,
                         "no configuration runs on board")
            return
        try:
            values = read_back(program, req.names)
        except KeyError as exc:
            self._refuse(req.request, 0, t, Refusal.UNKNOWN_NAME,
                         f"{exc.args[0]} not declared by {program.image.name} "
                         f"v{program.image.version}")
            return
        size = worst_case_bytes(values)
        if size > self.outbox.capacity_bytes:
            self._refuse(req.request, 0, t, Refusal.TOO_LARGE,
                         f"up to {size} bytes, the dump buffer holds "
                         f"{self.outbox.capacity_bytes}: ask for fewer names")
            return
        index = _memory_index(program)
        todo: deque[tuple[Value, int, bool, int]] = deque()
        d = _Dump(req.request, program, todo)
        for v in values:
            is_array, i = index[v.name]
            todo.append((v, i, is_array, 0))
            if not v.values:  # an empty array: only its head
                todo.pop()
                d.stream += value_head(v, 0)
        self.dump = d
        if not todo:
            self._close(t)

    def _read(self, t: int) -> None:
        d = self.dump
        assert d is not None
        if self.vvm.program is not d.program:
            self.dump = None
            self._refuse(d.request, d.packets, t, Refusal.INTERRUPTED,
                         "the configuration switched during the dump")
            return
        value, i, is_array, at = d.todo.popleft()
        if at == 0:
            d.stream += value_head(value, len(value.values))
        memory = d.program.memory
        if is_array:
            row = memory.arrays[i]
            end = min(at + BATCH, len(value.values))
            for j in range(at, end):
                d.stream += element(row[j], value.lo)
        else:
            end = 1
            d.stream += element(memory.globals[i], value.lo)
        if end < len(value.values):
            d.todo.appendleft((value, i, is_array, end))
        while len(d.stream) >= CHUNK_BYTES:
            self.outbox.add(d.request, d.packets, 0, t, bytes(d.stream[:CHUNK_BYTES]))
            del d.stream[:CHUNK_BYTES]
            d.packets += 1
        if not d.todo:
            self._close(t)

    def _close(self, t: int) -> None:
        d = self.dump
        assert d is not None
        self.outbox.add(d.request, d.packets, LAST, t, bytes(d.stream))
        self.dump = None

    def _refuse(self, request: int, index: int, t: int, reason: Refusal, message: str) -> None:
        self.outbox.add(request, index, LAST | REFUSED, t, refusal_text(reason, message))


def _memory_index(program: Program) -> dict[str, tuple[bool, int]]:
    """Where each declared name lives in data memory: (is an array, index)."""
    image = program.image
    out = {g.name: (False, i) for i, g in enumerate(image.globals)}
    out.update({a.name: (True, i) for i, a in enumerate(image.arrays)})
    return out
