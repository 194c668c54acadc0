"""The ground's ``ccl`` commands: ``ccl passes``, ``ccl uplink plan|simulate``, ``ccl status``.

Bad input (unknown mission, unreadable patch, malformed patch
spec, broken ledger) gives one message and a hint, never a traceback; exit codes are those
of ``cli.console``: 0 ok, 1 a patch refused or undelivered, 2 usage.

A PATCH argument is a file, optionally followed by comma-separated settings::

    exo_e1.vvmp,priority=2,deadline=36h,base=HEX,target=HEX

``deadline`` is an ISO date-time (UTC if no zone) or a duration after the first uplink pass
(``90m``, ``36h``, ``2d``); ``base``/``target`` are configuration hashes (hex, 32 bytes) and
override what the patch header says. A patch is opaque bytes to the uplink; when it is a
patch in the ``onboard.patching.patch_format`` format, its header gives the base and target
configurations (and its memory claims, checked against the mission) and is shown.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from ccl.pack import KEY_ENV, Key, PackError, load_key
from cli.console import (
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_USAGE,
    fail,
    note,
    out_console,
    progress,
    refuse,
    text_table,
)
from cli.files import readable_inputs
from cli.options import FiniteFloat, output_options
from ground.channel import Channel
from ground.erasure import ErasureError
from ground.errors import GroundError
from ground.ledger import MAX_SEED, Ledger, OnboardRecord, ledger_path
from ground.link import (
    LinkBudget,
    UplinkWindow,
    delivery_vs_bound,
    patch_buffer_bytes,
    uplink_windows,
)
from ground.link_key import LINK_KEY_ENV, load_link_key
from ground.passes import compute_passes, default_start, iso_utc, resolve_source, stations
from ground.planner import (
    DEFAULT_CONFIDENCE,
    DEFAULT_SHARE_BYTES,
    OnboardView,
    Status,
    UplinkPatch,
    plan,
)
from ground.preflight import PreflightError, check_patch
from ground.satellite import SimulatedSatellite
from ground.tle import (
    MAX_PROPAGATION_DAYS,
    Tle,
    TleError,
    check_propagation,
    mission_tle,
    read_tle_file,
)
from ground.uplink import Campaign, Faults, SimulationResult, WindowLog, simulate
from onboard.link.tc_frames import MAX_SHARE_BYTES, patch_apid
from onboard.mission import (
    MAX_APPLICATION,
    MissionError,
    MissionProfile,
    UnknownMission,
    find_mission,
)
from onboard.patching.patch_format import HASH_BYTES
from onboard.patching.patcher import KeyRefused
from onboard.sim.spacecraft import Spacecraft

out = out_console(markup=False)  # names may hold brackets

#: The longest planning or simulation horizon: the farthest a TLE is propagated.
MAX_DAYS = MAX_PROPAGATION_DAYS
#: Days of passes beyond which computing them takes long enough to say so first.
SLOW_DAYS = 30.0
PASS_SECONDS_PER_DAY = 0.036


def existing_parent(path: Path, option: str) -> Path:
    """``path``, if the folder it goes into exists; else a usage failure: an output option
    never creates folders."""
    folder = path.parent
    if not folder.is_dir():
        fail(f"{option} {path}: no folder {folder}", "create the folder first, or give "
             "another path")
    return path


def plot_path(text: str) -> Path:
    """The file ``--plot TEXT`` writes: TEXT, with ``.png`` added when it has no suffix (so
    the name the command reports is the file's real name), in a folder that exists."""
    from ground.timeline import image_formats  # matplotlib, only when asked for

    path = Path(text)
    if not path.suffix:
        path = path.with_name(path.name + ".png")
    formats = image_formats()
    if path.suffix[1:].lower() not in formats:
        fail(f"--plot {path}: no image format has the suffix {path.suffix}",
             f"end the name with .png (or .{', .'.join(sorted(formats - {'png'}))})")
    return existing_parent(path, "--plot")


def _mission(ctx: click.Context, name: str) -> MissionProfile:
    extra = [Path(p) for p in (ctx.obj or {}).get("missions", ())]
    try:
        return find_mission(name, extra)
    except UnknownMission as exc:
        refuse(exc, EXIT_USAGE)
    except MissionError as exc:  # the profile found is malformed
        refuse(exc, EXIT_REJECTED)


def _start(profile: MissionProfile, text: str | None) -> datetime:
    if text is None:
        return default_start(profile)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)
    except ValueError:
        fail(f"--start {text!r} is not an ISO date-time", "write e.g. 2014-06-11T00:00Z")
    except OverflowError:  # a zone that moves it before the year 1 or after 9999
        fail(f"--start {text!r} in UTC is out of the calendar", "give a date in years 1-9999")


def _setup(ctx: click.Context, mission: str, start: str | None, days: float, schedule: str,
           specs: Sequence[str]
           ) -> tuple[MissionProfile, LinkBudget, list[UplinkWindow], list[UplinkPatch]]:
    """The profile, its link budget, the uplink windows and the patches of a command."""
    profile = _mission(ctx, mission)
    begin = _start(profile, start)
    if days > SLOW_DAYS:
        note(f"computing {days:g} days of passes takes about "
             f"{days * PASS_SECONDS_PER_DAY:.0f} s", "ccl")
    try:
        budget = LinkBudget.from_profile(profile)
        passes = compute_passes(profile, begin, days, schedule)  # type: ignore[arg-type]
    except GroundError as exc:
        refuse(exc, EXIT_USAGE)
    except OverflowError:  # a start so late that the horizon runs past the last date
        fail(f"--start {begin:%Y-%m-%d} with --days {days:g} runs past the last date "
             "Python knows", "give an earlier --start")
    windows = uplink_windows(passes, budget)
    if not windows:
        fail(f"no uplink pass in the {days:g} days from {begin.isoformat()}",
              "give more --days, or another --start")
    return profile, budget, windows, _patches(specs, windows[0].start)


# --------------------------------------------------------------------------- patch specs


def _duration(text: str) -> timedelta | None:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if len(text) > 1 and text[-1] in units:
        try:
            return timedelta(seconds=float(text[:-1]) * units[text[-1]])
        except OverflowError:  # a duration, longer than any date: refused as too long
            return timedelta.max
        except ValueError:  # not a number, or NaN
            return None
    return None


def parse_patch_spec(spec: str, start: datetime) -> UplinkPatch:
    """A PATCH argument (see the module docstring) read into an ``UplinkPatch``."""
    path, *settings = spec.split(",")
    if Path(path).is_dir():
        fail(f"patch {path} is a folder", "give a patch file written by `ccl pack`")
    if Path(path).exists() and not Path(path).is_file():  # a device or a pipe: never ends
        fail(f"patch {path} is not a regular file", "give a patch file written by `ccl pack`")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        fail(f"cannot read patch {path}: {exc.strerror}", "check the path")
    # An empty file is read and refused by the checks before uplink, as any non-patch is.
    patch = UplinkPatch.from_bytes(Path(path).name, data)
    fields: dict[str, Any] = {}
    for item in settings:
        key, _, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if key == "priority":
            try:
                fields["priority"] = int(value)
            except ValueError:
                fail(f"{spec}: priority {value!r} is not an integer", "write priority=2")
        elif key == "deadline":
            rel = _duration(value)
            if rel is not None:
                if rel > timedelta(days=MAX_DAYS) or rel < timedelta(0):
                    fail(f"{spec}: deadline {value!r} is not within {MAX_DAYS:g} days after "
                         "the first uplink pass", "write e.g. deadline=36h")
                fields["deadline"] = start + rel
                continue
            try:
                t = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                fail(f"{spec}: deadline {value!r} is neither a duration nor a date-time",
                      "write deadline=36h or deadline=2014-06-12T12:00Z")
            fields["deadline"] = t if t.tzinfo else t.replace(tzinfo=UTC)
        elif key in ("base", "target"):
            try:
                h = bytes.fromhex(value)
            except ValueError:
                fail(f"{spec}: {key} {value!r} is not hexadecimal", "give the 64-hex-digit hash")
            if len(h) != 32:
                fail(f"{spec}: {key} has {len(h)} bytes, a configuration hash has 32",
                      "give the full hash as `ccl compile --json` prints it")
            fields[f"{key}_hash"] = h
        elif key == "name":
            if not value:
                fail(f"{spec}: name= is empty", "write name=SOMETHING")
            fields["name"] = value
        else:
            fail(f"{spec}: unknown setting {key!r}",
                  "settings are priority=, deadline=, base=, target=, name=")
    return replace(patch, **fields)


def _patches(specs: Sequence[str], start: datetime) -> list[UplinkPatch]:
    patches = [parse_patch_spec(s, start) for s in specs]
    names = [p.name for p in patches]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        fail(f"two patches are named {dup}", "add name=OTHER to one of them")
    return patches


def _cleared(patches: Sequence[UplinkPatch], profile: MissionProfile, key: bytes,
             onboard: OnboardRecord | None) -> list[str]:
    """Check every patch before uplink (``ground.preflight``); the first refused one stops
    the command (exit 1). Returns one note per patch on what could be checked."""
    notes = []
    for p in patches:
        try:
            cleared = check_patch(p.name, p.data, profile, key, onboard)
        except PreflightError as exc:
            refuse(exc, EXIT_REJECTED)
        notes.append(f"{p.name}: a {profile.name} patch, tag valid"
                     + (f", seq {cleared.header.seq} and base checked against ledger run "
                        f"{onboard.run}" if cleared.against_ledger and onboard else
                        ", sequence number and base unchecked: the ledger has no telemetry"))
    return notes


def _onboard_record(path: Path | None) -> OnboardRecord | None:
    """What the ledger at ``path`` (if any, and if it exists) knows is on board."""
    if path is None or not path.exists() or path.is_file() and not path.stat().st_size:
        return None  # no ledger yet (a simulation given an empty file makes it one)
    try:
        with Ledger(path, read_only=True) as ledger:
            return ledger.onboard()
    except GroundError as exc:
        refuse(exc, EXIT_USAGE)


def _patch_key(profile: MissionProfile, key_path: str | None) -> Key:
    if key_path and not Path(key_path).is_file():
        fail(f"no key file at {key_path}", "write one with `ccl keygen -o FILE`")
    try:
        return load_key(profile, Path(key_path) if key_path else None)
    except PackError as exc:
        refuse(exc, EXIT_USAGE)


def _unreachable(patches: Sequence[UplinkPatch], windows: Sequence[UplinkWindow], loss: float,
                 share_bytes: int) -> None:
    """Refuse a loss rate at which no patch can complete within the horizon: planning it
    would take hours only to say so. Every frame carries at least ``share_bytes`` of the
    window's budget, and k shares need about k / (1 - loss) frames."""
    capacity = sum(w.budget_bytes for w in windows) // share_bytes
    for p in patches:
        k = max(1, math.ceil(len(p.data) / share_bytes))
        needed = k / (1.0 - loss)
        if needed > capacity:
            days = needed / max(capacity, 1) * (windows[-1].end - windows[0].start).days
            fail(f"at --loss {loss:g}, {p.name} ({k} shares) needs about {needed:,.0f} "
                 f"frames; the {len(windows)} uplink passes of the horizon carry at most "
                 f"{capacity:,}" + (f" (about {days:,.0f} days of passes would)" if days
                                    else ""),
                 "give a lower --loss or more --days (planning a patch that cannot arrive "
                 "could take hours at a high loss)")


def _channel(loss: float, duplicate: float = 0.0, reorder: float = 0.0) -> Channel:
    try:
        return Channel(loss=loss, duplicate=duplicate, reorder=reorder)
    except ValueError as exc:
        fail(str(exc), "probabilities lie in [0, 1)")


def _t(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


# --------------------------------------------------------------------------- ccl passes


_SCHEDULE = click.option("--schedule", type=click.Choice(["auto", "orbit", "fixed"]),
                         default="auto", show_default=True,
                         help="Passes from the TLE (orbit) or the profile's fixed schedule.")
_START = click.option("--start", help="First instant (ISO, UTC); default: the TLE epoch day.")
_LEDGER = click.option("--ledger", "ledger_opt", type=click.Path(dir_okay=False),
                       help="Ledger file (default $CCL_LEDGER or ./ccl-ledger.sqlite).")
_SIM_LEDGER = click.option("--ledger", "ledger_opt", type=click.Path(dir_okay=False),
                           help="Record the simulation in this ledger file (default: a "
                                "ledger of its own, in memory; never the operational one "
                                "unless given here).")
_KEY = click.option("--key", "key_path", type=click.Path(dir_okay=False),
                    help=f"The mission's patch key, to check the patches' tags (and the "
                         f"simulated spacecraft's); default ${KEY_ENV}, else the mission's "
                         "development key, which a flight profile refuses.")
_MISSION = click.option("--mission", default="corot", show_default=True,
                        help="Mission profile name.")


#: ``ccl passes --days`` at most: a year, the farthest a TLE is propagated (``ground.tle``).
MAX_PASS_DAYS = MAX_PROPAGATION_DAYS


def _now() -> datetime:
    """The host's clock, to the second: read here, at the command line's edge, and nowhere
    below (simulations and plans take their start from the scenario or the TLE)."""
    return datetime.now(UTC).replace(microsecond=0)


def _passes_tle(profile: MissionProfile, tle_file: str | None) -> Tle | None:
    """The TLE ``ccl passes`` propagates: ``--tle FILE``, or the mission's newest."""
    if tle_file is not None:
        readable_inputs([tle_file])
        return read_tle_file(Path(tle_file))
    return mission_tle(profile)


def _window(begin: datetime, days: float) -> None:
    """Refuse a window that ends beyond the last date there is (year 9999)."""
    try:
        begin + timedelta(days=days)
    except OverflowError:
        fail(f"--start {begin.date()} plus {days:g} day(s) is past the year 9999",
             "give an earlier --start")


@click.command()
@_MISSION
@click.option("--days", type=FiniteFloat(min=0, min_open=True, max=MAX_PASS_DAYS),
              default=1.0, show_default=True,
              help=f"Days of passes (at most {MAX_PASS_DAYS:g}).")
@click.option("--start", help="First instant (ISO 8601, UTC if no zone); default: now.")
@click.option("--tle", "tle_file", type=click.Path(dir_okay=False),
              help="A TLE file (two lines, or three with a name); default: the newest of "
                   "the mission's (its tle/*.tle files and its profile).")
@_SCHEDULE
@output_options
@click.pass_context
def passes(ctx: click.Context, mission: str, days: float, start: str | None,
           tle_file: str | None, schedule: str, as_json: bool) -> None:
    """Passes of the satellite over the mission's ground stations, and which carry uplink.

    Starts now unless --start is given; warns when the TLE is more than 3 days from the
    time asked for, and refuses to propagate it more than a year."""
    profile = _mission(ctx, mission)
    begin = _now() if start is None else _start(profile, start)
    _window(begin, days)
    try:
        elements = _passes_tle(profile, tle_file)
        lines = elements.lines if elements is not None else None
        orbit = resolve_source(profile, schedule, lines) == "orbit"  # type: ignore[arg-type]
        if orbit and elements is not None:
            warning = check_propagation(elements, begin, days)
            if warning:
                note(warning, "ccl")
        searches = days * len(stations(profile)) if orbit else 0.0  # what progress counts
    except TleError as exc:
        refuse(exc, EXIT_REJECTED)
    except GroundError as exc:
        refuse(exc, EXIT_USAGE)
    try:
        with progress("passes", total=searches or None, unit="station-days") as ticker:
            all_passes = compute_passes(profile, begin, days, schedule,  # type: ignore[arg-type]
                                        lines, ticker.advance)
        budget = LinkBudget.from_profile(profile)
    except GroundError as exc:
        refuse(exc, EXIT_USAGE)
    windows = {(w.pass_.station, w.pass_.rise): w for w in uplink_windows(all_passes, budget)}
    rows = []
    for p in all_passes:
        w = windows.get((p.station, p.rise))
        rows.append(p.to_json() | {"uplink": w is not None,
                                   "budget_bytes": w.budget_bytes if w else 0})
    used = elements if orbit else None
    if as_json:
        tle_info = None if used is None else {
            "source": used.source, "epoch": iso_utc(used.epoch),
            "age_days": round(used.age_days(begin), 3)}
        _emit_json({"mission": profile.name, "start": begin.isoformat(), "days": days,
                    "tle": tle_info, "bits_per_day": budget.bits_per_day, "passes": rows})
        return
    table = text_table(title=f"{profile.name}: {len(rows)} passes, {len(windows)} for uplink "
                        f"({budget.bits_per_day / 1000:g} kbit/day, at most "
                        f"{budget.max_passes_per_day} a day)",
                  caption=None if used is None else
                  f"from {_t(begin)} UTC, TLE of {_t(used.epoch)} UTC "
                  f"({used.age_days(begin):+,.1f} days) from {used.source}")
    for col in ("station", "rise (UTC)", "set", "duration", "max el", "uplink B"):
        table.add_column(col, no_wrap=True,
                         justify="left" if col in ("station", "rise (UTC)", "set") else "right")
    for p, r in zip(all_passes, rows, strict=True):
        table.add_row(p.station, _t(p.rise), p.set.strftime("%H:%M:%S"),
                      f"{p.duration_s:.0f} s", f"{p.max_elevation_deg:.1f}°",
                      str(r["budget_bytes"]) if r["uplink"] else "")
    out.print(table)


# --------------------------------------------------------------------------- ccl uplink


@click.group()
def uplink() -> None:
    """Plan and simulate sending patches over the coming passes."""


_PATCHES = click.argument("patch_specs", metavar="PATCH...", nargs=-1, required=True)
_DAYS = click.option("--days", type=FiniteFloat(min=0, min_open=True, max=MAX_DAYS),
                     default=7.0, show_default=True, help="Planning horizon (at most a year).")
_LOSS = click.option("--loss", type=FiniteFloat(0, 1, max_open=True), default=0.1,
                     show_default=True, help="Frame loss probability (independent).")
_SHARE = click.option("--share-bytes", type=click.IntRange(16, MAX_SHARE_BYTES),
                      default=DEFAULT_SHARE_BYTES, show_default=True,
                      help="Bytes of patch per frame.")
_CONF = click.option("--confidence", type=FiniteFloat(0.5, 1, max_open=True),
                     default=DEFAULT_CONFIDENCE, show_default=True,
                     help="Probability that a pass's frames complete what they must.")
_APP = click.option("--app", "app", metavar="NAME",
                    help="The board application the PATCHes address: they travel on its APID "
                         "(0x160 + --slot) and the ledger records it. Default: the default "
                         "application (APID 0x150).")
_SLOT = click.option("--slot", type=click.IntRange(1, MAX_APPLICATION), default=1,
                     show_default=True,
                     help="--app's number on the board (the order it was added: `vvm status` "
                          "lists them).")
#: The parts of the simulated board of ``ccl uplink simulate --app NAME``: the default
#: application and NAME, each this percent of every frame.
SIMULATED_PART = 4


def _addressed(patches: list[UplinkPatch], app: str | None,
               slot: int) -> tuple[list[UplinkPatch], dict[str, Any] | None]:
    """The patches addressed to application ``app`` (number ``slot``), and what to report
    of it; unchanged without ``--app``."""
    if app is None:
        return patches, None
    if not app.isidentifier() or app == "default":
        fail(f"--app {app!r} cannot name an application",
             "a name is a CCL identifier other than `default`")
    return ([replace(p, application=slot) for p in patches],
            {"name": app, "number": slot, "apid": patch_apid(slot)})


def _for_application(onboard: OnboardRecord | None,
                     application: dict[str, Any] | None) -> OnboardRecord | None:
    """What the checks before uplink compare a patch with: the ledger's telemetry names
    application 0's configuration, so an application's patch is checked without it."""
    return None if application is not None else onboard


@uplink.command("plan")
@_PATCHES
@_MISSION
@_DAYS
@_START
@_SCHEDULE
@_LOSS
@_SHARE
@_CONF
@click.option("--onboard", "onboard_hash", help="Configuration hash on board "
              "(default: the ledger's last telemetry).")
@_APP
@_SLOT
@_KEY
@_LEDGER
@output_options
@click.pass_context
def plan_cmd(ctx: click.Context, patch_specs: tuple[str, ...], mission: str, days: float,
             start: str | None, schedule: str, loss: float, share_bytes: int,
             confidence: float, onboard_hash: str | None, app: str | None, slot: int,
             key_path: str | None, ledger_opt: str | None, as_json: bool) -> None:
    """Pack PATCHes into the coming uplink passes: a plan table, or refusals with reasons.
    Each PATCH is checked first (format, tag, and sequence number and base against what
    the ledger knows is on board); one that fails is refused (exit 1)."""
    profile, _budget, windows, patches = _setup(ctx, mission, start, days, schedule,
                                                patch_specs)
    patches, application = _addressed(patches, app, slot)
    key = _patch_key(profile, key_path)
    onboard = _onboard_record(ledger_path(ledger_opt))
    if onboard_hash:
        try:
            given = bytes.fromhex(onboard_hash)
        except ValueError:
            fail(f"--onboard {onboard_hash!r} is not hexadecimal", "give the full hash")
        if len(given) < HASH_BYTES:
            fail(f"--onboard has {len(given)} bytes, at least {HASH_BYTES} name a "
                 "configuration", "give the full hash as `ccl status` shows it")
        onboard = OnboardRecord(onboard.run if onboard else 0, given, "--onboard", None,
                                onboard.last_seq if onboard else None)
    checked = _cleared(patches, profile, key.secret, _for_application(onboard, application))
    _unreachable(patches, windows, loss, share_bytes)
    view = OnboardView(onboard.config_hash if onboard else None)
    if not as_json:
        for line in checked:
            note(line, "ccl")
    result = plan(patches, windows, view, _channel(loss), patch_buffer_bytes(profile),
                  share_bytes, confidence, (profile.code_bytes, profile.data_bytes))
    refused = any(p.status is Status.REFUSED for p in result.patches)
    if as_json:
        _emit_json(result.to_json() | {"checked": checked, "application": application})
        sys.exit(EXIT_REJECTED if refused else EXIT_OK)
    if application is not None:
        out.print(f"for application {app} (number {slot}, APID {patch_apid(slot):#x})")
    table = text_table(title=f"uplink plan: {len(patches)} patches over {len(windows)} passes "
                        f"(loss {loss:g}, confidence {confidence:g})")
    for col in ("pass", "station", "culmination", "el", "patch", "frames", "bytes", "budget"):
        table.add_column(col, no_wrap=col != "patch")
    by_index = {w.index: w for w in windows}
    for a in result.allocations:
        w = by_index[a.window]
        table.add_row(str(a.window), w.pass_.station, w.pass_.culmination.strftime("%m-%d %H:%M"),
                      f"{w.pass_.max_elevation_deg:.0f}°", a.patch, str(a.frames), str(a.bytes),
                      f"{a.bytes / w.budget_bytes:.0%}")
    if result.allocations:
        out.print(table)
    headers = {p.name: p.describe() for p in patches}
    for p in result.patches:
        line = f"{p.name}: {p.status.value}" + (f" [{headers[p.name]}]" if headers[p.name]
                                                 else "")
        if p.status is Status.SCHEDULED:
            line += (f", k = {p.k} shares of {p.share_bytes} bytes, {p.frames} frames "
                     f"({p.bytes} bytes), expected complete by {_t(p.completes_at)}")
        if p.reason:
            line += f" ({p.reason})"
        out.print(line)
    sys.exit(EXIT_REJECTED if refused else EXIT_OK)


@uplink.command("simulate")
@_PATCHES
@_MISSION
@click.option("--days", type=FiniteFloat(min=0, min_open=True, max=MAX_DAYS), default=14.0,
              show_default=True, help="Simulated days at most (at most a year).")
@_START
@_SCHEDULE
@_LOSS
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=1, show_default=True,
              help="Seed of everything random in the simulation.")
@_SHARE
@_CONF
@click.option("--cancel", "cancel_p", type=FiniteFloat(0, 1, max_open=True), default=0.0,
              help="Probability that a pass is cancelled.")
@click.option("--report-loss", type=FiniteFloat(0, 1, max_open=True), default=0.0,
              help="Probability that a telemetry report is lost.")
@click.option("--duplicate", type=FiniteFloat(0, 1, max_open=True), default=0.0,
              help="Probability that a frame arrives twice.")
@click.option("--reorder", type=FiniteFloat(0, 1, max_open=True), default=0.0,
              help="Probability that a frame arrives out of order.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw the timeline (PNG).")
@click.option("--link-key", "link_key_path", type=click.Path(dir_okay=False),
              help=f"The TC link key (from `ccl keygen --link`); default ${LINK_KEY_ENV}, else "
                   "the mission's development link key, which a flight profile refuses.")
@_APP
@_KEY
@_SIM_LEDGER
@output_options
@click.pass_context
def simulate_cmd(ctx: click.Context, patch_specs: tuple[str, ...], mission: str, days: float,
                 start: str | None, schedule: str, loss: float, seed: int, share_bytes: int,
                 confidence: float, cancel_p: float, report_loss: float, duplicate: float,
                 reorder: float, plot: str | None, link_key_path: str | None,
                 app: str | None, key_path: str | None, ledger_opt: str | None,
                 as_json: bool) -> None:
    """Send PATCHes over simulated passes with loss to a simulated spacecraft (receiver,
    VVM, patcher, store, nothing on board at first); what became of them is read from its
    telemetry at each next pass. With --app NAME the spacecraft is a board of two
    applications, the default one and NAME (number 1, 4 % of the share each), and the
    PATCHes go to NAME on its APID (0x161)."""
    profile, budget, windows, patches = _setup(ctx, mission, start, days, schedule,
                                               patch_specs)
    patches, application = _addressed(patches, app, 1)
    if link_key_path and not Path(link_key_path).is_file():
        fail(f"no link key file at {link_key_path}", "write one with `ccl keygen --link -o "
              "FILE`")
    try:
        link = load_link_key(profile, Path(link_key_path) if link_key_path else None)
    except GroundError as exc:
        refuse(exc, EXIT_REJECTED)
    key = _patch_key(profile, key_path)
    # The simulation's own ledger unless one is named: simulated outcomes never reach the
    # operational ledger by default (``ccl status`` reads that one).
    path = existing_parent(Path(ledger_opt), "--ledger") if ledger_opt else None
    figure = plot_path(plot) if plot else None
    _cleared(patches, profile, key.secret, _for_application(_onboard_record(path),
                                                             application))
    _unreachable(patches, windows, loss, share_bytes)
    begin = _start(profile, start)
    settings = Campaign.for_mission(
        profile, link.association(profile), channel=_channel(loss, duplicate, reorder),
        seed=seed, share_bytes=share_bytes, confidence=confidence,
        faults=Faults(cancel_probability=cancel_p, report_loss_probability=report_loss))
    try:
        ledger = Ledger(path if path else ":memory:")
    except GroundError as exc:
        refuse(exc, EXIT_USAGE)
    params = {"loss": loss, "days": days, "start": begin.isoformat(), "share_bytes": share_bytes,
              "confidence": confidence, "cancel": cancel_p, "report_loss": report_loss,
              "duplicate": duplicate, "reorder": reorder,
              "patches": [p.name for p in patches], "application": app}
    with ledger, tempfile.TemporaryDirectory(prefix="ccl-uplink-") as store:
        try:
            spacecraft = Spacecraft.create(
                profile, Path(store) / "store", key.secret, link.secret, seed=seed,
                applications=(("default", SIMULATED_PART), (app, SIMULATED_PART)) if app
                else ())
        except KeyRefused as exc:
            fail(str(exc), f"give the mission's patch key with --key FILE or ${KEY_ENV}",
                 EXIT_REJECTED)
        satellite = SimulatedSatellite(spacecraft, windows[0].start)
        recorder = ledger.start_run("simulation", profile.name, seed, params)
        with progress("uplink passes", total=len(windows), unit="passes") as ticker:

            def tick(log: WindowLog) -> None:
                ticker.advance()

            try:
                result = simulate(patches, windows, satellite, settings, recorder=recorder,
                                  on_window=tick)
            except ErasureError as exc:
                fail(str(exc), "split the change into smaller patches", EXIT_REJECTED)
    if figure:
        from ground.timeline import plot_timeline

        try:
            plot_timeline(result, figure, f"{profile.name}: uplink of "
                          f"{', '.join(p.name for p in patches)}, loss {loss:g}, seed {seed}")
        except (OSError, ValueError) as exc:
            fail(f"cannot draw {figure}: {exc}", "check the path and the simulated days")
    failed = any(p.status != "complete" for p in result.patches)
    ledger_name = str(path) if path else "in memory"
    if as_json:
        _emit_json(_summary_json(result, budget, loss, recorder.run)
                   | {"ledger": str(path) if path else None,
                      "plot": str(figure) if figure else None, "application": application})
    else:
        _print_summary(result, budget, loss, f"run {recorder.run} of the ledger {ledger_name}"
                       + ("" if path else " (give --ledger FILE to keep it)"),
                       str(figure) if figure else None,
                       {p.name: p.describe() for p in patches})
    sys.exit(EXIT_REJECTED if failed else EXIT_OK)


def _summary_json(result: SimulationResult, budget: LinkBudget, loss: float,
                  run: int) -> dict[str, Any]:
    data = result.to_json() | {"run": run, "loss": loss, "bits_per_day": budget.bits_per_day}
    for p, j in zip(result.patches, data["patches"], strict=True):
        j["budget_days"] = round(p.bytes_sent / budget.bytes_per_day, 4)
        j["delivery_vs_bound"] = (round(delivery_vs_bound(p.bytes_sent, p.size, loss), 4)
                                  if p.completed_at is not None else None)
    return data


def _print_summary(result: SimulationResult, budget: LinkBudget, loss: float, run: str,
                   plot: str | None, headers: dict[str, str]) -> None:
    used = [w for w in result.windows if not w.cancelled]
    out.print(f"simulated {len(result.windows)} uplink passes "
              f"({len(result.windows) - len(used)} cancelled, "
              f"{sum(not w.report_received for w in used)} telemetry reports lost), "
              f"{sum(w.frames_sent for w in used)} frames, "
              f"{sum(w.bytes_sent for w in used)} bytes sent, "
              f"{sum(w.frames_lost for w in used)} frames lost; seed {result.seed}; "
              f"recorded as {run}")
    for p in result.patches:
        line = f"{p.name} ({p.size} bytes): {p.status}" + (f" ({p.reason})" if p.reason else "")
        if headers.get(p.name):
            line += f" [{headers[p.name]}]"
        if p.k:
            line += (f"; k = {p.k} shares of {p.share_bytes} bytes, {p.frames_sent} frames "
                     f"sent, {p.frames_lost} lost, {p.bytes_sent / budget.bytes_per_day:.3f} "
                     "days of uplink budget")
        if p.completed_at is not None:  # delivered, whatever the patcher made of it
            line += (f" = {delivery_vs_bound(p.bytes_sent, p.size, loss):.3f} x the bound; "
                     f"first frame {_t(p.first_sent)}, complete on board {_t(p.completed_at)}"
                     f" ({p.elapsed.total_seconds() / 3600 if p.elapsed else 0:.1f} h), "
                     f"confirmed by telemetry {_t(p.confirmed_at)}")
        out.print(line)
        if p.fates:
            out.print("  on board, as telemetry tells: " + ", ".join(
                f"{f.status} {_t(f.time)}" for f in p.fates)
                + (f" ({p.fates[-1].detail})" if p.fates[-1].detail else ""))
    if plot:
        out.print(f"timeline drawn to {plot}")


# --------------------------------------------------------------------------- ccl status


@click.command()
@_LEDGER
@click.option("--run", type=int, help="Run to show (default: the latest).")
@output_options
def status(ledger_opt: str | None, run: int | None, as_json: bool) -> None:
    """What the ground knows is on board: the ledger's configuration, transfers and passes."""
    path = ledger_path(ledger_opt)
    if not path.exists():
        fail(f"no ledger at {path}",
              "give --ledger PATH or $CCL_LEDGER (simulations keep a ledger only when given "
              "--ledger)")
    try:
        with Ledger(path, read_only=True) as ledger:
            info = ledger.status(run)
    except GroundError as exc:
        refuse(exc, EXIT_USAGE)
    cfg = info.get("onboard_config")
    if cfg:
        cfg["age"] = _age(cfg["reported_at"])
    if as_json:
        _emit_json(info)
        return
    out.print(f"ledger {info['ledger']}: {info['runs']} runs, {info['patches']} patches, "
              f"{info['images']} images, {info['config_versions']} configuration versions")
    if info["run"] is None:
        return
    ps = info["passes"]
    out.print(f"run {info['run']} ({info['kind']}, mission {info['mission']}, seed "
              f"{info['seed']}): {ps['used']} passes ({ps['cancelled']} cancelled) from "
              f"{ps['first']} to {ps['last']}, {info['reports']} telemetry reports")
    out.print(f"on board: {_onboard_line(cfg)}")
    table = text_table()
    for col in ("id", "patch", "state", "fate", "on board", "frames", "bytes"):
        table.add_column(col, no_wrap=col != "patch")
    for t in info["transfers"]:
        table.add_row(str(t["transfer"]), t["patch"], t["state"], t["fate_name"] or "-",
                      f"{t['shares_held']}/{t['k']} shares", str(t["frames_sent"]),
                      str(t["bytes_sent"]))
    out.print(table)


def _age(reported_at: str | None) -> dict[str, Any] | None:
    """How old the last telemetry is: when it was read (the pass's time) and how long ago."""
    if reported_at is None:
        return None
    when = datetime.fromisoformat(reported_at)
    seconds = (datetime.now(UTC) - when).total_seconds()
    return {"read_at": reported_at, "seconds": round(seconds)}


def _ago(seconds: float) -> str:
    if seconds < 0:
        return "in the future"
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _onboard_line(cfg: dict[str, Any] | None) -> str:
    """What is on board, as the last telemetry said, with the full hash and its age."""
    if not cfg:
        return "unknown (no telemetry read in this run)"
    if cfg["empty"]:
        what = "nothing (telemetry reports no configuration)"
    else:
        what = (f"hash prefix {cfg['hash']} (only 8 bytes known)" if cfg["hash_is_prefix"]
                else cfg["hash"])
        if cfg["name"]:
            what += f" ({cfg['name']} version {cfg['version']})"
    age = cfg["age"]
    when = (f"telemetry of pass {cfg['reported_at_pass']}"
            + (f" read {age['read_at']}, {_ago(age['seconds'])}" if age else ""))
    return f"{what}; {when}"
