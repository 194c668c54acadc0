"""The uplink planner: which patch sends how many frames in which pass.

Input: the patches to send (opaque bytes with a priority, an optional deadline, and the
configuration hashes they go from and to when known), the coming uplink windows, and what
the ground knows of the satellite (the last telemetry: configuration on board, shares held
per transfer, shares sent since). Output: a ``Plan``: per window, frames per patch; per patch,
its status (scheduled, waiting, refused with the reason, complete) and expected completion.

How many frames: a patch of k shares needs k distinct shares on board; with expected frame
loss p (from the channel model, at the window's elevation) the planner sends in a window the
smallest n such that, counting the shares already sent but not yet confirmed, at least the
missing number arrives with probability ``confidence`` -- or the window's whole remaining
budget if that is less. Every later telemetry report lowers the uncertainty, so redundancy
is spent only where the loss is not yet known: most of a large patch goes out as plain
shares, and the margin concentrates at its end.

Order: higher priority first, then earlier deadline, then name. A patch whose base
configuration is not yet confirmed on board waits for the patch that produces it (it is
planned from the window after that patch is expected complete); one whose base is neither on
board nor produced by a planned patch is refused. So is a patch that cannot fit the onboard
receive buffer, whose header claims more code or data memory than the VVM has, that cannot be
coded, or that would complete after its deadline or beyond the windows given. The plan is a
pure function of its inputs; ``ground/uplink.py`` re-plans at every pass with the latest
telemetry and executes the first window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from functools import lru_cache
from typing import Any

from ground.channel import Channel
from ground.erasure import ErasureError, share_size
from ground.framing import frame_bytes
from ground.link import UplinkWindow
from onboard.patching.patch_format import NO_HASH, FormatError, Header, parse_header
from onboard.patching.patcher import fate_code_text, fate_failed

DEFAULT_SHARE_BYTES = 512
DEFAULT_CONFIDENCE = 0.9


@dataclass(frozen=True)
class UplinkPatch:
    """A patch to send: opaque bytes, a name, and what the planner needs to order it.

    ``base_hash``/``target_hash`` are configuration hashes or prefixes of them (a patch
    header carries 8-byte prefixes): see ``same_config``. ``header`` is the decoded patch
    header when the bytes are a patch in the ``onboard.patching.patch_format`` format (for display
    and for the memory claims).
    """

    name: str
    data: bytes
    priority: int = 0
    deadline: datetime | None = None
    base_hash: bytes | None = None     # the configuration it applies to, when known
    target_hash: bytes | None = None   # the configuration it produces, when known
    header: Header | None = None
    #: the board application it addresses, by its number on the link (0: the default one,
    #: on the patch APID; n >= 1 on ``onboard.link.tc_frames.patch_apid(n)``)
    application: int = 0

    @staticmethod
    def from_bytes(name: str, data: bytes, priority: int = 0,
                   deadline: datetime | None = None) -> UplinkPatch:
        """A patch, with base and target taken from its header when it has a readable one
        (a full patch applies on any base); otherwise opaque bytes."""
        try:
            header = parse_header(data).header
        except FormatError:
            return UplinkPatch(name, data, priority, deadline)
        base = None if header.full or header.base_hash == NO_HASH else header.base_hash
        return UplinkPatch(name, data, priority, deadline, base, header.target_hash, header)

    def describe(self) -> str:
        """One line on what the header says (empty for opaque bytes)."""
        h = self.header
        if h is None:
            return ""
        kind = "full" if h.full else f"delta from {h.base_hash.hex()}"
        return (f"seq {h.seq}, {kind} to version {h.version} ({h.target_hash.hex()}), "
                f"claims {h.claims.code_bytes} code and {h.claims.data_bytes} data bytes"
                + (", UNVERIFIED" if h.unverified else ""))


def same_config(a: bytes | None, b: bytes | None) -> bool:
    """Whether two configuration hashes (or prefixes of hashes) name the same configuration."""
    if a is None or b is None:
        return False
    n = min(len(a), len(b))
    return n > 0 and a[:n] == b[:n]


@dataclass(frozen=True)
class TransferView:
    """What the ground knows of one patch's transfer."""

    transfer: int
    k: int
    share_bytes: int
    received: frozenset[int] = frozenset()      # confirmed held on board by telemetry
    unconfirmed: frozenset[int] = frozenset()   # sent since the last telemetry that arrived
    sent: frozenset[int] = frozenset()          # every share id ever sent
    complete: bool = False                      # telemetry says rebuilt and handed over
    fate: int | None = None                     # the patcher's answer, once complete

    @property
    def missing(self) -> int:
        return max(0, self.k - len(self.received))


@dataclass(frozen=True)
class OnboardView:
    """The ground's knowledge of the satellite, from the last telemetry that arrived."""

    config_hash: bytes | None = None
    transfers: Mapping[str, TransferView] = field(default_factory=dict)


class Status(Enum):
    SCHEDULED = "scheduled"
    WAITING = "waiting"
    REFUSED = "refused"
    COMPLETE = "complete"


@dataclass(frozen=True)
class Allocation:
    """Frames of one patch in one window."""

    window: int
    patch: str
    frames: int
    bytes: int
    expected_loss: float


@dataclass(frozen=True)
class PatchPlan:
    """One patch's place in the plan."""

    name: str
    status: Status
    reason: str = ""
    k: int = 0
    share_bytes: int = 0
    frames: int = 0
    bytes: int = 0
    first_window: int | None = None
    complete_window: int | None = None
    completes_at: datetime | None = None


@dataclass(frozen=True)
class Plan:
    """Allocations per window and the fate of every patch."""

    windows: tuple[UplinkWindow, ...]
    allocations: tuple[Allocation, ...]
    patches: tuple[PatchPlan, ...]

    def for_window(self, index: int) -> list[Allocation]:
        """The allocations of the window with this index."""
        return [a for a in self.allocations if a.window == index]

    def patch(self, name: str) -> PatchPlan:
        return next(p for p in self.patches if p.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "windows": [w.to_json() for w in self.windows
                        if any(a.window == w.index for a in self.allocations)],
            "allocations": [vars(a) for a in self.allocations],
            "patches": [{**vars(p), "status": p.status.value,
                         "completes_at": p.completes_at.isoformat() if p.completes_at else None}
                        for p in self.patches],
        }


# --------------------------------------------------------------------------- redundancy


@lru_cache(maxsize=4096)
def _at_least(m: int, n: int, success: float) -> float:
    """P(Binomial(n, success) >= m)."""
    if m <= 0:
        return 1.0
    if n < m:
        return 0.0
    if success >= 1.0:
        return 1.0
    q = 1.0 - success
    # Sum the lower tail, which is the shorter one when the patch is nearly complete.
    below = sum(math.comb(n, j) * success ** j * q ** (n - j) for j in range(m))
    return max(0.0, 1.0 - below)


@lru_cache(maxsize=4096)
def frames_needed(missing: int, in_flight: int, loss: float, confidence: float) -> int:
    """The fewest new frames such that, with ``in_flight`` frames sent but unconfirmed, at
    least ``missing`` distinct shares arrive with probability ``confidence``."""
    if missing <= 0:
        return 0
    if loss <= 0.0:
        return max(0, missing - in_flight)
    success = 1.0 - loss
    n = max(0, math.ceil(missing / success) - in_flight)
    while _at_least(missing, in_flight + n, success) < confidence:
        n += 1
    # The estimate above can overshoot for small m; walk back while the target still holds.
    while n > 0 and _at_least(missing, in_flight + n - 1, success) >= confidence:
        n -= 1
    return n


# --------------------------------------------------------------------------- planning


def _order(p: UplinkPatch) -> tuple[Any, ...]:
    return (-p.priority, p.deadline is None, p.deadline or datetime.max, p.name)


def plan(patches: Sequence[UplinkPatch], windows: Sequence[UplinkWindow], view: OnboardView,
         channel: Channel, storage_bytes: int, share_bytes: int = DEFAULT_SHARE_BYTES,
         confidence: float = DEFAULT_CONFIDENCE,
         memory: tuple[int, int] | None = None) -> Plan:
    """Pack ``patches`` into ``windows`` given what the ground knows; see the module doc.

    ``storage_bytes`` is the onboard receive buffer; ``memory`` the VVM's (code, data) bytes,
    against which the memory claims of a patch's header are checked.
    """
    windows = tuple(windows)
    left = [w.budget_bytes for w in windows]
    storage: list[int] = [0] * len(windows)
    producers = {p.target_hash: p.name for p in patches if p.target_hash is not None}
    result: dict[str, PatchPlan] = {}
    allocations: list[Allocation] = []
    pending = sorted(patches, key=_order)

    def refuse(p: UplinkPatch, reason: str) -> None:
        result[p.name] = PatchPlan(p.name, Status.REFUSED, reason)

    progress = True
    while pending and progress:
        progress = False
        for p in list(pending):
            tv = view.transfers.get(p.name)
            if tv is not None and tv.complete:
                ok = tv.fate is None or not fate_failed(tv.fate)
                result[p.name] = PatchPlan(
                    p.name, Status.COMPLETE if ok else Status.REFUSED,
                    "" if ok or tv.fate is None else
                    f"failed on board ({fate_code_text(tv.fate)})", tv.k, tv.share_bytes)
                pending.remove(p)
                progress = True
                continue
            start, why_wait = _eligible(p, view, producers, result)
            if start == "later":
                continue  # its base's producer is not planned yet: next round
            pending.remove(p)
            progress = True
            if start == "refuse":
                refuse(p, why_wait)
                continue
            if start == "wait":
                result[p.name] = PatchPlan(p.name, Status.WAITING, why_wait)
                continue
            assert isinstance(start, int)
            # ``start`` is a window index; the allocator works on positions in ``windows``.
            first = next((j for j, w in enumerate(windows) if w.index >= start), len(windows))
            result[p.name] = _allocate(p, tv, windows, first, why_wait, left, storage,
                                       allocations, channel, storage_bytes, share_bytes,
                                       confidence, memory)
    for p in pending:  # a cycle of bases: nothing of it can ever apply
        refuse(p, "its base configuration is produced only by a patch that depends on it")
    ordered = tuple(result[p.name] for p in sorted(patches, key=_order))
    return Plan(windows, tuple(sorted(allocations, key=lambda a: (a.window, _rank(a, patches)))),
                ordered)


def _rank(a: Allocation, patches: Sequence[UplinkPatch]) -> tuple[Any, ...]:
    return next(_order(p) for p in patches if p.name == a.patch)


def _eligible(p: UplinkPatch, view: OnboardView, producers: Mapping[bytes, str],
              result: Mapping[str, PatchPlan]) -> tuple[int | str, str]:
    """First window index (``UplinkWindow.index``) the patch may use, or 'wait', 'refuse',
    or 'later' (its base's producer is not planned yet), and why."""
    if p.base_hash is None or same_config(p.base_hash, view.config_hash):
        return 0, ""
    if p.application:
        # telemetry's hash is application 0's; another application's base was checked
        # before uplink against what the ground believes that application runs
        return 0, ""
    short = p.base_hash.hex()[:16]
    name = next((n for h, n in producers.items() if same_config(h, p.base_hash)), None)
    if name is None or name == p.name:
        if view.config_hash is None:
            return "wait", f"base {short} not yet confirmed on board (no telemetry yet)"
        return "refuse", (f"base {short} is not on board ({view.config_hash.hex()[:16]}) "
                          "and no planned patch produces it")
    base = result.get(name)
    if base is None:
        return "later", ""
    if base.status is Status.COMPLETE:
        return "wait", f"waits for telemetry to confirm {name} on board"
    if base.status is not Status.SCHEDULED or base.complete_window is None:
        return "refuse", f"its base comes from {name}, which is {base.status.value}"
    return base.complete_window + 1, f"waits for {name} to be confirmed on board"


def _allocate(p: UplinkPatch, tv: TransferView | None, windows: Sequence[UplinkWindow],
              start: int, note: str, left: list[int], storage: list[int],
              allocations: list[Allocation], channel: Channel, storage_bytes: int,
              share_bytes: int, confidence: float,
              limits: tuple[int, int] | None) -> PatchPlan:
    if tv is not None:
        k, size = tv.k, tv.share_bytes
    else:
        try:
            size = share_size(len(p.data), share_bytes)
        except ErasureError as exc:
            return PatchPlan(p.name, Status.REFUSED, str(exc))
        k = -(-len(p.data) // size)
    need_store = k * size
    h = p.header
    if h is not None and limits is not None and (h.claims.code_bytes > limits[0]
                                                 or h.claims.data_bytes > limits[1]):
        return PatchPlan(p.name, Status.REFUSED,
                         f"claims {h.claims.code_bytes} code and {h.claims.data_bytes} data "
                         f"bytes; the satellite has {limits[0]} and {limits[1]}", k, size)
    if need_store > storage_bytes:
        return PatchPlan(p.name, Status.REFUSED,
                         f"needs {need_store} bytes of onboard receive storage, the "
                         f"satellite has {storage_bytes}", k, size)
    if p.deadline is not None and windows and p.deadline < windows[0].start:
        return PatchPlan(p.name, Status.REFUSED,
                         f"its deadline {p.deadline.isoformat()} has passed", k, size)
    fsize = frame_bytes(size)
    missing = tv.missing if tv else k
    in_flight = len(tv.unconfirmed) if tv else 0
    mine: list[Allocation] = []
    done_at: int | None = None
    for i in range(start, len(windows)):
        loss = channel.expected_loss(windows[i].pass_.max_elevation_deg)
        want = frames_needed(missing, in_flight, loss, confidence)
        if want == 0:
            done_at = i  # what is already on its way suffices (only before any frame here)
            break
        if storage[i] + need_store > storage_bytes:
            continue  # the receive buffer is taken by patches ahead of this one
        n = min(want, left[i] // fsize)
        if n > 0:
            mine.append(Allocation(windows[i].index, p.name, n, n * fsize, round(loss, 4)))
            in_flight += n
            if n == want:
                done_at = i
                break
    if done_at is None:
        return PatchPlan(p.name, Status.REFUSED,
                         f"does not complete within the {len(windows) - start} uplink windows "
                         "it may use; plan more days", k, size,
                         sum(a.frames for a in mine), sum(a.bytes for a in mine))
    completes_at = windows[done_at].end if windows else None
    if p.deadline is not None and completes_at is not None and completes_at > p.deadline:
        return PatchPlan(p.name, Status.REFUSED,
                         f"would complete at {completes_at.isoformat()}, after its deadline "
                         f"{p.deadline.isoformat()}", k, size)
    pos = {w.index: j for j, w in enumerate(windows)}
    for a in mine:
        left[pos[a.window]] -= a.bytes
    first = pos[mine[0].window] if mine else done_at
    for j in range(first, done_at + 1):
        storage[j] += need_store
    allocations.extend(mine)
    return PatchPlan(p.name, Status.SCHEDULED, note, k, size, sum(a.frames for a in mine),
                     sum(a.bytes for a in mine),
                     windows[first].index if mine else None,
                     windows[done_at].index if windows else None, completes_at)
