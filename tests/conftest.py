"""Options and fixtures shared by every test package.

Proofs the commands keep between runs go to a folder of the test run (``proof_cache``).

``--update-goldens`` rewrites the golden outputs under ``tests/e2e/golden/`` from what the
commands print now, instead of comparing against them (see ``tests/e2e/test_goldens.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# skip_guard fails a test skipped for a reason that is not environmental; pytester is for
# the test of that guard (tests/test_skip_guard.py).
pytest_plugins = ["skip_guard", "pytester"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", default=False,
                     help="rewrite the golden command outputs instead of comparing them")


@pytest.fixture(scope="session")
def update_goldens(request: pytest.FixtureRequest) -> bool:
    """True when the run was asked to rewrite the golden files (``--update-goldens``)."""
    return bool(request.config.getoption("--update-goldens"))


@pytest.fixture(scope="session", autouse=True)
def proof_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Proofs the commands keep (``ccl.verify.proof_cache``) go to a folder of this run, not
    the user's cache: no test reuses a proof an earlier run kept. The workers of one
    ``pytest -n`` run share the folder (the temporary folder of the run, above each
    worker's), so a configuration one worker proved is not proved again by the other; the
    cache writes each proof whole (a rename), so workers never read half of one."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # base is this worker's: popen-gwN
        base = base.parent
    folder = base / "proofs"
    folder.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CCL_PROOF_CACHE", str(folder))
        yield folder
