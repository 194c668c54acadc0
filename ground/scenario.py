"""Scenarios: a mission's operations end to end, from CCL sources to telemetry (``ccl sim``).

A scenario file says what is on board at the start and which configurations the ground
sends, step by step. For every configuration of a step the ground:

1. compiles and proves it (``ccl.driver``, ``ccl.verify``): one that does not check or is
   not proven is never uplinked;
2. packs it (``ccl.pack``) against the configuration it believes is on board (the last
   telemetry report's hash, looked up in the ledger), with the next sequence number, and
   checks the patch as before any uplink (``ground.preflight``: format, tag, sequence number
   and base against the ledger);
3. uplinks the step's patches over the coming passes (``ground.uplink.simulate``) to a
   simulated satellite (``onboard.sim.spacecraft``: receiver, VVM, patcher, store), whose tasks
   run under the 10 % share the whole time, patch handling included;
4. reads the telemetry of the following passes until every patch's fate is final
   (committed, rolled back or rejected); a patch rejected for its base is packed again
   against the configuration the telemetry shows on board, and sent again.

The ground judges every outcome from what the spacecraft downlinks (``ground.telemetry``:
the receiver's report and the patch event log, each fate with its onboard time) and from
the ledger, never from the satellite's internals. Only the closing check, whether the
ledger's record agrees with what is really on board (``ScenarioReport.consistent``), looks at
the simulated satellite itself: that is the simulator refereeing the ground.

The ledger (``ground.ledger``) records the run: images, patches, passes, segments sent and
acknowledged, every telemetry report. Everything random comes from the scenario's seed;
the satellite's clock is the simulated one (its millisecond 0 is the scenario's start).

Keys: a scenario under a flight profile (``mission = "corot:flight"``, as the CoRoT
scenarios are) refuses the development keys, so unless keys are given, the run generates a
patch key and a link key of its own, as an operator would with ``ccl keygen``: random,
written to ``WORKDIR/keys/`` with mode 0600, and loaded from there. What a run reports does
not depend on the key bytes (sizes, frames, losses and fates do not), so runs stay
reproducible for a seed. Under a non-flight profile the development keys are used.

File format (TOML)::

    [scenario]
    name = "a one-parameter change"
    mission = "corot:flight"         # a profile, with its variant (see onboard/mission.py)
    seed = 1
    start = "2014-06-11T00:00:00Z"   # default: the TLE epoch's day
    days = 3                         # how far ahead passes are computed
    loss = 0.05                      # independent frame loss (also: duplicate, reorder)
    probation_frames = 600           # default: the mission's

    [onboard]                        # loaded before launch; without it nothing is on board
    config = "../configs/exo_e1.ccl"

    [[step]]
    title = "raise the cosmic-ray threshold"
    faults = { cancelled = [0], lost_reports = [1] }   # passes of this step, 0 = its first

    [[step.patch]]
    config = "../configs/exo_e1_v6.ccl"
    expect = "committed"             # committed | refused | rejected | rolled-back
    expect_recovery = "committed"    # for a patch rejected for its base: the re-packed one
    priority = 1

    [[step]]
    title = "read the new threshold back"
    dump = ["cr_k10", "rejected"]    # a dump request after the step's patches (if any)

Several applications (``onboard.vm.board``: one per instrument channel, say) are named in
``[onboard]`` instead of its ``config``, each with its part of the share and what it runs
before launch (optional), in their order on the link (the first is number 0, on the patch
APID; the next ones on 0x161, 0x162, ...); a patch then says which application it
addresses::

    [[onboard.application]]
    name = "channel_a"
    share = 4                        # percent of every frame
    config = "../configs/channels/channel_a.ccl"

    [[step.patch]]
    app = "channel_b"
    config = "../configs/channels/channel_b_v2.ccl"

A configuration's own ``application NAME share N %;`` clause, if it has one, must agree.
The ground packs each application's patch against the configuration it believes that
application runs (what it installed, then what telemetry showed committed), and the
satellite reports each application in its own TM packet (``tm_packets.APPLICATION``).

A step has patches, a ``dump``, or both. A dump request (``onboard/link/dump_format.py``:
1 to 16 names of parameters, state variables, tables or state arrays) goes up at the next
uplink pass after the step's patches are final, in one authenticated frame (lost like any
other, and then sent again at the next pass, three passes at most); the board answers in
its patch reserve and the answer comes down in the telemetry read at the end of that pass
(``ground.telemetry.DumpLog``). ``run_scenario(..., dump=NAMES)`` sends one more request at
the end of the scenario (``ccl sim --dump``). A scenario is as expected only if every dump
was answered; a refusal (an unknown name...) comes with the board's reason.
"""

from __future__ import annotations

import random
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ccl.diagnostics import CclError
from ccl.driver import Compiled, Compiler
from ccl.pack import PackError, format_key, generate_key, pack
from ccl.verify.verdict import run_verifier
from ground import framing
from ground.channel import Channel
from ground.errors import GroundError
from ground.ledger import MAX_SEED, Ledger, RunRecorder
from ground.link import LinkBudget, UplinkWindow, uplink_windows
from ground.passes import compute_passes, default_start
from ground.planner import UplinkPatch
from ground.preflight import PreflightError, check_patch
from ground.satellite import SimulatedSatellite
from ground.telemetry import DumpAnswer, DumpLog, FateLog, FateRecord
from ground.tle import MAX_PROPAGATION_DAYS
from ground.uplink import (
    Campaign,
    Faults,
    PatchResult,
    SimulationResult,
    WindowLog,
    simulate,
)
from onboard.link.downlink import DownlinkError, decode_downlink
from onboard.link.dump_format import encode_request
from onboard.link.link_security import LinkKeyRefused, SecurityAssociation, development_link_key
from onboard.link.receiver import Report, ReportError, decode_report
from onboard.link.tc_frames import patch_apid
from onboard.mission import MissionError, MissionProfile, find_mission
from onboard.patching.key_file import write_key_file
from onboard.patching.patch_format import Reason, development_key, key_from_text
from onboard.patching.patcher import KeyRefused
from onboard.patching.store import StoreError
from onboard.sim.spacecraft import Spacecraft
from onboard.vm.image import Image, decode_image
from onboard.vm.loader import LoadError

EXPECTATIONS = ("committed", "refused", "rejected", "rolled-back")
#: The longest a scenario may look ahead for passes (days): the farthest a TLE is propagated.
MAX_DAYS = MAX_PROPAGATION_DAYS
#: Uplink passes a dump request is tried in before the ground gives up on its answer.
DUMP_PASSES = 3


class ScenarioError(GroundError):
    """A scenario file that cannot be run: what is wrong (file and key) and a hint."""


# --------------------------------------------------------------------------- the file


@dataclass(frozen=True)
class PatchSpec:
    config: Path
    expect: str | None = None
    expect_recovery: str | None = None
    priority: int = 1
    app: str | None = None             # the application addressed (None: the default one)


@dataclass(frozen=True)
class ApplicationSpec:
    """An application of the board: its name, part of the share and what it runs before
    launch (None: nothing)."""

    name: str
    share_percent: int
    config: Path | None = None


@dataclass(frozen=True)
class Step:
    title: str
    patches: tuple[PatchSpec, ...]
    cancelled: frozenset[int] = frozenset()   # relative to the step's first pass
    lost_reports: frozenset[int] = frozenset()
    dump: tuple[str, ...] = ()                # names to read back after the patches


@dataclass(frozen=True)
class Scenario:
    path: Path
    name: str
    mission: str
    seed: int
    start: datetime | None
    days: float
    channel: Channel
    probation_frames: int | None
    onboard_config: Path | None
    steps: tuple[Step, ...]
    applications: tuple[ApplicationSpec, ...] = ()  # in link order; () a single VVM


def _get(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str,
         default: Any = None, required: bool = False) -> Any:
    if key not in table:
        if required:
            raise ScenarioError(f"{where}: `{key}` is missing", "see ground/scenario.py for "
                                "the format")
        return default
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ScenarioError(f"{where}: `{key}` = {value!r} has the wrong type",
                            "see ground/scenario.py for the format")
    return value


def _indices(table: dict[str, Any], key: str, where: str) -> frozenset[int]:
    values = _get(table, key, list, where, [])
    if not all(isinstance(v, int) and v >= 0 for v in values):
        raise ScenarioError(f"{where}: `{key}` must list pass numbers >= 0",
                            "0 is the step's first uplink pass")
    return frozenset(values)


def _seed(seed: int, where: str) -> int:
    if not 0 <= seed <= MAX_SEED:
        raise ScenarioError(f"{where}: seed = {seed}: it must lie in [0, {MAX_SEED}]",
                            "write seed = 1")
    return seed


def _probation(frames: int | None, where: str) -> int | None:
    if frames is not None and frames < 1:
        raise ScenarioError(f"{where}: probation_frames = {frames}: it must be at least 1",
                            "leave it out for the mission's")
    return frames


def check_dump_names(names: Sequence[str], where: str) -> tuple[str, ...]:
    """``names`` if the board could take them in one dump request; else ``ScenarioError``
    (the ground never sends a request the board would refuse as malformed)."""
    try:
        encode_request(0, names)
    except ValueError as exc:
        raise ScenarioError(f"{where}: cannot ask for a dump: {exc}",
                            "give 1 to 16 names of parameters, state, tables or arrays") \
            from None
    return tuple(names)


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario file; raises ``ScenarioError`` naming the file and key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}",
                            "check the path") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not a scenario: byte {exc.start} is not UTF-8 text "
                            "(a binary file?)", "give a scenario file (TOML text)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}", "fix the syntax") from None
    where = f"{path} [scenario]"
    if not data:
        raise ScenarioError(f"{path}: not a scenario: the file is empty",
                            "a scenario has a [scenario] table and [[step]]s; see "
                            "missions/corot/scenarios/")
    head = _get(data, "scenario", dict, str(path), required=True)
    base = path.parent
    start_text = _get(head, "start", (str, datetime), where)
    start = None
    if isinstance(start_text, datetime):
        start = start_text
    elif start_text is not None:
        try:
            start = datetime.fromisoformat(start_text.replace("Z", "+00:00"))
        except ValueError:
            raise ScenarioError(f"{where}: start {start_text!r} is not an ISO date-time",
                                "write e.g. 2014-06-11T00:00:00Z") from None
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    try:
        channel = Channel(loss=float(_get(head, "loss", (int, float), where, 0.0)),
                          duplicate=float(_get(head, "duplicate", (int, float), where, 0.0)),
                          reorder=float(_get(head, "reorder", (int, float), where, 0.0)))
    except ValueError as exc:
        raise ScenarioError(f"{where}: {exc}", "probabilities lie in [0, 1)") from None
    days = float(_get(head, "days", (int, float), where, 3))
    if not 0 < days <= MAX_DAYS:  # NaN too: TOML has nan and inf
        raise ScenarioError(f"{where}: days = {days:g}: it must be positive and at most "
                            f"{MAX_DAYS:g} (the farthest a TLE is propagated; passes take "
                            "about 36 ms a day to compute)",
                            "write days = 3")
    onboard = _get(data, "onboard", dict, str(path), {})
    config = _get(onboard, "config", str, f"{path} [onboard]")
    applications = _applications(onboard, base, f"{path} [onboard]")
    if applications and config is not None:
        raise ScenarioError(f"{path} [onboard]: both `config` and applications",
                            "give each application its `config` instead")
    names = [a.name for a in applications]
    steps = []
    for i, raw in enumerate(_get(data, "step", list, str(path), required=True)):
        sw = f"{path} [[step]] {i + 1}"
        if not isinstance(raw, dict):
            raise ScenarioError(f"{sw}: not a table", "write [[step]] sections")
        faults = _get(raw, "faults", dict, sw, {})
        patches = []
        dump = _get(raw, "dump", list, sw, [])
        if not all(isinstance(n, str) for n in dump):
            raise ScenarioError(f"{sw}: `dump` must list names", 'write dump = ["cr_k10"]')
        if dump:
            check_dump_names(dump, sw)
        for j, p in enumerate(_get(raw, "patch", list, sw, [], required=not dump)):
            pw = f"{sw} [[step.patch]] {j + 1}"
            if not isinstance(p, dict):
                raise ScenarioError(f"{pw}: not a table", "write [[step.patch]] sections")
            expect = [_get(p, k, str, pw) for k in ("expect", "expect_recovery")]
            for e in expect:
                if e is not None and e not in EXPECTATIONS:
                    raise ScenarioError(f"{pw}: unknown expectation {e!r}",
                                        f"one of {', '.join(EXPECTATIONS)}")
            app = _get(p, "app", str, pw)
            if names and app not in names:
                raise ScenarioError(f"{pw}: " + (f"no application `{app}` on board"
                                                 if app else "which application?"),
                                    f"write app = one of {', '.join(names)}")
            if app is not None and not names:
                raise ScenarioError(f"{pw}: app = {app!r}, but [onboard] names no "
                                    "applications", "add [[onboard.application]] tables")
            patches.append(PatchSpec(base / _get(p, "config", str, pw, required=True),
                                     expect[0], expect[1], _get(p, "priority", int, pw, 1),
                                     app))
        steps.append(Step(_get(raw, "title", str, sw, f"step {i + 1}"), tuple(patches),
                          _indices(faults, "cancelled", sw), _indices(faults, "lost_reports",
                                                                      sw), tuple(dump)))
    return Scenario(path, _get(head, "name", str, where, path.stem),
                    _get(head, "mission", str, where, required=True),
                    _seed(_get(head, "seed", int, where, 1), where), start, days, channel,
                    _probation(_get(head, "probation_frames", int, where), where),
                    base / config if config else None, tuple(steps), applications)


def _applications(onboard: dict[str, Any], base: Path, where: str) \
        -> tuple[ApplicationSpec, ...]:
    out: list[ApplicationSpec] = []
    for i, raw in enumerate(_get(onboard, "application", list, where, [])):
        aw = f"{where} [[onboard.application]] {i + 1}"
        if not isinstance(raw, dict):
            raise ScenarioError(f"{aw}: not a table", "write [[onboard.application]] sections")
        name = _get(raw, "name", str, aw, required=True)
        if not name.isidentifier() or name in (a.name for a in out):
            raise ScenarioError(f"{aw}: `{name}` cannot name an application here",
                                "each application has its own name, a CCL identifier")
        share = _get(raw, "share", int, aw, required=True)
        config = _get(raw, "config", str, aw)
        out.append(ApplicationSpec(name, share, base / config if config else None))
    return tuple(out)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PatchOutcome:
    """What became of one configuration the scenario sends."""

    step: int
    source: str
    name: str
    verdict: str                       # proven, refuted, unknown, or "does not check"
    detail: str = ""
    kind: str = ""                     # full or delta
    size: int = 0
    seq: int | None = None
    share_used_percent: float | None = None
    uplink: PatchResult | None = None
    fates: tuple[FateRecord, ...] = ()  # as the downlinked event log told them
    final: str = ""                    # committed, refused, rejected: REASON, rolled-back...
    expected: str | None = None
    recovery_of: str | None = None     # the rejected patch this one re-packs

    @property
    def met(self) -> bool:
        """Whether the outcome is the one the scenario expects (if it expects one)."""
        return self.expected is None or self.final.split(":")[0] == self.expected

    @property
    def activated(self) -> datetime | None:
        return next((f.time for f in self.fates if f.status == "active"), None)

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "source": self.source, "name": self.name,
                "verdict": self.verdict, "detail": self.detail, "kind": self.kind,
                "bytes": self.size, "seq": self.seq,
                "share_used_percent": self.share_used_percent,
                "uplink": self.uplink.to_json() if self.uplink else None,
                "fates": [{"time": f.time.isoformat(), "status": f.status,
                           "detail": f.detail} for f in self.fates],
                "final": self.final, "expected": self.expected, "met": self.met,
                "recovery_of": self.recovery_of,
                "activated": self.activated.isoformat() if self.activated else None}


@dataclass(frozen=True)
class DumpResult:
    """A dump request the scenario sent and what the board answered."""

    step: int | None                   # None: the closing dump (``ccl sim --dump``)
    names: tuple[str, ...]
    request: int
    answer: DumpAnswer | None          # None: no answer in the passes tried
    detail: str = ""

    @property
    def answered(self) -> bool:
        """Whether the board sent the values (not a refusal, not silence)."""
        return self.answer is not None and self.answer.refused is None

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "names": list(self.names), "request": self.request,
                "answered": self.answered, "detail": self.detail,
                "answer": self.answer.to_json() if self.answer else None}


@dataclass(frozen=True)
class ScenarioReport:
    """A scenario's run: every patch's outcome, the link's totals, both sides' views."""

    scenario: Scenario
    run: int
    outcomes: tuple[PatchOutcome, ...]
    start: datetime
    end: datetime
    passes_used: int
    frames_sent: int
    bytes_sent: int
    frames_lost: int
    onboard: dict[str, Any]            # the satellite's own status at the end (the referee's)
    ground_config: str | None          # the hash the ledger says is on board
    bytes_per_day: int
    campaigns: tuple[SimulationResult, ...] = ()
    dumps: tuple[DumpResult, ...] = ()
    #: applications after the first: the configuration (hash, hex) the ground believes
    #: each runs, from what it installed and the fates telemetry showed (None: nothing)
    ground_applications: dict[str, str | None] = field(default_factory=dict)

    def timeline(self) -> tuple[SimulationResult, dict[str, datetime]]:
        """Every campaign as one uplink record (for ``ground.timeline``), and when each
        patch was activated on board, by its uplink name."""
        windows: dict[int, WindowLog] = {}
        for c in self.campaigns:
            for log in c.windows:
                windows[log.window.index] = log  # a campaign's last pass opens the next
        patches = tuple(p for c in self.campaigns for p in c.patches)
        active = {o.uplink.name: o.activated for o in self.outcomes
                  if o.uplink is not None and o.activated is not None}
        return (SimulationResult(patches, tuple(windows[i] for i in sorted(windows)),
                                 self.scenario.seed), active)

    @property
    def onboard_config(self) -> str:
        return str(self.onboard["config"]["hash"])

    @property
    def consistent(self) -> bool:
        """Whether the ground's record agrees with what is really on board (the simulator
        checking the ground; the ground itself never sees ``onboard``)."""
        ground = self.ground_config
        if ground is None:
            return False
        if not ground.strip("0"):  # telemetry said nothing is on board
            return not self.onboard_config.strip("0") and self._applications_agree
        return self.onboard_config.startswith(ground) and self._applications_agree

    @property
    def _applications_agree(self) -> bool:
        apps = self.onboard.get("applications", {})
        return all((apps[name]["config"]["hash"] or None) == believed
                   for name, believed in self.ground_applications.items())

    @property
    def ok(self) -> bool:
        return all(o.met for o in self.outcomes) and self.consistent \
            and all(d.answered for d in self.dumps)

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario.name, "file": str(self.scenario.path),
                "mission": self.scenario.mission, "seed": self.scenario.seed,
                "run": self.run, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "passes_used": self.passes_used, "frames_sent": self.frames_sent,
                "bytes_sent": self.bytes_sent, "frames_lost": self.frames_lost,
                "uplink_days": round(self.bytes_sent / self.bytes_per_day, 4),
                "patches": [o.to_json() for o in self.outcomes],
                "onboard": self.onboard, "ground_config": self.ground_config,
                "consistent": self.consistent, "dumps": [d.to_json() for d in self.dumps],
                "ground_applications": self.ground_applications,
                "ok": self.ok}


# --------------------------------------------------------------------------- running


class _Recorder:
    """The ledger's recorder, keeping the last telemetry report the ground received and
    every patch event downlinked."""

    def __init__(self, inner: RunRecorder, epoch: datetime) -> None:
        self.inner = inner
        self.last: Report | None = None
        self.last_window: int | None = None
        self.fates = FateLog(epoch)
        self.dumps = DumpLog(epoch)

    def window(self, window: UplinkWindow, cancelled: bool) -> None:
        self.inner.window(window, cancelled)

    def transfer(self, patch: UplinkPatch, transfer: int, k: int, share_bytes: int) -> None:
        self.inner.transfer(patch, transfer, k, share_bytes)

    def sent(self, window: UplinkWindow, patch: str, transfer: int, share: int, nbytes: int,
             at: datetime) -> None:
        self.inner.sent(window, patch, transfer, share, nbytes, at)

    def report(self, window: UplinkWindow, raw: bytes, report: Report) -> None:
        """A downlink ``raw`` read at ``window`` (``report``: its receiver report)."""
        self.inner.report(window, raw, report)
        downlink = decode_downlink(raw)
        self.fates.learn(downlink)
        self.dumps.learn(downlink)
        self.last, self.last_window = report, window.index

    def downlinked(self, window: UplinkWindow, raw: bytes) -> bool:
        """Read and record a downlink packet; False if it cannot be read."""
        try:
            report = decode_report(decode_downlink(raw).report)
        except (DownlinkError, ReportError):
            return False
        self.report(window, raw, report)
        return True


@dataclass
class _Pending:
    """A configuration compiled and proven, waiting to be packed and sent."""

    spec: PatchSpec
    step: int
    compiled: Compiled
    share: float | None
    cycles_per_frame: int | None
    recovery_of: str | None = None


@dataclass
class _Ground:
    """What the ground holds during a run."""

    scenario: Scenario
    profile: MissionProfile
    compiler: Compiler
    ledger: Ledger
    recorder: _Recorder
    link: SimulatedSatellite
    windows: list[UplinkWindow]
    key: bytes
    association: SecurityAssociation  # of the TC link
    counters: framing.Counters = framing.Counters()  # the link's, across campaigns
    believed: Image | None = None      # the configuration the ground thinks is on board
    #: the other applications' configurations, as the ground believes them (numbers >= 1)
    believed_apps: dict[str, Image | None] = field(default_factory=dict)
    seq: int = 0
    next_transfer: int = 1
    next_request: int = 1              # id of the next dump request
    position: int = 0                  # next window to use
    outcomes: list[PatchOutcome] = field(default_factory=list)
    results: list[PatchResult] = field(default_factory=list)
    campaigns: list[SimulationResult] = field(default_factory=list)
    dumps: list[DumpResult] = field(default_factory=list)
    on_event: Callable[[str], None] | None = None

    def say(self, text: str) -> None:
        if self.on_event:
            self.on_event(text)

    # -- ground side of one configuration

    def prepare(self, spec: PatchSpec, step: int) -> _Pending | None:
        """Compile and prove; None (and an outcome saying why) if it cannot go up."""
        source = str(spec.config)
        try:
            compiled = self.compiler.compile(spec.config)
        except CclError as exc:
            d = exc.diagnostics[0]
            where = f"{d.span.line}:{d.span.col}: " if d.span is not None else ""
            self.outcomes.append(PatchOutcome(step, source, spec.config.stem,
                                              "does not check", f"{where}[{d.code}] "
                                              f"{d.message}", final="refused",
                                              expected=spec.expect))
            self.say(f"{spec.config.name}: does not check; never uplinked")
            return None
        img = compiled.image
        name = f"{img.name} v{img.version}"
        _check_application(compiled, self.application(spec.app), spec.config)
        for v in (*compiled.vmlets, compiled):
            self.ledger.add_image(v.image.content_hash, v.image.kind.name.lower(),
                                  v.image.name, v.image.version, v.image.encode())
        verdict = run_verifier(compiled)
        if verdict.status != "proven":
            self.outcomes.append(PatchOutcome(step, source, name, verdict.status,
                                              verdict.detail, final="refused",
                                              share_used_percent=verdict.share_used_percent,
                                              expected=spec.expect))
            self.say(f"{name}: {verdict.status} by ccl verify ({verdict.detail}); never "
                     "uplinked")
            return None
        return _Pending(spec, step, compiled, verdict.share_used_percent,
                        verdict.cycles_per_frame)

    def packed(self, p: _Pending) -> tuple[UplinkPatch, str, int]:
        """The patch of ``p`` against the configuration believed on board."""
        c = p.compiled
        self.seq += 1
        number = self.number(p.spec.app)
        base = self.believed if number == 0 else self.believed_apps.get(p.spec.app or "")
        onboard = self.ledger.onboard(self.recorder.inner.run)
        if number and onboard is not None and onboard.known:
            # the report's hash is application 0's: this one's is what the ground believes
            onboard = replace(onboard, config_hash=base.content_hash if base is not None
                              else bytes(32))
        try:
            result = pack(c.image, [v.image for v in c.vmlets], self.profile, self.key,
                          seq=self.seq, base=base, cycles_per_frame=p.cycles_per_frame)
        except PackError as exc:
            raise ScenarioError(f"{p.spec.config}: cannot pack: {exc.message}",
                                exc.hint) from None
        name = f"{c.image.name} v{c.image.version} #{self.seq}"
        try:  # what the ground checks before any uplink, on what the ledger knows
            check_patch(name, result.data, self.profile, self.key, onboard)
        except PreflightError as exc:
            raise ScenarioError(f"{p.spec.config}: {exc.where}: {exc.message}",
                                exc.hint) from None
        patch = replace(UplinkPatch.from_bytes(name, result.data, priority=p.spec.priority),
                        application=number)
        self.ledger.add_patch(patch)
        kind = "full" if result.full else "delta"
        self.say(f"{name}: proven; {kind} patch of {len(result.data)} bytes, seq {self.seq}"
                 + (f", for application {p.spec.app} (APID {patch_apid(number):#x})"
                    if p.spec.app else "")
                 + (f", base {base.name} v{base.version}" if base is not None and not
                    result.full else ""))
        return patch, kind, self.seq

    # -- one campaign: send, then watch the telemetry

    def campaign(self, pending: Sequence[_Pending], step: Step) -> list[PatchOutcome]:
        sends = [(p, *self.packed(p)) for p in pending]
        patches = [s[1] for s in sends]
        windows = self.windows[self.position:]
        if not windows:
            return [self._undelivered(p, patch, kind, seq) for p, patch, kind, seq in sends]
        first = windows[0].index
        faults = Faults(cancelled=frozenset(first + i for i in step.cancelled),
                        lost_reports=frozenset(first + i for i in step.lost_reports))
        settings = Campaign.for_mission(self.profile, self.association,
                                        channel=self.scenario.channel, seed=self._seed(),
                                        faults=faults, first_transfer=self.next_transfer,
                                        counters=self.counters)
        try:
            result = simulate(patches, windows, self.link, settings, recorder=self.recorder)
        except ValueError as exc:  # e.g. a patch too large to erasure-code
            raise ScenarioError(f"{step.title}: {exc}", "split the change") from None
        self.results.extend(result.patches)
        self.campaigns.append(result)
        self.counters = result.counters
        if result.windows:
            self.position = self.windows.index(result.windows[-1].window)
        transfers = [r.transfer for r in result.patches if r.transfer is not None]
        if transfers:
            self.next_transfer = max(transfers) + 1
        self._watch([r.transfer for r in result.patches if r.status == "complete"
                     and r.transfer is not None], step, faults)
        outcomes = []
        for (p, patch, kind, seq), r in zip(sends, result.patches, strict=True):
            outcomes.append(self._outcome(p, patch, kind, seq, r))
            if patch.application and outcomes[-1].final == "committed":
                # telemetry said it: that application now runs this configuration
                self.believed_apps[p.spec.app or ""] = p.compiled.image
        self._update_belief()
        return outcomes

    def _seed(self) -> int:
        return self.scenario.seed * 1_000 + self.position

    def application(self, app: str | None) -> ApplicationSpec | None:
        """The scenario's application ``app`` (None: the default)."""
        return next((a for a in self.scenario.applications if a.name == app), None)

    def number(self, app: str | None) -> int:
        """Application ``app``'s number on the link (0: the default, or the first)."""
        names = [a.name for a in self.scenario.applications]
        return names.index(app) if app in names else 0

    def _watch(self, transfers: list[int], step: Step, faults: Faults) -> None:
        """Read the telemetry of the next passes until these transfers' fates are final."""
        while transfers and not all(self._final(t) for t in transfers):
            if self.position + 1 >= len(self.windows):
                return
            self.position += 1
            w = self.windows[self.position]
            cancelled = w.index in faults.cancelled
            self.recorder.window(w, cancelled)
            if cancelled or w.index in faults.lost_reports:
                continue
            self.link.advance(w.start)
            if self.recorder.downlinked(w, self.link.downlink()):
                self.say(f"telemetry at {w.start:%Y-%m-%d %H:%M} ({w.pass_.station})")

    def _final(self, transfer: int) -> bool:
        """Whether the ground has seen this transfer's final fate in telemetry."""
        fates = self.recorder.fates.fates(transfer)
        return bool(fates) and fates[-1].final

    def _outcome(self, p: _Pending, patch: UplinkPatch, kind: str, seq: int,
                 r: PatchResult) -> PatchOutcome:
        fates = self.recorder.fates.fates(r.transfer)
        final = fates[-1].status if fates else ("undelivered" if r.status != "complete"
                                                else "complete")
        if final == "rejected":
            final = f"rejected: {fates[-1].detail.split(':')[0]}"
        c = p.compiled
        expected = p.spec.expect_recovery if p.recovery_of else p.spec.expect
        outcome = PatchOutcome(p.step, str(p.spec.config),
                               f"{c.image.name} v{c.image.version}", "proven", "", kind,
                               len(patch.data), seq, p.share, r, fates, final, expected,
                               p.recovery_of)
        when = outcome.activated
        self.say(f"{patch.name}: {final}"
                 + (f" (activated {when:%Y-%m-%d %H:%M:%S})" if when else ""))
        return outcome

    def _undelivered(self, p: _Pending, patch: UplinkPatch, kind: str,
                     seq: int) -> PatchOutcome:
        c = p.compiled
        return PatchOutcome(p.step, str(p.spec.config), f"{c.image.name} v{c.image.version}",
                            "proven", "no uplink pass left", kind, len(patch.data), seq,
                            p.share, final="undelivered", expected=p.spec.expect,
                            recovery_of=p.recovery_of)

    def _update_belief(self) -> None:
        """What is on board, as far as the ground can tell: the last telemetry's hash."""
        last = self.recorder.last
        if last is None:
            return
        if last.config_hash == bytes(len(last.config_hash)):
            self.believed = None
            return
        raw = self.ledger.image(last.config_hash)
        self.believed = decode_image(raw) if raw is not None else None

    def closing_telemetry(self) -> None:
        """Read the telemetry of the current pass, if not read yet: the ground's last word on
        what is on board."""
        w = self.windows[self.position]
        if self.recorder.last_window == w.index:
            return
        self.link.advance(w.start)
        self.recorder.window(w, False)
        if self.recorder.downlinked(w, self.link.downlink()):
            self.say(f"telemetry at {w.start:%Y-%m-%d %H:%M} ({w.pass_.station})")

    # -- read-back

    def dump(self, names: tuple[str, ...], step: int | None) -> DumpResult:
        """Ask the board for ``names`` at the next uplink pass (again at the following ones
        if the frame is lost, ``DUMP_PASSES`` in all) and read its answer from the
        telemetry at the end of that pass."""
        request = self.next_request
        self.next_request = self.next_request % 0xFFFF + 1
        data = encode_request(request, names)
        rng = random.Random(self._seed() * 31 + request)
        for _ in range(DUMP_PASSES):
            if self.position + 1 >= len(self.windows):
                break
            self.position += 1
            w = self.windows[self.position]
            self.recorder.window(w, False)
            self.link.advance(w.start)
            try:
                raw, self.counters = framing.request_frame(data, self.profile.spacecraft_id,
                                                           self.counters, self.association)
            except ValueError as exc:  # the security sequence numbers ran out
                raise ScenarioError(f"dump request: {exc}", "re-key the link") from None
            if rng.random() >= self.scenario.channel.loss:
                self.link.receive(raw)
            self.link.advance(w.end)
            if not self.recorder.downlinked(w, self.link.downlink()):
                continue
            answer = self.recorder.dumps.answer(request)
            if answer is not None:
                what = f"refused on board: {answer.refused}" if answer.refused else \
                    f"{len(answer.values)} value(s) read back at {answer.time:%Y-%m-%d %H:%M:%S}"
                self.say(f"dump request {request} ({', '.join(names)}): {what}")
                return DumpResult(step, names, request, answer)
        self.say(f"dump request {request} ({', '.join(names)}): no answer")
        return DumpResult(step, names, request, None,
                          f"no answer in {DUMP_PASSES} passes (or no pass left)")

    # -- a whole step

    def step(self, index: int, step: Step) -> None:
        self.say(f"step {index + 1}: {step.title}")
        self._patches(index, step)
        if step.dump:
            self.dumps.append(self.dump(step.dump, index))

    def _patches(self, index: int, step: Step) -> None:
        ready = [p for p in (self.prepare(s, index) for s in step.patches) if p is not None]
        if not ready:
            return
        outcomes = self.campaign(ready, step)
        self.outcomes.extend(outcomes)
        again = [replace(p, recovery_of=o.name)
                 for p, o in zip(ready, outcomes, strict=True)
                 if o.final == f"rejected: {Reason.WRONG_BASE.value}"]
        if again:
            self.say(f"telemetry shows {len(again)} patch(es) rejected for their base: "
                     "packing again against the configuration on board")
            self.outcomes.extend(self.campaign(again, Step(f"{step.title} (recovery)", ())))


def _check_application(compiled: Compiled, app: ApplicationSpec | None, config: Path) -> None:
    """Refuse a configuration whose ``application`` clause names another application than
    the one the scenario gives it to, or was proven in a larger part than it has."""
    clause = compiled.program.application
    if clause is None or app is None:
        return
    if clause.name != app.name:
        raise ScenarioError(f"{config}: the configuration is application `{clause.name}`, "
                            f"but the scenario gives it to `{app.name}`",
                            "address the patch to its own application")
    if clause.share_percent > app.share_percent:
        raise ScenarioError(f"{config}: application {app.name} is proven in {clause.share_percent}"
                            f" % of the share, but has {app.share_percent} % on board",
                            "give it the part its clause declares")


def _scenario_key(path: Path, profile: MissionProfile, kind: str) -> bytes:
    """The scenario's own ``kind`` key at ``path``: generated and written 0600 the first
    time (as ``ccl keygen`` does), read back after."""
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_key_file(path, format_key(generate_key(), profile.name, kind))
        except FileExistsError:
            pass  # written meanwhile: read it
        except OSError as exc:
            raise ScenarioError(f"cannot write the scenario's {kind} key {path}: "
                                f"{exc.strerror}", "give a writable work folder") from None
    try:
        return key_from_text(path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ScenarioError(f"the scenario's {kind} key {path} is unusable: {exc}",
                            "delete it, or give an empty work folder") from None


def run_scenario(scenario: Scenario, ledger: Ledger, workdir: Path,
                 compiler: Compiler | None = None, key: bytes | None = None,
                 on_event: Callable[[str], None] | None = None,
                 link_key: bytes | None = None, dump: Sequence[str] = (),
                 on_step: Callable[[], None] | None = None,
                 tm_sink: Callable[[bytes], None] | None = None) -> ScenarioReport:
    """Run ``scenario``: its satellite's store lives in ``workdir``; ``ledger`` records it.
    ``key`` (the patch key) and ``link_key`` default to the mission's development keys, or
    under a flight profile to keys generated in ``workdir/keys`` (see the module doc).
    With ``dump``, those names are read back from the board at the end. ``on_event`` hears
    what the ground does, ``on_step`` when a step is over (progress); ``tm_sink`` each TM
    Space Packet downlinked (``onboard.sim.tm_packets``: for a mission control system)."""
    dump = check_dump_names(dump, "--dump") if dump else ()
    compiler = compiler or Compiler()
    try:
        profile = find_mission(scenario.mission, compiler.mission_dirs)
    except MissionError as exc:
        raise ScenarioError(f"{scenario.path}: {exc.message}", exc.hint) from None
    start = scenario.start or default_start(profile)
    if profile.flight:
        key = key or _scenario_key(workdir / "keys" / "patch.key", profile, "patch")
        link_key = link_key or _scenario_key(workdir / "keys" / "link.key", profile, "link")
    key = key or development_key(profile.name)
    link_key = link_key or development_link_key(profile.name)
    budget = LinkBudget.from_profile(profile)
    windows = uplink_windows(compute_passes(profile, start, scenario.days), budget)
    if not windows:
        raise ScenarioError(f"{scenario.path}: no uplink pass in {scenario.days:g} days",
                            "give more days")
    try:
        spacecraft = Spacecraft.create(profile, workdir / "store", key, link_key,
                                       seed=scenario.seed,
                                       probation_frames=scenario.probation_frames,
                                       applications=[(a.name, a.share_percent)
                                                     for a in scenario.applications])
    except LoadError as exc:
        raise ScenarioError(f"{scenario.path} [onboard]: {exc}",
                            "give the applications smaller parts of the share") from None
    except StoreError as exc:
        raise ScenarioError(f"{workdir}: {exc}", "give an empty work folder") from None
    except (KeyRefused, LinkKeyRefused) as exc:
        raise ScenarioError(f"{scenario.path}: {exc}", "run it with the mission's keys") \
            from None
    recorder = _Recorder(ledger.start_run("scenario", profile.name, scenario.seed,
                                          {"scenario": scenario.name,
                                           "file": str(scenario.path),
                                           "start": start.isoformat(),
                                           "loss": scenario.channel.loss}), start)
    ground = _Ground(scenario, profile, compiler, ledger, recorder,
                     SimulatedSatellite(spacecraft, start, tm_sink),
                     windows, key, SecurityAssociation(profile.receiver.spi, link_key),
                     on_event=on_event)
    if scenario.onboard_config is not None:
        try:
            base = compiler.compile(scenario.onboard_config)
        except CclError as exc:
            raise ScenarioError(f"{scenario.path}: the configuration on board does not "
                                f"check: {exc}", "fix it; `ccl check` shows why") from None
        for v in (*base.vmlets, base):
            ledger.add_image(v.image.content_hash, v.image.kind.name.lower(), v.image.name,
                             v.image.version, v.image.encode())
        spacecraft.install(base.image, [v.image for v in base.vmlets])
        ground.believed = base.image  # loaded before launch: the ground knows it
        ground.say(f"on board before launch: {base.image.name} v{base.image.version}")
    for number, app in enumerate(scenario.applications):
        ground.say(f"application {app.name}: {app.share_percent} % of the share, patches on "
                   f"APID {patch_apid(number):#x}")
        if app.config is None:
            continue
        try:
            c = compiler.compile(app.config)
            _check_application(c, app, app.config)
        except CclError as exc:
            raise ScenarioError(f"{scenario.path}: application {app.name}'s configuration "
                                f"does not check: {exc}", "fix it; `ccl check` shows why") \
                from None
        for v in (*c.vmlets, c):
            ledger.add_image(v.image.content_hash, v.image.kind.name.lower(), v.image.name,
                             v.image.version, v.image.encode())
        spacecraft.install(c.image, [v.image for v in c.vmlets], application=app.name)
        if number == 0:
            ground.believed = c.image
        else:
            ground.believed_apps[app.name] = c.image
        ground.say(f"on board before launch, application {app.name}: {c.image.name} "
                   f"v{c.image.version}")
    for i, step in enumerate(scenario.steps):
        ground.step(i, step)
        if on_step:
            on_step()
    if dump:
        ground.dumps.append(ground.dump(tuple(dump), None))
    else:
        ground.closing_telemetry()
    end = max(windows[ground.position].start, ground.link.now())
    spacecraft.run_until(ground.link.ms(end))
    ground_view = ledger.status(recorder.inner.run).get("onboard_config")
    return ScenarioReport(
        scenario, recorder.inner.run, tuple(ground.outcomes), start, end, ground.position + 1,
        sum(r.frames_sent for r in ground.results), sum(r.bytes_sent for r in ground.results),
        sum(r.frames_lost for r in ground.results), spacecraft.status(),
        ground_view["hash"] if ground_view else None, budget.bytes_per_day,
        tuple(ground.campaigns), tuple(ground.dumps),
        {name: image.content_hash.hex() if image is not None else None
         for name, image in ground.believed_apps.items()})
