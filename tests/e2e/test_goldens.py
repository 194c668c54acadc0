"""Golden outputs of the commands on the CoRoT configurations.

For every configuration in ``missions/corot/configs/`` (and every VMlet in
``missions/corot/vmlets/``) the transcripts of ``ccl disasm``, ``ccl verify --json``, ``ccl
pack --json`` + ``ccl inspect --json`` of its full patch, and ``vvm init`` + ``vvm apply`` +
``vvm run --for 10s`` + ``vvm status --json`` of that patch are kept in ``golden/``, and so are
``ccl pack --json --base`` + ``ccl inspect --json --base`` of the delta between each pair of
consecutive versions of ``exo_e1``. A transcript is each command line, its stdout, its stderr
and its exit code; a mismatch fails with a unified diff. ``pytest --update-goldens`` rewrites
the files from what the commands print now (review the diff before committing it).

What is normalised, and why (nothing else is: everything else is the same on every run):

- ``"seconds": <number>`` in ``ccl verify --json`` becomes ``"seconds": "<seconds>"``: it is
  the wall time the solver took, which depends on the host and its load.
- The temporary directory the patches, images and state directory are written to becomes
  ``<tmp>``: pytest makes a new one each run.

The commands run in-process (``ccl`` through click's ``CliRunner``, ``vvm`` through its
``main`` with stdout and stderr captured), so the module costs seconds rather than a process
start per command, with one exception: ``ccl verify`` runs in a process of its own, one file
each. The worst-case input it reports is one of many that reach the same worst case (any
star index ``s``, say), and which one Z3 returns depends on what the process's Z3 context
built before, down to when Python's garbage collector freed earlier terms: in one pytest
process ``exo_e1_v6``'s witness came out as ``s = 2160`` in one run and ``s = 4096`` in the
next. A fresh process per file gives the answer ``ccl verify FILE`` gives an operator, the
same on every run. The spacecraft's seed is fixed (``vvm init --seed 1``), so the board's
telemetry is the same on every run too.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli.vvm
from ccl.limits import recursion_headroom
from cli.ccl import ccl

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
CONFIGS = ROOT / "missions" / "corot" / "configs"
VMLETS = ROOT / "missions" / "corot" / "vmlets"
SEED = 1
RUN_FOR = "10s"

# Variables the commands read: cleared so that the goldens do not depend on the shell.
_ENVIRONMENT = ("CCL_PATCH_KEY", "CCL_LINK_KEY", "CCL_MISSIONS", "CCL_LEDGER", "CCL_DEBUG",
                "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
_SECONDS = re.compile(r'"seconds": -?[0-9.]+(?:e-?[0-9]+)?')


def _version(path: Path) -> int:
    match = re.search(r"^\s*config\s+\w+\s+version\s+(\d+)\s*;", path.read_text(), re.M)
    assert match, f"{path} declares no config version"
    return int(match.group(1))


def _exo_e1_versions() -> list[Path]:
    """The files of ``exo_e1``, oldest version first."""
    return sorted(CONFIGS.glob("exo_e1*.ccl"), key=_version)


CONFIG_FILES = sorted(CONFIGS.glob("*.ccl"))
VMLET_FILES = sorted(VMLETS.glob("*.ccl"))
DELTAS = list(zip(_exo_e1_versions(), _exo_e1_versions()[1:], strict=False))


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _delta_name(old: Path, new: Path) -> str:
    return f"exo_e1_v{_version(old)}_to_v{_version(new)}"


@dataclass(frozen=True)
class Run:
    """One command as a transcript shows it."""

    argv: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def text(self) -> str:
        lines = [f"$ {' '.join(self.argv)}", self.stdout.rstrip("\n")]
        if self.stderr:
            lines += ["--- stderr", self.stderr.rstrip("\n")]
        lines.append(f"--- exit {self.code}")
        return "\n".join(lines) + "\n"


class Shell:
    """Runs ``ccl`` and ``vvm`` in-process from the repository root, recording transcripts
    with the temporary directory ``tmp`` shown as ``<tmp>``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.runner = CliRunner()

    def ccl(self, *args: object) -> Run:
        argv = [str(a) for a in args]
        with recursion_headroom():  # as `cli.ccl.main` gives the verifier
            result = self.runner.invoke(ccl, argv, prog_name="ccl", catch_exceptions=False)
        return self._record("ccl", argv, result.exit_code, result.stdout, result.stderr)

    def ccl_process(self, *args: object) -> Run:
        """``ccl`` in a process of its own (see the module's docstring for why)."""
        argv = [str(a) for a in args]
        env = {k: v for k, v in os.environ.items() if k not in _ENVIRONMENT}
        proc = subprocess.run([sys.executable, "-m", "cli.ccl", *argv], capture_output=True,
                              text=True, cwd=ROOT, env=env, check=False)
        return self._record("ccl", argv, proc.returncode, proc.stdout, proc.stderr)

    def vvm(self, *args: object) -> Run:
        argv = [str(a) for a in args]
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.vvm.main(argv)
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
        return self._record("vvm", argv, code, out.getvalue(), err.getvalue())

    def _record(self, prog: str, argv: list[str], code: int, stdout: str, stderr: str) -> Run:
        return Run(tuple(self._normal(a) for a in (prog, *argv)), code, self._normal(stdout),
                   self._normal(stderr))

    def _normal(self, text: str) -> str:
        return _SECONDS.sub('"seconds": "<seconds>"', text.replace(str(self.tmp), "<tmp>"))


def transcript(runs: list[Run]) -> str:
    return "\n".join(r.text() for r in runs)


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shell]:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)  # paths in the transcripts are relative to the repository
        for name in _ENVIRONMENT:
            mp.delenv(name, raising=False)
        # Every pack proves: what it prints never depends on what an earlier run kept.
        mp.setenv("CCL_PROOF_CACHE", "off")
        yield Shell(tmp_path_factory.mktemp("goldens"))


def config_outputs(shell: Shell, source: Path) -> dict[str, str]:
    """The transcripts of one configuration: disasm, verify, its full patch, the board."""
    rel, stem = _rel(source), source.stem
    outputs = {"disasm": transcript([shell.ccl("disasm", rel)]),
               "verify": transcript([shell.ccl_process("verify", "--json", rel)])}
    patch = shell.tmp / f"{stem}.vvmp"
    packs = pack(shell, rel, patch)
    if packs[-1].code != 0:
        outputs["patch"] = transcript(packs)
        return outputs
    outputs["patch"] = transcript([*packs, shell.ccl("inspect", "--json", patch)])
    state = shell.tmp / f"{stem}.state"
    outputs["board"] = transcript([
        shell.vvm("init", state, "--mission", "corot", "--seed", SEED),
        shell.vvm("apply", state, patch),
        shell.vvm("run", state, "--for", RUN_FOR),
        shell.vvm("status", state, "--json"),
    ])
    return outputs


def pack(shell: Shell, source: str, patch: Path, *base: object) -> list[Run]:
    """``ccl pack`` of ``source`` (against ``base``: ``--base IMAGE``); if it refuses a
    refuted configuration, ``ccl pack --unverified`` too, so the board gets a patch to judge."""
    runs = [shell.ccl("pack", source, *base, "--json", "-o", patch)]
    if runs[-1].code != 0:
        runs.append(shell.ccl("pack", source, *base, "--json", "--unverified", "-o", patch))
    return runs


def vmlet_outputs(shell: Shell, source: Path) -> dict[str, str]:
    """The transcripts of one VMlet: disasm and verify (it travels in a configuration's
    patch, so it has no patch of its own)."""
    rel = _rel(source)
    return {"disasm": transcript([shell.ccl("disasm", rel)]),
            "verify": transcript([shell.ccl_process("verify", "--json", rel)])}


def delta_outputs(shell: Shell, old: Path, new: Path) -> dict[str, str]:
    """The transcript of the delta from ``old`` to ``new``: the base image, the delta and
    what ``ccl inspect --base`` says it changes."""
    name = _delta_name(old, new)
    base, patch = shell.tmp / f"{name}.base.vvmi", shell.tmp / f"{name}.vvmp"
    return {"delta": transcript([
        shell.ccl("compile", _rel(old), "-o", base),
        *pack(shell, _rel(new), patch, "--base", base),
        shell.ccl("inspect", "--json", "--base", base, patch),
    ])}


def check_goldens(name: str, outputs: dict[str, str], update: bool) -> None:
    """Compare each output with ``golden/<name>.<kind>.txt`` (or rewrite it), failing with
    a unified diff of every mismatch."""
    problems = []
    kept = {GOLDEN / f"{name}.{kind}.txt" for kind in outputs}
    stale = sorted(p for p in GOLDEN.glob(f"{name}.*.txt") if p not in kept)
    if update:
        for path in stale:  # a command this configuration no longer gets this far in
            path.unlink()
    else:
        problems += [f"{p.name}: a golden of an output no longer made" for p in stale]
    for kind, text in outputs.items():
        path = GOLDEN / f"{name}.{kind}.txt"
        if update:
            GOLDEN.mkdir(exist_ok=True)
            path.write_text(text)
            continue
        if not path.exists():
            problems.append(f"{path.name}: no golden file (run pytest --update-goldens)")
            continue
        want = path.read_text()
        if want != text:
            diff = difflib.unified_diff(want.splitlines(keepends=True),
                                        text.splitlines(keepends=True),
                                        f"golden/{path.name}", "now")
            problems.append("".join(diff))
    if problems:
        pytest.fail("output differs from the golden file; if the change is intended, run "
                    "pytest --update-goldens and review the diff\n" + "\n".join(problems),
                    pytrace=False)


@pytest.mark.parametrize("source", CONFIG_FILES, ids=lambda p: p.stem)
def test_configuration_outputs_match_goldens(source: Path, shell: Shell,
                                             update_goldens: bool) -> None:
    check_goldens(source.stem, config_outputs(shell, source), update_goldens)


@pytest.mark.parametrize("source", VMLET_FILES, ids=lambda p: p.stem)
def test_vmlet_outputs_match_goldens(source: Path, shell: Shell, update_goldens: bool) -> None:
    check_goldens(source.stem, vmlet_outputs(shell, source), update_goldens)


@pytest.mark.parametrize(("old", "new"), DELTAS, ids=lambda p: p.stem)
def test_delta_outputs_match_goldens(old: Path, new: Path, shell: Shell,
                                     update_goldens: bool) -> None:
    check_goldens(_delta_name(old, new), delta_outputs(shell, old, new), update_goldens)


def _expected_names() -> set[str]:
    return ({p.stem for p in (*CONFIG_FILES, *VMLET_FILES)}
            | {_delta_name(old, new) for old, new in DELTAS})


def test_every_golden_file_belongs_to_a_configuration() -> None:
    """A golden left behind by a removed or renamed configuration would never be checked."""
    orphans = [p.name for p in GOLDEN.glob("*.txt") if p.name.split(".")[0]
               not in _expected_names()]
    assert not orphans, f"golden files of no configuration: {orphans}"


def test_the_corpus_covers_every_command() -> None:
    kinds = {p.name.split(".")[1] for p in GOLDEN.glob("*.txt")}
    assert kinds == {"disasm", "verify", "patch", "board", "delta"}
    assert len(DELTAS) >= 5, "exo_e1 comes in versions 5 to 10"
