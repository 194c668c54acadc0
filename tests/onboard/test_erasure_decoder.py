"""The onboard erasure decoder (stdlib) against the ground's encoder (zfec): same shares,
and any k of them rebuild the patch."""

from __future__ import annotations

import random

import pytest
import zfec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onboard.link import erasure

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_field_arithmetic() -> None:
    for a in range(1, 256):
        assert erasure.gf_mul(a, erasure.gf_inv(a)) == 1
        assert erasure.gf_mul(a, 1) == a and erasure.gf_mul(a, 0) == 0
    assert erasure.gf_mul(0x80, 2) == 0x1D  # reduction by x^8 + x^4 + x^3 + x^2 + 1


@FAST
@given(st.integers(1, 40), st.integers(1, 64), st.randoms(use_true_random=False))
def test_onboard_shares_equal_zfec_shares(k: int, size: int, rnd: random.Random) -> None:
    blocks = [rnd.randbytes(size) for _ in range(k)]
    ids = sorted(rnd.sample(range(256), min(12, 256)))
    want = zfec.Encoder(k, 256).encode(blocks, tuple(ids))
    assert [erasure.encode_share(k, blocks, i) for i in ids] == [bytes(b) for b in want]


@FAST
@given(st.integers(1, 60), st.integers(1, 48), st.randoms(use_true_random=False))
def test_any_k_zfec_shares_decode_onboard(k: int, size: int, rnd: random.Random) -> None:
    blocks = [rnd.randbytes(size) for _ in range(k)]
    ids = rnd.sample(range(256), k + rnd.randint(0, 3))
    shares = dict(zip(ids, _shares(blocks, k, ids), strict=True))
    assert erasure.decode(k, shares) == blocks


def _shares(blocks: list[bytes], k: int, ids: list[int]) -> list[bytes]:
    out = zfec.Encoder(k, 256).encode(blocks, tuple(sorted(ids)))
    by_id = dict(zip(sorted(ids), out, strict=True))
    return [bytes(by_id[i]) for i in ids]


def test_the_largest_code_decodes_from_parity_only() -> None:
    rnd = random.Random(7)
    k = 255
    blocks = [rnd.randbytes(32) for _ in range(k)]
    ids = [0] + list(range(2, 256))  # one primary lost: one parity share in its place
    shares = dict(zip(ids, _shares(blocks, k, ids), strict=True))
    assert erasure.decode(k, shares) == blocks
    small = 40
    blocks = blocks[:small]
    ids = list(range(256 - small, 256))  # no primary share at all
    assert erasure.decode(small, dict(zip(ids, _shares(blocks, small, ids),
                                          strict=True))) == blocks


def test_too_few_or_unequal_shares_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot rebuild"):
        erasure.decode(3, {0: b"a", 5: b"b"})
    with pytest.raises(ValueError, match="one size"):
        erasure.decode(2, {0: b"a", 5: b"bb"})
    with pytest.raises(ValueError, match="outside the code"):
        erasure.coefficients(3, 256)
