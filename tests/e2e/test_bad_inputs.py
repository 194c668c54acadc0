"""A sweep of bad inputs across every ``ccl`` and ``vvm`` command (``bad_inputs.py``): each
is refused with one message and exit 1 or 2, never a traceback, never exit 70; with
``--json`` the refusal is one JSON object on stdout. The cases that need a real process
(a closed pipe, Ctrl-C) are in ``test_vvm_cli.py`` and ``test_ground_cli.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bad_inputs import Case, cases, prepare_state, run_case


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Case]]:
    workspace = tmp_path_factory.mktemp("bad-inputs")
    prepare_state(workspace)
    return workspace, cases(workspace)


def test_the_sweep_covers_every_command(sweep: tuple[Path, list[Case]]) -> None:
    _, every = sweep
    covered = {(c.prog, c.args[0]) for c in every}
    for prog, command in [("ccl", c) for c in ("check", "compile", "disasm", "verify", "pack",
                                                "inspect", "keygen", "passes", "uplink",
                                                "status", "sim")] + \
                         [("vvm", c) for c in ("init", "load", "apply", "run", "status",
                                               "dump", "inspect")]:
        assert (prog, command) in covered, f"{prog} {command} is not in the sweep"
    assert len(every) > 150


def test_every_bad_input_is_refused_in_one_message(sweep: tuple[Path, list[Case]]) -> None:
    _, every = sweep
    wrong = []
    for case in every:
        code, out, err = run_case(case)
        text = out + err
        refused = code != 0
        if (code not in case.allowed or "Traceback" in text or "internal error" in text
                or (refused and "hint" not in text)):
            wrong.append(f"{case.line}: exit {code}: {text.strip()[-400:]}")
    assert not wrong, f"{len(wrong)} of {len(every)} cases answered badly:\n" + "\n".join(wrong)


def test_with_json_every_refusal_is_one_json_object(sweep: tuple[Path, list[Case]]) -> None:
    _, every = sweep
    wrong = []
    for case in every[::3]:  # a third of them: the shape, not the reasons again
        code, out, _ = run_case(case, json_output=True)
        if code == 0 and code in case.allowed:
            continue
        try:
            error = json.loads(out)["error"]
            ok = error["exit_code"] == code and bool(error["message"]) and code in case.allowed
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            wrong.append(f"{case.line} --json: exit {code}: {out.strip()[-300:]}")
    assert not wrong, "\n".join(wrong)
