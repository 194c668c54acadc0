"""Erasure coding of a patch into shares, on the ground, with zfec.

Why zfec: it is small, maintained (Tahoe-LAFS), installs as a wheel, is fast (C), and its
code is *systematic* and *rateless in practice*: shares 0 .. k-1 are the patch itself, and
share i >= k depends only on k and i, so after a lossy pass the ground sends fresh shares
(any k distinct shares rebuild the patch) without re-planning what was already sent. The
decoder on board (``onboard/link/erasure.py``) is a stdlib reimplementation of the same code;
a test proves they agree share for share. (reedsolo was the other candidate: it corrects
errors inside a codeword, which CRC-checked frames never need, and would have needed a
column-interleaving layer of our own to act as an erasure code over frames.)

The patch is cut into k blocks of ``share_bytes`` (the last one zero-padded); k is at most
255 so that at least one parity share exists, and 256 share ids fit the one-byte share field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import zfec

from ground.errors import GroundError
from onboard.link.erasure import MAX_SHARES
from onboard.link.tc_frames import MAX_PATCH_BYTES, MAX_SHARE_BYTES, patch_crc

MAX_K = MAX_SHARES - 1


class ErasureError(GroundError):
    """A patch that cannot be coded (empty, or too large for 255 shares of a frame)."""


@lru_cache(maxsize=16)
def _encoder(k: int) -> zfec.Encoder:
    return zfec.Encoder(k, MAX_SHARES)


@dataclass(frozen=True)
class Encoded:
    """A patch cut into ``k`` primary blocks of ``share_bytes``; any share id 0..255 on demand."""

    patch: bytes
    k: int
    share_bytes: int

    @property
    def crc(self) -> int:
        return patch_crc(self.patch)

    def blocks(self) -> tuple[bytes, ...]:
        """The k primary blocks (shares 0 .. k-1), the last one zero-padded."""
        padded = self.patch.ljust(self.k * self.share_bytes, b"\0")
        return tuple(padded[i * self.share_bytes:(i + 1) * self.share_bytes]
                     for i in range(self.k))

    def shares(self, ids: Iterable[int]) -> dict[int, bytes]:
        """The shares with the given ids (0 .. 255)."""
        wanted = tuple(sorted(set(ids)))
        if any(not 0 <= i < MAX_SHARES for i in wanted):
            raise ErasureError(f"share ids must lie in 0 .. {MAX_SHARES - 1}")
        if not wanted:
            return {}
        out = _encoder(self.k).encode(self.blocks(), wanted)
        return {i: bytes(b) for i, b in zip(wanted, out, strict=True)}


def share_size(length: int, preferred: int) -> int:
    """The share size for a patch of ``length`` bytes: ``preferred``, or larger when the
    patch would otherwise need more than 255 shares."""
    if length <= 0:
        raise ErasureError("an empty patch cannot be sent")
    if length > min(MAX_PATCH_BYTES, MAX_K * MAX_SHARE_BYTES):
        raise ErasureError(f"a patch of {length} bytes exceeds the largest transfer "
                           f"({MAX_K} shares of {MAX_SHARE_BYTES} bytes)")
    size = max(min(preferred, MAX_SHARE_BYTES), -(-length // MAX_K))
    # Do not pad a small patch up to a large share: one share of exactly its length.
    return min(size, length)


def encode(patch: bytes, preferred_share_bytes: int) -> Encoded:
    """Code ``patch`` into shares of about ``preferred_share_bytes``."""
    size = share_size(len(patch), preferred_share_bytes)
    return Encoded(bytes(patch), -(-len(patch) // size), size)
