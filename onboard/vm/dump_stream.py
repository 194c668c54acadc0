"""The dump stream: values read back (``onboard.vm.readback.Value``) as bytes, the answer
to a dump request (``onboard/link/dump_format.py`` cuts it into dump packets). Each value::

    value = name length u8 | name | kind u8 | lo VarSInt | hi VarSInt | n VarUInt
            | n x (element - lo) VarSInt

``kind`` indexes ``KINDS``; an element is written relative to the low end of its declared
range, so small ranges take one byte an element whatever their offset. The board writes the
stream element by element (``value_head`` then ``element``); ``decode_values`` reads a whole
stream back and never raises anything but ``DumpError``.

Stdlib and construct only: the onboard side must stand alone.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import construct as cs

from onboard.bounded_decoding import VarSInt, VarUInt
from onboard.vm.readback import Value

KINDS = ("param", "state", "table", "array")


class DumpError(Exception):
    """Bytes that are not a dump stream."""


def value_head(value: Value, count: int) -> bytes:
    """The bytes of a value that come before its ``count`` elements."""
    name = value.name.encode("ascii")
    return (bytes([len(name)]) + name + bytes([KINDS.index(value.kind)])
            + VarSInt.build(value.lo) + VarSInt.build(value.hi) + VarUInt.build(count))


def element(value: int, lo: int) -> bytes:
    """One element of a value, relative to its range's low end."""
    return VarSInt.build(value - lo)


def element_bytes(lo: int, hi: int) -> int:
    """The most bytes one element of range ``lo .. hi`` takes in the stream."""
    return max(len(element(lo, lo)), len(element(hi, lo)))


def worst_case_bytes(values: Iterable[Value]) -> int:
    """The most bytes ``values`` can take in the stream (what the board reserves)."""
    return sum(len(value_head(v, len(v.values))) + len(v.values) * element_bytes(v.lo, v.hi)
               for v in values)


def encode_values(values: Iterable[Value]) -> bytes:
    """The dump stream of ``values`` in one go (the board builds it element by element)."""
    return b"".join(value_head(v, len(v.values))
                    + b"".join(element(x, v.lo) for x in v.values) for v in values)


def decode_values(stream: bytes) -> tuple[Value, ...]:
    """The values of a complete dump stream; raises ``DumpError``."""
    s = io.BytesIO(stream)
    out = []
    try:
        while s.tell() < len(stream):
            length = s.read(1)[0]
            name = s.read(length)
            if len(name) != length:
                raise DumpError("a value's name is cut short")
            kind_raw = s.read(1)
            if not kind_raw or kind_raw[0] >= len(KINDS):
                raise DumpError(f"value {name!r}: unknown kind")
            lo, hi, n = VarSInt.parse_stream(s), VarSInt.parse_stream(s), \
                VarUInt.parse_stream(s)
            if n > len(stream) - s.tell():  # every element takes at least a byte
                raise DumpError(f"value {name!r}: {n} elements cannot fit what is left")
            elements = tuple(lo + VarSInt.parse_stream(s) for _ in range(n))
            out.append(Value(name.decode("ascii"), KINDS[kind_raw[0]], lo, hi, elements))
    except (cs.ConstructError, IndexError, UnicodeDecodeError) as exc:
        raise DumpError(f"not a dump stream: {exc}") from None
    return tuple(out)
