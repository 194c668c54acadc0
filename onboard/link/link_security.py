"""TC link security, CCSDS SDLS style (CCSDS 355.0-B): who may put frames on the patch link.

Every TC frame of the patch virtual channel is authenticated under one *security
association* (SA): a security parameter index (SPI) and a 256-bit link key, distinct from
the patch key. The frame layout (security header and trailer) is in ``onboard/link/tc_frames.py``;
this module holds what both sides need besides the bytes:

- the MAC: HMAC-SHA256 with the link key, truncated to ``MAC_BYTES`` = 16 bytes (128 bits,
  the truncation of the patch tag and the MAC length SDLS names for its baseline
  authentication; 8 bytes would save 8 bytes a frame, 1.4 % of a 558-byte frame, but
  leave 64 bits against a key used for the whole mission);
- the anti-replay window: a frame is accepted once, and only if its sequence number is above
  the highest accepted or among the ``size`` below it not yet seen (frames arrive out of
  order within a pass, never by more than a pass's worth);
- the development link key of a mission, which anyone can compute: a flight profile refuses it.

A frame that fails authentication or the window is dropped before the receiver looks inside
it. The window only moves for an authenticated frame, so a forger cannot push it forward.

Stdlib only: the onboard side must stand alone.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from onboard.errors import OnboardError
from onboard.mission import MissionProfile

SPI_BYTES = 2
SEQUENCE_BYTES = 4
MAC_BYTES = 16
#: Security header (SPI, sequence number) and trailer (MAC) bytes of every frame.
SECURITY_HEADER_BYTES = SPI_BYTES + SEQUENCE_BYTES
SECURITY_TRAILER_BYTES = MAC_BYTES
#: The last usable sequence number: the ground must re-key (a new SPI) before it.
MAX_SEQUENCE = (1 << (8 * SEQUENCE_BYTES)) - 1
MIN_KEY_BYTES = 16
DEFAULT_SPI = 1
DEFAULT_REPLAY_WINDOW = 64

DEVELOPMENT_LINK_KEY_LABEL = b"CCL-VVM development TC link key, never for flight: "


@dataclass(frozen=True)
class SecurityAssociation:
    """The SPI and link key frames are authenticated under (never printed)."""

    spi: int
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.spi < (1 << (8 * SPI_BYTES)) - 1:
            raise ValueError(f"SPI {self.spi} is reserved or out of range (1 .. 65534)")
        if len(self.key) < MIN_KEY_BYTES:
            raise ValueError(f"a link key needs at least {MIN_KEY_BYTES} bytes, this one "
                             f"has {len(self.key)}")


class LinkKeyRefused(OnboardError):
    """A link key this mission profile does not accept (the development key in flight)."""

    def __init__(self, message: str) -> None:
        super().__init__("link-key-refused", message, hint="give the mission's own link key")


def development_link_key(mission: str) -> bytes:
    """The demo link key of ``mission``: SHA-256 of a public label and the mission name,
    distinct from its development patch key. A flight profile refuses it."""
    return hashlib.sha256(DEVELOPMENT_LINK_KEY_LABEL + mission.encode()).digest()


def check_link_key(profile: MissionProfile, key: bytes) -> None:
    """Raise ``LinkKeyRefused`` if ``profile`` may not use ``key`` on its TC link."""
    if len(key) < MIN_KEY_BYTES:
        raise LinkKeyRefused(f"a link key needs at least {MIN_KEY_BYTES} bytes, this one has "
                             f"{len(key)}")
    if profile.flight and hmac.compare_digest(key, development_link_key(profile.name)):
        raise LinkKeyRefused(f"mission `{profile.name}` is a flight profile: it refuses the "
                             "development link key")


def compute_mac(key: bytes, authenticated: bytes) -> bytes:
    """The security trailer of a frame whose authenticated bytes (primary header, security
    header, frame data) are ``authenticated``: HMAC-SHA256, first MAC_BYTES bytes."""
    return hmac.new(key, authenticated, hashlib.sha256).digest()[:MAC_BYTES]


def mac_ok(key: bytes, authenticated: bytes, mac: bytes) -> bool:
    """Whether ``mac`` authenticates ``authenticated`` (constant-time compare)."""
    return hmac.compare_digest(compute_mac(key, authenticated), mac)


@dataclass
class ReplayWindow:
    """Sequence numbers accepted so far: the highest, and a bitmap of the ``size`` numbers
    at and below it (bit i: ``highest - i`` was accepted). Numbers start at 1."""

    size: int = DEFAULT_REPLAY_WINDOW
    highest: int = 0
    seen: int = 0

    def fresh(self, seq: int) -> bool:
        """Whether a frame numbered ``seq`` may be accepted (neither replayed nor too old)."""
        if seq < 1:
            return False
        if seq > self.highest:
            return True
        offset = self.highest - seq
        return offset < self.size and not self.seen >> offset & 1

    def record(self, seq: int) -> None:
        """Mark ``seq`` accepted (after its frame authenticated)."""
        if seq > self.highest:
            shift = seq - self.highest
            # A long jump clears the bitmap without building a huge integer.
            self.seen = 1 if shift >= self.size else (self.seen << shift | 1) & (
                (1 << self.size) - 1)
            self.highest = seq
        else:
            self.seen |= 1 << (self.highest - seq)
