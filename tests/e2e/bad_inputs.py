"""The sweep of bad inputs across every ``ccl`` and ``vvm`` command: empty, binary,
truncated, huge, negative, NaN, infinite, the wrong type of file, a directory, missing and
unwritable paths. Each case is a command line; what it must answer is a clear refusal
(exit 1 or 2, one message with a hint), never a traceback and never exit 70.

``cases(workspace)`` builds the files a case needs in ``workspace`` and returns the command
lines; ``tests/e2e/test_bad_inputs.py`` runs them, and ``python -m tests.e2e.bad_inputs``
(from the repository's root) prints what each answers, for the record.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "missions" / "corot" / "configs"
GOOD = CONFIGS / "exo_e1.ccl"


REFUSED = frozenset({1, 2})
ALSO_FINE = frozenset({0, 1, 2})  # a strange but legal request


@dataclass(frozen=True)
class Case:
    """One bad command line: the program, its arguments, and the exit codes that are a
    correct answer to it."""

    prog: str  # "ccl" or "vvm"
    args: tuple[str, ...]
    allowed: frozenset[int] = REFUSED

    @property
    def line(self) -> str:
        return " ".join([self.prog, *self.args])


def _files(ws: Path) -> dict[str, Path]:
    """The bad files every file argument is tried with, by kind."""
    rng = random.Random(13)
    files = {
        "missing": ws / "no-such-file",
        "empty": ws / "empty.bin",
        "comment-only": ws / "comment.ccl",
        "binary": ws / "random.bin",
        "truncated": ws / "truncated.vvmp",
        "directory": ws / "a-directory",
        "latin1": ws / "latin1.ccl",
        "huge-header": ws / "huge.vvmp",
        "device": Path("/dev/zero"),  # endless: must be refused, never read to the end
    }
    files["empty"].write_bytes(b"")
    files["comment-only"].write_text("// nothing but a comment\n/* and another */\n")
    files["binary"].write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    patch = ws / "good.vvmp"
    from cli.ccl import main as ccl_main  # noqa: PLC0415 - only when building the files
    _run(ccl_main, ["pack", str(GOOD), "-o", str(patch), "--quiet"])
    files["truncated"].write_bytes(patch.read_bytes()[:30])
    files["directory"].mkdir()
    files["latin1"].write_bytes("mission corot; // caf\xe9\n".encode("latin-1"))
    # A patch's magic, then every length field at its largest.
    files["huge-header"].write_bytes(b"VP\x01" + b"\xff" * 64)
    return files


def cases(ws: Path) -> list[Case]:
    """Every bad command line of the sweep, with the files they need made in ``ws``."""
    f = _files(ws)
    state = ws / "sat"
    garbage_state = ws / "garbage-state"
    garbage_state.mkdir()
    (garbage_state / "state.json").write_bytes(b"\x00\xff" * 50)
    out_missing_dir = str(ws / "no-dir" / "out.bin")
    kinds = list(f)
    sources = ["check", "compile", "disasm", "verify", "pack"]
    out: list[Case] = []
    for kind in kinds:
        path = str(f[kind])
        for command in sources:
            out.append(Case("ccl", (command, path)))
        out += [
            Case("ccl", ("inspect", path)),
            Case("ccl", ("pack", str(GOOD), "--base", path, "-o", str(ws / "p.vvmp"))),
            Case("ccl", ("pack", str(GOOD), "--key", path, "-o", str(ws / "p.vvmp"))),
            Case("ccl", ("uplink", "plan", path)),
            Case("ccl", ("uplink", "simulate", path, "--days", "1")),
            Case("ccl", ("sim", path)),
            # An empty file is an empty SQLite database.
            Case("ccl", ("status", "--ledger", path), ALSO_FINE if kind == "empty" else REFUSED),
            Case("ccl", ("passes", "--tle", path)),
            Case("vvm", ("inspect", path)),
            # An empty directory is a fine place for a new state directory.
            Case("vvm", ("init", path, "--mission", "corot"),
                 ALSO_FINE if kind == "directory" else REFUSED) if kind != "missing" else
            Case("vvm", ("init", str(ws / "new-sat"), "--mission", "corot", "--key", path)),
            Case("vvm", ("load", str(state), path)),
            Case("vvm", ("apply", str(state), path)),
            Case("vvm", ("status", path), ALSO_FINE if kind == "directory" else REFUSED),
            Case("vvm", ("dump", path)),
        ]
    for number in ("nan", "inf", "-inf", "-1", "0", "1e9", "1e400", "abc"):
        legal = ALSO_FINE if number in ("0", "1e9") else REFUSED
        out += [
            Case("ccl", ("verify", str(GOOD), "--timeout", number), legal),
            Case("ccl", ("passes", "--days", number)),
            Case("ccl", ("uplink", "simulate", str(ws / "good.vvmp"), "--loss", number),
                 ALSO_FINE if number == "0" else REFUSED),
            Case("ccl", ("uplink", "simulate", str(ws / "good.vvmp"), "--days", number)),
            Case("vvm", ("run", str(state), "--for", number + "h"),
                 ALSO_FINE if number == "0" else REFUSED),
        ]
    for seq in ("0", "-1", str(1 << 64), str(1 << 200), "x"):
        out.append(Case("ccl", ("pack", str(GOOD), "--seq", seq, "-o", str(ws / "p.vvmp"))))
    for duration in ("", "infh", "nand", "1e9d", "-5m", "5 parsecs", "99999999999999999999d"):
        out.append(Case("vvm", ("run", str(state), "--for", duration)))
    out += [
        Case("ccl", ("compile", str(GOOD), "-o", out_missing_dir)),
        Case("ccl", ("compile", str(GOOD), "-o", str(f["directory"]))),
        Case("ccl", ("pack", str(GOOD), "-o", out_missing_dir)),
        Case("ccl", ("keygen", "-o", out_missing_dir)),
        Case("ccl", ("uplink", "simulate", str(ws / "good.vvmp"), "--plot", out_missing_dir)),
        Case("ccl", ("uplink", "simulate", str(ws / "good.vvmp"), "--ledger",
                     out_missing_dir)),
        Case("ccl", ("status", "--ledger", out_missing_dir)),
        # Unwritable even for root (the tests may run as root, where chmod does not bite).
        Case("ccl", ("compile", str(GOOD), "-o", "/proc/ccl-image.vvmi")),
        Case("ccl", ("pack", str(GOOD), "-o", "/proc/ccl-patch.vvmp")),
        Case("ccl", ("pack", str(GOOD), "-o", "/dev/full")),
        Case("ccl", ("keygen", "-o", "/proc/ccl.key")),
        Case("ccl", ("uplink", "simulate", str(ws / "good.vvmp"), "--plot", "/proc/t.png")),
        Case("ccl", ("uplink", "simulate", str(ws / "good.vvmp"), "--ledger",
                     "/proc/l.sqlite")),
        Case("vvm", ("init", "/proc/ccl-sat", "--mission", "corot")),
        Case("ccl", ("passes", "--start", "yesterday-ish")),
        Case("ccl", ("passes", "--start", "1957-10-04", "--days", "1")),
        Case("ccl", ("passes", "--mission", "no-such-mission")),
        Case("ccl", ("--missions", str(f["missing"]), "check", str(GOOD))),
        Case("ccl", ("--missions", str(f["empty"]), "check", str(GOOD))),
        Case("vvm", ("init", str(ws / "sat3"), "--mission", "corot", "--missions",
                     str(f["missing"]))),
        Case("ccl", ("nonsense",)),
        Case("ccl", ("verify",)),
        Case("vvm", ("nonsense",)),
        Case("vvm", ("init", str(ws / "sat2"), "--mission", "no-such-mission")),
        Case("vvm", ("status", str(garbage_state))),
        Case("vvm", ("run", str(garbage_state), "--for", "1m")),
        Case("vvm", ("dump", str(state), "no_such_name")),
        Case("vvm", ("init", out_missing_dir + "/deeper", "--mission", "corot"), ALSO_FINE),
    ]
    return out


def _run(main: object, args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(args)  # type: ignore[operator]
        except SystemExit as done:
            code = done.code
    return (code if isinstance(code, int) else (0 if code is None else 1)), out.getvalue(), \
        err.getvalue()


def run_case(case: Case, json_output: bool = False) -> tuple[int, str, str]:
    """Run ``case`` in this process (``--json`` added if asked): its exit code, stdout and
    stderr."""
    from cli.ccl import main as ccl_main  # noqa: PLC0415
    from cli.vvm import main as vvm_main  # noqa: PLC0415

    args = list(case.args) + (["--json"] if json_output else [])
    return _run(ccl_main if case.prog == "ccl" else vvm_main, args)


def prepare_state(ws: Path) -> None:
    """The good state directory the ``vvm`` cases use."""
    from cli.vvm import main as vvm_main  # noqa: PLC0415

    code, out, err = _run(vvm_main, ["init", str(ws / "sat"), "--mission", "corot"])
    assert code == 0, out + err


def first_line(out: str, err: str) -> str:
    """What a case answers, in one line: its JSON error's message or its first line."""
    text = (err or out).strip()
    if out.strip().startswith("{"):
        try:
            return json.loads(out)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            pass
    lines = text.splitlines()
    errors = [line for line in lines if "error" in line]
    return (errors or lines or ["(nothing)"])[0]


if __name__ == "__main__":  # the record for the closing note
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        prepare_state(workspace)
        for c in cases(workspace):
            rc, so, se = run_case(c)
            shown = c.line.replace(str(workspace) + os.sep, "").replace(str(ROOT) + os.sep, "")
            print(f"{rc:3}  {shown}  ->  {first_line(so, se)}")
        shutil.rmtree(workspace / "sat", ignore_errors=True)
    sys.exit(0)
