"""Proofs kept between commands, so that ``ccl pack`` after ``ccl verify`` does not prove the
same configuration again (seconds each time).

A proof is kept only when it is ``proven``, under a fingerprint of everything the verdict
depends on: the sources and images of the configuration and of the VMlets it uses, the
mission profile, and the code of the verifier itself (every module of ``ccl`` and
``onboard``). Change any of them and the fingerprint changes: the old proof is never found
again. A proof that cannot be read or written is simply not reused: the command proves.

Where: ``$CCL_PROOF_CACHE`` (a folder, or ``off`` to neither keep nor reuse proofs), else
``$XDG_CACHE_HOME/ccl/proofs``, else ``~/.cache/ccl/proofs``; never in the source tree.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from pathlib import Path

import ccl
import onboard
from ccl.compiled import Compiled
from onboard.patching.conditions import current_values

CACHE_ENV = "CCL_PROOF_CACHE"


def cache_dir() -> Path | None:
    """The folder proofs are kept in; None when keeping them is switched off."""
    chosen = os.environ.get(CACHE_ENV, "")
    if chosen.lower() == "off":
        return None
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ccl" / "proofs"


@cache
def _verifier_code() -> str:
    """A digest of the verifier's code (the ``ccl`` and ``onboard`` packages): a new
    verifier never trusts an old one's proofs."""
    digest = hashlib.sha256()
    for package in (ccl, onboard):
        root = Path(*package.__path__)
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def fingerprint(compiled: Compiled) -> str:
    """What a proof of ``compiled`` depends on, as one SHA-256 (hex)."""
    digest = hashlib.sha256(_verifier_code().encode())
    for unit in (compiled, *compiled.vmlets):
        digest.update(unit.image.encode())
        try:
            digest.update(Path(unit.program.file).read_bytes())
        except OSError:
            digest.update(b"<unreadable source>")
    mission = compiled.mission
    # The soft figures too: a profile patch changes them on board (``ccl.conditions``)
    # without changing the profile's file.
    digest.update(json.dumps([mission.name, mission.variant, mission.raw,
                              current_values(mission)], sort_keys=True, default=str).encode())
    return digest.hexdigest()


def recall(compiled: Compiled) -> dict[str, object] | None:
    """The kept proof of ``compiled`` (as ``keep`` stored it), or None."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        data = json.loads((folder / f"{fingerprint(compiled)}.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("status") == "proven" else None


def keep(compiled: Compiled, proof: dict[str, object]) -> None:
    """Keep ``proof`` (a JSON object) of ``compiled`` if it is proven; quietly nothing when
    the folder cannot be written."""
    folder = cache_dir()
    if folder is None or proof.get("status") != "proven":
        return
    target = folder / f"{fingerprint(compiled)}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(proof))
        partial.replace(target)  # whole or not at all: a reader never sees half a proof
    except OSError:
        pass
