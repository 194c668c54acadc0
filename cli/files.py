"""The files a compiler command reads and writes.

An input that is missing, a directory or unreadable is a usage error (exit 2), found before
any work. What a command makes (``ccl compile``'s image, ``ccl pack``'s patch) is written by
default in the current directory, never next to the source (a source tree, a clone of this
repository, stays clean); a path that cannot be written is a usage error with a hint.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cli.console import EXIT_REJECTED, EXIT_USAGE, fail, require_inputs
from cli.options import MAX_INPUT_BYTES


def readable_inputs(files: Sequence[str]) -> None:
    """Every input exists (else exit 2, ``require_inputs``), is a regular file that can be
    read, and is no larger than any input can be (``regular_inputs``): exits on the first
    that is not."""
    require_inputs(files)
    for f in files:
        if Path(f).is_dir():
            fail(f"{f} is a directory, not a file", "give a file", EXIT_USAGE, f)
        regular_inputs([f])
        if not os.access(f, os.R_OK):
            fail(f"cannot read {f}: permission denied",
                 "check the file's permissions (chmod u+r)", EXIT_USAGE, f)


def regular_inputs(files: Sequence[str]) -> None:
    """Of the inputs that exist, none is a device or a pipe (a usage failure: reading it
    may never end) nor larger than any input can be (rejected): exits on the first."""
    for f in files:
        path = Path(f)
        if path.exists() and not path.is_dir() and not path.is_file():
            fail("not a regular file (a device or a pipe?)", "give a file",
                 EXIT_USAGE, f)
        if path.is_file() and path.stat().st_size > MAX_INPUT_BYTES:
            fail(f"larger than {MAX_INPUT_BYTES >> 20} MiB: no input is",
                 "check the path", EXIT_REJECTED, f)


def output_path(source: str, output: str | None, suffix: str, what: str) -> Path:
    """Where to write the ``what`` made of ``source``: ``output`` if given, else the source's
    name with ``suffix`` in the current directory. A path that cannot be written (no such
    directory, a directory) exits 2 here, before any work."""
    if output == "":
        fail("the output path is empty", "give a file name, or leave -o out to write "
             f"{Path(source).with_suffix(suffix).name} here", EXIT_USAGE, "-o")
    target = Path(output) if output else Path(Path(source).with_suffix(suffix).name)
    parent = target.parent
    if not parent.is_dir():
        hint = (f"{parent} is not a directory" if parent.exists()
                else f"create {parent} first, or give another path with -o")
        fail(f"cannot write the {what}: no directory {parent}", hint, EXIT_USAGE,
             str(target))
    if target.is_dir():
        fail(f"cannot write the {what}: {target} is a directory",
             "give a file name with -o", EXIT_USAGE, str(target))
    return target


def write_output(target: Path, data: bytes, what: str) -> None:
    """Write ``data`` to ``target`` (from ``output_path``), or exit 2 saying why not."""
    try:
        target.write_bytes(data)
    except OSError as exc:
        fail(f"cannot write the {what}: {exc.strerror or exc}",
             "give a writable path with -o", EXIT_USAGE, str(target))
