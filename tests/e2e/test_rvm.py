"""``vvm repl`` (the RVM), driven as an operator's script drives it: the real command in a
process of its own, reading its entries from standard input.

The golden transcript (``golden/rvm/session.txt``, rewritten by ``pytest --update-goldens``)
is a session that adds an instruction, uses it (``=`` and ``:run``), redefines it and undoes
the redefinition; the other tests check what a transcript cannot show by itself: the cycles
it prints are exactly those ``ccl verify`` proves and the mission's cycle table gives, a
refused change leaves the state directory byte-identical, and ``vvm --help`` does not load
the compiler. Each test keeps its proofs in a folder of its own, so that whether a proof is
new or reused is the same on every run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from onboard.mission import find_mission
from onboard.vm.isa import CostClass

ROOT = Path(__file__).resolve().parents[2]
Session = tuple[Path, "subprocess.CompletedProcess[str]"]  # where it ran, what it did
GOLDEN = Path(__file__).parent / "golden" / "rvm" / "session.txt"

TWICE_MUL = "instr twice(a: int[0..1000]) -> int[0..2000] { return a * 2; }"

SESSION = (ROOT / "missions" / "corot" / "sessions" / "twice.rvm").read_text()


def repl(cwd: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``vvm repl ARGS`` in ``cwd`` with ``script`` on standard input (not a terminal)."""
    env = os.environ | {"PYTHONPATH": str(ROOT), "CCL_PROOF_CACHE": str(cwd / "proofs")}
    env.pop("CCL_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "cli.vvm", "repl", *args], input=script,
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def files(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` and its bytes."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    cwd = tmp_path_factory.mktemp("rvm")
    return cwd, repl(cwd, SESSION, "state", "--mission", "corot", "--uses", "photometry",
                     "--echo")


def test_the_scripted_session_matches_its_golden_transcript(
        session: Session, update_goldens: bool) -> None:
    _, proc = session
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    if update_goldens:
        GOLDEN.write_text(proc.stdout)
    assert proc.stdout == GOLDEN.read_text()


def _runs(stdout: str) -> list[int]:
    """Cycles per run of task ``tick`` in each ``:run``."""
    return [int(c) for c in re.findall(r"task tick every 1 s: \d+ runs, \d+ cycles "
                                       r"\((\d+) per run\)", stdout)]


def _evals(stdout: str) -> list[tuple[int, int]]:
    return [(int(v), int(c)) for v, c in re.findall(r"^(-?\d+)   \((\d+) cycles\)$", stdout,
                                                      re.M)]


def _proven(stdout: str) -> list[int]:
    return [int(c) for c in re.findall(r"task tick every 1 s: ([\d,]+) cycles$", stdout,
                                       re.M)]


def test_cycles_are_exact_throughout(
        session: Session) -> None:
    """Added, redefined, undone: each :run meters per run of the task exactly what the
    verifier proved for that configuration, and what ``ccl verify`` reports for the
    sources the session left; the redefinition's saving is the cycle table's."""
    cwd, proc = session
    out = proc.stdout
    runs = _runs(out)
    evals = _evals(out)
    assert len(runs) == 3 and len(evals) == 3
    assert [v for v, _ in evals] == [14, 14, 14]
    cycles = find_mission("corot").cycles
    # `a * 2` is LOAD_L PUSH MUL, `a + a` LOAD_L LOAD_L ADD
    saving = (cycles[CostClass.CONST] + cycles[CostClass.MUL]) - \
        (cycles[CostClass.LOCAL] + cycles[CostClass.ALU])
    assert saving > 0
    assert runs[0] - runs[1] == saving == evals[0][1] - evals[1][1]
    assert runs[2] == runs[0] and evals[2] == evals[0]  # undone: as before, exactly
    proven = _proven(out)  # the verifier's worst case of each configuration sent anew
    assert proven == runs[:2]
    instr = [int(c) for c in re.findall(r"^  instr twice: (\d+) cycles$", out, re.M)]
    assert len(instr) == 2 and instr[0] - instr[1] == saving  # the VMlet's own proof
    verify = subprocess.run([sys.executable, "-m", "cli.ccl", "verify", "--json",
                             "state/rvm/src/config.ccl"], capture_output=True, text=True,
                            cwd=cwd, env=os.environ | {"PYTHONPATH": str(ROOT)}, timeout=600)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = json.loads(verify.stdout)
    tasks = [w for f in report["files"] for w in f["budgets"]["worst_cases"]
             if w["kind"] == "task" and w["name"] == "tick"]
    assert [(w["bound"], w["exact"]) for w in tasks] == [(runs[2], True)]


def test_a_refused_change_leaves_the_state_byte_identical(tmp_path: Path) -> None:
    first = repl(tmp_path, f"var acc : int[0..1000] = 0;\n{TWICE_MUL}\n", "state",
                 "--mission", "corot", "--uses", "photometry")
    assert first.returncode == 0, first.stdout + first.stderr
    before = files(tmp_path / "state")
    refused = repl(tmp_path, "fn bad() -> int { return nope; }\n"
                   "task grow every 1 s { acc = acc + twice(1); }\n"
                   f"{TWICE_MUL.replace('a * 2', 'a / (a - 3)')}\n"
                   "frobnicate;\n:nonsense\n", "state")
    assert refused.returncode == 1
    out = refused.stdout
    assert "error[E-UNKNOWN-NAME]: unknown name `nope`" in out  # the compiler, with caret
    assert re.search(r"^ +\^{4}$", out, re.M)
    assert "error[V-RANGE]: refuted" in out and "counterexample: acc = " in out  # the prover
    assert "error[V-DIV-ZERO]" in out or "refuted" in out.split("a / (a - 3)")[-1]
    assert "`frobnicate;` is not a declaration" in out
    assert "no such command: :nonsense" in out
    assert "board:" not in out  # nothing reached the board
    assert files(tmp_path / "state") == before


def test_undo_with_nothing_to_undo_and_usage_errors(tmp_path: Path) -> None:
    proc = repl(tmp_path, ":undo\n= 6 * 7\n:run 3\n:quit\n= 1\n", "s", "--mission", "corot")
    assert proc.returncode == 1  # the :undo
    assert proc.stdout.splitlines()[0] == \
        "error: nothing to undo: no change of this session is on board"
    assert "42   (" in proc.stdout
    assert "ran 3 frames" in proc.stdout
    assert proc.stdout.count("(") == 1  # `= 1` after :quit never ran
    usage = repl(tmp_path, "", )
    assert usage.returncode == 2 and "give a state directory or --mission" in usage.stderr
    assert "Traceback" not in usage.stderr


def test_vvm_help_lists_repl_without_loading_the_compiler() -> None:
    code = ("import sys\nfrom cli.vvm import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nprint('\\n'.join(sys.modules), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)
    assert "repl" in proc.stdout and "An interactive session on a simulated VVM" in proc.stdout
    loaded = set(proc.stderr.splitlines())
    assert not {m for m in loaded if m == "ccl" or m.startswith(("ccl.", "cli.rvm", "z3"))}
    from cli.rvm.command import repl as real  # noqa: PLC0415 - loaded as `vvm repl` loads it
    from cli.vvm import LAZY_COMMANDS  # noqa: PLC0415

    for width in (30, 45, 70, 200):  # the help `vvm --help` lists is the command's own
        assert LAZY_COMMANDS["repl"].short_help(width) == real.get_short_help_str(width)


def test_a_whole_vmlet_typed_at_the_prompt(tmp_path: Path) -> None:
    """`vmlet NAME { ... }` over several lines (and a declaration over two): the VMlet is
    proven, sent inside the configuration's patch, loaded on board on its layer, and its
    instruction evaluates."""
    script = ("vmlet scale {\n    uses photometry;\n"
              "    instr thrice(a: int[0..100]) -> int[0..300] { return 3 * a; }\n}\n"
              "= thrice(med3(1, 9, 5))\n"
              "param p : int[0..9]\n    = 4;\n"
              "fn f(x: int[0..9]) -> int[0..27] { return 3 * x; }\n"
              "= f(p)\n:describe scale\n:vmlets\n")
    proc = repl(tmp_path, script, "state", "--mission", "corot")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "proven vmlet scale v1" in out and "  instr thrice: " in out
    assert re.search(r"^15   \(\d+ cycles\)$", out, re.M)  # 3 * med3(1, 9, 5)
    assert re.search(r"^12   \(\d+ cycles\)$", out, re.M)
    assert "vmlet scale {\nuses photometry;\ninstr thrice" in out
    assert re.search(r"^scale v1 [0-9a-f]{16} on photometry: instrs thrice", out, re.M)


def test_on_a_terminal_it_prompts_completes_and_keeps_history(tmp_path: Path) -> None:
    """On a terminal: a prompt, Tab completes a command (`:he` -> `:help`) and a name
    (`twi` -> `twice`), and the entries are kept in the state directory's history."""
    import pty  # noqa: PLC0415 - POSIX only, as the terminal it stands for

    first = repl(tmp_path, f"{TWICE_MUL}\n", "state", "--mission", "corot", "--uses",
                 "photometry")
    assert first.returncode == 0, first.stdout + first.stderr
    master, slave = pty.openpty()
    env = os.environ | {"PYTHONPATH": str(ROOT), "CCL_PROOF_CACHE": str(tmp_path / "proofs"),
                        "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "cli.vvm", "repl", "state"], cwd=tmp_path,
                            stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    shown = b""

    def until(text: bytes) -> None:
        nonlocal shown
        while text not in shown:
            chunk = os.read(master, 4096)
            assert chunk, shown.decode(errors="replace")
            shown += chunk

    until(b"rvm> ")
    os.write(master, b":he\t\n")
    until(b":quit        leave")
    os.write(master, b"= twi\t(20)\n")
    until(b"40   (")
    os.write(master, b":quit\n")
    assert proc.wait(timeout=120) == 0
    os.close(master)
    history = (tmp_path / "state" / "rvm" / "history").read_text()
    assert ":help" in history and "= twice(20)" in history


def test_on_a_board_running_another_configuration(tmp_path: Path) -> None:
    """A state directory whose configuration came by `vvm apply`: the first change replaces
    it (a patch against it: delta or full, whichever is smaller), and undo does not pretend
    to know its source."""
    env = os.environ | {"PYTHONPATH": str(ROOT), "CCL_PROOF_CACHE": str(tmp_path / "proofs")}

    def run(*argv: str) -> None:
        proc = subprocess.run([sys.executable, "-m", *argv], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    run("cli.ccl", "pack", str(ROOT / "missions/corot/configs/exo_e1.ccl"), "-o", "v5.vvmp")
    run("cli.vvm", "init", "sat", "--mission", "corot")
    run("cli.vvm", "apply", "sat", "v5.vvmp")
    proc = repl(tmp_path, ":state n_stars\n= med3(1, 9, 5)\n"
                "param extra : int[0..5] = 2;\n:undo\n:apps\n", "sat", "--uses", "photometry")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("config exo_e1 v5 ") and lines[1].startswith("  param n_stars")
    assert lines[2].startswith("5   (")  # med3 through the session's --uses photometry
    assert re.search(r"^packed: (full|delta) patch of rvm v1", proc.stdout, re.M)
    assert "committed" in proc.stdout
    assert "error: nothing to undo: before this session's first change the board ran a " \
           "configuration not made in a session" in proc.stdout
    assert re.search(r"^hint: send it again", proc.stdout, re.M)
    assert re.search(r"^  rvm v1 [0-9a-f]{16} on photometry: tasks -$", lines[-1])
    assert re.search(r"^default: the whole share \(\d+ cycles per frame\), worst frame \d+ "
                     r"cycles, \d+ cycles used, 0 faults, store \w+", lines[-2])
