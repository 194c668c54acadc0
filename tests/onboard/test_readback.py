"""Read-back shows what the running configuration holds, by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from onboard.vm.readback import read_back
from tests.support import compile_text, start_vvm

SOURCE = """
mission corot;
config rb version 1;
param gain : int[0..100] = 7;
var count : int[0..1000000] = 0;
table t[3] : int[0..9] = [1, 2, 3];
var hist[2] : int[0..1000000];
task tick every 1 s {
    count = count + gain;
    hist[0] = hist[0] + 1;
}
"""


def test_values_by_name_follow_the_running_program(tmp_path: Path) -> None:
    vvm = start_vvm(compile_text(tmp_path, SOURCE))
    vvm.run_for(3_000)
    assert vvm.program is not None
    dump = {v.name: v for v in read_back(vvm.program)}
    assert dump["gain"].kind == "param" and dump["gain"].values == (7,)
    assert dump["count"].kind == "state" and dump["count"].values[0] == 7 * dump["hist"].values[0]
    assert dump["hist"].values[0] >= 2
    assert dump["t"].kind == "table" and dump["t"].values == (1, 2, 3)
    assert dump["t"].to_json() == {"name": "t", "kind": "table", "range": [0, 9],
                                   "values": [1, 2, 3]}


def test_a_selection_and_an_unknown_name(tmp_path: Path) -> None:
    vvm = start_vvm(compile_text(tmp_path, SOURCE))
    assert vvm.program is not None
    assert [v.name for v in read_back(vvm.program, ["t", "gain"])] == ["t", "gain"]
    with pytest.raises(KeyError, match="nope"):
        read_back(vvm.program, ["gain", "nope"])
