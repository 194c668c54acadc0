"""Packet definitions: a packet's fields declared once, as data, for every reader and writer.

A ``PacketDefinition`` is an ordered list of ``Field``s. From it come both the construct
``Struct`` that the onboard encoder builds (and our ground decoder parses) and the XTCE
description a mission control system reads (``ground/xtce.py``): nothing about a packet's
layout is written twice. The kinds of field are the few the VVM's packets use:

* ``uint`` / ``int``: a big-endian integer of 8 to 64 bits (a multiple of 8);
* ``octets``: a fixed number of bytes (a hash);
* ``blob`` / ``text``: a length (an unsigned integer of ``bits``) then that many bytes
  (``text``: UTF-8), as construct's ``Prefixed`` lays them out. XTCE describes it as two
  parameters, the length (``NAME_length``) and the bytes sized by it;
* ``values``: ``count`` signed integers of ``bits`` each (the elements of a table).

A telecommand may end with a payload that runs to the end of the packet (``tail``: a
patch segment's share bytes); it is not part of ``struct``.

Fields may carry a unit, a valid range and a one-line description: they go into the XTCE.

Stdlib and construct only: the onboard side must stand alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import construct as cs

KINDS = ("uint", "int", "octets", "blob", "text", "values")


@dataclass(frozen=True)
class Field:
    """One field of a packet (see the module docstring for ``kind``)."""

    name: str
    kind: str
    bits: int = 0                 # integer width, or the width of a blob's length
    size: int = 0                 # octets: bytes; values: element count
    doc: str = ""
    unit: str = ""
    lo: int | None = None         # valid range of an integer (or of each element)
    hi: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"field {self.name}: unknown kind {self.kind!r}")
        if self.kind != "octets" and (self.bits % 8 or not 8 <= self.bits <= 64):
            raise ValueError(f"field {self.name}: {self.bits} bits is not 8 .. 64 bytes-wide")

    @property
    def construct(self) -> cs.Construct:
        """The construct of the field's bytes."""
        if self.kind in ("uint", "int"):
            return cs.BytesInteger(self.bits // 8, signed=self.kind == "int")
        if self.kind == "octets":
            return cs.Bytes(self.size)
        if self.kind == "values":
            return cs.Array(self.size, cs.BytesInteger(self.bits // 8, signed=True))
        return cs.Prefixed(cs.BytesInteger(self.bits // 8), cs.GreedyBytes)


def uint(name: str, bits: int, doc: str = "", unit: str = "", *, lo: int | None = None,
         hi: int | None = None) -> Field:
    """An unsigned big-endian integer field."""
    return Field(name, "uint", bits, doc=doc, unit=unit, lo=lo, hi=hi)


def octets(name: str, size: int, doc: str = "") -> Field:
    """A field of ``size`` raw bytes."""
    return Field(name, "octets", 0, size, doc=doc)


def blob(name: str, length_bits: int, doc: str = "") -> Field:
    """A length of ``length_bits`` then that many bytes."""
    return Field(name, "blob", length_bits, doc=doc)


def text(name: str, length_bits: int, doc: str = "") -> Field:
    """A length of ``length_bits`` then that many bytes of UTF-8."""
    return Field(name, "text", length_bits, doc=doc)


def signed_bits(lo: int, hi: int) -> int:
    """The narrowest of 8, 16, 32, 64 bits whose signed integers hold ``lo .. hi``."""
    for bits in (8, 16, 32, 64):
        if -(1 << (bits - 1)) <= lo and hi < 1 << (bits - 1):
            return bits
    raise ValueError(f"range {lo} .. {hi} does not fit 64 bits")


@dataclass(frozen=True)
class PacketDefinition:
    """A packet: its name, the APID it travels on, a description and its fields."""

    name: str
    apid: int
    doc: str
    fields: tuple[Field, ...]
    tail: str = ""  # a telecommand's payload after the fields, to the end of the packet

    @property
    def struct(self) -> cs.Struct:
        """The construct of the packet's data field (built from ``fields``)."""
        return cs.Struct(*(f.name / f.construct for f in self.fields))

    def build(self, values: Mapping[str, Any]) -> bytes:
        """The packet data field of ``values`` (text given as ``str``)."""
        return bytes(self.struct.build({f.name: _raw(f, values[f.name]) for f in self.fields}))

    def parse(self, raw: bytes) -> dict[str, Any]:
        """The values of a packet data field (text as ``str``, lists for ``values``)."""
        parsed = self.struct.parse(raw)
        return {f.name: _cooked(f, parsed[f.name]) for f in self.fields}


def _raw(f: Field, value: Any) -> Any:
    return value.encode("utf-8") if f.kind == "text" else value


def _cooked(f: Field, value: Any) -> Any:
    if f.kind == "text":
        return bytes(value).decode("utf-8", "replace")
    if f.kind in ("blob", "octets"):
        return bytes(value)
    if f.kind == "values":
        return list(value)
    return value


def definitions_by_apid(definitions: Iterable[PacketDefinition]) -> dict[int, PacketDefinition]:
    """``definitions`` by APID (a ``ValueError`` for two on one APID)."""
    out: dict[int, PacketDefinition] = {}
    for d in definitions:
        if d.apid in out:
            raise ValueError(f"{d.name} and {out[d.apid].name} share APID {d.apid:#x}")
        out[d.apid] = d
    return out
