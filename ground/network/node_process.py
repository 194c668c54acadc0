"""One node of an active network as an OS process: its VVM, its UDP port on 127.0.0.1, and
the simulator's own node logic (``ground.network.simulator``), driven by the clock.

Run as ``python -m ground.network.node_process`` by ``ground.network.udp``, which speaks to
it over its stdin and stdout, one JSON object a line:

* in: ``boot`` (the first line: what ``Network`` takes, pickled, and this node's address),
  ``inject``, ``refuse`` and ``choose`` (the scenario's sends, as ``Network``'s methods),
  ``start`` (the common start, a ``time.monotonic`` instant), ``status``, ``stop``;
* out: ``ready`` or ``error`` after booting, ``status`` (idle or not, datagrams sent and
  received, late ones), ``report`` (the node's ``RunReport``) when stopped.

The process builds a ``Network`` of the whole topology that boots only its node; packets
leave it over a link as UDP datagrams to the next hop's port (``port_base + address``). A
datagram is an 8-byte stamp, the simulated time at which the packet reaches the next hop
(microseconds, big-endian), then the packet's bytes (``ground.network.packet``), unchanged.

**Time.** Simulated time runs ``dilation`` times slower than the wall clock from the
common start (time dilation, as network emulators do it: Gupta et al., NSDI 2006), so the
Python VVM's own speed does not show in the results. Each link's latency and transmission
time is spent by the sender before its ``sendto`` (the datagram leaves at the wall time of
its stamp); loss is drawn by the sender from that link direction's seeded generator, as in
the simulator. A node handles its events in stamp order, each once the wall clock is past
its time plus ``margin`` (for the datagrams on their way), so a node's clock is the
simulator's: the same times, the same deliveries, the same drops. A datagram stamped at
or before an event the node has already handled (its sender lagged more than the dilated
latency plus margin) is *late*: handled at once, and counted, so a run whose results could
differ from the simulator's says so. Events due at one microsecond are handled in the
simulator's order (the node's own, then packets by sending node), so a run with no late
datagram is the simulator's run.

Stdin's end (the driver gone, even killed) ends the process: no orphans.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pickle
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ground.network.packet import decode_packet
from ground.network.simulator import Network, RunReport

#: The stamp before a packet's bytes in a datagram: when it reaches the next hop (us).
STAMP = struct.Struct(">Q")
#: Wall seconds a node waits past an event's time for datagrams still on their way.
MARGIN_S = 0.005
#: The IP address every node listens on.
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Boot:
    """What a node process is started with: ``Network``'s arguments and its place."""

    address: int
    network_args: tuple[Any, ...]  # Network(topology, profile, vmlets, seed, node_profiles)
    network_options: dict[str, Any]  # and its keyword arguments (cache, ...)
    port_base: int
    dilation: float
    until_us: int | None

    def port(self, address: int) -> int:
        return self.port_base + address


def encode_object(value: object) -> str:
    """``value`` for a JSON line between the driver and its own node processes (pickled:
    the meters and traces gain fields as the simulator grows; both ends are this code)."""
    return base64.b64encode(pickle.dumps(value)).decode("ascii")


def decode_object(text: str) -> Any:
    """The value of ``encode_object``."""
    return pickle.loads(base64.b64decode(text))  # noqa: S301 -- from our own process


class LinkedNetwork(Network):
    """The simulator's network reduced to one node, whose links are UDP datagrams."""

    def __init__(self, boot: Boot, loop: asyncio.AbstractEventLoop) -> None:
        topology, profile, vmlets, seed, node_profiles = boot.network_args
        super().__init__(topology, profile, vmlets, seed, node_profiles,
                         local=(boot.address,), **boot.network_options)
        self.boot = boot
        self.loop = loop
        self._ids = (boot.address + 1) << 24  # ids unique across the processes of a run
        self.transport: asyncio.DatagramTransport | None = None
        self.start = 0.0  # the common start, loop.time() (CLOCK_MONOTONIC) seconds
        self.sent = self.received = self.late = self.pending = self.beyond = 0
        self.wake = asyncio.Event()

    # -- the seam: a packet leaves over a link

    def _carry(self, at_us: int, sender: int, hop: int, data: bytes) -> None:
        if self.boot.until_us is not None and at_us > self.boot.until_us:
            self.beyond += 1  # it would arrive after the end of the run: never sent
            return
        self.pending += 1
        self.loop.call_at(self.wall(at_us), self._sendto, hop, STAMP.pack(at_us) + data)

    def _sendto(self, hop: int, datagram: bytes) -> None:
        self.pending -= 1
        assert self.transport is not None
        self.transport.sendto(datagram, (HOST, self.boot.port(hop)))
        self.sent += 1

    # -- datagrams in

    def datagram(self, datagram: bytes, port: int) -> None:
        """A datagram came from ``port``: its packet arrives at its stamp (at once if that
        is past)."""
        self.received += 1
        if len(datagram) < STAMP.size:  # not from a node of this run: bytes now
            at_us, data = self.clock_us(), datagram
        else:
            (at_us,), data = STAMP.unpack_from(datagram), datagram[STAMP.size:]
        if at_us <= self._end and self._handled:  # after an event at or past its time
            self.late += 1  # (at it: a tie, maybe handled out of the simulator's order)
            at_us = self._end
        meter = self.nodes[self.boot.address].meter
        meter.packets_in += 1
        meter.bytes_in += len(data)
        # at one microsecond, the simulator's order: by sending node (its port says which)
        self.receive(at_us, self.boot.address, data, port - self.boot.port_base)
        self.wake.set()

    # -- the clock

    def wall(self, at_us: int) -> float:
        """The loop time at which simulated time ``at_us`` comes."""
        return self.start + at_us * self.boot.dilation / 1e6

    def clock_us(self) -> int:
        """Simulated time now."""
        return max(0, int((self.loop.time() - self.start) / self.boot.dilation * 1e6))

    def due_us(self) -> int:
        """Events up to this time may be handled now (the margin past)."""
        due = int((self.loop.time() - MARGIN_S - self.start) / self.boot.dilation * 1e6)
        return due if self.boot.until_us is None else min(due, self.boot.until_us)

    @property
    def idle(self) -> bool:
        """Nothing to do before the end: no event due within the run, no datagram to send."""
        due = self.next_event_us
        return self.pending == 0 and (due is None or self.boot.until_us is not None
                                      and due > self.boot.until_us)

    async def pump(self) -> None:
        """Handle events as their time comes, for ever (cancelled by ``stop``)."""
        while True:
            self.advance(self.due_us())
            due = self.next_event_us
            self.wake.clear()
            timeout = None if due is None else max(0.0, self.wall(due) + MARGIN_S
                                                    - self.loop.time())
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except TimeoutError:
                pass

    def final(self) -> RunReport:
        """This node's report (complete: nothing left, nothing cut by the end)."""
        report = self.report()
        if self.beyond:
            return RunReport(report.trace, report.nodes, report.end_us, False)
        return report


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, network: LinkedNetwork) -> None:
        self.network = network

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.network.datagram(data, int(addr[1]))


def _say(out: TextIO, **message: object) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


async def serve(boot: Boot, lines: asyncio.StreamReader, out: TextIO) -> int:
    """Boot, listen, obey the driver's lines until ``stop`` or the end of stdin."""
    loop = asyncio.get_running_loop()
    network = LinkedNetwork(boot, loop)
    port = boot.port(boot.address)
    try:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Endpoint(network), local_addr=(HOST, port))
    except OSError as exc:
        _say(out, error=f"node {boot.address} cannot listen on UDP port {port}: "
                        f"{exc.strerror or exc}", port=port)
        return 1
    network.transport = transport  # type: ignore[assignment]
    _say(out, ready=port, pid=os.getpid())
    pump: asyncio.Task[None] | None = None
    try:
        while line := await lines.readline():
            order = json.loads(line)
            if "inject" in order:
                o = order["inject"]
                network.inject(o["at_ms"], boot.address, decode_packet(bytes.fromhex(o["packet"])),
                               None if o["code"] is None else bytes.fromhex(o["code"]))
            elif "refuse" in order:
                o = order["refuse"]
                network.refuse(o["at_ms"], boot.address, o["packet"], o["why"])
            elif "choose" in order:
                o = order["choose"]
                network.choose(o["at_ms"], boot.address, o["packet"], o["detail"])
            elif "start" in order:
                network.start = float(order["start"])
                pump = asyncio.create_task(network.pump())
            elif "status" in order:
                _say(out, status=order["status"], idle=network.idle, sent=network.sent,
                     received=network.received, late=network.late)
            elif "stop" in order:
                if pump is not None:
                    pump.cancel()
                _say(out, report=encode_object(network.final()), late=network.late)
                return 0
        return 0  # stdin closed: the driver is gone
    finally:
        transport.close()


async def _main(stdin: Any, out: TextIO) -> int:
    loop = asyncio.get_running_loop()
    lines = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(lines), stdin)
    first = await lines.readline()
    if not first:
        return 0
    boot = decode_object(json.loads(first)["boot"])
    assert isinstance(boot, Boot)
    return await serve(boot, lines, out)


def main(argv: Sequence[str] = ()) -> int:
    """The node process: protocol lines on the real stdout; anything else printed goes to
    stderr, so a stray print cannot break the protocol."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout = sys.stderr
    try:
        return asyncio.run(_main(sys.stdin, out))
    except KeyboardInterrupt:  # the driver stops us; a terminal's Ctrl-C too
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover - run by ground.network.udp
    # the module by its name, not as __main__: the boot's classes are unpickled as its own
    from ground.network import node_process

    raise SystemExit(node_process.main(sys.argv[1:]))
