"""What the units of one translated image share: the namespace their code runs in, the
names of natives and out-of-line VMlet code, and the counter of temporary names."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from onboard.mission import formula_floordiv
from onboard.vm import machine
from onboard.vm.binding import Bound, NativeBinding
from onboard.vm.faults import Trap, TrapCode
from onboard.vm.reference import Memory


class ImageContext:
    """Names shared by all units of one translated image (the exec namespace)."""

    def __init__(self, bound: Bound, memory: Memory, metered: bool) -> None:
        self.bound = bound
        self.memory = memory
        self.metered = metered
        self.namespace: dict[str, Any] = {
            "Trap": Trap, "_tdiv": machine.tdiv, "_tmod": machine.tmod, "_fdiv": formula_floordiv,
            "G": memory.globals, "min": min, "max": max, "abs": abs,
        }
        for code in TrapCode:
            self.namespace[f"T_{code.name}"] = code
        for i, arr in enumerate(memory.arrays):
            self.namespace[f"A{i}"] = arr
        # (id of the VMlet's Bound, unit of an instruction body) -> its out-of-line function
        self.out_of_line: dict[tuple[int, int], str] = {}
        self._vmlet_names: dict[int, list[str]] = {}
        self._temp = 0

    def bind_natives(self, prefix: str, natives: Sequence[NativeBinding]) -> list[str]:
        """Put ``natives`` in the namespace as ``{prefix}n{i}``; returns their names."""
        names = []
        for i, n in enumerate(natives):
            name = f"{prefix}n{i}"
            self.namespace[name] = n.fn
            names.append(name)
        return names

    def bind_vmlet_natives(self, vm: Bound) -> list[str]:
        """Names of a VMlet's natives in the namespace (bound once per VMlet)."""
        if id(vm) not in self._vmlet_names:
            self._vmlet_names[id(vm)] = self.bind_natives(f"x{len(self._vmlet_names)}_",
                                                          vm.natives)
        return self._vmlet_names[id(vm)]

    def temp(self) -> str:
        """A fresh temporary name (``t1``, ``t2``...), unique in the image."""
        self._temp += 1
        return f"t{self._temp}"

    def temp_mark(self) -> int:
        """Where the temporary names are: ``temp_rewind`` reuses the names after it (the
        slow path of a block is written with the names its fast path used)."""
        return self._temp

    def temp_rewind(self, mark: int) -> None:
        """Hand out the temporary names after ``mark`` again."""
        self._temp = mark


@dataclass(frozen=True)
class UnitSpec:
    """Where a code unit comes from and how its natives, ext opcodes and traps are named."""

    bound: Bound
    unit: int
    fn_name: str
    native_names: list[str]
    inline: bool  # a VMlet instruction body translated out of line: returns are free
    memory: Memory
    callee_names: Callable[[int], str]  # CALL operand -> function name
