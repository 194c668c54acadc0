"""Where the simulation's TM Space Packets go: a file (a recorded stream) or a mission
control system's UDP telemetry link (Yamcs ``UdpTmDataLink``: one packet per datagram).

The packets are those of ``onboard.sim.tm_packets``; ``ccl sim --tm FILE`` records them,
``ccl sim --yamcs HOST:PORT`` streams them.
"""

from __future__ import annotations

import socket
from typing import BinaryIO


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` as a pair; ``ValueError`` with what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT (a port 1 .. 65535)")
    return host, int(port)


class UdpTmLink:
    """Sends each packet as one UDP datagram to ``address``."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.sent = 0
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def __call__(self, packet: bytes) -> None:
        self._socket.sendto(packet, self.address)
        self.sent += 1

    def close(self) -> None:
        self._socket.close()


class TmRecording:
    """Appends each packet to an open binary file (a plain stream of Space Packets)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.written = 0

    def __call__(self, packet: bytes) -> None:
        self.out.write(packet)
        self.written += 1
