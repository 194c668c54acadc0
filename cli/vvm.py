"""The ``vvm`` command: the onboard simulator's user interface.

It imports nothing of the ground toolchain (``ccl``, ``ground``): the onboard side stands
alone, and so does its simulator. ``vvm init/load/apply/run/status``
drive a simulated VVM kept in a state directory (``onboard.sim.simulator``); ``vvm inspect``
reads an image as the satellite would. Exit codes: 0 ok, 1 rejected input (a refused image,
a patch rejected or rolled back at its switch), 2 usage. Opening a state directory whose
last run was cut short reboots its VVM (``onboard.patching.boot``), with a note on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from cli.console import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, Failure, run_guarded, show
from onboard.mission import MissionError
from onboard.patching.patch_format import key_from_text
from onboard.patching.patcher import FateStatus
from onboard.patching.reconfiguration import PatchEvent
from onboard.sim.simulator import Simulator, StateError, parse_duration
from onboard.vm.image import Image, ImageError, decode_image
from onboard.vm.listing import listing
from onboard.vm.loader import LoadError


def _fail(message: str, hint: str, code: int = EXIT_REJECTED) -> int:
    show(Failure(message, hint, code), "vvm")
    return code


def _missions(args: argparse.Namespace) -> tuple[Path, ...]:
    return tuple(Path(d) for d in args.missions)


def _open(args: argparse.Namespace) -> Simulator:
    """Open the state directory; say so if its VVM had to reboot (its last run was cut
    short, e.g. by a power loss)."""
    sim = Simulator.open(Path(args.state), _missions(args))
    if sim.rebooted:
        store = sim.vvm.status().get("store") or {}
        print(f"vvm: note: {args.state}: the last run did not finish (power loss?): the VVM "
              f"rebooted from its store (now {store.get('phase')}, current "
              f"{(store.get('current') or '-')[:16]})", file=sys.stderr)
    return sim


def _cmd_init(args: argparse.Namespace) -> int:
    key = None
    if args.key is not None:
        try:
            key = key_from_text(Path(args.key).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            return _fail(f"cannot read key file {args.key}: {exc}", "check the path", EXIT_USAGE)
        except ValueError as exc:
            return _fail(f"{args.key}: {exc}", "write one with `ccl keygen -o FILE`")
    sim = Simulator.init(Path(args.state), args.mission, args.seed, _missions(args), key)
    print(f"{args.state}: VVM for mission {sim.vvm.profile.name}, seed {args.seed}, "
          f"share {sim.vvm.profile.share_cycles_per_frame} cycles per "
          f"{sim.vvm.profile.frame_ms} ms frame")
    return EXIT_OK


def _cmd_load(args: argparse.Namespace) -> int:
    sim = _open(args)
    for name in args.images:
        image, _ = _read_image(name)
        try:
            print(sim.load(image))
        except LoadError as exc:
            return _fail(f"{name}: refused ({exc.code}): {exc.message}",
                         "nothing was loaded; load the VMlets a configuration uses first")
    return EXIT_OK


def _fate_line(e: PatchEvent) -> str:
    f = e.fate
    text = f"  t = {e.time_ms / 1000:9.1f} s  patch {e.ticket}"
    text += f" (seq {f.seq})" if f.seq is not None else ""
    text += f"  {f.status.value}"
    if f.reason is not None:
        where = f" at {f.field}" if f.field else ""
        where += f", byte {f.offset}" if f.offset is not None else ""
        text += f" [{f.reason.value}{where}]"
    return text + (f": {f.message}" if f.message else "")


def _cmd_apply(args: argparse.Namespace) -> int:
    try:
        data = Path(args.patch).read_bytes()
    except OSError as exc:
        return _fail(f"cannot read {args.patch}: {exc.strerror}", "check the path", EXIT_USAGE)
    sim = _open(args)
    events = sim.apply(data)
    last = events[-1].fate
    if args.json:
        print(json.dumps({"patch": args.patch, "fates": [e.to_json() for e in events],
                          "store": sim.vvm.status().get("store")}, indent=1))
    else:
        print(f"{args.patch}: {len(data)} bytes")
        print("\n".join(_fate_line(e) for e in events))
    if last.status is FateStatus.REJECTED:
        if not args.json:
            print(f"  the state is unchanged; {_REJECTION_HINT}", file=sys.stderr)
        return EXIT_REJECTED
    if last.status is FateStatus.ROLLED_BACK:
        if not args.json:
            print(f"  {_ROLLBACK_HINT}", file=sys.stderr)
        return EXIT_REJECTED
    return EXIT_OK


_REJECTION_HINT = ("re-pack it against the configuration on board (`vvm status` shows its "
                   "hash) with a sequence number above the last accepted")


_ROLLBACK_HINT = ("the switch to it failed and was rolled back: the previous configuration "
                  "runs on; its sequence number is used up, re-pack the fix with a higher one")


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        ms = parse_duration(args.duration)
    except ValueError as exc:
        return _fail(str(exc), "durations look like 90s, 30m, 6h, 2d", EXIT_USAGE)
    sim = _open(args)
    seen = len(sim.reconfiguration.events)
    start = sim.vvm.now_ms
    sim.run(ms)
    tel = sim.vvm.telemetry
    print(f"ran {(sim.vvm.now_ms - start) / 1000:.1f} s of simulated time: now "
          f"t = {sim.vvm.now_ms / 1000:.1f} s, {tel.fault_count} faults, worst frame "
          f"{100 * tel.worst_share():.1f} % of the share")
    for e in sim.reconfiguration.events[seen:]:
        print(_fate_line(e))
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    sim = _open(args)
    status = sim.vvm.status()
    if args.json:
        print(json.dumps(status, indent=1))
        return EXIT_OK
    cfg = status["config"]
    print(f"mission {status['mission']}  t = {status['time_ms'] / 1000:.1f} s  "
          f"config {cfg['name'] or '-'} v{cfg['version']} {cfg['hash'][:16]}")
    for v in status["vmlets"]:
        print(f"  vmlet {v['name']} v{v['version']} {v['hash'][:16]}  "
              f"visible: {', '.join(v['visible'])}")
    print(f"  frames {status['frames']} ({status['busy_frames']} busy), worst frame "
          f"{status['worst_frame_cycles']} cycles = {status['worst_frame_share_percent']} % "
          f"of the share, {status['worst_frame_cpu_percent']} % of the CPU")
    for t in status["tasks"]:
        print(f"  task {t['name']:<16} every {t['period_ms'] / 1000:g} s  runs {t['runs']}  "
              f"worst {t['worst_cycles']} cycles  overruns {t['overruns']}  "
              f"traps {t['traps']}")
    print(f"  faults {status['fault_count']}")
    for f in status["faults"][-10:]:
        print(f"    t={f['time_ms'] / 1000:.1f} s {f['task']}: {f['code']} in {f['unit']} "
              f"+{f['offset']}")
    store = status["store"]
    print(f"  store {store['phase']}, last sequence {store['last_seq']}, current "
          f"{(store['current'] or '-')[:16]}, previous {(store['previous'] or '-')[:16]}")
    for e in sim.reconfiguration.events[-10:]:
        print(_fate_line(e))
    return EXIT_OK


def _read_image(name: str) -> tuple[Image, bytes]:
    """The image in file ``name`` and its bytes; a ``Failure`` if it cannot be read or is
    not an image."""
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        raise Failure(f"cannot read {name}: {exc.strerror}", "check the path",
                      EXIT_USAGE) from None
    try:
        return decode_image(data), data
    except ImageError as exc:
        where = f" at offset {exc.offset}" if exc.offset is not None else ""
        raise Failure(f"not an image: {exc.message}", "images are written by `ccl compile`",
                      EXIT_REJECTED, f"{name}{where}") from None


def _cmd_inspect(args: argparse.Namespace) -> int:
    image, data = _read_image(args.image)
    if args.json:
        print(json.dumps({"name": image.name, "version": image.version,
                          "mission": image.mission, "hash": image.content_hash.hex(),
                          "bytes": len(data)}))
    else:
        print("\n".join(listing(image)))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``vvm`` console script."""
    parser = argparse.ArgumentParser(prog="vvm", description="The onboard VVM simulator.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="decode an image file as the VVM would and list it")
    p.add_argument("image")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_inspect)

    def stateful(name: str, help_: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help_)
        q.add_argument("state", help="the state directory")
        q.add_argument("--missions", action="append", default=[], metavar="DIR",
                       help="another folder of mission profiles")
        return q

    p = stateful("init", "create a state directory for a mission")
    p.add_argument("--mission", required=True)
    p.add_argument("--seed", type=int, default=1, help="seed of the simulated spacecraft")
    p.add_argument("--key", metavar="FILE", help="the patch key (from `ccl keygen`); default: "
                   "the mission's development key, which a flight profile refuses")
    p.set_defaults(func=_cmd_init)
    p = stateful("load", "load VMlet and configuration images directly (no link)")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=_cmd_load)
    p = stateful("apply", "hand the VVM a patch and run until it is active or rejected")
    p.add_argument("patch")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_apply)
    p = stateful("run", "advance the simulated clock, running the tasks")
    p.add_argument("--for", dest="duration", required=True, help="e.g. 90s, 30m, 6h, 2d")
    p.set_defaults(func=_cmd_run)
    p = stateful("status", "print the telemetry")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_status)
    args = parser.parse_args(argv)

    def run() -> None:
        try:
            code = args.func(args)
        except (StateError, MissionError) as exc:
            raise Failure(exc.message, exc.hint, EXIT_REJECTED) from None
        sys.exit(code)

    run_guarded(run, "vvm")


if __name__ == "__main__":  # pragma: no cover
    main()
