"""One convention for ``ccl`` and ``vvm`` (docs/cli.md): the same global options, usage
errors in the one failure shape (JSON with ``--json``), ``--version`` and shell completion,
checked on both commands as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import drawn_on_a_terminal

ROOT = Path(__file__).resolve().parents[2]
MODULES = {"ccl": "cli.ccl", "vvm": "cli.vvm"}


def run(prog: str, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", MODULES[prog], *args], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("prog", ["ccl", "vvm"])
def test_version_and_help(prog: str) -> None:
    version = run(prog, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith(f"{prog}, version ")
    helped = run(prog, "-h")
    assert helped.returncode == 0
    for option in ("--missions", "--json", "--quiet", "--version"):
        assert option in helped.stdout, f"{prog} -h does not list {option}"


@pytest.mark.parametrize("prog", ["ccl", "vvm"])
def test_a_usage_error_is_one_failure_exit_2_and_json_with_json(prog: str) -> None:
    plain = run(prog, "no-such-command")
    assert plain.returncode == 2
    assert plain.stderr.startswith(f"{prog}: error: ") and "hint: see `" in plain.stderr
    assert plain.stdout == "" and "Traceback" not in plain.stderr
    for line in (["--json", "no-such-command"], ["no-such-command", "--json"]):
        as_json = run(prog, *line)
        assert as_json.returncode == 2
        error = json.loads(as_json.stdout)
        assert error["ok"] is False and error["error"]["exit_code"] == 2
        assert error["error"]["hint"]


@pytest.mark.parametrize("prog", ["ccl", "vvm"])
def test_shell_completion_as_documented(prog: str) -> None:
    var = f"_{prog.upper()}_COMPLETE"
    source = run(prog, env={var: "bash_source"})
    assert source.returncode == 0 and f"_{prog}_completion()" in source.stdout
    # What bash asks when the user has typed `PROG i` and pressed Tab.
    asked = run(prog, env={var: "bash_complete", "COMP_WORDS": f"{prog} i", "COMP_CWORD": "1"})
    words = {line.split(",", 1)[1] for line in asked.stdout.splitlines() if "," in line}
    assert words == ({"inspect"} if prog == "ccl" else {"init", "inspect"})
    documented = (ROOT / "docs" / "cli.md").read_text()
    assert f"{var}=bash_source {prog}" in documented


def test_the_exit_code_table_is_the_consoles() -> None:
    from cli import console

    documented = (ROOT / "docs" / "cli.md").read_text()
    for code in (console.EXIT_OK, console.EXIT_REJECTED, console.EXIT_USAGE,
                 console.EXIT_UNKNOWN, console.EXIT_INTERNAL, console.EXIT_INTERRUPTED,
                 console.EXIT_CLOSED_PIPE):
        assert f"\n| {code} |" in documented, f"exit code {code} is not in docs/cli.md"


def test_piped_tables_are_plain_whole_lines() -> None:
    proc = run("ccl", "passes", "--start", "2014-06-11", "--days", "3")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert not any(ch in proc.stdout for ch in "┏┃━│└┡"), "a box drawn into a pipe"
    rows = [line for line in lines if line.startswith(("Kiruna", "Aussaguel"))]
    assert len(rows) > 20
    assert all(len(line.split()) >= 6 for line in rows)  # no column cut or wrapped away
    # The caption is longer than 80 columns: piped, it stays one line.
    caption = [line for line in lines if line.startswith("from ")]
    assert len(caption) == 1 and "mission.toml" in caption[0] and len(caption[0]) > 80


LONG_WORK = {
    "vvm run": ["vvm", "run", "{sat}", "--for", "2h"],
    "ccl sim": ["ccl", "sim", str(ROOT / "missions/corot/scenarios/01_first_upload.toml"),
                "--ledger", "{tmp}/sim.sqlite"],
    "ccl uplink simulate": ["ccl", "uplink", "simulate", "{patch}", "--start", "2014-06-11",
                            "--ledger", "{tmp}/up.sqlite"],
    "ccl passes": ["ccl", "passes", "--start", "2014-06-11", "--days", "40"],
}


@pytest.mark.parametrize("work", sorted(LONG_WORK))
def test_long_work_shows_progress_on_a_terminal_and_not_with_quiet(tmp_path: Path,
                                                                   work: str) -> None:
    sat, patch = tmp_path / "sat", tmp_path / "v5.vvmp"
    if work == "vvm run":
        assert run("vvm", "init", str(sat), "--mission", "corot").returncode == 0
    if work == "ccl uplink simulate":
        exo = str(ROOT / "missions/corot/configs/exo_e1.ccl")
        assert run("ccl", "pack", exo, "-o", str(patch)).returncode == 0
    prog, *args = (a.format(sat=sat, patch=patch, tmp=tmp_path) for a in LONG_WORK[work])
    argv = [sys.executable, "-m", MODULES[prog], *args]
    code, drawn, _ = drawn_on_a_terminal(argv, tmp_path)
    assert code == 0, drawn.decode(errors="replace")[-2000:]
    assert "━".encode() in drawn and b"Traceback" not in drawn, f"{work}: no progress bar"
    (tmp_path / "sim.sqlite").unlink(missing_ok=True)
    (tmp_path / "up.sqlite").unlink(missing_ok=True)
    code, drawn, _ = drawn_on_a_terminal([*argv, "--quiet"], tmp_path)
    assert code == 0 and "━".encode() not in drawn, f"{work} --quiet drew a bar"


@pytest.mark.parametrize("prog", ["ccl", "vvm"])
@pytest.mark.parametrize("after", [0.15, 0.3])
def test_ctrl_c_while_the_command_is_still_loading_is_a_clean_130(prog: str,
                                                                   after: float) -> None:
    import signal
    import time

    script = Path(sys.executable).parent / prog  # the console script, as users run it
    args = ["verify", str(ROOT / "missions/corot/configs/exo_e1.ccl")] if prog == "ccl" \
        else ["inspect", str(ROOT / "no-such-image.vvmi")]
    proc = subprocess.Popen([str(script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    # Stopped while loading (130); or it had answered already (its own code), the signal
    # then arriving as the interpreter exits (killed by SIGINT, as any program would be).
    assert proc.returncode in (130, 0, 2, -signal.SIGINT), (proc.returncode, err)
    if proc.returncode == 130:
        assert err.strip().endswith("interrupted")


def test_ctrl_c_inside_a_dataclass_being_defined_is_still_an_interrupt() -> None:
    """Python reports Ctrl-C in a field's ``__set_name__`` as the RuntimeError it caused;
    the launcher must see through it (found by the test above under load), and only then."""
    from cli.launch import _caused_by_interrupt

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as inner:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance") from inner
    except RuntimeError as exc:
        assert _caused_by_interrupt(exc)
    assert not _caused_by_interrupt(RuntimeError("a real error"))
    assert not _caused_by_interrupt(ImportError("no module"))
