"""The TC link key on the ground: which key the frames of the uplink are authenticated with.

Each mission has two keys: the patch key (``ccl.pack``: it signs patches, end to end) and
the link key (here: it authenticates every TC frame, ``onboard/link/link_security.py``). Both are
32 random bytes written as hex by ``ccl keygen`` (mode 0600). The link key comes from
``--link-key FILE``, else ``$CCL_LINK_KEY`` (hex), else the mission's *development* link
key, which anyone can compute: a flight profile refuses it here and on board.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ground.errors import GroundError
from onboard.link.link_security import (
    LinkKeyRefused,
    SecurityAssociation,
    check_link_key,
    development_link_key,
)
from onboard.mission import MissionProfile
from onboard.patching.patch_format import key_from_text

LINK_KEY_ENV = "CCL_LINK_KEY"


class LinkKeyError(GroundError):
    """A link key that cannot be read or that the mission refuses."""


@dataclass(frozen=True)
class LinkKey:
    """A link key and where it came from (for messages; never the key itself)."""

    secret: bytes = field(repr=False)
    source: str
    development: bool = False

    def association(self, profile: MissionProfile) -> SecurityAssociation:
        """The security association of ``profile``'s patch channel under this key."""
        return SecurityAssociation(profile.receiver.spi, self.secret)


def load_link_key(profile: MissionProfile, path: Path | None = None,
                  environ: Mapping[str, str] | None = None) -> LinkKey:
    """The link key for ``profile``: ``path``, else $CCL_LINK_KEY, else the development
    link key (refused by a flight profile). Raises ``LinkKeyError``."""
    env = os.environ if environ is None else environ
    hint = "write one with `ccl keygen --link -o FILE`"
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not text"
            raise LinkKeyError(f"cannot read link key file {path}: {reason}",
                               "check the path") from None
        key = LinkKey(_parse(text, str(path), hint), str(path))
    elif env.get(LINK_KEY_ENV):
        key = LinkKey(_parse(env[LINK_KEY_ENV], f"${LINK_KEY_ENV}", hint), f"${LINK_KEY_ENV}")
    else:
        key = LinkKey(development_link_key(profile.name),
                      f"the development link key of `{profile.name}`", development=True)
    try:
        check_link_key(profile, key.secret)
    except LinkKeyRefused as exc:
        raise LinkKeyError(str(exc), f"give the mission's link key with --link-key FILE or "
                           f"${LINK_KEY_ENV}") from None
    return key


def _parse(text: str, source: str, hint: str) -> bytes:
    try:
        return key_from_text(text)
    except ValueError as exc:
        raise LinkKeyError(f"{source}: {exc}", hint) from None
