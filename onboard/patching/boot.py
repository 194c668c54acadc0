"""Starting a VVM over what its persistent memory holds: a resume, or a reboot after a reset.

The configuration store (``onboard.patching.store``) is the one source of truth for which
configuration runs. Everything else the VVM keeps between runs -- the clock, the task
releases, the data memory of the configuration running and, on probation, of the one a
rollback returns to, the probation count -- is a *snapshot* (``Snapshot``), a cache that is
trusted only if it was taken against the very journal record the store holds now (the same
epoch, the same configurations). ``start`` is the one way onto a store, used by the
simulator (``vvm``) and by the spacecraft model alike:

* **resume**: the snapshot matches the store (a clean stop, e.g. the simulator between two
  commands): everything goes on exactly where it was, probation included.
* **reboot**: anything else (the power was lost after the store moved on, the snapshot is
  damaged or absent, as after a real reset that lost the RAM):

  0. the soft figures of the mission profile last committed by a profile patch
     (``conditions.vpp``, ``onboard.patching.conditions``) are in force again; one waiting
     or on probation at the reset is dropped;
  1. ``Patcher.boot()``: a configuration on probation at the reset is rolled back (it was
     not confirmed, or its switch crashed the VVM); if the snapshot knew of a probation
     that the store has since ended, that fate (committed or rolled back) is reported
     again, since the reset lost it;
  2. the store's current configuration starts: with the snapshot's data if it was saved
     for that very configuration (task releases too), else as a switch from the
     configuration the snapshot ran (its state carried over, ``on apply`` run), else from
     its declared values; if it cannot be loaded at all the VVM runs nothing, and a patch
     can still replace it;
  3. a configuration staged at the reset is switched to as planned (on probation), or
     rolled back if the switch fails (``Reconfiguration.switch``).

Whatever prefix of the writes a power cut let through, this ends in the old configuration
or the new one, never raises, and leaves the store ready for the next patch.

Stdlib only: the onboard side must stand alone.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from onboard.patching.reconfiguration import Reconfiguration
from onboard.patching.store import Phase, Store
from onboard.vm.loader import LoadError, Program
from onboard.vm.reference import Memory
from onboard.vm.vvm import VVM, carry_from


@dataclass(frozen=True)
class SavedData:
    """The data memory of one configuration as saved: globals, then arrays (int64 each)."""

    config: bytes  # the configuration's content hash
    data: bytes | None  # None: lost (the saved copy was damaged)


@dataclass(frozen=True)
class SavedProbation:
    """Probation as the VVM counted it when the snapshot was taken."""

    ticket: int
    end_ms: int
    counted_to_ms: int
    clean_frames: int
    previous: SavedData | None  # what a rollback returns to (None: nothing ran before)


@dataclass(frozen=True)
class Snapshot:
    """The VVM's volatile state between runs; see the module docstring."""

    store_epoch: int  # the journal record it was taken against
    now_ms: int
    running: SavedData | None  # the configuration running (None: nothing)
    next_release: tuple[int, ...]
    probation: SavedProbation | None


def memory_bytes(memory: Memory) -> bytes:
    """A data memory as bytes (globals, then arrays, int64 each)."""
    data = array("q", memory.globals)
    for arr in memory.arrays:
        data.extend(arr)
    return data.tobytes()


def restore_memory(memory: Memory, raw_bytes: bytes) -> bool:
    """Fill ``memory`` in place from ``memory_bytes`` output (the translated code holds its
    lists); False, and nothing changed, if the sizes do not match."""
    raw = array("q")
    if len(raw_bytes) % raw.itemsize:
        return False
    raw.frombytes(raw_bytes)
    if len(raw) != len(memory.globals) + sum(len(a) for a in memory.arrays):
        return False
    n = len(memory.globals)
    memory.globals[:] = raw[:n].tolist()
    at = n
    for arr in memory.arrays:
        arr[:] = raw[at:at + len(arr)].tolist()
        at += len(arr)
    return True


def take(rc: Reconfiguration) -> Snapshot:
    """The snapshot of ``rc``'s VVM now (call it between jobs, with no patch work under
    way)."""
    vvm = rc.vvm
    running = vvm.program
    probation = None
    if rc.probation_end_ms is not None:
        assert rc.probation_ticket is not None
        previous = rc.previous
        probation = SavedProbation(
            rc.probation_ticket, rc.probation_end_ms, rc.counted_to_ms,
            rc.patcher.clean_frames,
            None if previous is None else SavedData(previous.image.content_hash,
                                                    memory_bytes(previous.memory)))
    return Snapshot(
        rc.patcher.store.state().epoch, vvm.now_ms,
        None if running is None else SavedData(running.image.content_hash,
                                               memory_bytes(running.memory)),
        tuple(vvm.scheduler.next_release), probation)


def matches(snapshot: Snapshot, store: Store) -> bool:
    """Whether ``snapshot`` was taken against the journal record ``store`` holds now, with
    every part a resume needs intact."""
    state = store.state()
    running = snapshot.running
    if snapshot.store_epoch != state.epoch or state.phase is Phase.STAGED:
        return False
    if (running.config if running is not None else None) != state.current \
            or (running is not None and running.data is None):
        return False
    probation = snapshot.probation
    if (probation is not None) != (state.phase is Phase.PROBATION):
        return False
    if probation is not None:
        previous = probation.previous
        if (previous.config if previous is not None else None) != state.previous \
                or (previous is not None and previous.data is None):
            return False
    return True


def start(rc: Reconfiguration, snapshot: Snapshot | None, *,
          unseen_ticket: int | None = None) -> bool:
    """Start ``rc``'s VVM (freshly made over its store, nothing running yet) from ``snapshot``:
    resume if it matches the store, else reboot (see the module docstring). Returns True
    for a reboot. ``unseen_ticket``: the ticket under which to report the fates of a patch
    the snapshot never saw (the one being handled when the power went; default: its
    sequence number). Raises nothing but a power loss; writes only through the store."""
    vvm = rc.vvm
    assert vvm.program is None
    if snapshot is not None:
        vvm.scheduler.now_ms = snapshot.now_ms
    if snapshot is not None and matches(snapshot, rc.patcher.store):
        _resume(rc, snapshot)
        return False
    _reboot(rc, snapshot, unseen_ticket)
    return True


def _resume(rc: Reconfiguration, snapshot: Snapshot) -> None:
    vvm = rc.vvm
    store = rc.patcher.store
    program = _load(vvm, store, snapshot.running)
    if program is not None:
        vvm.activate(program, run_on_apply=False, carry_state=False)
        _restore_releases(vvm, snapshot)
    probation = snapshot.probation
    if probation is not None:
        if probation.previous is not None:
            rc.previous = _load(vvm, store, probation.previous)
        rc.probation_ticket = probation.ticket
        rc.probation_end_ms = probation.end_ms
        rc.counted_to_ms = probation.counted_to_ms
        rc.patcher.count_clean_frames(probation.clean_frames)


def _reboot(rc: Reconfiguration, snapshot: Snapshot | None, unseen_ticket: int | None) -> None:
    vvm = rc.vvm
    patcher = rc.patcher
    store = patcher.store
    unseen = store.state().seq if unseen_ticket is None else unseen_ticket
    # 0. the soft figures: those last committed (conditions.vpp), never a profile patch
    #    that was waiting or on probation at the reset
    rc.reload_conditions()
    # 1. the store: a configuration on probation is not trusted after a reset
    known = snapshot.probation if snapshot is not None else None
    tried = snapshot.running if snapshot is not None and known is not None else None
    fate = patcher.boot(tried.config if tried is not None else None)
    if fate is not None:
        rc.report(known.ticket if known is not None else unseen, fate)
    # 2. the current configuration, with what the snapshot kept of its state
    running = snapshot.running if snapshot is not None else None
    saved = _saved_for(snapshot, store)
    program = _load(vvm, store, saved)
    if program is not None:
        # The snapshot ran another configuration: the switch it never saw happens now.
        switched = saved is None and running is not None and running.data is not None
        if switched:
            assert running is not None
            _carry_saved(store, running, program)
        vvm.activate(program, run_on_apply=switched, carry_state=False)
        if snapshot is not None and saved is not None and saved is running:
            _restore_releases(vvm, snapshot)  # the same configuration goes on
    # 3. a configuration staged at the reset: switched to as planned, or rolled back
    if store.phase is Phase.STAGED:
        rc.switch(unseen)


def _saved_for(snapshot: Snapshot | None, store: Store) -> SavedData | None:
    """What the snapshot saved of the store's current configuration, if anything."""
    current = store.state().current
    if snapshot is None or current is None:
        return None
    candidates = [snapshot.running]
    if snapshot.probation is not None:
        candidates.append(snapshot.probation.previous)
    return next((c for c in candidates if c is not None and c.config == current), None)


def _restore_releases(vvm: VVM, snapshot: Snapshot) -> None:
    """The task releases as saved (for the configuration the snapshot ran)."""
    if len(snapshot.next_release) == len(vvm.scheduler.next_release):
        vvm.scheduler.next_release = list(snapshot.next_release)


def _carry_saved(store: Store, saved: SavedData, program: Program) -> None:
    """Carry into ``program`` the state ``saved`` holds of another configuration, if the
    store still holds that configuration's image (which says what the bytes are)."""
    image = next((c.config for c in (store.current(), store.previous())
                  if c is not None and c.hash == saved.config), None)
    if image is None or saved.data is None:
        return
    memory = Memory([g.value for g in image.globals], (),
                    [list(a.values) for a in image.arrays], ())
    if restore_memory(memory, saved.data):
        carry_from(image, memory, program)


def _load(vvm: VVM, store: Store, saved: SavedData | None) -> Program | None:
    """The store's configuration whose hash ``saved`` names (the current one if ``saved``
    is None or names none held), prepared, with ``saved``'s data if it fits; None if there
    is none or it cannot be loaded (the VVM then runs nothing rather than crash)."""
    config = None
    if saved is not None:
        config = next((c for c in (store.current(), store.previous())
                       if c is not None and c.hash == saved.config), None)
    if config is None:
        config = store.current()
    if config is None:
        return None
    try:
        program = vvm.prepare(config.config, config.vmlets)
    except LoadError:
        return None
    if saved is not None and saved.data is not None and saved.config == config.hash:
        restore_memory(program.memory, saved.data)
    return program
