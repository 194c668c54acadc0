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
from hypothesis import HealthCheck, settings

# skip_guard fails a test skipped for a reason that is not environmental; pytester is for
# the test of that guard (tests/test_skip_guard.py).
pytest_plugins = ["skip_guard", "pytester"]


# Hypothesis's timing checks (a 200 ms deadline per example, "input generation is slow") fail
# property tests when the machine is busy, not when the code is wrong: `make test` shares two
# cores with other work. What each property checks, and how many examples, is unchanged.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", default=False,
                     help="rewrite the golden command outputs instead of comparing them")


#: The files whose tests take longest (of CPU seconds, measured with ``--durations``), longest
#: first: they run first, so that under ``pytest -n 2 --dist worksteal`` (``make test``) the
#: other worker takes the short tests meanwhile instead of one long file ending the run
#: alone. A file moves whole, so its module-scoped fixtures are still built once.
LONGEST_FIRST = (
    "tests/ccl/verify/test_differential.py",  # one test: 1,000 programs verified and run
    "tests/e2e/test_readme_tour.py",  # the tour and the demo, each on a fresh copy
    "tests/onboard/test_translate.py",
    "tests/ccl/verify/test_campaign.py",
    "tests/e2e/test_scaling.py",  # a local Ray cluster, and each command three ways
    "tests/e2e/test_yamcs_live.py",  # a real Yamcs started and stopped
    "tests/ground/test_xtce.py",  # every scenario simulated, then decoded twice
    "tests/e2e/test_rvm.py",
    "tests/e2e/test_net_udp.py",  # every node a process: 16 runs over UDP, dilated (80 s)
    "tests/e2e/test_lsp.py",
    "tests/ground/test_scenario.py",
    "tests/e2e/test_readback_cli.py",
    "tests/onboard/test_engine_fuzz.py",
    "tests/onboard/test_vvm.py",
    "tests/ground/test_uplink.py",
    "tests/onboard/test_patcher.py",
    "tests/onboard/test_power_loss.py",
    "tests/onboard/test_long_run_memory.py",
    "tests/onboard/test_hostile_patches.py",
    "tests/e2e/test_bad_inputs.py",
    "tests/e2e/test_patch_cli.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def place(item: pytest.Item) -> int:
        try:
            name = item.path.relative_to(config.rootpath).as_posix()
        except ValueError:  # a test file outside the repository
            return len(rank)
        return rank.get(name, len(rank))

    items.sort(key=place)  # stable: the order within a file, and of the rest, is kept


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
