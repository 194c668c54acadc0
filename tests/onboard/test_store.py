"""The slot store: phases, crash safety at every persistent write, consistency."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from onboard.patching.store import (
    JOURNAL_FILES,
    Configuration,
    FaultyDisk,
    Phase,
    PowerLoss,
    Store,
    StoreError,
)
from onboard.vm.image import Global, Image, ImageKind, VmletRef


def config(version: int, *, vmlet: Image | None = None) -> Configuration:
    uses = (VmletRef(vmlet.name, vmlet.version, vmlet.content_hash),) if vmlet else ()
    image = Image(kind=ImageKind.CONFIG, name="cfg", version=version, mission="corot",
                  uses=uses, globals=(Global("gain", False, 0, 2047, version),))
    return Configuration(image, (vmlet,) if vmlet else ())


VMLET = Image(kind=ImageKind.VMLET, name="vm", version=1, mission="corot", exposes=("flux",))
A, B, C, D = config(1), config(2, vmlet=VMLET), config(3), config(4)


def snapshot(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir())}


def test_a_full_cycle_moves_through_the_phases(tmp_path: Path) -> None:
    store = Store.init(tmp_path)
    assert store.state().phase is Phase.IDLE and store.current() is None
    store.stage(A, 1)
    assert store.phase is Phase.STAGED and store.staged() == A and store.current() is None
    assert store.activate() == A
    assert store.phase is Phase.PROBATION and store.previous() is None
    store.commit()
    store.stage(B, 2)
    store.activate()
    assert (store.current(), store.previous()) == (B, A)
    assert store.rollback() == A
    assert (store.phase, store.current(), store.previous(), store.last_seq) == \
        (Phase.IDLE, A, None, 2)
    store.stage(C, 3)
    assert store.rollback() == A and store.staged() is None
    reopened = Store.open(tmp_path)
    assert reopened.state() == store.state() and reopened.current() == A
    assert reopened.check() == []


def test_operations_in_the_wrong_phase_are_refused(tmp_path: Path) -> None:
    store = Store.init(tmp_path)
    for op in (store.activate, store.commit, store.rollback):
        with pytest.raises(StoreError):
            op()
    store.stage(A, 5)
    with pytest.raises(StoreError):
        store.stage(B, 6)
    store.rollback()
    with pytest.raises(StoreError, match="not above"):
        store.stage(B, 5)


def test_init_refuses_an_existing_store_and_open_an_empty_directory(tmp_path: Path) -> None:
    Store.init(tmp_path / "s")
    with pytest.raises(StoreError):
        Store.init(tmp_path / "s")
    (tmp_path / "e").mkdir()
    with pytest.raises(StoreError, match="no valid journal"):
        Store.open(tmp_path / "e")


def test_open_writes_nothing(tmp_path: Path) -> None:
    store = Store.init(tmp_path)
    store.stage(A, 1)
    before = snapshot(tmp_path)
    Store.open(tmp_path).check()
    assert snapshot(tmp_path) == before


def test_a_damaged_referenced_slot_is_found(tmp_path: Path) -> None:
    store = Store.init(tmp_path)
    store.stage(A, 1)
    store.activate()
    slot = next(p for p in tmp_path.iterdir() if p.name.startswith("slot"))
    data = bytearray(slot.read_bytes())
    data[len(data) // 2] ^= 0xFF
    slot.write_bytes(bytes(data))
    assert any("differ" in p for p in store.check())
    with pytest.raises(StoreError):
        Store.open(tmp_path)


def test_a_damaged_journal_copy_falls_back_to_the_other(tmp_path: Path) -> None:
    store = Store.init(tmp_path)
    store.stage(A, 1)  # epoch 2: journal.0 holds it, journal.1 holds epoch 1
    (tmp_path / JOURNAL_FILES[0]).write_bytes(b"garbage")
    reopened = Store.open(tmp_path)
    assert reopened.phase is Phase.IDLE and reopened.state().epoch == 1


def test_configuration_encoding_round_trips() -> None:
    assert Configuration.decode(B.encode()) == B
    with pytest.raises(StoreError):
        Configuration.decode(b"VVMS\x01\x00")


# --------------------------------------------------------------------------- power loss

Step = Callable[[Store], object]
CYCLES: dict[str, list[Step]] = {
    "stage-activate-commit": [lambda s: s.stage(A, 1), Store.activate, Store.commit,
                              lambda s: s.stage(B, 2), Store.activate, Store.commit],
    "stage-activate-rollback": [lambda s: s.stage(A, 1), Store.activate, Store.commit,
                                lambda s: s.stage(B, 2), Store.activate, Store.rollback,
                                lambda s: s.stage(C, 3), Store.activate, Store.commit],
    "stage-rollback": [lambda s: s.stage(A, 1), Store.rollback, lambda s: s.stage(D, 2),
                       Store.activate, Store.commit],
}


def _states(template: Path, steps: list[Step]) -> tuple[list[tuple[object, ...]], int]:
    """The roles after each step of a fault-free run, and how many writes it makes."""
    directory = template.parent / "reference"
    shutil.copytree(template, directory)
    disk = FaultyDisk()
    store = Store.open(directory, disk)
    states: list[tuple[object, ...]] = [store.state().roles()]
    for step in steps:
        step(store)
        states.append(store.state().roles())
    shutil.rmtree(directory)
    return states, disk.writes


@pytest.mark.parametrize("torn", [True, False], ids=["torn", "clean"])
@pytest.mark.parametrize("cycle", sorted(CYCLES))
def test_power_loss_at_every_write_leaves_old_or_new(tmp_path: Path, cycle: str,
                                                     torn: bool) -> None:
    steps = CYCLES[cycle]
    template = tmp_path / "template"
    Store.init(template)
    states, writes = _states(template, steps)
    assert writes >= len(steps)
    for fail_at in range(writes):
        directory = tmp_path / f"run{fail_at}"
        shutil.copytree(template, directory)
        store = Store.open(directory, FaultyDisk(fail_at, torn=torn))
        done = 0
        with pytest.raises(PowerLoss):
            for step in steps:
                step(store)
                done += 1
        # Power back: the store reopens in the state before or after the interrupted step.
        reopened = Store.open(directory)
        assert reopened.check() == []
        assert reopened.state().roles() in (states[done], states[done + 1])
        for cfg in (reopened.current(), reopened.previous(), reopened.staged()):
            assert cfg is None or cfg in (A, B, C, D)
        # And the mission goes on: redo the interrupted step if it did not happen.
        if reopened.state().roles() == states[done]:
            steps[done](reopened)
        for step in steps[done + 1:]:
            step(reopened)
        assert reopened.state().roles() == states[-1]
        assert Store.open(directory).check() == []
        shutil.rmtree(directory)


def test_a_slot_file_reads_its_lengths_with_the_one_bounded_varint() -> None:
    """Slot lengths are the formats' ``VarUInt``: an overlong encoding of the same length,
    which construct's unbounded ``VarInt`` used to accept, is a malformed slot."""
    c = config(3)
    data = c.encode()
    assert Configuration.decode(data) == c
    length = len(c.config.encode())
    assert length < 0x80 and data[5] == length  # one byte after magic and format
    overlong = data[:5] + bytes([length | 0x80, 0x00]) + data[6:]
    with pytest.raises(StoreError, match="malformed slot"):
        Configuration.decode(overlong)
