"""``VVM.run``: one code unit of a prepared program, active or not, within a budget (what a
network node does with a packet's program, and ``VVM.call`` with the active one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import compile_text, start_vvm

from onboard.vm.faults import TrapCode
from onboard.vm.loader import LoadError

COUNTER = """\
mission corot;
config counter version {version};
var total : int[0..1000000];
fn count(n: int[0..1000]) -> int[0..1000000] {{
    for i in 0 .. n {{ total = min(total + {step}, 1000000); }}
    return total;
}}
fn crash(d: int[0..10]) -> int {{ return 100 / d; }}
"""


def test_run_a_prepared_program_that_is_not_the_active_one(tmp_path: Path) -> None:
    active = compile_text(tmp_path, COUNTER.format(version=1, step=1), "one")
    other = compile_text(tmp_path, COUNTER.format(version=2, step=7), "two")
    vm = start_vvm(active)
    program = vm.prepare(other.image)
    done = vm.run(program, "count", [3], budget=10_000)
    assert (done.result, done.fault, done.exhausted) == (21, None, False)
    assert 0 < done.cycles < 10_000
    assert vm.call("count", [3]).result == 3  # the active program's memory is its own
    stopped = vm.run(program, "count", [1000], budget=done.cycles)
    assert stopped.exhausted and stopped.cycles == done.cycles and stopped.result is None
    trapped = vm.run(program, "crash", [0], budget=10_000)
    assert trapped.fault is not None and trapped.fault.code is TrapCode.DIV_ZERO
    with pytest.raises(LoadError) as exc:  # `call` still refuses a run that does not fit
        vm.call("count", [1000], budget=100)
    assert exc.value.code == "budget"
