"""Ground erasure coding: share sizes, limits, and that shares are the patch plus parity."""

from __future__ import annotations

import pytest

from ground.erasure import ErasureError, encode, share_size
from onboard.link import erasure as onboard_erasure
from onboard.link.tc_frames import MAX_SHARE_BYTES, patch_crc


def test_share_size_rules() -> None:
    assert share_size(16_384, 512) == 512
    assert share_size(100, 512) == 100            # a small patch is one share, unpadded
    assert share_size(200_000, 512) == 785        # at most 255 shares
    with pytest.raises(ErasureError, match="empty"):
        share_size(0, 512)
    with pytest.raises(ErasureError, match="exceeds the largest transfer"):
        share_size(255 * MAX_SHARE_BYTES + 1, 512)


def test_primary_shares_are_the_patch_and_parity_rebuilds_it() -> None:
    patch = bytes(range(256)) * 5 + b"tail"
    enc = encode(patch, 100)
    assert (enc.k, enc.share_bytes, enc.crc) == (13, 100, patch_crc(patch))
    primary = enc.shares(range(enc.k))
    assert b"".join(primary[i] for i in range(enc.k))[: len(patch)] == patch
    parity = enc.shares(range(200, 200 + enc.k))
    assert b"".join(onboard_erasure.decode(enc.k, parity))[: len(patch)] == patch
    assert enc.shares([]) == {}
    with pytest.raises(ErasureError):
        enc.shares([256])
