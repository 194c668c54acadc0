"""Telemetry: what the VVM reports to the ground about its own execution.

Per frame, the cycles the VVM used (kept compactly: only frames where code ran are stored,
as two parallel integer arrays; every other frame used nothing). The arrays hold the most
recent busy frames only (at least ``RECENT_FRAMES`` of them), so a run of any length keeps
bounded memory; the figures over the whole run (busy frames, cycles used, the worst frame)
are exact counters kept beside them. Per task, its runs, worst
and total cycles, overruns and traps. The faults, each with the code unit and byte offset.
The active configuration's hash. Everything is derived from the simulated clock only.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

from onboard.vm.faults import Fault

#: Faults kept in full; beyond this only their number grows (telemetry is bounded).
MAX_FAULTS = 256

#: Busy frames kept in the per-frame arrays: at least this many of the most recent (about
#: 18 simulated hours of exo_e1), at most twice as many (trimmed in one move, amortised), so
#: 2 MiB at most whatever the length of the run.
RECENT_FRAMES = 1 << 16


@dataclass
class TaskStats:
    """Execution figures of one periodic task."""

    name: str
    period_ms: int
    runs: int = 0  # completed runs
    worst_cycles: int = 0
    total_cycles: int = 0
    overruns: int = 0
    traps: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "period_ms": self.period_ms, "runs": self.runs,
                "worst_cycles": self.worst_cycles, "total_cycles": self.total_cycles,
                "overruns": self.overruns, "traps": self.traps}


@dataclass
class Telemetry:
    """The VVM's telemetry since it was initialised."""

    frame_ms: int
    share_cycles: int  # the VVM's cycles per frame (the reconfiguration share)
    frames: array[int] = field(default_factory=lambda: array("q"))  # recent busy frames
    cycles: array[int] = field(default_factory=lambda: array("q"))  # cycles in that frame
    busy_frames: int = 0  # over the whole run, as the three below
    cycles_used: int = 0
    worst_cycles: int = 0
    tasks: dict[str, TaskStats] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    fault_count: int = 0
    config_hash: bytes = b""
    config_name: str = ""
    config_version: int = 0

    def record_frame(self, index: int, cycles: int) -> None:
        """Cycles the VVM used in frame ``index`` (frames are recorded in order)."""
        if cycles <= 0:
            return
        self.cycles_used += cycles
        if self.frames and self.frames[-1] == index:
            self.cycles[-1] += cycles
        else:
            self.busy_frames += 1
            self.frames.append(index)
            self.cycles.append(cycles)
            if len(self.frames) > 2 * RECENT_FRAMES:
                del self.frames[:-RECENT_FRAMES]
                del self.cycles[:-RECENT_FRAMES]
        self.worst_cycles = max(self.worst_cycles, self.cycles[-1])

    def restore_frames(self, frames: array[int], cycles: array[int],
                       totals: dict[str, int] | None) -> None:
        """Put back the recent frames and the run's totals as a snapshot saved them (without
        totals, from a snapshot older than them, the totals are those of the frames)."""
        self.frames, self.cycles = frames, cycles
        totals = totals or {}
        self.busy_frames = totals.get("busy_frames", len(frames))
        self.cycles_used = totals.get("cycles_used", sum(cycles))
        self.worst_cycles = totals.get("worst_frame_cycles", max(cycles, default=0))

    def totals(self) -> dict[str, int]:
        """The run's totals that the recent frames alone do not give (for a snapshot)."""
        return {"busy_frames": self.busy_frames, "cycles_used": self.cycles_used,
                "worst_frame_cycles": self.worst_cycles}

    def record_fault(self, fault: Fault) -> None:
        self.fault_count += 1
        if len(self.faults) < MAX_FAULTS:
            self.faults.append(fault)

    def worst_frame_cycles(self) -> int:
        """The most cycles any frame of the run used."""
        return self.worst_cycles

    def worst_share(self) -> float:
        """The largest fraction of the reconfiguration share any frame used."""
        return self.worst_frame_cycles() / self.share_cycles if self.share_cycles else 0.0

    def summary(self, now_ms: int, frame_cycles: int) -> dict[str, Any]:
        """A JSON-ready summary (what a housekeeping telemetry packet would carry)."""
        elapsed_frames = max(1, now_ms // self.frame_ms)
        used = self.cycles_used
        return {
            "time_ms": now_ms,
            "config": {"name": self.config_name, "version": self.config_version,
                       "hash": self.config_hash.hex()},
            "frames": elapsed_frames,
            "busy_frames": self.busy_frames,
            "cycles_used": used,
            "worst_frame_cycles": self.worst_frame_cycles(),
            "worst_frame_cpu_percent": round(100 * self.worst_frame_cycles() / frame_cycles,
                                             4),
            "worst_frame_share_percent": round(100 * self.worst_share(), 4),
            "mean_cpu_percent": round(100 * used / (elapsed_frames * frame_cycles), 6),
            "tasks": [t.as_dict() for t in self.tasks.values()],
            "fault_count": self.fault_count,
            "faults": [{"time_ms": f.time_ms, "task": f.task, "code": f.code.name.lower(),
                        "unit": f.unit, "offset": f.offset} for f in self.faults],
        }
