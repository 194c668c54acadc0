"""Reconfiguration on board: each patch from receipt to commit or rollback, on the simulated
clock, inside the patch reserve of every frame.

``onboard.patching.patcher`` decides *what* happens to a patch (its checks, staging, commit and
rollback over the store); this module decides *when*, and charges every step to the cycles
the scheduler reserves for patch handling in each frame (the mission's
``patch_reserve_cycles_per_frame``), so reconfiguration never takes a cycle from the tasks'
budget and the VVM never exceeds its share. The steps and what they cost (the mission's
``[reconfiguration]`` costs)::

    check    check_per_byte x patch bytes + model_per_byte x the bytes its MODEL-coded
             payloads say they decode to (+ verify_per_code_byte x code bytes once the
             checks reach the bytecode verifier)          -> rejected, or:
    stage    store_per_byte x slot bytes + journal         -> staged
    prepare  bind_per_code_byte x code bytes + journal + the cycles of the VMlets' ``on
             load`` (run again when the switch loads them)  -> switched at the first frame
             boundary with no job in flight (jobs overrunning at that boundary are
             dropped as overruns); its ``on apply`` runs first -> active; if
             loading or starting it fails in any way, the previous configuration runs on
             -> rolled back, the failure in the fate
    probation: ``probation_frames`` frames of simulated time; a fault of the new
             configuration in any of them (a trap, an overrun, or its code failing in the
             engine, ``on apply`` included) ->
    rollback journal (+ binding again if the previous program is not in memory) -> the
             previous configuration runs again from the next boundary -> rolled back
    commit   journal                                        -> committed

The switch records the configuration on probation in the store *before* loading it
(``Patcher.switch``), so that a reset at any point of a switch, even one that crashes the
VVM, rolls it back at boot (``onboard.patching.boot``): a failing configuration is tried once, never
again after every reset.

A step's effect takes place when its last cycle has been paid (a check is computed when it
starts, which is equivalent: nothing it reads changes while it runs). Complete patches wait
in a bounded queue and are handled one at a time; the queue refuses (``busy``) beyond
``max_pending``.

State across a switch: the new configuration's state variables and arrays whose name and
declared type (range and length) are unchanged keep their values; the others start from
their declared values. On rollback the previous configuration resumes with its state as it
was at the switch.

Onboard behaviour never depends on host time. Stdlib and construct only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from onboard.mission import MissionProfile
from onboard.patching.conditions import (
    ConditionRefused,
    ProfileConditions,
    ProfileFate,
    current_values,
)
from onboard.patching.patch_format import (
    MAGIC,
    PART_FIGURE,
    PROFILE_FLAG,
    TAG_BYTES,
    Codec,
    FormatError,
    Reason,
    memory_bytes,
    model_decoded_bytes,
    parse_frames,
    parse_header,
    vmlet_primer,
)
from onboard.patching.patcher import Accepted, Fate, FateStatus, Patcher, PatchRejected
from onboard.patching.store import Configuration, Phase
from onboard.vm.loader import LoadedVmlet, LoadError, Program, load_vmlet
from onboard.vm.machine import Limits
from onboard.vm.vvm import VVM

#: Called with (ticket, fate) whenever a patch's fate changes (the receiver reports it).
FateListener = Callable[[int, Fate], None]


@dataclass(frozen=True)
class PatchEvent:
    """One fate of one patch, when it happened (telemetry)."""

    time_ms: int
    ticket: int  # the transfer id the patch came in (or the caller's number for it)
    fate: Fate

    def to_json(self) -> dict[str, Any]:
        return {"time_ms": self.time_ms, "ticket": self.ticket, **self.fate.to_json()}


class _Step(Enum):
    CHECK = "check"
    STAGE = "stage"
    PREPARE = "prepare"
    ROLLBACK = "rollback"
    COMMIT = "commit"
    PROFILE = "profile"  # a profile patch's check (and its records)


#: Steps whose effect switches programs: it waits for a frame boundary.
_AT_BOUNDARY = frozenset({_Step.PREPARE, _Step.ROLLBACK})


@dataclass
class _Work:
    step: _Step
    ticket: int
    cycles_left: int
    accepted: Accepted | None = None
    rejected: PatchRejected | None = None
    program: Program | None = None
    data: bytes = b""
    why: str = ""  # of a rollback


class Reconfiguration:
    """Drives one VVM's patcher frame by frame; see the module docstring."""

    def __init__(self, vvm: VVM, patcher: Patcher) -> None:
        self.vvm = vvm
        self.patcher = patcher
        self.costs = vvm.profile.reconfig
        self.frame_ms = vvm.profile.frame_ms
        self.pending: deque[tuple[int, bytes]] = deque()
        self.work: _Work | None = None
        self.done: _Work | None = None  # paid for, its effect waits for a boundary
        self.events: list[PatchEvent] = []
        self.listeners: list[FateListener] = []
        self.previous: Program | None = None  # what a rollback returns to
        self.probation_ticket: int | None = None
        self.probation_end_ms: int | None = None
        self.counted_to_ms = 0  # probation frames counted up to this time
        self.conditions: ProfileConditions | None = None  # soft figures, if patchable
        self.profile_ticket: int | None = None  # the profile patch waiting or on probation
        self._profile_reported = 0  # profile fates reported so far
        # A configuration staged before a reset is switched to by ``onboard.patching.boot``.
        vvm.attach(self)

    # ------------------------------------------------------------------ input

    def receive(self, data: bytes, ticket: int) -> Fate:
        """A complete patch (from the receiver). Queued for checking; refused ``busy`` when
        the queue is full. A profile patch (``PROFILE_FLAG``) is queued too, and checked by
        ``receive_profile`` when its turn comes and its cost is paid. Returns its fate so
        far."""
        if len(self.pending) >= self.costs.max_pending:
            return self.report(ticket, Fate(FateStatus.REJECTED, None, None, Reason.BUSY,
                                           f"{len(self.pending)} patches already wait"))
        self.pending.append((ticket, data))
        return self.report(ticket, Fate(FateStatus.RECEIVED, message=f"{len(data)} bytes"))

    def attach_conditions(self, conditions: ProfileConditions) -> None:
        """Take profile patches (``receive_profile``) into ``conditions``, and put the soft
        figures it holds, if committed before a reset, in force now."""
        self.conditions = conditions
        self._profile_reported = len(conditions.log)
        if conditions.profile is not conditions.flight_build:
            self._put_in_force(conditions.profile)

    def reload_conditions(self) -> None:
        """After a reset (``onboard.patching.boot``): the soft figures last committed to the
        state directory in force again; a profile patch waiting or on probation is lost (its
        rollback reported)."""
        if self.conditions is None:
            return
        self.conditions.reload()
        self._put_in_force(self.conditions.profile)
        self._report_profile_fates()

    def resume_conditions(self, saved: dict[str, Any]) -> None:
        """Go on with the soft figures as ``ProfileConditions.volatile`` kept them (a clean
        stop, e.g. the simulator between two commands). Raises ``ValueError`` for a damaged
        record, leaving the committed figures in force."""
        if self.conditions is None:
            return
        self.conditions.resume(saved)
        ticket = saved.get("ticket")
        self.profile_ticket = ticket if isinstance(ticket, int) else None
        self._profile_reported = len(self.conditions.log)
        self._put_in_force(self.conditions.profile)

    def receive_profile(self, data: bytes, ticket: int | None = None) -> ProfileFate:
        """A complete profile patch: checked now, in force from the next frame boundary, its
        fates reported like a patch's under ``ticket`` (default: its sequence number). A
        larger patch reserve that would leave a configuration on board less than it is
        proven to need (``proven_demand``: the board's own record, never the ground's word
        at this time) is refused."""
        if self.conditions is None:
            fate = ProfileFate("rejected", None, Reason.BAD_HEADER.value,
                               "this VVM takes no profile patches", "flags")
            self.report(ticket or 0, profile_fate(fate))
            return fate
        demand, who = self.proven_demand()
        fate = self.conditions.receive(data, demand_cycles_per_frame=demand, demand_of=who,
                                       admit=_no_parts)
        if fate.status == "accepted" or self.profile_ticket is None:
            self.profile_ticket = ticket if ticket is not None else (fate.seq or 0)
        self._report_profile_fates(ticket if ticket is not None else (fate.seq or 0))
        return fate

    def proven_demand(self, part: int | None = None) -> tuple[int, str]:
        """The most cycles per frame any configuration this VVM may run next is proven to
        need, and which one: the current, previous (a rollback's) and staged ones as the
        store records them (each the claim of the authenticated patch that brought it,
        kept in the journal across resets), and a patch checked but not yet staged. A
        configuration installed without a patch has no known demand: it is taken to need
        the whole of the tasks' part in force (``part``, default the share less the patch
        reserve), so no profile patch may shrink it."""
        store = self.patcher.store
        demands: list[tuple[int | None, str]] = []
        for role, demand in store.demands().items():
            config = {"current": store.current, "previous": store.previous,
                      "staged": store.staged}[role]()
            name = f"`{config.config.name}` v{config.config.version}" if config else "?"
            demands.append((demand, f"the {role} configuration {name}"))
        for work in (self.work, self.done):
            if work is not None and work.accepted is not None:
                c = work.accepted.configuration.config
                demands.append((work.accepted.header.claims.cycles_per_frame,
                                f"the checked configuration `{c.name}` v{c.version}"))
        if part is None:
            part = Limits.of(self.patcher.profile).frame_budget
        worst, who = 0, "no configuration"
        for demand, what in demands:
            if demand is None:
                demand, what = part, f"{what} (installed without a patch: its demand is " \
                                     f"unknown, taken as the whole tasks' part)"
            if demand > worst:
                worst, who = demand, what
        return worst, who

    def _report_profile_fates(self, ticket: int | None = None) -> None:
        """Report the profile patch fates logged since the last call, like a patch's."""
        if self.conditions is None:
            return
        log = self.conditions.log
        for fate in log[self._profile_reported:]:
            # after a reset the ticket is lost: the sequence number stands for it
            self.report(ticket if ticket is not None else self.profile_ticket
                        if self.profile_ticket is not None else (fate.seq or 0),
                        profile_fate(fate))
        self._profile_reported = len(log)

    def _put_in_force(self, profile: MissionProfile) -> None:
        """The soft figures of ``profile``: the queue and probation of patches to come, and
        the patch reserve, taken from (or given back to) the tasks' budget so the VVM's part
        of every frame stays the share."""
        self.costs = profile.reconfig
        self.patcher.profile = profile
        self.patcher.probation_frames = profile.reconfig.probation_frames
        scheduler = self.vvm.scheduler
        reserve = profile.patch_reserve_cycles_per_frame
        scheduler.budget_per_frame -= reserve - self.vvm.patch_reserve
        self.vvm.patch_reserve = scheduler.reserve_per_frame = reserve

    @property
    def busy(self) -> bool:
        """Whether reconfiguration has work for the coming frame."""
        return self.work is not None or self.done is not None or self._can_start()

    def next_event_ms(self) -> int | None:
        """When the scheduler must run a frame for reconfiguration (None: never)."""
        if self.busy or (self.conditions is not None and self.conditions.waiting is not None):
            return self.vvm.now_ms
        ends = [t for t in (self.probation_end_ms, None if self.conditions is None
                            else self.conditions.probation_end_ms) if t is not None]
        return min(ends) if ends else None

    # ------------------------------------------------------------------ frames

    def step(self, t: int, budget: int) -> int:
        """Frame boundary ``t``: switch programs if a paid step waits for it, then spend at
        most ``budget`` cycles on the work at hand. Returns the cycles used."""
        if self.conditions is not None:
            # A profile patch's figures change only here, between two frames.
            changed = self.conditions.end_frame(t, fault=False) \
                if self.conditions.probation_end_ms is not None else None
            changed = self.conditions.switch(t) or changed
            if changed is not None:
                self._put_in_force(changed)
            self._report_profile_fates()
        if self.probation_end_ms is not None and t >= self.probation_end_ms \
                and self.work is None and self.done is None:
            self._count_probation(t, fault=False)
        if self.done is not None and self._boundary_ok(self.done):
            paid, self.done = self.done, None
            self._finish(paid)
        used = 0
        while budget > used:
            if self.work is None:
                if self.done is not None or not self._start():
                    break
            work = self.work
            assert work is not None
            pay = min(work.cycles_left, budget - used)
            work.cycles_left -= pay
            used += pay
            if work.cycles_left:
                break
            self.work = None
            if work.step in _AT_BOUNDARY:
                self.done = work  # switched at the next boundary
                break
            self._finish(work)
        return used

    def end_frame(self, t: int, faults: int) -> None:
        """After frame ``t`` ran (tasks included): count probation; a fault rolls back."""
        if self.conditions is not None:
            back = self.conditions.end_frame(t + self.frame_ms, fault=faults > 0)
            if back is not None:
                self._put_in_force(back)
            self._report_profile_fates()
        if self.probation_end_ms is None or self.work is not None or self.done is not None:
            return
        self._count_probation(t + self.frame_ms, fault=faults > 0)

    # ------------------------------------------------------------------ steps

    def _can_start(self) -> bool:
        # A profile patch does not wait for the store: it changes none of its slots.
        return self.work is None and self.done is None and bool(self.pending) \
            and (self.patcher.store.phase is Phase.IDLE or is_profile_patch(self.pending[0][1]))

    def _model_bytes(self, data: bytes) -> int:
        """The bytes a patch's MODEL-coded payloads say they decode to, and for a primed one
        the primer it learns first (the VMlets the configuration on board uses): an upper bound
        of the context-mixing decoder's work, charged whatever the checks find, read from
        the frames' length fields before the checks; 0 if the frames cannot be read."""
        try:
            parsed = parse_header(data)
            frames = parse_frames(data, parsed.size, len(data) - TAG_BYTES)
        except FormatError:
            return 0
        if not any(f.codec_code == Codec.MODEL for f in frames):
            return 0
        current = self.patcher.store.current()
        primer = vmlet_primer(current.config, current.vmlets) if current is not None else None
        return model_decoded_bytes(frames, len(primer or b""))

    def _start(self) -> bool:
        """Begin checking the next queued patch, if the store is free for it."""
        if not self._can_start():
            return False
        ticket, data = self.pending.popleft()
        c = self.costs
        if is_profile_patch(data):
            # its check, and the two records it may write (the trial at its switch, the
            # figures at its commit or rollback), paid before it is checked
            self.work = _Work(_Step.PROFILE, ticket, c.check_per_byte * len(data)
                              + 2 * c.journal, data=data)
            return True
        cost = c.check_per_byte * len(data) + c.model_per_byte * self._model_bytes(data)
        try:
            accepted = self.patcher.check(data)
        except PatchRejected as exc:
            if exc.reason is Reason.VERIFIER:
                cost += c.verify_per_code_byte * _code_bytes_claimed(data)
            self.work = _Work(_Step.CHECK, ticket, cost, rejected=exc, data=data)
            return True
        code = _code_bytes(accepted.configuration)
        self.work = _Work(_Step.CHECK, ticket, cost + c.verify_per_code_byte * code,
                          accepted=accepted)
        return True

    def _finish(self, work: _Work) -> None:
        """The effect of a step whose cycles are paid."""
        c = self.costs
        if work.step is _Step.CHECK:
            if work.rejected is not None:
                self.report(work.ticket, self.patcher.reject(work.data, work.rejected))
                return
            assert work.accepted is not None
            slot = len(work.accepted.configuration.encode())
            self.work = _Work(_Step.STAGE, work.ticket, c.store_per_byte * slot + c.journal,
                              accepted=work.accepted)
        elif work.step is _Step.STAGE:
            assert work.accepted is not None
            self.report(work.ticket, self.patcher.stage(work.accepted))
            config = work.accepted.configuration
            self.work = _Work(_Step.PREPARE, work.ticket,
                              c.bind_per_code_byte * _code_bytes(config) + c.journal
                              + self._on_load_cycles(config))
        elif work.step is _Step.PREPARE:
            self.switch(work.ticket)
        elif work.step is _Step.ROLLBACK:
            self._roll_back(work.ticket, work.program, work.why)
        elif work.step is _Step.COMMIT:
            fate = self.patcher.commit()
            self.report(work.ticket, fate)
        elif work.step is _Step.PROFILE:
            self.receive_profile(work.data, work.ticket)

    def _on_load_cycles(self, config: Configuration) -> int:
        """The cycles the ``on load`` of the configuration's VMlets takes when the switch
        loads them: paid from the reserve before the switch, like binding (a load that
        fails is charged the whole budget it was given)."""
        total = 0
        loaded: list[LoadedVmlet] = []
        for image in config.vmlets:  # lower layers first: each loads on the ones below
            try:
                loaded.append(load_vmlet(image, self.vvm.profile, self.vvm.host, loaded))
                total += loaded[-1].on_load_cycles
            except LoadError:
                total += Limits.of(self.vvm.profile).on_load_cycles
        return total

    def _boundary_ok(self, work: _Work) -> bool:
        # A switch waits until no job is in flight (but overrunning ones, dropped at this
        # boundary anyway); a rollback does not wait.
        return work.step is _Step.ROLLBACK or self.vvm.scheduler.quiescent(self.vvm.now_ms)

    def switch(self, ticket: int) -> Fate:
        """Switch to the staged configuration now (a frame boundary with no job in flight,
        or boot): load it and start it on probation, its ``on apply`` first; if anything
        fails, it is rolled back and the program running goes on. Never raises (but a power
        loss)."""
        vvm = self.vvm
        previous = vvm.program

        def start(config: Configuration) -> None:
            vvm.activate(vvm.prepare(config.config, config.vmlets))

        fate = self.patcher.switch(start)
        if fate.status is FateStatus.ACTIVE:
            self.previous = previous
            self.probation_ticket = ticket
            now = vvm.now_ms
            self.probation_end_ms = now + self.patcher.probation_frames * self.frame_ms
            self.counted_to_ms = now
        return self.report(ticket, fate)

    def _count_probation(self, until_ms: int, *, fault: bool) -> None:
        """Probation frames up to ``until_ms``; commit when enough, roll back on a fault."""
        assert self.probation_end_ms is not None and self.probation_ticket is not None
        frames = max(0, (min(until_ms, self.probation_end_ms) - self.counted_to_ms)
                     // self.frame_ms)
        self.counted_to_ms += frames * self.frame_ms
        ticket = self.probation_ticket
        if fault:
            self._end_probation()
            faults = self.vvm.telemetry.faults
            why = "a fault during probation" + (f" ({faults[-1]})" if faults else "")
            rebind = 0
            previous = self.previous
            if previous is None:
                store_previous = self.patcher.store.previous()
                if store_previous is not None:
                    rebind = self.costs.bind_per_code_byte * _code_bytes(store_previous)
            self.work = _Work(_Step.ROLLBACK, ticket, self.costs.journal + rebind,
                              program=previous, why=why)
        elif self.patcher.count_clean_frames(frames):
            self._end_probation()
            self.work = _Work(_Step.COMMIT, ticket, self.costs.journal)

    def _end_probation(self) -> None:
        self.probation_end_ms = None
        self.probation_ticket = None

    def _roll_back(self, ticket: int, previous: Program | None, why: str) -> None:
        fate = self.patcher.abort(why)
        config = self.patcher.store.current()
        if previous is None and config is not None:
            try:
                previous = self.vvm.prepare(config.config, config.vmlets)
            except LoadError:
                previous = None  # run nothing rather than crash: a patch can still come
        if previous is not None:
            self.vvm.activate(previous, run_on_apply=False, carry_state=False)
        else:
            self.vvm.deactivate()
        self.previous = None
        self.report(ticket, fate)

    def status(self) -> dict[str, Any]:
        """The store, the fates so far and the queue, for ``VVM.status``."""
        store = self.patcher.store.state()
        return {"store": {"phase": store.phase.value, "last_seq": store.last_seq,
                          "current": store.current.hex() if store.current else None,
                          "previous": store.previous.hex() if store.previous else None,
                          "staged": store.staged.hex() if store.staged else None},
                "patches": [e.to_json() for e in self.events],
                "patches_waiting": len(self.pending),
                **({} if self.conditions is None else {"conditions": {
                    "figures": current_values(self.conditions.profile),
                    "profile_patches": [f.to_json() for f in self.conditions.log]}})}

    def report(self, ticket: int, fate: Fate) -> Fate:
        """Record a fate of patch ``ticket`` in telemetry and tell the listeners."""
        self.events.append(PatchEvent(self.vvm.now_ms, ticket, fate))
        for listener in self.listeners:
            listener(ticket, fate)
        return fate


def _no_parts(profile: MissionProfile, parts: Mapping[int, int]) -> None:
    """A single VVM runs one configuration in the whole share: it has no parts to change
    (a board's are ``onboard.patching.board_conditions``)."""
    if parts:
        number = min(parts)
        raise ConditionRefused(Reason.OUT_OF_LIMITS, "this VVM runs one configuration in "
                               "the whole share: it has no application part to change",
                               f"{PART_FIGURE}.{number}")


def is_profile_patch(data: bytes) -> bool:
    """Whether ``data`` says it is a profile patch (its flags byte; authenticated later)."""
    return len(data) > 3 and data[:2] == MAGIC and data[3] == PROFILE_FLAG


#: A profile patch's fates as a patch's (``ProfileFate.status`` -> ``FateStatus``).
_PROFILE_STATUS = {"accepted": FateStatus.STAGED, "active": FateStatus.ACTIVE,
                   "committed": FateStatus.COMMITTED, "rolled-back": FateStatus.ROLLED_BACK,
                   "rejected": FateStatus.REJECTED}


def profile_fate(fate: ProfileFate) -> Fate:
    """A profile patch's fate in the shape telemetry carries for every patch (its one-byte
    code included), its message saying it is a profile patch."""
    reason = None
    if fate.reason is not None:
        reason = Reason(fate.reason) if fate.reason in set(Reason) else Reason.INTERNAL
    return Fate(_PROFILE_STATUS[fate.status], fate.seq, None, reason,
                f"profile patch: {fate.message}" if fate.message else "profile patch",
                fate.figure)


def _code_bytes(configuration: Configuration) -> int:
    """Code bytes of a configuration and its VMlets (what binding and verifying go over)."""
    return memory_bytes(configuration.config, configuration.vmlets)[0]


def _code_bytes_claimed(data: bytes) -> int:
    """The code bytes a patch's header claims (what the verifier went through)."""
    return parse_header(data).header.claims.code_bytes
