"""The one place where the VVM writes persistently, and the simulated power cut.

Everything the onboard side keeps across resets -- the configuration store's slots and
journal (``onboard.patching.store``) and the simulator's own files (``onboard.sim.simulator``) -- is
written through one ``Disk``. Its primitives are each synced to stable storage before they
return, in the order they are called::

    write(path, data)    replace a file's contents in place (the file may be torn by a cut)
    replace(path, data)  atomically: write ``path.tmp`` in full, then rename it over ``path``
    rename(src, dst)     atomically move a file over another
    mkdir(path)          create a directory (and its parents)

``FaultyDisk`` counts these primitives (a ``replace`` counts two: its temporary file and
its rename) and cuts the power at a chosen one: a cut ``write`` leaves the first half of its
data when ``torn``, a cut ``replace`` leaves a torn temporary file and the old ``path``, a
cut ``rename`` or ``mkdir`` does nothing; then ``PowerLoss`` is raised. ``PowerLoss`` is a
``BaseException``: no ``except Exception`` on board may swallow a power cut, as no software
survives one.

Stdlib only: the onboard side must stand alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from onboard.patching.key_file import open_secret


class PowerLoss(BaseException):
    """Raised by ``FaultyDisk`` at the primitive where the power is cut (simulation only)."""


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Disk:
    """Persistent writes, each synced before it returns; see the module docstring."""

    def write(self, path: Path, data: bytes, *, secret: bool = False) -> None:
        """Replace the contents of ``path`` with ``data`` in place and sync it; a
        ``secret`` (a key) is written to a new owner-only file, never through a link."""
        new = not path.exists()
        fd = open_secret(path) if secret else \
            os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:  # the directory entry must survive the power loss too
            _sync_directory(path.parent)

    def replace(self, path: Path, data: bytes, *, secret: bool = False) -> None:
        """Replace ``path`` with ``data`` atomically: a power cut leaves the old file or the
        new one, never a torn one (at worst a torn ``path.tmp`` beside it). The rename
        replaces a symbolic link at ``path``, never writes through it."""
        tmp = path.with_name(path.name + ".tmp")
        self.write(tmp, data, secret=secret)
        self.rename(tmp, path)

    def rename(self, source: Path, target: Path) -> None:
        """Move ``source`` over ``target`` atomically and sync the directory."""
        os.replace(source, target)
        _sync_directory(target.parent)

    def mkdir(self, path: Path) -> None:
        """Create the directory ``path`` (and its parents) if it does not exist."""
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            _sync_directory(path.parent)


class FaultyDisk(Disk):
    """A disk whose power fails at primitive number ``fail_at`` (0-based, counted over
    ``write``, ``rename`` and ``mkdir``; ``replace`` is a write and a rename); ``writes``
    counts the primitives so far (a fault-free run with ``fail_at=None`` measures them)."""

    def __init__(self, fail_at: int | None = None, *, torn: bool = True) -> None:
        self.fail_at = fail_at
        self.torn = torn
        self.writes = 0
        self.log: list[str] = []  # what each primitive was, for messages

    def _cut(self, what: str) -> bool:
        index = self.writes
        self.writes += 1
        self.log.append(what)
        return index == self.fail_at

    def write(self, path: Path, data: bytes, *, secret: bool = False) -> None:
        if self._cut(f"write {path.name}"):
            if self.torn:
                with open(path, "wb") as f:
                    f.write(data[:len(data) // 2])
            raise PowerLoss(f"power lost during write {self.writes - 1} ({path.name})")
        super().write(path, data, secret=secret)

    def rename(self, source: Path, target: Path) -> None:
        if self._cut(f"rename {source.name} -> {target.name}"):
            raise PowerLoss(f"power lost before rename {self.writes - 1} ({target.name})")
        super().rename(source, target)

    def mkdir(self, path: Path) -> None:
        if path.is_dir():
            return  # nothing to write
        if self._cut(f"mkdir {path.name}"):
            raise PowerLoss(f"power lost before mkdir {self.writes - 1} ({path.name})")
        super().mkdir(path)
