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
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ccl.pack import KEY_ENV, PackError, load_key
from cli.console import (
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_USAGE,
    fail,
    note,
    progress,
    refuse,
    require_inputs,
)
from cli.options import FiniteFloat, output_options
from ground.channel import Channel
from ground.erasure import ErasureError
from ground.errors import GroundError
from ground.ledger import Ledger, ledger_path
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
from onboard.link.tc_frames import MAX_SHARE_BYTES
from onboard.mission import MissionError, MissionProfile, find_mission
from onboard.patching.patcher import KeyRefused
from onboard.sim.spacecraft import Spacecraft

out = Console(highlight=False, soft_wrap=True, markup=False)  # names may hold brackets
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _mission(ctx: click.Context, name: str) -> MissionProfile:
    extra = [Path(p) for p in (ctx.obj or {}).get("missions", ())]
    try:
        return find_mission(name, extra)
    except MissionError as exc:
        refuse(exc, EXIT_USAGE)


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
    try:
        budget = LinkBudget.from_profile(profile)
        passes = compute_passes(profile, begin, days, schedule)  # type: ignore[arg-type]
    except GroundError as exc:
        refuse(exc, EXIT_USAGE)
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
        except ValueError:
            return None
    return None


def parse_patch_spec(spec: str, start: datetime) -> UplinkPatch:
    """A PATCH argument (see the module docstring) read into an ``UplinkPatch``."""
    path, *settings = spec.split(",")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        fail(f"cannot read patch {path}: {exc.strerror}", "check the path")
    if not data:
        fail(f"patch {path} is empty", "give a patch written by `ccl pack`")
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
        require_inputs([tle_file])
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
    table = Table(title=f"{profile.name}: {len(rows)} passes, {len(windows)} for uplink "
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
_DAYS = click.option("--days", type=click.FloatRange(min=0, min_open=True), default=7.0,
                     show_default=True, help="Planning horizon.")
_LOSS = click.option("--loss", type=click.FloatRange(0, 1, max_open=True), default=0.1,
                     show_default=True, help="Frame loss probability (independent).")
_SHARE = click.option("--share-bytes", type=click.IntRange(16, MAX_SHARE_BYTES),
                      default=DEFAULT_SHARE_BYTES, show_default=True,
                      help="Bytes of patch per frame.")
_CONF = click.option("--confidence", type=click.FloatRange(0.5, 1, max_open=True),
                     default=DEFAULT_CONFIDENCE, show_default=True,
                     help="Probability that a pass's frames complete what they must.")


def _ledger_view(path: Path) -> OnboardView:
    if not path.exists():
        return OnboardView()
    try:
        with Ledger(path) as ledger:
            cfg = ledger.status().get("onboard_config")
    except GroundError as exc:
        refuse(exc, EXIT_USAGE)
    return OnboardView(bytes.fromhex(cfg["hash"]) if cfg else None)


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
@_LEDGER
@output_options
@click.pass_context
def plan_cmd(ctx: click.Context, patch_specs: tuple[str, ...], mission: str, days: float,
             start: str | None, schedule: str, loss: float, share_bytes: int,
             confidence: float, onboard_hash: str | None, ledger_opt: str | None,
             as_json: bool) -> None:
    """Pack PATCHes into the coming uplink passes: a plan table, or refusals with reasons."""
    profile, _budget, windows, patches = _setup(ctx, mission, start, days, schedule,
                                                patch_specs)
    view = _ledger_view(ledger_path(ledger_opt))
    if onboard_hash:
        try:
            view = OnboardView(bytes.fromhex(onboard_hash))
        except ValueError:
            fail(f"--onboard {onboard_hash!r} is not hexadecimal", "give the full hash")
    result = plan(patches, windows, view, _channel(loss), patch_buffer_bytes(profile),
                  share_bytes, confidence, (profile.code_bytes, profile.data_bytes))
    refused = any(p.status is Status.REFUSED for p in result.patches)
    if as_json:
        _emit_json(result.to_json())
        sys.exit(EXIT_REJECTED if refused else EXIT_OK)
    table = Table(title=f"uplink plan: {len(patches)} patches over {len(windows)} passes "
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
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=14.0,
              show_default=True, help="Simulated days at most.")
@_START
@_SCHEDULE
@_LOSS
@click.option("--seed", type=int, default=1, show_default=True)
@_SHARE
@_CONF
@click.option("--cancel", "cancel_p", type=click.FloatRange(0, 1, max_open=True), default=0.0,
              help="Probability that a pass is cancelled.")
@click.option("--report-loss", type=click.FloatRange(0, 1, max_open=True), default=0.0,
              help="Probability that a telemetry report is lost.")
@click.option("--duplicate", type=click.FloatRange(0, 1, max_open=True), default=0.0,
              help="Probability that a frame arrives twice.")
@click.option("--reorder", type=click.FloatRange(0, 1, max_open=True), default=0.0,
              help="Probability that a frame arrives out of order.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw the timeline (PNG).")
@click.option("--link-key", "link_key_path", type=click.Path(dir_okay=False),
              help=f"The TC link key (from `ccl keygen --link`); default ${LINK_KEY_ENV}, else "
                   "the mission's development link key, which a flight profile refuses.")
@click.option("--key", "key_path", type=click.Path(dir_okay=False),
              help=f"The patch key of the simulated spacecraft; default ${KEY_ENV}, else the "
                   "mission's development key, which a flight profile refuses.")
@_LEDGER
@output_options
@click.pass_context
def simulate_cmd(ctx: click.Context, patch_specs: tuple[str, ...], mission: str, days: float,
                 start: str | None, schedule: str, loss: float, seed: int, share_bytes: int,
                 confidence: float, cancel_p: float, report_loss: float, duplicate: float,
                 reorder: float, plot: str | None, link_key_path: str | None,
                 key_path: str | None, ledger_opt: str | None, as_json: bool) -> None:
    """Send PATCHes over simulated passes with loss to a simulated spacecraft (receiver,
    VVM, patcher, store, nothing on board at first); what became of them is read from its
    telemetry at each next pass."""
    profile, budget, windows, patches = _setup(ctx, mission, start, days, schedule,
                                               patch_specs)
    if link_key_path and not Path(link_key_path).is_file():
        fail(f"no link key file at {link_key_path}", "write one with `ccl keygen --link -o "
              "FILE`")
    try:
        link = load_link_key(profile, Path(link_key_path) if link_key_path else None)
        key = load_key(profile, Path(key_path) if key_path else None)
    except (GroundError, PackError) as exc:
        refuse(exc, EXIT_REJECTED)
    begin = _start(profile, start)
    settings = Campaign.for_mission(
        profile, link.association(profile), channel=_channel(loss, duplicate, reorder),
        seed=seed, share_bytes=share_bytes, confidence=confidence,
        faults=Faults(cancel_probability=cancel_p, report_loss_probability=report_loss))
    try:
        ledger = Ledger(ledger_path(ledger_opt))
    except GroundError as exc:
        refuse(exc, EXIT_USAGE)
    params = {"loss": loss, "days": days, "start": begin.isoformat(), "share_bytes": share_bytes,
              "confidence": confidence, "cancel": cancel_p, "report_loss": report_loss,
              "duplicate": duplicate, "reorder": reorder,
              "patches": [p.name for p in patches]}
    with ledger, tempfile.TemporaryDirectory(prefix="ccl-uplink-") as store:
        try:
            spacecraft = Spacecraft.create(profile, Path(store) / "store", key.secret,
                                           link.secret, seed=seed)
        except KeyRefused as exc:
            fail(str(exc), f"give the mission's patch key with --key FILE or ${KEY_ENV}",
                 EXIT_REJECTED)
        satellite = SimulatedSatellite(spacecraft, windows[0].start)
        recorder = ledger.start_run("simulation", profile.name, seed, params)
        progress = Progress(TextColumn("[bold]uplink[/bold] {task.description}"), BarColumn(),
                            MofNCompleteColumn(), console=err, transient=True,
                            disable=not err.is_terminal)
        with progress:
            task = progress.add_task("passes", total=len(windows))

            def tick(log: WindowLog) -> None:
                p = log.window.pass_
                what = "cancelled" if log.cancelled else f"{log.bytes_sent} B"
                progress.update(task, advance=1,
                                description=f"{_t(p.rise)} {p.station}: {what}")

            try:
                result = simulate(patches, windows, satellite, settings, recorder=recorder,
                                  on_window=tick)
            except ErasureError as exc:
                fail(str(exc), "split the change into smaller patches", EXIT_REJECTED)
    if plot:
        from ground.timeline import plot_timeline

        try:
            plot_timeline(result, Path(plot), f"{profile.name}: uplink of "
                          f"{', '.join(p.name for p in patches)}, loss {loss:g}, seed {seed}")
        except (OSError, ValueError) as exc:
            fail(f"cannot draw {plot}: {exc}", "check the path and the simulated days")
    failed = any(p.status != "complete" for p in result.patches)
    if as_json:
        _emit_json(_summary_json(result, budget, loss, recorder.run))
    else:
        _print_summary(result, budget, loss, recorder.run, plot,
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


def _print_summary(result: SimulationResult, budget: LinkBudget, loss: float, run: int,
                   plot: str | None, headers: dict[str, str]) -> None:
    used = [w for w in result.windows if not w.cancelled]
    out.print(f"simulated {len(result.windows)} uplink passes "
              f"({len(result.windows) - len(used)} cancelled, "
              f"{sum(not w.report_received for w in used)} telemetry reports lost), "
              f"{sum(w.frames_sent for w in used)} frames, "
              f"{sum(w.bytes_sent for w in used)} bytes sent, "
              f"{sum(w.frames_lost for w in used)} frames lost; seed {result.seed}, "
              f"ledger run {run}")
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
              "run `ccl uplink simulate` first, or give --ledger PATH / $CCL_LEDGER")
    try:
        with Ledger(path) as ledger:
            info = ledger.status(run)
    except GroundError as exc:
        refuse(exc, EXIT_USAGE)
    if as_json:
        _emit_json(info)
        return
    out.print(f"ledger {info['ledger']}: {info['runs']} runs, {info['patches']} patches, "
              f"{info['images']} images, {info['config_versions']} configuration versions")
    if info["run"] is None:
        return
    cfg = info["onboard_config"]
    where = (f"{cfg['hash'][:16]}" + (f" ({cfg['name']} version {cfg['version']})"
                                       if cfg["name"] else "")
             + f", reported at pass {cfg['reported_at_pass']}") if cfg else "unknown (no report)"
    ps = info["passes"]
    out.print(f"run {info['run']} ({info['kind']}, mission {info['mission']}, seed "
              f"{info['seed']}): {ps['used']} passes ({ps['cancelled']} cancelled) from "
              f"{ps['first']} to {ps['last']}, {info['reports']} telemetry reports")
    out.print(f"on board: {where}")
    table = Table()
    for col in ("id", "patch", "state", "fate", "on board", "frames", "bytes"):
        table.add_column(col, no_wrap=col != "patch")
    for t in info["transfers"]:
        table.add_row(str(t["transfer"]), t["patch"], t["state"],
                      "-" if t["fate"] is None else str(t["fate"]),
                      f"{t['shares_held']}/{t['k']} shares", str(t["frames_sent"]),
                      str(t["bytes_sent"]))
    out.print(table)
