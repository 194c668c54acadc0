"""The verifier's report renders every verdict it can reach: each kind of obligation,
refuted or unknown, becomes one diagnostic with a hint (a refuted `load` or `frame-charge`
had no hint and crashed `ccl verify` with an internal error)."""

from __future__ import annotations

import pytest

from ccl.verify.obligations import Counterexample, Kind, Method, Obligation, Status
from ccl.verify.report import diagnostic


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.value)
@pytest.mark.parametrize("status", [Status.REFUTED, Status.UNKNOWN], ids=lambda s: s.value)
def test_every_kind_of_verdict_is_one_diagnostic_with_a_hint(kind: Kind,
                                                             status: Status) -> None:
    o = Obligation(kind, status, None, "something holds", "task t", Method.Z3,
                   Counterexample((), detail="why") if status is Status.REFUTED else None,
                   reason="timeout")
    d = diagnostic(o)
    assert d.code == kind.code and d.hint
    assert d.message.startswith(status.value)
