"""The README's tour, run as written, command by command, on a fresh copy of the repository;
and ``make demo``'s program on another. Both must leave ``git status`` clean: whatever a
command writes goes where the tour says (``out/``, ignored) or to a temporary place.

A tour line is ``$ COMMAND  # remark``; a remark containing ``(exit N)`` says the command
is expected to exit N (a refuted proof, a refused patch), otherwise 0.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tour_commands(readme: str) -> list[tuple[str, int]]:
    """The ``$ `` lines of the first code block of the README's "A short tour" section, each
    with the exit code its remark expects."""
    section = readme.split("## A short tour", 1)[1].split("\n## ", 1)[0]
    commands: list[tuple[str, int]] = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            if not line.startswith("$ "):
                continue
            command, _, remark = line[2:].partition("  #")
            expected = re.search(r"\(exit (\d+)\)", remark)
            commands.append((command.strip(), int(expected.group(1)) if expected else 0))
        if commands:
            break
    return commands


def fresh_copy(dest: Path) -> Path:
    """A copy of the repository's files (tracked, and new ones not ignored) as a new git
    repository with one commit: what a fresh clone of this working tree would hold."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    git = ["git", "-c", "user.name=tour", "-c", "user.email=tour@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "fresh"], cwd=dest, check=True)
    return dest


def commands_of(copy: Path, bin_dir: Path) -> dict[str, str]:
    """An environment where ``ccl`` and ``vvm`` are the copy's own commands."""
    bin_dir.mkdir()
    for name, module in (("ccl", "cli.ccl"), ("vvm", "cli.vvm")):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} "$@"\n')
        script.chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if k not in ("CCL_LEDGER", "CCL_PATCH_KEY", "CCL_LINK_KEY", "CCL_MISSIONS")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(copy)
    return env


def git_status(copy: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored=no"], cwd=copy,
                          capture_output=True, text=True, check=True).stdout


def test_the_tour_is_found_and_covers_the_chain() -> None:
    commands = [c for c, _ in tour_commands((ROOT / "README.md").read_text())]
    words = {" ".join(c.split()[:2]) for c in commands}
    for step in ("ccl check", "ccl verify", "ccl compile", "ccl pack", "ccl inspect",
                 "vvm init", "vvm apply", "vvm dump", "ccl passes", "ccl uplink", "ccl sim"):
        assert step in words, f"the tour lost `{step}`"


def test_the_readme_tour_runs_as_written_and_leaves_the_repo_clean(tmp_path: Path) -> None:
    copy = fresh_copy(tmp_path / "repo")
    env = commands_of(copy, tmp_path / "bin")
    for command, expected in tour_commands((copy / "README.md").read_text()):
        proc = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], cwd=copy,
                              env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == expected, (
            f"`{command}` exited {proc.returncode}, the README says {expected}\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        assert "Traceback" not in proc.stderr, command
    assert git_status(copy) == "", "the tour left files in the repository"


def test_the_demo_passes_and_leaves_the_repo_clean(tmp_path: Path) -> None:
    copy = fresh_copy(tmp_path / "repo")
    env = commands_of(copy, tmp_path / "bin")
    proc = subprocess.run([sys.executable, "-m", "missions.corot.demo"], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "steps as expected" in proc.stdout
    assert git_status(copy) == "", "the demo left files in the repository"
