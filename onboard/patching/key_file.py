"""Key files: written owner-only (mode 0600), atomically, never through a symbolic link.

A patch key or a link key is a secret. Its file (the hex text ``ccl keygen`` writes, read
by ``onboard.patching.patch_format.key_from_text``) is first written whole to a temporary file in
the same folder, created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode 0600 (and set to
0600 whatever the umask), flushed to disk, then put in place in one step:

- without ``force``, with ``link(2)``, which fails if *anything* is at the path, a dangling
  symbolic link included: an existing key is never replaced by mistake;
- with ``force``, with ``rename(2)``, which replaces the directory entry itself: a symbolic
  link at the path is replaced, never written through, and the old file's mode is not kept.

Either way no reader ever sees a partial key. Stdlib only (the onboard simulator writes its
``patch.key`` with it).
"""

from __future__ import annotations

import os
from pathlib import Path

KEY_FILE_MODE = 0o600


def open_secret(path: Path) -> int:
    """A new file at ``path`` for writing a secret: owner-only whatever the umask, created
    afresh (what an interrupted write left there is unlinked first; unlink never follows a
    link) and never through a symbolic link. Returns its descriptor."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, KEY_FILE_MODE)
    os.fchmod(fd, KEY_FILE_MODE)  # the umask may have taken bits off; never more
    return fd


def write_key_file(path: Path, text: str, *, force: bool = False) -> None:
    """Write ``text`` to the key file ``path`` (see the module docstring). Raises
    ``FileExistsError`` if something is at ``path`` and ``force`` is false, ``OSError`` for
    any other failure (the path is then unchanged)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = open_secret(tmp)
    try:
        try:
            data = memoryview(text.encode("ascii"))
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path, follow_symlinks=False)
            os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _sync_directory(path.parent)


def _sync_directory(folder: Path) -> None:
    """Make the new directory entry durable (best effort where directories cannot be
    opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
