"""The scheduler: simulated frames, the 10 % share, and earliest-deadline-first tasks.

Time advances in frames (100 ms for CoRoT). In each frame the VVM may use at most its share
of the frame's cycles (10 %), minus the reserve kept for receiving and applying patches.
Periodic tasks are released on their period; released jobs run earliest deadline first
inside that budget, suspending at an instruction boundary when the next instruction does not
fit and resuming in the next frame. A job still unfinished at its task's next release is an
overrun fault: it is dropped and the new job starts. When nothing is ready, the clock jumps
to the next release: idle time costs nothing to simulate. Host time never enters: a run is
a function of the program, the host's seed and the simulated clock.

A job whose code fails in the engine itself (any exception but a trap: a VVM bug) is
stopped as a trap would stop it, with the fault code ``internal``, and charged the rest of
the frame; a fault, like a trap or an overrun, is what rolls a configuration on probation
back.

Finishing (``run_until(end, finish_jobs=True)``, so that a state can be saved with no job
in flight): past ``end`` frames go on as usual, tasks released on their periods (a resumed
run then goes on exactly as one long run would), until no job is in flight and patch
handling waits for nothing but time. A task that overruns ends this: at the first release
boundary past ``end`` where a job is still in flight, that job is dropped as an overrun (as
always) and nothing more is released in this run; the jobs still in flight finish or are
dropped at their own next release, so the run ends at the latest one task period after the
overrun. The releases held back are made, late, by the next run. Without an overrun,
finishing ends at the latest at the end of the task set's hyperperiod (every job released
before it has met its deadline by then).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

from onboard.vm.faults import Fault, Trap, TrapCode
from onboard.vm.host import Host
from onboard.vm.image import Task
from onboard.vm.loader import Program
from onboard.vm.telemetry import TaskStats, Telemetry

#: Name under which the one-shot ``on apply`` job appears in telemetry.
ON_APPLY = "on apply"


class Background(Protocol):
    """Work that runs first in every frame, in a reserve of its own (patch handling)."""

    @property
    def busy(self) -> bool: ...
    def next_event_ms(self) -> int | None: ...
    def step(self, t: int, budget: int) -> int: ...
    def end_frame(self, t: int, faults: int) -> None: ...


@dataclass
class Job:
    """One release of a task (or the ``on apply`` code), possibly suspended."""

    name: str
    unit: int
    release_ms: int
    deadline_ms: int
    period_ms: int  # equal deadlines: the shorter period first, then task table order
    order: int
    gen: Generator[int, int, Any] | None = None
    cycles: int = 0


class Scheduler:
    """Runs one program's tasks on the simulated clock; see the module docstring."""

    def __init__(self, frame_ms: int, budget_per_frame: int, host: Host,
                 telemetry: Telemetry) -> None:
        self.frame_ms = frame_ms
        self.budget_per_frame = budget_per_frame
        self.host = host
        self.telemetry = telemetry
        self.now_ms = 0  # start of the next frame to run
        self.program: Program | None = None
        self.tasks: tuple[Task, ...] = ()
        self.next_release: list[int] = []
        self.jobs: list[Job] = []
        #: called after every frame that ran code, with (frame start, faults in it)
        self.on_frame: Callable[[int, int], None] | None = None
        #: patch handling, run first in every frame within the reserve
        self.background: Background | None = None
        self.reserve_per_frame = 0

    # ------------------------------------------------------------------ program changes

    def install(self, program: Program, *, run_on_apply: bool) -> None:
        """Make ``program`` the one that runs from the next frame on: jobs of the previous
        one are dropped (a switch happens at a frame boundary; those due again by now are
        counted as overruns, as they would have been), its tasks are first released now,
        and its ``on apply`` code runs first if asked."""
        for job in self.jobs:
            if job.order >= 0 and self.next_release[job.order] <= self.now_ms:
                self.telemetry.tasks[job.name].overruns += 1
                self._fault(self.now_ms, job, TrapCode.OVERRUN, job.unit, -1)
        self.program = program
        self.tasks = program.image.tasks
        self.next_release = [self.now_ms] * len(self.tasks)
        self.jobs = []
        for t in self.tasks:
            self.telemetry.tasks.setdefault(t.name, TaskStats(t.name, t.period_ms))
        if run_on_apply and program.image.on_apply is not None:
            self.jobs.append(Job(ON_APPLY, program.image.on_apply, self.now_ms, self.now_ms,
                                 0, -1))

    def uninstall(self) -> None:
        """Run no program from the next frame on."""
        self.program = None
        self.tasks = ()
        self.next_release = []
        self.jobs = []

    @property
    def busy(self) -> bool:
        """Whether a job is released and not finished."""
        return bool(self.jobs)

    def quiescent(self, t: int) -> bool:
        """Whether programs may be switched at frame boundary ``t``: no job in flight but
        ones dropped here anyway, as overruns (a task overrunning every period must not
        keep a fix from ever being switched to)."""
        return all(job.order >= 0 and self.next_release[job.order] <= t for job in self.jobs)

    # ------------------------------------------------------------------ running

    def run_until(self, end_ms: int, *, finish_jobs: bool = False) -> None:
        """Run frames until the clock reaches ``end_ms`` (and, with ``finish_jobs``, on until
        no job is in flight and patch handling waits for nothing but time, so the state can
        be saved between runs)."""
        bg = self.background
        holding = False  # finishing after an overrun: nothing more is released
        while self.now_ms < end_ms or (finish_jobs and (self.jobs or (bg is not None
                                                                      and bg.busy))):
            t = self.now_ms
            # Patch handling first, in its reserve; a switch of programs happens here, at
            # the frame boundary, before the frame's releases.
            reserved = bg.step(t, self.reserve_per_frame) if bg is not None else 0
            if t >= end_ms and not holding and self._overrunning(t):
                holding = True  # see "Finishing" in the module docstring
            overruns = self._release(t, hold=holding)
            if not self.jobs and not reserved and not overruns \
                    and not (bg is not None and bg.busy):
                if self.now_ms >= end_ms:
                    break
                # jump over idle frames to the frame holding the next event
                upcoming = min(self.next_release, default=end_ms)
                event = bg.next_event_ms() if bg is not None else None
                if event is not None:
                    upcoming = min(upcoming, event)
                target = min(max(upcoming, t + 1), end_ms)
                self.now_ms = -(-target // self.frame_ms) * self.frame_ms
                continue
            self.host.advance(t)
            used, faults = self._run_frame(t) if self.jobs else (0, 0)
            faults += overruns
            self.telemetry.record_frame(t // self.frame_ms, used + reserved)
            self.now_ms = t + self.frame_ms
            if bg is not None:
                bg.end_frame(t, faults)
            if self.on_frame is not None:
                self.on_frame(t, faults)

    def _overrunning(self, t: int) -> bool:
        """Whether a job in flight is still unfinished at its task's next release, due by
        ``t``."""
        return any(job.order >= 0 and self.next_release[job.order] <= t for job in self.jobs)

    def _release(self, t: int, *, hold: bool = False) -> int:
        """Release the jobs due by ``t``, dropping as overruns the unfinished jobs of their
        tasks; with ``hold``, only drop (the releases wait). Returns the overruns."""
        overruns = 0
        for i, task in enumerate(self.tasks):
            while self.next_release[i] <= t:
                release = self.next_release[i]
                for job in self.jobs:
                    if job.order == i:  # not finished by its next release: an overrun
                        self.jobs.remove(job)
                        stats = self.telemetry.tasks[task.name]
                        stats.overruns += 1
                        self._fault(t, job, TrapCode.OVERRUN, job.unit, -1)
                        overruns += 1
                        break
                if hold:
                    break
                self.jobs.append(Job(task.name, task.function, release,
                                     release + task.period_ms, task.period_ms, i))
                self.next_release[i] = release + task.period_ms
        return overruns

    def _run_frame(self, t: int) -> tuple[int, int]:
        """Run jobs earliest deadline first within one frame's budget; return the cycles
        used and the number of faults."""
        assert self.program is not None
        budget = self.budget_per_frame
        faults = 0
        functions = self.program.code.functions
        while self.jobs:
            job = min(self.jobs, key=lambda j: (j.deadline_ms, j.period_ms, j.order))
            try:
                if job.gen is None:
                    job.gen = functions[job.unit](budget)
                    left = next(job.gen)
                else:
                    left = job.gen.send(budget)
            except StopIteration as done:
                left = done.value[0]
                self._finish(job, budget - left)
                budget = left
                continue
            except Trap as trap:
                job.cycles += budget - trap.remaining
                budget = trap.remaining
                self.jobs.remove(job)
                self._count(job, completed=False)
                self._fault(t, job, trap.code, trap.unit, trap.offset)
                faults += 1
                continue
            except Exception:  # the engine failed, not the program: stopped as by a trap
                job.cycles += budget  # what it used is unknown: the rest of the frame
                budget = 0
                self.jobs.remove(job)
                self._count(job, completed=False)
                self._fault(t, job, TrapCode.INTERNAL, job.unit, -1)
                faults += 1
                continue
            # suspended: its next instruction does not fit in what is left of the frame
            job.cycles += budget - left
            budget = left
            break
        return self.budget_per_frame - budget, faults

    def _finish(self, job: Job, cycles: int) -> None:
        job.cycles += cycles
        self.jobs.remove(job)
        self._count(job, completed=True)

    def _count(self, job: Job, *, completed: bool) -> None:
        stats = self.telemetry.tasks.get(job.name)
        if stats is None:  # the on apply job
            return
        stats.total_cycles += job.cycles
        if completed:
            stats.runs += 1
            stats.worst_cycles = max(stats.worst_cycles, job.cycles)
        else:
            stats.traps += 1

    def _fault(self, t: int, job: Job, code: TrapCode, unit: int, offset: int) -> None:
        assert self.program is not None
        functions = self.program.image.functions
        name = functions[unit].name if 0 <= unit < len(functions) else str(unit)
        self.telemetry.record_fault(Fault(t, job.name, code, name, offset))
