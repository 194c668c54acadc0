"""A pytest plugin (loaded by ``tests/conftest.py``) that fails any test skipped for a reason
that is not about the machine it runs on: `make test` runs every test, and a slow or broken
test is made faster or fixed, never skipped out of sight.

A skip is allowed only with one of the reasons in ``ENVIRONMENTAL``: something this machine
cannot do or check (running as root reads a file of mode 000). Any other skip, from a
``skip``/``skipif`` marker, ``pytest.skip()`` or ``pytest.importorskip()``, is reported as a
failure naming its reason. Expected failures (``xfail``) are not skips and are left alone.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

#: The reasons a test may be skipped for: what the machine cannot do, never that it is slow.
ENVIRONMENTAL = frozenset({
    "root reads a file of mode 000",
})


def skip_reason(report: pytest.TestReport) -> str:
    """The reason a skipped ``report`` gives, without pytest's ``Skipped: `` prefix."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, object, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = skip_reason(report)
    if reason in ENVIRONMENTAL:
        return
    report.outcome = "failed"
    report.longrepr = (
        f"{item.nodeid} was skipped ({reason!r}), and that is not a reason about the "
        "environment: every test runs in `make test`. Make it fast or fix it; if the machine "
        "really cannot run it, add the reason to ENVIRONMENTAL in tests/skip_guard.py.")
