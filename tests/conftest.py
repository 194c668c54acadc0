"""Options and fixtures shared by every test package.

``--update-goldens`` rewrites the golden outputs under ``tests/e2e/golden/`` from what the
commands print now, instead of comparing against them (see ``tests/e2e/test_goldens.py``).
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", default=False,
                     help="rewrite the golden command outputs instead of comparing them")


@pytest.fixture(scope="session")
def update_goldens(request: pytest.FixtureRequest) -> bool:
    """True when the run was asked to rewrite the golden files (``--update-goldens``)."""
    return bool(request.config.getoption("--update-goldens"))
