"""Key files: 0600 whatever the umask, atomic, never written through a symbolic link; what
`vvm init --key` writes (``ccl keygen`` is tested with the other ccl commands)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.vvm import main as vvm
from onboard.patching.key_file import write_key_file
from onboard.patching.patch_format import key_from_text
from onboard.sim.simulator import KEY_FILE, Simulator

TEXT = "# a key\n" + "ab" * 32 + "\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture(params=[0o022, 0o277, 0o000])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_a_new_key_file_is_owner_only_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "k.key"
    write_key_file(path, TEXT)
    assert mode(path) == 0o600 and path.read_text() == TEXT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.key"]   # no temporary left


def test_without_force_nothing_at_the_path_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    path.write_text("old")
    with pytest.raises(FileExistsError):
        write_key_file(path, TEXT)
    assert path.read_text() == "old"
    dangling = tmp_path / "d.key"
    target = tmp_path / "elsewhere" / "stolen.key"
    (tmp_path / "elsewhere").mkdir()
    dangling.symlink_to(target)
    with pytest.raises(FileExistsError):
        write_key_file(dangling, TEXT)
    assert not target.exists() and dangling.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.key", "elsewhere", "k.key"]


def test_force_replaces_the_entry_and_never_writes_through_a_link(tmp_path: Path) -> None:
    readable = tmp_path / "k.key"
    readable.write_text("old")
    readable.chmod(0o644)
    write_key_file(readable, TEXT, force=True)
    assert mode(readable) == 0o600 and readable.read_text() == TEXT  # not the old 0644
    target = tmp_path / "target.txt"
    link = tmp_path / "l.key"
    link.symlink_to(target)                         # dangling
    write_key_file(link, TEXT, force=True)
    assert not target.exists()                      # not followed
    assert not link.is_symlink() and mode(link) == 0o600 and link.read_text() == TEXT
    target.write_text("precious")
    link.unlink()
    link.symlink_to(target)                         # to an existing file
    write_key_file(link, TEXT, force=True)
    assert target.read_text() == "precious" and mode(link) == 0o600


def test_a_stale_temporary_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    (tmp_path / ".k.key.tmp").symlink_to(target)   # planted where the temporary goes
    write_key_file(tmp_path / "k.key", TEXT)
    assert not target.exists() and mode(tmp_path / "k.key") == 0o600


def test_vvm_init_writes_the_patch_key_owner_only(tmp_path: Path, umask: int,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    key_file = tmp_path / "corot.key"
    write_key_file(key_file, TEXT)
    state = tmp_path / "sat"
    with pytest.raises(SystemExit) as info:
        vvm(["init", str(state), "--mission", "corot", "--key", str(key_file)])
    assert info.value.code == 0, capsys.readouterr().err
    assert mode(state / KEY_FILE) == 0o600
    assert key_from_text((state / KEY_FILE).read_text()) == bytes.fromhex("ab" * 32)
    # a dangling link planted where the key goes is replaced, not written through
    other = tmp_path / "other"
    other.mkdir()
    (other / KEY_FILE).symlink_to(tmp_path / "leak")
    Simulator.init(other, "corot", 1)
    assert not (tmp_path / "leak").exists() and mode(other / KEY_FILE) == 0o600
