"""The ``ccl lsp`` command: the CCL language server, on stdin and stdout.

pygls (the optional extra ``lsp``) is imported only when the command runs, so ``ccl
--help`` stays fast and an install without the extra still works: ``ccl lsp`` then exits 2
and says how to install it.
"""

from __future__ import annotations

from pathlib import Path

import click

from cli.console import EXIT_USAGE, fail

DEFAULT_DEBOUNCE_MS = 30


@click.command("lsp")
@click.option("--stdio", is_flag=True, help="Speak on stdin and stdout (the default and "
              "only transport; accepted because editors pass it).")
@click.option("--debounce", "debounce_ms", type=click.IntRange(0, 10_000),
              default=DEFAULT_DEBOUNCE_MS, show_default=True,
              help="Milliseconds of quiet typing before a buffer is checked.")
@click.pass_context
def lsp(ctx: click.Context, stdio: bool, debounce_ms: int) -> None:
    """Run the CCL language server on stdin/stdout: diagnostics as you type, hover, go to
    definition, completion, and the verifier's refutations on save."""
    try:
        from cli.lsp_server import server  # noqa: PLC0415  (pygls: only for this command)
    except ImportError as exc:
        if exc.name not in {"pygls", "lsprotocol", "cattrs", "attrs"} and not (
                exc.name or "").startswith(("pygls.", "lsprotocol.")):
            raise
        package = (exc.name or "pygls").split(".")[0]
        fail(f"the language server needs the package `{package}`, which is not installed",
             "install the extra: pip install -e '.[lsp]' (or pip install 'ccl-vvm[lsp]')",
             EXIT_USAGE)
    missions = tuple(Path(p).resolve() for p in (ctx.obj or {}).get("missions", ()))
    server(missions, debounce_ms / 1000).start_io()
