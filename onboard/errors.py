"""The one shape of an onboard refusal: what the board says when it will not take something.

Every error the onboard side raises for bad input (an image, a patch, a TC frame, a key, a
mission profile, a state directory) is an ``OnboardError``: a stable ``code`` (telemetry and
tests match on it, never on prose), one sentence ``message``, ``where`` it is (a field and a
byte offset, or a code unit and offset; empty when the whole input is wrong) and a ``hint``
for the operator. The ``vvm`` and ``ccl`` commands show every one the same way
(``cli.console.failure_of``).

Traps (``onboard.vm.faults.Trap``) and a power cut (``onboard.patching.disk.PowerLoss``) are
not refusals: they are events of a running machine, and have shapes of their own.
"""

from __future__ import annotations


class OnboardError(Exception):
    """Bad input refused by the board: ``code``, ``message``, ``field``/``offset``, ``hint``."""

    def __init__(self, code: str, message: str, *, field: str | None = None,
                 offset: int | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.offset = offset
        self.hint = hint

    @property
    def where(self) -> str:
        """``field `NAME` at byte N``, either part alone, or empty."""
        parts = []
        if self.field:
            parts.append(f"field `{self.field}`")
        if self.offset is not None:
            parts.append(f"at byte {self.offset}")
        return " ".join(parts)
