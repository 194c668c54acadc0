"""A click group that imports a command's module only when that command runs.

Importing every command up front costs ``ccl --help`` half a second (Z3, textX, zfec,
skyfield come with the compiler's, the verifier's and the ground's modules). The group
knows each command by name, module and the first line of its help, which is all that
``--help`` and a misspelt command's suggestion need; the module is imported when the
command is invoked (or asked for by name, as shell completion and tests do).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

# click 8.4 and later say which command was not found, and suggest one (older ones neither)
_NO_SUCH_COMMAND: Any = getattr(click.exceptions, "NoSuchCommand", ())


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives (``module:attribute``) and its help's first paragraph, as
    the command's docstring has it (tests/cli/test_lazy_group.py keeps the two equal)."""

    target: str
    summary: str

    def short_help(self, limit: int) -> str:
        """The summary cut to ``limit`` characters, as click cuts a command's own help."""
        return click.Command(None, help=self.summary).get_short_help_str(limit)

    def load(self) -> click.Command:
        """Import the command's module and return the command."""
        module, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):  # a wrong table entry is a bug
            raise TypeError(f"{self.target} is not a click command")
        return command


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (``lazy``: name -> LazyCommand)."""

    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self.lazy[cmd_name].load(), cmd_name)
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except _NO_SUCH_COMMAND as exc:
            # click suggests from the commands already loaded: suggest from every name
            raise _NO_SUCH_COMMAND(exc.command_name, possibilities=self.list_commands(ctx),
                                   ctx=ctx) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their short help, without importing any of them."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in self.commands:
                command = self.commands[name]
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                rows.append((name, self.lazy[name].short_help(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
