"""What the tests of several packages share: compiling the CCL a test writes, starting a
VVM on it, the patch key of the tests, and the CCL programs more than one package checks.

Importable from every test module as ``support`` (``tests/`` is on the path because
``tests/conftest.py`` is there).
"""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from ccl.driver import Compiled, Compiler
from ccl.verify.verdict import run_verifier
from ground.tle import checksum
from missions.corot.natives import CorotHost, make_host
from onboard.vm.vvm import VVM

ROOT = Path(__file__).resolve().parents[1]

#: The patch key of tests that sign patches themselves (not a mission's development key).
TEST_KEY = bytes(range(1, 33))


#: A configuration proven to need 186,186 of the 190,000 cycles a CoRoT frame leaves the tasks
#: beside a 10,000-cycle patch reserve: the conditions tests raise the reserve under it.
BUSY = """\
mission corot;
config busy version 1;
param n : int[0..2550] = 100;
var acc : int[0..100000];
task t every 100 ms { for i in 0 .. n { acc = (acc + i) % 100000; } }
"""


def compile_text(directory: Path, text: str, name: str = "prog") -> Compiled:
    """Compile CCL ``text``, written to ``directory/name.ccl`` (where its diagnostics
    point), with the missions of the repository."""
    path = directory / f"{name}.ccl"
    path.write_text(text, encoding="utf-8")
    return Compiler().compile(path)


def proven(c: Compiled) -> int:
    """The verifier's worst-case cycles per frame of ``c`` (what `ccl pack` claims; a patch
    for an application must claim no more than its part). A configuration whose safety is
    refuted (a divider that may divide by zero) has its cost bound proven all the same."""
    verdict = run_verifier(c, reuse=True)
    assert verdict.cycles_per_frame is not None
    return verdict.cycles_per_frame


def start_vvm(compiled: Compiled, seed: int = 1, host: CorotHost | None = None) -> VVM:
    """A VVM of ``compiled``'s mission on the simulated CoRoT instrument (``seed``), with
    ``compiled``'s VMlets and configuration loaded."""
    vm = VVM(compiled.mission, host or make_host(compiled.mission, seed))
    for v in compiled.vmlets:
        vm.load_vmlet(v.image)
    vm.load(compiled.image)
    return vm


#: ``small`` and ``big`` run the same instructions, but ``big`` has ``{lets}`` more locals
#: (on a path never taken): a call must be charged the frame it pushes, on both engines
#: and in the proofs (``frames_program``).
FRAMES = """\
mission corot;
config frames version 1;
var out : int[0..10] = 0;
fn small(x : int[0..10]) -> int[0..10] {{
    if x > 100 {{ return 0; }}
    return x;
}}
fn big(x : int[0..10]) -> int[0..10] {{
    if x > 100 {{
{lets}
        return 0;
    }}
    return x;
}}
task t_small every 1 s {{ out = small(1); }}
task t_big every 1 s {{ out = big(1); }}
"""


def frames_program(extra_locals: int) -> str:
    """``FRAMES`` with ``big`` given ``extra_locals`` more locals than ``small``."""
    lets = "\n".join(f"        let a{i} : int[0..10] = x;" for i in range(extra_locals))
    return FRAMES.format(lets=lets)


#: The CoRoT TLE of the mission profile (epoch 2014-06-11T04:38:58Z).
COROT_TLE = ("1 29678U 06063A   14162.19373516  .00000425  00000-0  96034-4 0  4369",
             "2 29678 090.0189 011.6656 0203110 239.5882 262.3331 14.42990413381076")


def redated_tle(epoch: datetime, lines: tuple[str, str] = COROT_TLE) -> str:
    """The text of a TLE file: ``lines`` with their epoch set to ``epoch`` and their
    checksums recomputed (a "newer TLE" of the same orbit, for the tests of passes)."""
    start = datetime(epoch.year, 1, 1, tzinfo=UTC)
    doy = 1 + (epoch - start).total_seconds() / 86400.0
    line1 = f"{lines[0][:18]}{epoch.year % 100:02d}{doy:012.8f}{lines[0][32:68]}"
    out = []
    for line in (line1, lines[1][:68]):
        out.append(line + str(checksum(line)))
    return "\n".join(out) + "\n"


def drawn_on_a_terminal(argv: list[str], cwd: Path) -> tuple[int, bytes, bytes]:
    """Run ``argv`` with stderr on a pseudo-terminal and stdout piped (as a user at a
    terminal piping the result): its exit code, what it drew on the terminal, and its
    stdout."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=slave,
                            env=os.environ | {"PYTHONPATH": str(ROOT), "TERM": "xterm"})
    os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, drawn, out


def run_in_process(prog: str, args: list[str], cwd: Path | None = None,
                   env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``ccl`` or ``vvm`` (``prog``) with ``args``, run in this process the way a process of
    its own would run it: in ``cwd`` (default: the repository), with exactly ``env`` as its
    environment (default: this one), stdout and stderr captured, its exit code returned.

    For the tests of what a command answers (messages, exit codes, files written): they
    skip the start of a new interpreter (about 0.3 s of imports each). What only a real
    process shows (a terminal, signals, a closed pipe, the imports at start) stays in
    ``tests/e2e/test_cli.py``, ``test_cli_convention.py`` and ``test_startup.py``."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from cli.ccl import main as ccl_main
    from cli.vvm import main as vvm_main

    main = ccl_main if prog == "ccl" else vvm_main
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        os.chdir(cwd or ROOT)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main(argv)
            except SystemExit as done:
                code = done.code
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    returncode = code if isinstance(code, int) else (0 if code is None else 1)
    return subprocess.CompletedProcess([prog, *argv], returncode, out.getvalue(),
                                       err.getvalue())
