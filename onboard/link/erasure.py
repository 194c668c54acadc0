"""Erasure code of patch segments: any k of a transfer's shares rebuild the patch.

The code is zfec's (Rizzo's systematic Vandermonde code over GF(2^8), field polynomial
x^8 + x^4 + x^3 + x^2 + 1): a patch is cut into k equal *primary* blocks, which are shares
0 .. k-1 unchanged; share i >= k is a linear combination of the primary blocks with the
coefficients of row i of the encoding matrix. That row depends only on k and i, never on how
many shares the ground sends, so the ground can add fresh shares after a lossy pass.

The ground encodes with the ``zfec`` library (C); the satellite only decodes, here, in
stdlib Python. ``tests/onboard/test_erasure.py`` proves the two agree share for share.

Decoding needs arithmetic only for the primary blocks that are missing (m of them): their
coefficients are subtracted out of m parity shares, leaving an m x m system, inverted once
per patch; every multiply-accumulate of a whole share is a ``bytes.translate`` through a
256-byte product table and an integer XOR. Rows are ``bytes`` for the same reason.

Stdlib only: the onboard side must stand alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

#: x^8 + x^4 + x^3 + x^2 + 1, zfec's (and Rizzo's) field polynomial.
FIELD_POLY = 0x11D
MAX_SHARES = 256


def _tables() -> tuple[list[int], list[int]]:
    exp = [0] * 510
    log = [0] * 256
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x <<= 1
        if x & 0x100:
            x ^= FIELD_POLY
    for i in range(255, 510):
        exp[i] = exp[i - 255]
    return exp, log


_EXP, _LOG = _tables()


def gf_mul(a: int, b: int) -> int:
    """Product in GF(2^8)."""
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def gf_inv(a: int) -> int:
    """Multiplicative inverse in GF(2^8); ``a`` must not be 0."""
    return _EXP[255 - _LOG[a]]


@lru_cache(maxsize=256)
def _product_table(c: int) -> bytes:
    """``table[x] = c * x``, for ``bytes.translate``."""
    return bytes(gf_mul(c, x) for x in range(256))


def _scale(c: int, row: bytes) -> bytes:
    return row if c == 1 else row.translate(_product_table(c))


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _invert(matrix: Sequence[bytes]) -> list[bytes]:
    """Gauss-Jordan inverse over GF(2^8) of rows given as bytes; ValueError when singular."""
    n = len(matrix)
    a = [bytes(row) + bytes(1 if i == j else 0 for j in range(n))
         for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = next((r for r in range(col, n) if a[r][col]), None)
        if pivot is None:
            raise ValueError("singular matrix")
        a[col], a[pivot] = a[pivot], a[col]
        a[col] = _scale(gf_inv(a[col][col]), a[col])
        for r in range(n):
            f = a[r][col]
            if r != col and f:
                a[r] = _xor(a[r], _scale(f, a[col]))
    return [row[n:] for row in a]


def _vandermonde_row(k: int, i: int) -> bytes:
    # Row 0 evaluates at 0; row i >= 1 evaluates at alpha^(i-1): [alpha^((i-1) * col)].
    if i == 0:
        return bytes([1] + [0] * (k - 1))
    return bytes(_EXP[((i - 1) * col) % 255] for col in range(k))


@lru_cache(maxsize=32)
def _vandermonde_top_inverse(k: int) -> tuple[bytes, ...]:
    return tuple(_invert([_vandermonde_row(k, i) for i in range(k)]))


def coefficients(k: int, share: int) -> bytes:
    """Row ``share`` of the systematic encoding matrix for ``k`` primary blocks."""
    if not 1 <= k <= MAX_SHARES or not 0 <= share < MAX_SHARES:
        raise ValueError(f"share {share} of k = {k} is outside the code (at most 256 shares)")
    if share < k:
        return bytes(1 if c == share else 0 for c in range(k))
    return _combine(_vandermonde_row(k, share), _vandermonde_top_inverse(k), k)


def _combine(coeffs: bytes, blocks: Sequence[bytes], size: int) -> bytes:
    """The linear combination sum(coeffs[i] * blocks[i]) of equal-size blocks."""
    acc = 0
    for c, block in zip(coeffs, blocks, strict=True):
        if c:
            acc ^= int.from_bytes(_scale(c, block), "big")
    return acc.to_bytes(size, "big")


def encode_share(k: int, blocks: Sequence[bytes], share: int) -> bytes:
    """Share ``share`` of the ``k`` equal-size primary ``blocks`` (the definition of a share;
    the ground computes the same bytes with zfec)."""
    if len(blocks) != k or len({len(b) for b in blocks}) > 1:
        raise ValueError("encode_share needs k primary blocks of one size")
    return _combine(coefficients(k, share), blocks, len(blocks[0]))


def decode(k: int, shares: Mapping[int, bytes]) -> list[bytes]:
    """The k primary blocks from any k distinct shares (share id -> bytes, equal sizes)."""
    if len(shares) < k:
        raise ValueError(f"{len(shares)} shares cannot rebuild k = {k} blocks")
    sizes = {len(b) for b in shares.values()}
    if len(sizes) != 1:
        raise ValueError("shares of one transfer must have one size")
    size = sizes.pop()
    missing = [j for j in range(k) if j not in shares]
    if not missing:
        return [shares[j] for j in range(k)]
    # Each parity share is sum_j C[i][j] b_j; subtracting the primary blocks we hold leaves
    # a |missing| x |missing| system in the missing blocks only.
    parity = sorted(i for i in shares if i >= k)[: len(missing)]
    rows, rhs = [], []
    for i in parity:
        c = coefficients(k, i)
        known = bytes(0 if j in missing else c[j] for j in range(k))
        held = [shares[j] if j in shares else bytes(size) for j in range(k)]
        rhs.append(_xor(shares[i], _combine(known, held, size)))
        rows.append(bytes(c[j] for j in missing))
    inverse = _invert(rows)
    rebuilt = dict(zip(missing, (_combine(inverse[m], rhs, size)
                                 for m in range(len(missing))), strict=True))
    return [shares[j] if j in shares else rebuilt[j] for j in range(k)]
