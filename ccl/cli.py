"""The ``ccl`` command: the ground toolchain's user interface.

Diagnostics are rendered here and nowhere else. Exit codes: 0 ok, 1 rejected input (or a
refuted proof), 2 usage, 3 unknown (a solver gave up). Bad input never produces a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.text import Text

from ccl.diagnostics import CclError, Diagnostic, render
from ccl.driver import Compiled, Compiler
from ccl.limits import recursion_headroom
from onboard.vm.image import IMAGE_MAGIC, Image, ImageError, ImageKind, decode_image
from onboard.vm.listing import listing

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_UNKNOWN = 0, 1, 2, 3
EXIT_INTERNAL = 70

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _print_diagnostics(diags: Sequence[Diagnostic], compiler: Compiler) -> None:
    for d in diags:
        text = render(d, compiler.sources)
        if err.is_terminal:
            styled = Text(text)
            styled.highlight_regex(r"error\[[A-Z0-9-]+\]", "bold red")
            styled.highlight_regex(r"\^+", "bold red")
            styled.highlight_regex(r"hint:", "bold cyan")
            err.print(styled)
        else:
            click.echo(text, err=True)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def _compiler(ctx: click.Context) -> Compiler:
    return Compiler(mission_dirs=[Path(p) for p in ctx.obj.get("missions", ())])


def _summary(c: Compiled) -> dict[str, Any]:
    p, img = c.program, c.image
    return {
        "kind": p.kind.value,
        "name": p.name,
        "version": p.version,
        "mission": p.mission,
        "hash": img.content_hash.hex(),
        "image_bytes": len(img.encode()),
        "code_bytes": img.code_bytes(),
        "uses": [{"name": u.name, "version": u.version, "hash": u.hash.hex()} for u in img.uses],
        "params": len([g for g in img.globals if not g.writable]),
        "vars": len([g for g in img.globals if g.writable]) + len(
            [a for a in img.arrays if a.writable]),
        "tables": len([a for a in img.arrays if not a.writable]),
        "functions": len(p.functions),
        "tasks": [{"name": t.name, "period_ms": t.period_ms} for t in p.tasks],
        "instrs": [i.name for i in p.instrs],
        "rules": len(p.rules),
    }


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--missions", "missions", multiple=True, type=click.Path(file_okay=False),
              help="Extra folder of mission profiles (repeatable; also $CCL_MISSIONS).")
@click.version_option(package_name="ccl-vvm", prog_name="ccl")
@click.pass_context
def cli(ctx: click.Context, missions: tuple[str, ...]) -> None:
    """CCL: check, compile and inspect configurations for the onboard VVM."""
    ctx.ensure_object(dict)
    ctx.obj["missions"] = missions


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def check(ctx: click.Context, files: tuple[str, ...], as_json: bool) -> None:
    """Parse and check CCL FILES: names, types, ranges, loops, recursion."""
    compiler = _compiler(ctx)
    require_inputs(files)
    results = []
    failed = False
    for f in files:
        try:
            program = compiler.check(Path(f))
        except CclError as exc:
            failed = True
            results.append({"file": f, "ok": False,
                            "diagnostics": [d.to_json() for d in exc.diagnostics]})
            if not as_json:
                _print_diagnostics(exc.diagnostics, compiler)
            continue
        results.append({"file": f, "ok": True, "kind": program.kind.value,
                        "name": program.name, "version": program.version, "diagnostics": []})
        if not as_json:
            what = f"{program.kind.value} {program.name} version {program.version}"
            detail = (f"{len(program.globals)} globals, {len(program.arrays)} arrays, "
                      f"{len(program.functions)} functions, {len(program.tasks)} tasks"
                      if program.kind.value == "config"
                      else f"{len(program.instrs)} instructions, exposes "
                      f"{', '.join(program.exposes) or 'nothing'}")
            out.print(f"[green]ok[/green] {f}: {what} ({detail})" if out.is_terminal
                      else f"ok {f}: {what} ({detail})")
    if as_json:
        _emit_json({"ok": not failed, "files": results})
    sys.exit(EXIT_REJECTED if failed else EXIT_OK)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Image file to write (default: FILE with suffix .vvmi).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def compile(ctx: click.Context, file: str, output: str | None, as_json: bool) -> None:  # noqa: A001
    """Compile a CCL FILE to a VVM image."""
    require_inputs([file])
    compiler = _compiler(ctx)
    try:
        compiled = compiler.compile(Path(file))
    except CclError as exc:
        if as_json:
            _emit_json({"ok": False, "file": file,
                        "diagnostics": [d.to_json() for d in exc.diagnostics]})
        else:
            _print_diagnostics(exc.diagnostics, compiler)
        sys.exit(EXIT_REJECTED)
    target = Path(output) if output else Path(file).with_suffix(".vvmi")
    try:
        target.write_bytes(compiled.image.encode())
    except OSError as exc:
        _fail_usage(f"cannot write {target}: {exc.strerror}", "check the output path")
    summary = _summary(compiled) | {"file": file, "output": str(target), "ok": True}
    if as_json:
        _emit_json(summary)
    else:
        s = summary
        out.print(f"{s['kind']} {s['name']} version {s['version']} -> {target}: "
                  f"{s['image_bytes']} bytes ({s['code_bytes']} of code), hash {s['hash'][:16]}")
    sys.exit(EXIT_OK)


def _load_image(path: Path) -> Image:
    data = path.read_bytes()
    return decode_image(data)


@cli.command()
@click.argument("target", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def disasm(ctx: click.Context, target: str, as_json: bool) -> None:
    """List an image (or compile a CCL file and list it): data, tables, code."""
    require_inputs([target])
    path = Path(target)
    compiler = _compiler(ctx)
    local_names = None
    try:
        head = path.read_bytes()[:4]
    except OSError as exc:
        _fail_usage(f"cannot read {target}: {exc.strerror}", "check the path")
    if head == IMAGE_MAGIC:
        try:
            image = _load_image(path)
        except ImageError as exc:
            where = f" at offset {exc.offset}" if exc.offset is not None else ""
            click.echo(f"{target}{where}: error[E-IMAGE]: {exc.message}", err=True)
            click.echo("  hint: is this an image written by `ccl compile`?", err=True)
            sys.exit(EXIT_REJECTED)
    else:
        try:
            compiled = compiler.compile(path)
        except CclError as exc:
            _print_diagnostics(exc.diagnostics, compiler)
            sys.exit(EXIT_REJECTED)
        image = compiled.image
        local_names = compiled.debug.local_names
    if as_json:
        _emit_json(_image_json(image, local_names))
    else:
        click.echo("\n".join(listing(image, local_names)))
    sys.exit(EXIT_OK)


def _image_json(image: Image, local_names: Sequence[Sequence[str]] | None) -> dict[str, Any]:
    from onboard.vm import isa

    units = []
    for i, u in enumerate(image.functions):
        names = tuple(local_names[i]) if local_names else ()
        units.append({
            "index": i, "name": u.name, "params": u.n_params, "locals": u.n_locals,
            "returns": u.returns, "max_stack": u.max_stack, "bytes": len(u.code),
            "code": u.code.hex(),
            "listing": isa.disassemble(u.code, image.names_for(u, names)),
        })
    return {
        "kind": "config" if image.kind is ImageKind.CONFIG else "vmlet",
        "name": image.name, "version": image.version, "mission": image.mission,
        "hash": image.content_hash.hex(), "bytes": len(image.encode()),
        "uses": [{"name": u.name, "version": u.version, "hash": u.hash.hex()}
                 for u in image.uses],
        "globals": [dataclasses.asdict(g) for g in image.globals],
        "arrays": [{"name": a.name, "writable": a.writable, "lo": a.lo, "hi": a.hi,
                    "length": a.length} for a in image.arrays],
        "natives": list(image.natives), "env": list(image.env),
        "ext": [{"opcode": isa.EXT_BASE + k, "vmlet": e.vmlet, "instr": e.instr}
                for k, e in enumerate(image.ext)],
        "tasks": [dataclasses.asdict(t) for t in image.tasks],
        "rules": [dataclasses.asdict(r) for r in image.rules],
        "on_apply": image.on_apply, "on_load": image.on_load,
        "instrs": [dataclasses.asdict(d) for d in image.instrs],
        "exposes": list(image.exposes), "hides": list(image.hides),
        "functions": units,
    }


def _fail_usage(message: str, hint: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    click.echo(f"  hint: {hint}", err=True)
    sys.exit(EXIT_USAGE)


def require_inputs(files: Sequence[str]) -> None:
    """A missing input file is a usage error (exit 2), reported as the compiler would, before
    any work: nothing is checked, compiled or written."""
    missing = [f for f in files if not Path(f).exists()]
    for f in missing:
        click.echo(f"error[E-READ]: no such file: {f}", err=True)
        click.echo("  hint: check the path", err=True)
    if missing:
        sys.exit(EXIT_USAGE)


# Commands defined in their own modules, each next to what it drives. One import and one
# add_command per command group; keep this block sorted.
from ccl.pack_command import inspect_command, keygen_command, pack_command  # noqa: E402
from ccl.verify.command import verify  # noqa: E402
from ground.commands import passes, status, uplink  # noqa: E402
from ground.sim_command import sim  # noqa: E402

cli.add_command(inspect_command)
cli.add_command(keygen_command)
cli.add_command(pack_command)
cli.add_command(passes)
cli.add_command(sim)
cli.add_command(status)
cli.add_command(uplink)
cli.add_command(verify)
# (end of command registrations)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``ccl`` console script."""
    with recursion_headroom():  # the verifier walks programs as deep as they nest, too
        _run(cli, argv, "ccl")


def _run(command: click.Command, argv: Sequence[str] | None, prog: str) -> None:
    try:
        command.main(args=list(argv) if argv is not None else None, prog_name=prog,
                     standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # a bug, not bad input: say so in one line
        if os.environ.get("CCL_DEBUG"):
            raise
        click.echo(f"{prog}: internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("  hint: this is a bug; rerun with CCL_DEBUG=1 for the traceback", err=True)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":  # pragma: no cover
    main()
