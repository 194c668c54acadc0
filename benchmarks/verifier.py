"""Benchmark: the load-time bytecode verifier over large generated code units.

Generates (deterministically, from a fixed seed) one code unit shaped like compiled CCL:
assignments with arithmetic and range checks, ``if``/``else`` chains, short circuits,
counted loops (nested two deep) over arrays, native calls and a VMlet instruction, in a
configuration image that uses a VMlet of its own. It times ``verify_image`` (best of
``--runs``) on units of 64 KiB (CoRoT's whole code memory) and 1 MiB, and plain decoding
(``isa.decode``, no checks) of the same code side by side.

Prints one JSON line per figure::

    {"benchmark": "verifier", "metric": "bytes_per_s", "value": ..., "unit": "bytes/s", ...}

``bytes_per_s`` (one line per size), ``linearity`` (throughput at 1 MiB over throughput at
64 KiB: 1.0 is perfectly linear, a quadratic pass would give about 1/16) and
``ratio_vs_decode`` (verify time over plain decode time, at 1 MiB).

Usage: ``python benchmarks/verifier.py [--runs N] [--seed N]``
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from onboard.mission import find_mission  # noqa: E402
from onboard.vm import isa  # noqa: E402
from onboard.vm.image import (  # noqa: E402
    Array,
    CodeUnit,
    ExtRef,
    Global,
    Image,
    ImageKind,
    InstrDef,
    VmletRef,
)
from onboard.vm.verifier import Target, verify_image  # noqa: E402

SEED = 20_061_227
SIZES = (64 * 1024, 1024 * 1024)
N_LOCALS = 8  # l0..l3: two loop counter/limit pairs; l4..l7: scratch

# Imports of the generated configuration (indices used in the code below).
G_STATE, G_PARAM = 0, 1
A_BUF, A_TABLE = 0, 1
N_FLUX, N_FLAG = 0, 1


def _vmlet() -> Image:
    asm = isa.Assembler()
    for op, *args in ((isa.LOAD_L, 0), (isa.LOAD_L, 1), (isa.MIN,), (isa.LOAD_L, 0),
                      (isa.LOAD_L, 1), (isa.MAX,), (isa.LOAD_L, 2), (isa.MIN,), (isa.MAX,),
                      (isa.RETV,)):
        asm.emit(op, *args)
    return Image(kind=ImageKind.VMLET, name="bench", version=1, mission="corot",
                 natives=("flux",), exposes=("flux", "flag"), hides=("heater_set",),
                 functions=(CodeUnit("med3", 3, 3, True, 3, asm.assemble()),),
                 instrs=(InstrDef("med3", 0),))


class _Gen:
    """Emits statements of compiled-CCL shape until the code reaches a size."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.asm = isa.Assembler()
        self.instructions = 0

    def emit(self, op: int, *args: int | isa.Label) -> None:
        self.asm.emit(op, *args)
        self.instructions += 1

    def value(self, depth: int = 0) -> None:
        """Push one value: a small expression tree (at most 3 deep on the stack)."""
        r = self.r.random()
        if depth >= 2 or r < 0.3:
            choice = self.r.randrange(4)
            if choice == 0:
                self.emit(isa.PUSH, self.r.randrange(-100, 1000))
            elif choice == 1:
                self.emit(isa.LOAD_L, self.r.randrange(4, N_LOCALS))
            elif choice == 2:
                self.emit(isa.LOAD_G, self.r.choice((G_STATE, G_PARAM)))
            else:
                self.emit(isa.PUSH, self.r.randrange(8))
                self.emit(isa.LOAD_A, self.r.choice((A_BUF, A_TABLE)))
            return
        self.value(depth + 1)
        self.value(depth + 1)
        self.emit(self.r.choice((isa.ADD, isa.SUB, isa.MUL, isa.MIN, isa.MAX, isa.DIV)))

    def condition(self, false: isa.Label) -> None:
        self.value(1)
        self.value(1)
        self.emit(self.r.choice((isa.LT, isa.LE, isa.EQ, isa.NE, isa.GT, isa.GE)))
        self.emit(isa.JZ, false)

    def statement(self, loops: int) -> None:
        kind = self.r.random()
        if kind < 0.35:
            self.value()
            self.emit(isa.RANGE, 0, 100)
            self.emit(isa.STORE_G, G_STATE)
        elif kind < 0.5:
            self.value()
            self.emit(isa.STORE_L, self.r.randrange(4, N_LOCALS))
        elif kind < 0.6:
            self.emit(isa.PUSH, self.r.randrange(8))
            self.value(1)
            self.emit(isa.RANGE, 0, 255)
            self.emit(isa.STORE_A, A_BUF)
        elif kind < 0.75:
            other, end = isa.Label(), isa.Label()
            self.condition(other)
            self.statement(loops)
            self.emit(isa.JMP, end)
            self.asm.place(other)
            self.statement(loops)
            self.asm.place(end)
        elif kind < 0.82:  # a && b materialised into a local
            false, end = isa.Label(), isa.Label()
            self.condition(false)
            self.condition(false)
            self.emit(isa.PUSH, 1)
            self.emit(isa.JMP, end)
            self.asm.place(false)
            self.emit(isa.PUSH, 0)
            self.asm.place(end)
            self.emit(isa.STORE_L, self.r.randrange(4, N_LOCALS))
        elif kind < 0.9:  # flag(s, med3(flux(s), a, b)) style
            self.emit(isa.PUSH, self.r.randrange(6000))
            self.emit(isa.DUP)
            self.emit(isa.CALLN, N_FLUX)
            self.value(2)
            self.value(2)
            self.emit(isa.EXT_BASE)
            self.emit(isa.RANGE, 0, 255)
            self.emit(isa.CALLN, N_FLAG)
        elif loops < 2:
            slot = 2 * loops
            body, exit_ = isa.Label(), isa.Label()
            self.emit(isa.PUSH, 0)
            self.emit(isa.STORE_L, slot)
            self.emit(isa.LOAD_G, G_PARAM)
            self.emit(isa.STORE_L, slot + 1)
            self.emit(isa.FORPREP, slot, exit_)
            self.asm.place(body)
            for _ in range(self.r.randrange(1, 4)):
                self.statement(loops + 1)
            self.emit(isa.FORLOOP, slot, body)
            self.asm.place(exit_)
        else:
            self.value()
            self.emit(isa.POP)

    def unit(self, size: int) -> bytes:
        """Statements until the estimated size reaches ``size`` bytes, then RET."""
        while self.instructions * 2 < size:  # about two bytes an instruction
            self.statement(0)
        self.emit(isa.RET)
        return self.asm.assemble()


def build(size: int, seed: int) -> tuple[Image, Image, int]:
    """A configuration with one generated code unit of about ``size`` bytes, its VMlet, and
    the number of instructions in the unit."""
    vmlet = _vmlet()
    gen = _Gen(seed)
    code = gen.unit(size)
    config = Image(
        kind=ImageKind.CONFIG, name="bench", version=1, mission="corot",
        uses=(VmletRef(vmlet.name, vmlet.version, vmlet.content_hash),),
        globals=(Global("state", True, 0, 100, 0), Global("n", False, 0, 6000, 3)),
        arrays=(Array("buf", True, 0, 255, (0,) * 8), Array("t", False, 0, 255, (1,) * 8)),
        natives=("flux", "flag"), ext=(ExtRef("bench", "med3"),),
        functions=(CodeUnit("main", 0, N_LOCALS, False, 8, code),),
    )
    return config, vmlet, gen.instructions


def decode_all(code: bytes) -> int:
    """Plain decoding, for comparison: the instructions of ``code``."""
    return sum(1 for _ in isa.decode(code))


def best_of(runs: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    profile = find_mission("corot")
    target = replace(Target.of(profile), code_bytes=max(SIZES) * 2)
    common = {"runs": args.runs, "seed": args.seed, "python": sys.version.split()[0]}
    throughput = {}
    decode_s = verify_s = 0.0
    for size in SIZES:
        config, vmlet, n_instr = build(size, args.seed)
        code = config.functions[0].code
        facts = verify_image(config, target, vmlets=(vmlet,))  # must be accepted
        assert facts.units[0].offsets[-1] < len(code)
        verify_s = best_of(args.runs, partial(verify_image, config, target, vmlets=(vmlet,)))
        decode_s = best_of(args.runs, partial(decode_all, code))
        throughput[size] = len(code) / verify_s
        print(json.dumps({"benchmark": "verifier", "metric": "bytes_per_s",
                          "value": round(throughput[size]), "unit": "bytes/s",
                          "code_bytes": len(code), "instructions": n_instr,
                          "loops": sum(code[o] == isa.FORPREP for o in facts.units[0].offsets),
                          "seconds": round(verify_s, 4), **common}), flush=True)
    small, large = SIZES
    print(json.dumps({"benchmark": "verifier", "metric": "linearity",
                      "value": round(throughput[large] / throughput[small], 3), "unit": "ratio",
                      "note": f"bytes/s at {large} bytes over bytes/s at {small} bytes",
                      **common}), flush=True)
    print(json.dumps({"benchmark": "verifier", "metric": "ratio_vs_decode",
                      "value": round(verify_s / decode_s, 3), "unit": "ratio",
                      "note": "verify_image time over isa.decode time, same 1 MiB unit",
                      "decode_seconds": round(decode_s, 4), **common}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
