"""The wire format of an active packet: a fixed header, its data words and its program.

::

    magic "AP" | version 1 | kind | id u32 | source u8 | dest u8 | ttl u8 | prev u8 |
    rb u32 | 8 data words u32 | code length u16 | code

All integers big-endian. ``kind`` 0: a PLAN packet evaluated at ``dest`` only, routed there
hop by hop (PLAN's OnRemote); 1: evaluated at the neighbour ``dest`` (OnNeighbor); for both,
``code`` is an encoded VVM image. Kinds 2 and 3 are ANTS capsules, the same as 0 and 1 but
``code`` is the 16-byte code identifier (:func:`code_id`). In all four, ``prev`` is the node
that last evaluated the packet (``getprev``; for a capsule, the node that holds its code).
Kind 4 is a code request (``code``: the identifier asked for; ``source``: the node asking,
``dest``: the node asked) and kind 5 its response (``code``: the identifier, then the
image). Kinds 6 and 7 are VMlet packets (the "active active network": a protocol installed
in band): ``code`` is an encoded VMlet image followed by its 16-byte tag
(:func:`sign_vmlet`); kind 6 is installed at ``dest`` only, routed there, kind 7 at every
node it reaches (a flood; ``prev`` the node it came from). ``rb`` is the resource bound in
VVM cycles (at most 1,000,000); ``id`` names the packet in traces.
Addresses are 0..254, data words 0..10^9: a packet outside these is malformed, so a
node's natives never answer outside the ranges the profile declares.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, replace

from onboard.patching.patch_format import TAG_BYTES, compute_tag

MAGIC = b"AP"
VERSION = 1
WORDS = 8
REMOTE, NEIGHBOUR = 0, 1
CAPSULE_REMOTE, CAPSULE_NEIGHBOUR = 2, 3  # ANTS capsules: code named by its identifier
CODE_REQUEST, CODE_RESPONSE = 4, 5  # ANTS demand loading
VMLET, VMLET_FLOOD = 6, 7  # a VMlet installed in band: at ``dest``, or at every node
KINDS = (REMOTE, NEIGHBOUR, CAPSULE_REMOTE, CAPSULE_NEIGHBOUR, CODE_REQUEST, CODE_RESPONSE,
         VMLET, VMLET_FLOOD)
VMLETS = (VMLET, VMLET_FLOOD)
CAPSULES = (CAPSULE_REMOTE, CAPSULE_NEIGHBOUR)
#: Bytes of a code identifier: SHA-256 truncated to 128 bits, the size of the MD5
#: fingerprint ANTS capsules carry (Wetherall et al., 1998). Forging code for a given
#: identifier is a second preimage (about 2^128 work); an accidental collision among n codes
#: has probability about n^2 / 2^129: both negligible for a router's cache, at half the
#: bytes of the full digest on every capsule.
CODE_ID_BYTES = 16
_HEADER = struct.Struct(f">2sBBIBBBBI{WORDS}IH")
HEADER_BYTES = _HEADER.size
MAX_WORD = 1_000_000_000
MAX_RB = 1_000_000  # cycles (the range of `getrb` in the profile)
MAX_ADDRESS = 254


class PacketError(ValueError):
    """Bytes that are not an active packet: ``field`` and ``offset`` say where."""

    def __init__(self, message: str, field: str, offset: int) -> None:
        super().__init__(f"{message} (field {field}, offset {offset})")
        self.field = field
        self.offset = offset


@dataclass(frozen=True)
class Packet:
    """One active packet."""

    kind: int
    id: int
    source: int
    dest: int
    ttl: int
    rb: int
    words: tuple[int, ...]
    code: bytes
    prev: int = 0  # the node that last evaluated it (a capsule's: holds its code)

    def encode(self) -> bytes:
        """The packet's bytes on the wire."""
        return _HEADER.pack(MAGIC, VERSION, self.kind, self.id, self.source, self.dest,
                            self.ttl, self.prev, self.rb, *self.words,
                            len(self.code)) + self.code

    def but(self, **changes: object) -> Packet:
        """This packet with ``changes`` (dataclass fields)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def size(self) -> int:
        return HEADER_BYTES + len(self.code)


def decode_packet(data: bytes) -> Packet:
    """Read a packet; raise ``PacketError`` for anything malformed."""
    if len(data) < HEADER_BYTES:
        raise PacketError(f"{len(data)} bytes is shorter than the {HEADER_BYTES}-byte header",
                          "header", len(data))
    magic, version, kind, pid, source, dest, ttl, prev, rb, *rest = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise PacketError("not an active packet", "magic", 0)
    if version != VERSION:
        raise PacketError(f"version {version} is not {VERSION}", "version", 2)
    if kind not in KINDS:
        raise PacketError(f"kind {kind} is not one of 0..{len(KINDS) - 1}", "kind", 3)
    for name, value, offset in (("source", source, 8), ("dest", dest, 9), ("prev", prev, 11)):
        if value > MAX_ADDRESS:
            raise PacketError(f"{name} {value} is not a node address (0..{MAX_ADDRESS})",
                              name, offset)
    if rb > MAX_RB:
        raise PacketError(f"resource bound {rb} is above {MAX_RB} cycles", "rb", 12)
    words, length = tuple(rest[:WORDS]), rest[WORDS]
    for k, w in enumerate(words):
        if w > MAX_WORD:
            raise PacketError(f"data word {k} is {w}, above {MAX_WORD}", f"words[{k}]",
                              16 + 4 * k)
    if len(data) != HEADER_BYTES + length:
        raise PacketError(f"code length {length} disagrees with the packet's "
                          f"{len(data) - HEADER_BYTES} bytes after the header", "code length",
                          HEADER_BYTES - 2)
    code = bytes(data[HEADER_BYTES:])
    if kind in VMLETS and len(code) <= TAG_BYTES:
        raise PacketError(f"a VMlet packet carries an image and its {TAG_BYTES}-byte tag, not "
                          f"{len(code)} bytes", "code", HEADER_BYTES)
    named = kind not in (REMOTE, NEIGHBOUR, *VMLETS)  # the code field starts with an identifier
    if named and (len(code) < CODE_ID_BYTES
                  or kind != CODE_RESPONSE and len(code) != CODE_ID_BYTES):
        raise PacketError(f"a kind-{kind} packet carries a {CODE_ID_BYTES}-byte code "
                          f"identifier, not {len(code)} bytes", "code", HEADER_BYTES)
    return Packet(kind, pid, source, dest, ttl, rb, words, code, prev)


def code_id(image: bytes) -> bytes:
    """The identifier ANTS capsules name their code by: SHA-256 of the encoded image,
    truncated to ``CODE_ID_BYTES``."""
    return hashlib.sha256(image).digest()[:CODE_ID_BYTES]


def _signed_bytes(packet: Packet, image: bytes) -> bytes:
    """What a VMlet packet's tag covers: the packet with ``image`` as its code and the
    fields a hop changes or that only name it in traces (``id``, ``ttl``, ``prev``) zeroed.
    So kind (where it is installed: at ``dest`` or everywhere), source, dest and the image
    are all authenticated, and a forwarded copy keeps the sender's tag."""
    return packet.but(id=0, ttl=0, prev=0, code=image).encode()


def sign_vmlet(packet: Packet, image: bytes, key: bytes) -> Packet:
    """``packet`` (kind ``VMLET`` or ``VMLET_FLOOD``) carrying the encoded VMlet ``image``
    and its tag under ``key``, the network's key: HMAC-SHA256 truncated to ``TAG_BYTES``,
    the patch tag's function (``onboard.patching.patch_format.compute_tag``)."""
    if packet.kind not in VMLETS:
        raise ValueError(f"a kind-{packet.kind} packet carries no VMlet")
    return packet.but(code=image + compute_tag(key, _signed_bytes(packet, image)))


def vmlet_image(packet: Packet, key: bytes) -> bytes | None:
    """The VMlet image a VMlet packet carries if its tag authenticates it under ``key``
    (constant-time comparison), else None: forged, or altered on the way."""
    image, tag = packet.code[:-TAG_BYTES], packet.code[-TAG_BYTES:]
    if not hmac.compare_digest(compute_tag(key, _signed_bytes(packet, image)), tag):
        return None
    return image
