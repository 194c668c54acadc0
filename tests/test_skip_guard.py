"""The guard of ``tests/skip_guard.py``: a test skipped for a reason that is not
environmental fails the run; an environmental skip and an expected failure do not."""

from __future__ import annotations

import pytest

TESTS = '''
import pytest

@pytest.mark.skip(reason="slow")
def test_marked_slow():
    assert False

@pytest.mark.skipif(True, reason="takes a minute")
def test_skipped_if():
    assert False

def test_skipped_at_run_time():
    pytest.skip("too slow for CI")

@pytest.mark.skipif(True, reason="root reads a file of mode 000")
def test_environmental():
    assert False

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_failure():
    assert False

def test_plain():
    assert True
'''


def test_only_environmental_skips_pass_the_guard(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_some=TESTS)
    result = pytester.runpytest_inprocess("-p", "skip_guard", "-p", "no:randomly")
    outcomes = result.parseoutcomes()
    assert (outcomes.get("failed", 0) + outcomes.get("errors", outcomes.get("error", 0))) == 3
    assert outcomes["skipped"] == 1 and outcomes["xfailed"] == 1 and outcomes["passed"] == 1
    text = result.stdout.str()
    for reason in ("'slow'", "'takes a minute'", "'too slow for CI'"):
        assert reason in text
    assert result.ret != 0
