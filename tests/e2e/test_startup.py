"""Fast start: ``ccl`` imports a command's module (and Z3, textX, skyfield...) only when that
command runs, and ``--help`` lists every command with the help the command itself has."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from cli.ccl import COMMANDS, ccl

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "missions" / "corot" / "configs" / "exo_e1.ccl"

HEAVY = ("z3", "skyfield", "matplotlib", "zfec", "sqlite3", "textx", "ccl.verify",
         "ccl.codegen", "ground.passes", "cli.ground_commands", "cli.pack_commands")


def loaded_after(*args: str) -> set[str]:
    """The modules loaded once ``ccl ARGS`` ran (in a fresh process), by their top names
    and ours in full."""
    code = ("import sys\nfrom cli.ccl import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit:\n    pass\nprint('\\n' + '\\n'.join(sys.modules), "
            "file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, cwd=ROOT)
    assert "Traceback" not in proc.stderr, proc.stderr
    return set(proc.stderr.splitlines())


def test_help_loads_no_command_and_no_heavy_library() -> None:
    loaded = loaded_after("--help")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert not {m for m in loaded if m.startswith("ccl.") and m != "ccl.limits"}


def test_check_loads_neither_the_verifier_nor_the_ground() -> None:
    loaded = loaded_after("check", str(CONFIG))
    assert "textx" in loaded  # it did parse
    assert not loaded & {"z3", "skyfield", "matplotlib", "zfec", "sqlite3", "ccl.verify",
                         "cli.ground_commands", "cli.pack_commands", "ground.passes"}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_listed_summary_is_the_commands_own(name: str) -> None:
    real = COMMANDS[name].load()
    assert real.name == name
    for width in (30, 45, 70, 200):  # as --help cuts them on narrow and wide terminals
        assert COMMANDS[name].short_help(width) == real.get_short_help_str(width)


def test_help_lists_every_command_once() -> None:
    proc = subprocess.run([sys.executable, "-m", "cli.ccl", "--help"], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.split("Commands:")[1].splitlines()
    listed = [row.split()[0] for row in rows if row.startswith("  ") and row[2] != " "]
    assert listed == sorted(COMMANDS), proc.stdout
    assert "Compile a CCL FILE to a VVM image." in proc.stdout


def test_a_misspelt_command_is_a_usage_error_with_a_suggestion() -> None:
    proc = subprocess.run([sys.executable, "-m", "cli.ccl", "--json", "verfy"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    error = json.loads(proc.stdout)["error"]
    assert "No such command 'verfy'" in error["message"]
    if hasattr(click.exceptions, "NoSuchCommand"):  # click >= 8.4 suggests
        assert "Did you mean 'verify'?" in error["message"]


def test_a_command_asked_for_by_name_is_the_real_one() -> None:
    ctx = click.Context(ccl)
    assert ccl.get_command(ctx, "verify") is COMMANDS["verify"].load()
    assert ccl.get_command(ctx, "nonsense") is None
