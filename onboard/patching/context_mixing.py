"""The MODEL codec of patch payloads: a context-mixing model of bytes and a binary arithmetic
coder, defined once here for both sides (the ground's ``ccl.pack`` encodes with it, the
patcher decodes with it).

Payloads are a few hundred bytes, where LZ-family compressors (DEFLATE, LZMA) are weak: they
need repeats, and a small input has few. This codec predicts each bit instead, from several
contexts at once, and codes it with the probability the contexts agree on:

* eight predictors, each an adaptive probability per context: the bits of the byte so far
  alone (order 0); with the previous byte (order 1), the previous two, three and four
  (orders 2-4, hashed); the byte before the previous one alone (sparse: fields two bytes
  apart, e.g. varints after a flag); the identifier being read (letters, digits and ``_``
  since the last other byte: names); and the classes of the last four bytes (zero, control,
  ASCII, high: whether the bytes around are text, small integers or varints);
* a logistic mixer that weighs the predictors (in the stretched domain, ``ln(p/(1-p))``),
  with one weight set per confidence of the order-2 and order-3 contexts (how often each
  was seen), trained online to reduce the coding cost;
* a binary arithmetic coder over 32 bits with 12-bit probabilities (the coder of lpaq).

Everything is integer arithmetic on fixed tables, so that the ground and the board predict
exactly the same probabilities: no floating point anywhere.

Bounds (the decoder's input is hostile): the payload starts with the decoded length (a
varint), which is checked against the caller's limit before anything is decoded; the
model's memory is fixed (``PREDICTORS`` tables of ``2 ** TABLE_BITS`` 16-bit probabilities
and 8-bit counts, about 200 KiB as 16- and 8-bit arrays), whatever the input; decoding
takes a fixed number of operations per output bit (``DECODE_CYCLES_PER_BYTE`` counts them).
A patch that names its base may have its payloads coded after a *primer*: the model first
learns the encoded images of the VMlets that base uses (``patch_format.vmlet_primer``), which
the board holds, so that the names, the bytecode and the records the configuration shares with them
cost less. The length field says so (``n << 1 | primed``); the decoder pays the primer's
bytes like decoded ones. A payload must end where the coder needs it to: the encoder
writes no trailing zero byte (the decoder reads zeros past the end), so a payload whose
last byte is zero, or with bytes the decoder never reads, is refused.

Stdlib and construct only: the onboard side must stand alone.
"""

from __future__ import annotations

import io
from array import array

import construct as cs

from onboard.bounded_decoding import VarUInt

#: Bits of the context table's index (one table, shared by all predictors).
TABLE_BITS = 16
PREDICTORS = 8
#: Mixer inputs: the predictors and a bias.
INPUTS = PREDICTORS + 1
#: A context's counter stops slowing its adaptation after this many observations.
COUNT_LIMIT = 30
#: Mixer learning rate (error x input, scaled down by ``MIXER_SHIFT``).
MIXER_RATE = 1
MIXER_SHIFT = 10
INITIAL_WEIGHT = 65536 // 5
MAX_WEIGHT = 1 << 22
#: The most bytes a payload's length varint may take.
MAX_LENGTH_BYTES = 5
#: Operations the decoder performs per output byte, as cycles of the onboard processor:
#: per bit, for each predictor an index (hash and mask), a table read, a stretch, a
#: multiply-add into the mixer and, after the bit, a counter update (about 12 operations);
#: the mixer's squash and the weight updates (about 4 per input); the coder's multiply,
#: compare and renormalisation (about 10). 8 x (8 x 12 + 9 x 4 + 10) = 1,136, rounded up.
DECODE_CYCLES_PER_BYTE = 1_200

_HASH = 0x9E3779B1
_MASK32 = 0xFFFFFFFF


def _squash_table() -> list[int]:
    """``4096 / (1 + e^-(d/256))`` for d in -2047..2047, by integer interpolation between
    33 knots (lpaq's squash): the same on every machine."""
    knots = [1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546, 2047,
             2549, 2994, 3348, 3607, 3785, 3901, 3975, 4022, 4050, 4068, 4079, 4085, 4089,
             4092, 4093, 4094]
    out = []
    for d in range(-2047, 2048):
        w = d & 127
        i = (d >> 7) + 16
        out.append((knots[i] * (128 - w) + knots[i + 1] * w + 64) >> 7)
    return out


_SQUASH = _squash_table()


def _squash(d: int) -> int:
    if d > 2047:
        return 4095
    if d < -2047:
        return 1
    return _SQUASH[d + 2047]


def _stretch_table() -> list[int]:
    """The inverse of ``_squash``: for each 12-bit probability, the smallest d it squashes to
    or above."""
    out = [0] * 4096
    at = 0
    for d in range(-2047, 2048):
        v = _squash(d)
        for j in range(at, v + 1):
            out[j] = d
        at = v + 1
    for j in range(at, 4096):
        out[j] = 2047
    return out


_STRETCH = _stretch_table()
#: Adaptation rate of a counter seen n times: 1 / (n + 1.5), as a 16-bit fraction.
_RATE = [65536 * 2 // (2 * n + 3) for n in range(COUNT_LIMIT + 1)]


def _byte_class(c: int) -> int:
    return 0 if c == 0 else 1 if c < 32 else 2 if c < 128 else 3


def _is_name_byte(c: int) -> bool:
    return 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c == 95


class Model:
    """The bit predictor: ``p`` is the probability (12 bits, 1..4095) that the next bit is 1;
    ``update(bit)`` learns the bit and moves to the next. Encoder and decoder drive one
    model each through the same bits and so see the same probabilities."""

    def __init__(self) -> None:
        size = 1 << TABLE_BITS
        self._mask = size - 1
        # One table for all predictors: a small payload fills little of it.
        self._prob = array("H", [32768]) * size
        self._seen = array("B", [0]) * size
        self._weights = [array("l", [INITIAL_WEIGHT]) * INPUTS for _ in range(16)]
        self._history = 0  # the last four bytes, the newest lowest
        self._word = 0
        self._partial = 1  # the bits of the current byte so far, after a leading 1
        self._contexts = [0] * PREDICTORS
        self._index = [0] * PREDICTORS
        self._inputs = [0] * INPUTS
        self._inputs[PREDICTORS] = 256
        self._set = 0
        self._mixed = 2048
        self.p = 2048
        self._byte_contexts()
        self._predict()

    def _byte_contexts(self) -> None:
        h = self._history
        c1, c2 = h & 0xFF, h >> 8 & 0xFF
        classes = (_byte_class(c1) | _byte_class(c2) << 2 | _byte_class(h >> 16 & 0xFF) << 4
                   | _byte_class(h >> 24) << 6)
        # Distinct odd offsets keep equal values of different contexts apart in the tables.
        self._contexts = [
            0,
            c1 << 8,
            ((h & 0xFFFF) * _HASH & _MASK32) >> 8,
            (((h & 0xFFFFFF) * _HASH + 0x1234567) & _MASK32) >> 8,
            ((self._word * _HASH + 0x55555) & _MASK32) >> 8,
            (((c2 << 8) * _HASH + 0x77777) & _MASK32) >> 8,
            ((h * _HASH + 0x9999) & _MASK32) >> 8,
            ((classes * _HASH + 0x31337) & _MASK32) >> 8,
        ]

    def _predict(self) -> None:
        c0 = self._partial
        mask = self._mask
        inputs = self._inputs
        index = self._index
        mixed_c0 = c0 * 0x2F0F1
        for i in range(PREDICTORS):
            j = ((self._contexts[i] ^ mixed_c0) + c0) & mask if i else c0
            index[i] = j
            inputs[i] = _STRETCH[self._prob[j] >> 4]
        self._set = min(self._seen[index[2]], 3) * 4 + min(self._seen[index[3]], 3)
        weights = self._weights[self._set]
        dot = 0
        for i in range(INPUTS):
            dot += weights[i] * inputs[i]
        self._mixed = _squash(dot >> 16)
        self.p = self._mixed

    def update(self, bit: int) -> None:
        """Learn ``bit`` (0 or 1) and predict the next one."""
        err = ((bit << 12) - self._mixed) * MIXER_RATE
        weights = self._weights[self._set]
        inputs = self._inputs
        for i in range(INPUTS):
            w = weights[i] + ((inputs[i] * err) >> MIXER_SHIFT)
            # Bounded, so that a 32-bit weight and a 64-bit sum never overflow on board.
            weights[i] = MAX_WEIGHT if w > MAX_WEIGHT else -MAX_WEIGHT if w < -MAX_WEIGHT else w
        target = (bit << 16) - bit
        for i in range(PREDICTORS):
            j = self._index[i]
            seen = self._seen
            n = seen[j]
            prob = self._prob
            prob[j] += ((target - prob[j]) * _RATE[n]) >> 16
            if n < COUNT_LIMIT:
                seen[j] = n + 1
        c0 = self._partial << 1 | bit
        if c0 >= 256:
            c = c0 & 0xFF
            self._history = (self._history << 8 | c) & _MASK32
            self._word = (self._word * 0x2C9 + c + 1) & _MASK32 if _is_name_byte(c) else 0
            c0 = 1
            self._partial = c0
            self._byte_contexts()
        self._partial = c0
        self._predict()


def _primed(primer: bytes) -> Model:
    """A model that has learnt ``primer`` (the same bits, not coded)."""
    model = Model()
    for byte in primer:
        for shift in range(7, -1, -1):
            model.update(byte >> shift & 1)
    return model


def encode(data: bytes, primer: bytes = b"") -> bytes:
    """``data`` coded with the model, after it has learnt ``primer`` if any (bytes the
    decoder holds too): ``n << 1 | primed`` (varint), then the arithmetic code."""
    model = _primed(primer)
    low, high = 0, _MASK32
    header = bytes(VarUInt.build(len(data) << 1 | bool(primer)))
    out = bytearray(header)
    for byte in data:
        for shift in range(7, -1, -1):
            bit = byte >> shift & 1
            mid = low + ((high - low) >> 12) * model.p
            if bit:
                high = mid
            else:
                low = mid + 1
            model.update(bit)
            while (low ^ high) & 0xFF000000 == 0:
                out.append(high >> 24)
                low = low << 8 & _MASK32
                high = (high << 8 & _MASK32) | 0xFF
    # The fewest bytes that, followed by the zeros the decoder reads past the end, fall in
    # [low, high].
    for k in range(5):
        unit = 1 << (8 * (4 - k))
        value = -(-low // unit) * unit
        if value <= high:
            out += value.to_bytes(4, "big")[:k]
            break
    while out and out[-1] == 0 and len(out) > len(header):
        out.pop()
    return bytes(out)


class ModelError(ValueError):
    """A payload the MODEL codec refuses: the message says why."""


def decoded_length(payload: bytes) -> tuple[int, bool, int]:
    """The length a payload says it decodes to, whether it was coded after a primer (its
    leading varint ``n << 1 | primed``: ``VarUInt``, at most ``MAX_LENGTH_BYTES``), and where
    the code starts; ``ModelError`` if it is malformed."""
    stream = io.BytesIO(payload[:MAX_LENGTH_BYTES])
    try:
        field = VarUInt.parse_stream(stream)
    except cs.ConstructError as exc:
        raise ModelError(f"malformed length: {str(exc).splitlines()[0]}") from None
    return field >> 1, bool(field & 1), stream.tell()


def decode(payload: bytes, limit: int, primer: bytes | None = None) -> bytes:
    """The bytes ``payload`` codes; ``ModelError`` if it says more than ``limit`` bytes (checked
    before decoding), says it was primed when no ``primer`` is known, is malformed, ends in a
    zero byte, or has bytes the decoder does not read."""
    n, primed, start = decoded_length(payload)
    if n > limit:
        raise ModelError(f"it decodes to {n} bytes, more than the {limit} allowed")
    if primed and primer is None:
        raise ModelError("it was coded after the VMlets of a named base configuration, and "
                         "none is known here")
    if len(payload) > start and payload[-1] == 0:
        raise ModelError("it ends in a zero byte (an encoder never writes one)")
    model = _primed(primer if primed and primer is not None else b"")
    low, high = 0, _MASK32
    at = start
    x = 0
    for _ in range(4):
        x = x << 8 | (payload[at] if at < len(payload) else 0)
        at += 1
    out = bytearray()
    for _ in range(n):
        byte = 0
        for _ in range(8):
            mid = low + ((high - low) >> 12) * model.p
            bit = 1 if x <= mid else 0
            if bit:
                high = mid
            else:
                low = mid + 1
            model.update(bit)
            byte = byte << 1 | bit
            while (low ^ high) & 0xFF000000 == 0:
                low = low << 8 & _MASK32
                high = (high << 8 & _MASK32) | 0xFF
                x = (x << 8 & _MASK32) | (payload[at] if at < len(payload) else 0)
                at += 1
        out.append(byte)
    if at < len(payload):
        raise ModelError(f"{len(payload) - at} trailing bytes the decoder does not read")
    return bytes(out)
