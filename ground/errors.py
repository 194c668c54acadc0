"""The ground tools' error type: one message saying what is wrong, and a hint.

Each ground module raises its own subclass (``PassError``, ``LinkError``, ``LedgerError``);
the CLI (``cli/ground_commands.py``) renders any of them the same way.
"""

from __future__ import annotations


class GroundError(Exception):
    """Bad input to a ground tool: ``message`` says what, ``hint`` what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
