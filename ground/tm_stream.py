"""Our own reading of a stream of TM Space Packets (``onboard.sim.tm_packets``): each
packet's values by the same definitions the board encodes them with. What a mission control
system reads from the XTCE database (``ground/xtce.py``) must agree with this, value for
value (``tests/ground/test_xtce_decoder.py`` checks it with an XTCE decoder we did not write).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import construct as cs

from ground.xtce import readback_prefix
from onboard.link.packet_definition import PacketDefinition, definitions_by_apid
from onboard.sim.tm_packets import (
    READBACK_APID,
    READBACK_HEAD_FIELDS,
    TELEMETRY,
    declarations,
    readback_definitions,
    split_packets,
)
from onboard.vm.image import Image


class TmStreamError(Exception):
    """Bytes that are not a stream of the VVM's TM packets."""


@dataclass(frozen=True)
class TmPacket:
    """One packet read: its definition's name, its APID and its values by field name;
    ``prefix`` is what the XTCE names its parameters with (``ground/xtce.py``): the packet's
    name, or for a read-back the configuration's."""

    name: str
    apid: int
    values: dict[str, Any]
    definition: PacketDefinition
    prefix: str


class TmReader:
    """Reads the TM packets of the VVM, read-backs of the configurations ``images``."""

    def __init__(self, images: Sequence[Image] = ()) -> None:
        self.by_apid = definitions_by_apid(TELEMETRY)
        self.readbacks: dict[tuple[int, int], tuple[PacketDefinition, str]] = {}
        for image in images:
            config = int.from_bytes(image.content_hash[:4], "big")
            for i, d in enumerate(readback_definitions(declarations(image))):
                self.readbacks[config, i] = d, readback_prefix(image)

    def packet(self, apid: int, data: bytes) -> TmPacket:
        """The values of one packet's data field; ``TmStreamError`` if it is not one."""
        try:
            if apid == READBACK_APID:
                return self._readback(data)
            definition = self.by_apid.get(apid)
            if definition is None:
                raise TmStreamError(f"no TM packet on APID {apid:#x}")
            return TmPacket(definition.name, apid, definition.parse(data), definition,
                            definition.name)
        except cs.ConstructError as exc:
            raise TmStreamError(f"APID {apid:#x}: {exc}") from None

    def _readback(self, data: bytes) -> TmPacket:
        if not self.readbacks:
            raise TmStreamError("a read-back packet, and no configuration to read it by")
        first, _ = next(iter(self.readbacks.values()))
        head = cs.Struct(*(f.name / f.construct for f in first.fields[:READBACK_HEAD_FIELDS]))
        h = head.parse(data)
        found = self.readbacks.get((h.config, h.value))
        if found is None:
            raise TmStreamError(f"a read-back of value {h.value} of configuration "
                                f"{h.config:08x}, which was not given")
        definition, prefix = found
        return TmPacket(definition.name, READBACK_APID, definition.parse(data), definition,
                        prefix)

    def read(self, stream: bytes) -> list[TmPacket]:
        """Every packet of ``stream``, in order."""
        try:
            packets = split_packets(stream)
        except ValueError as exc:
            raise TmStreamError(str(exc)) from None
        return [self.packet(apid, data) for apid, data in packets]
