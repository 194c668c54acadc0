"""The options every ``ccl`` and ``vvm`` command shares, and the option types that refuse
what no command can use (NaN, infinity, a sequence number beyond 64 bits).

The same global options sit in the same place in both commands: ``--missions DIR``,
``--json``, ``--quiet`` and ``--version`` before the command's name; ``--json`` and
``--quiet`` are also accepted after it, on every command.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import click

from cli.console import MODE, set_mode

F = TypeVar("F", bound=Callable[..., Any])

SEQ_MAX = (1 << 64) - 1  # the patch header's sequence number is a 64-bit varint
MAX_INPUT_BYTES = 64 << 20  # no source, image, patch, key or TLE is larger (patches: 64 KiB)


def _json_flag(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    set_mode(json_output=value)
    return MODE.json


def _quiet_flag(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    set_mode(quiet=value)
    return MODE.quiet


def _reset_json(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    # The group is parsed first: its flags set the mode afresh for this invocation (so an
    # in-process caller, e.g. click's CliRunner, does not inherit the last one's mode).
    MODE.json = value


def _reset_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    MODE.quiet = value


def output_options(command: F) -> F:
    """``--json`` (passed to the command as ``as_json``, true if given anywhere on the
    line) and ``--quiet`` (no progress, no notes; the mode only, not passed on)."""
    command = click.option("-q", "--quiet", is_flag=True, expose_value=False,
                           callback=_quiet_flag,
                           help="No progress and no notes on stderr.")(command)
    return click.option("--json", "as_json", is_flag=True, callback=_json_flag,
                        help="Machine-readable output on stdout, failures included.")(command)


def global_options(prog: str) -> Callable[[F], F]:
    """The options of the ``ccl`` and ``vvm`` groups themselves: ``--missions``,
    ``--json``, ``--quiet``, ``--version``, ``-h/--help``."""

    def decorate(group: F) -> F:
        group = click.version_option(package_name="ccl-vvm", prog_name=prog)(group)
        group = click.option("-q", "--quiet", is_flag=True, expose_value=False,
                             callback=_reset_quiet, is_eager=True,
                             help="No progress and no notes on stderr.")(group)
        group = click.option("--json", "as_json", is_flag=True, expose_value=False,
                             callback=_reset_json, is_eager=True,
                             help="Machine-readable output on stdout, failures "
                                  "included.")(group)
        return click.option("--missions", "missions", multiple=True,
                            type=click.Path(exists=True, file_okay=False),
                            help="Extra folder of mission profiles (repeatable; also "
                                 "$CCL_MISSIONS).")(group)

    return decorate


class FiniteFloat(click.FloatRange):
    """A float in a range that is also finite: NaN and infinity are usage errors."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if math.isnan(number) or math.isinf(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


SEQUENCE_NUMBER = click.IntRange(min=1, max=SEQ_MAX)
