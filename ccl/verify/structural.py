"""The cheap structural pass: memory, operand stack, call depth and one-piece charges, before
any solving, measured by the board's own load-time verifier.

These budgets follow from the image's shape alone, so the ground does not compute them
again: it runs ``onboard.vm.verifier.verify_image`` (with every limit lifted, to measure) on
the image ``ccl.codegen`` emitted and the VMlets it runs on, and compares the figures with
the mission's limits (``onboard.vm.machine.Limits``): code of the image and its VMlets, data
(globals and arrays at their ranged widths, plus the deepest chain of call frames), the
deepest declared operand stack, the longest chain of nested frames (VMlet instructions
included), and the largest charge of one instruction against what a frame leaves the tasks.
Last, the image is loaded as the board loads it (the verifier with the real limits, then
the VMlets' ``on load`` in the mission's environment, binding and translation): an image
the board would refuse is never proven, whatever the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ccl import ir
from ccl.diagnostics import Span
from ccl.verify.irwalk import callees
from ccl.verify.obligations import Counterexample, Kind, Method, Obligation, Status, Value
from ccl.verify.replay import TrialHost
from onboard.mission import MissionProfile
from onboard.patching.patch_format import memory_bytes
from onboard.vm.board import part_cycles
from onboard.vm.image import Image, ImageKind
from onboard.vm.loader import LoadError
from onboard.vm.machine import Limits, slot_bytes
from onboard.vm.verifier import ImageFacts, Target, VerifyError, verify_image
from onboard.vm.vvm import VVM


def called_functions(program: ir.Program) -> set[str]:
    """Functions some procedure of ``program`` calls."""
    out: set[str] = set()
    for proc in (*program.functions, *(t.proc for t in program.tasks),
                 *(r.proc for r in program.rules),
                 *(p for p in (program.on_apply, program.on_load) if p is not None)):
        out |= callees(proc.body)
    return out


@dataclass(frozen=True)
class Shape:
    """The structural figures of one program."""

    code_bytes: int
    data_bytes: int
    max_stack: int
    call_depth: int
    largest_charge: int  # cycles of the dearest instruction charged in one piece


def measure(image: Image, vmlet_images: tuple[Image, ...],
            mission: MissionProfile) -> tuple[ImageFacts, str | None]:
    """The board verifier's facts about ``image`` with every limit lifted, and why the
    board would refuse it (None: it would load; ``board_refusal``)."""
    facts = verify_image(image, Target.of(mission).measuring(), vmlets=vmlet_images)
    return facts, board_refusal(image, vmlet_images, mission)


def board_refusal(image: Image, vmlet_images: tuple[Image, ...],
                  mission: MissionProfile) -> str | None:
    """Why the VVM would refuse to load ``image`` on ``vmlet_images``, or None: its
    load-time verifier with the mission's real limits, then the load itself on a VVM of
    the mission, in the profile's environment, where each VMlet's ``on load`` runs and
    may hide natives the configuration imports."""
    try:
        verify_image(image, Target.of(mission), vmlets=vmlet_images)
    except VerifyError as exc:
        return f"{exc.code}: {exc}"
    vm = VVM(mission, TrialHost(mission, {}))
    try:
        for v in vmlet_images:  # lower layers first (a VMlet's: the layers below it)
            vm.load_vmlet(v)
        if image.kind is ImageKind.VMLET:
            vm.load_vmlet(image)
        else:
            vm.prepare(image)
    except LoadError as exc:
        return f"{exc.code}: {exc.message}"
    return None


def check(program: ir.Program, image: Image, vmlet_images: tuple[Image, ...],
          mission: MissionProfile) -> tuple[Shape, list[Obligation]]:
    """The structural figures and their obligations against ``mission``'s limits."""
    limits = Limits.of(mission)
    facts, refusal = measure(image, vmlet_images, mission)
    code = memory_bytes(image, vmlet_images)[0]
    data = facts.data_bytes
    units = [u for img in (image, *vmlet_images) for u in img.functions]
    deepest = max(units, key=lambda u: u.max_stack, default=None)
    stack = deepest.max_stack if deepest is not None else 0
    depth = facts.call_depth
    chain = _chain(image, facts)
    procs = {p.name: p for p in _procedures(program)}
    biggest = max(image.functions, key=lambda u: len(u.code), default=None)
    largest_array = max(program.arrays, key=lambda a: a.length * slot_bytes(a.type.lo, a.type.hi),
                        default=None)
    head = program.tasks[0].span if program.tasks else None
    # an application's tasks have its part of every frame (``onboard.vm.board``)
    frame_budget = limits.frame_budget if program.application is None else \
        part_cycles(mission, program.application.share_percent)
    obs = [
        _limit(Kind.CODE_MEMORY, code, limits.code_bytes, "bytes of code",
               _span(procs, biggest.name if biggest else None, head),
               f"the code ({code} bytes, with the VMlets it runs on) fits in the mission's "
               f"{limits.code_bytes} bytes of code memory", program.name),
        _limit(Kind.DATA_MEMORY, data, limits.data_bytes, "bytes of data",
               largest_array.span if largest_array else head,
               f"the data ({facts.static_data} bytes of globals and arrays, "
               f"{data - facts.static_data} of call frames) fits in the mission's "
               f"{limits.data_bytes} bytes of data memory", program.name),
        _limit(Kind.STACK, stack, limits.max_stack, "operand stack entries",
               _span(procs, deepest.name if deepest else None, head),
               f"every code unit's operand stack ({stack} entries at most) fits in the "
               f"mission's {limits.max_stack}", program.name),
        _limit(Kind.CALL_DEPTH, depth, limits.max_call_depth, "nested calls",
               _span(procs, chain[0] if chain else None, head),
               f"calls nest at most {limits.max_call_depth} deep, VMlet instructions "
               f"included (here {depth}" + (f": {' > '.join(chain)}" if chain else "") + ")",
               program.name),
        _limit(Kind.FRAME_CHARGE, facts.largest_charge, frame_budget, "cycles",
               head, f"no instruction is charged more in one piece ({facts.largest_charge} "
               f"cycles at most) than the {frame_budget} a frame leaves the tasks"
               + (f" of application {program.application.name}"
                  if program.application is not None else ""),
               program.name),
    ]
    if all(o.status is Status.PROVEN for o in obs):
        message = "the VVM loads the image (its verifier, the VMlets' `on load`, the binding)"
        if refusal is None:
            obs.append(Obligation(Kind.LOAD, Status.PROVEN, head, message, program.name,
                                  Method.ARITHMETIC))
        else:
            cex = Counterexample((), detail=refusal)
            obs.append(Obligation(Kind.LOAD, Status.REFUTED, head, message, program.name,
                                  Method.ARITHMETIC, cex))
    shape = Shape(code, data, stack, depth, facts.largest_charge)
    return shape, obs


def _chain(image: Image, facts: ImageFacts) -> tuple[str, ...]:
    """The names along the longest chain of nested calls (CALLs within the image)."""
    if not facts.call_heights:
        return ()
    u = max(range(len(facts.call_heights)), key=lambda i: facts.call_heights[i])
    names = [image.functions[u].name]
    while facts.call_heights[u] > 0:
        below = facts.call_heights[u] - 1
        nxt = [v for v in facts.units[u].calls if facts.call_heights[v] == below]
        if not nxt:
            names.append("a VMlet instruction")
            break
        u = nxt[0]
        names.append(image.functions[u].name)
    return tuple(names)


def _limit(kind: Kind, used: int, limit: int, unit: str, span: Span | None, message: str,
           where: str) -> Obligation:
    if used <= limit:
        return Obligation(kind, Status.PROVEN, span, message, where, Method.ARITHMETIC)
    cex = Counterexample((Value(unit, used, "size"),),
                         detail=f"{used} {unit}, the limit is {limit}")
    return Obligation(kind, Status.REFUTED, span, message, where, Method.ARITHMETIC, cex)


def _span(procs: dict[str, ir.Procedure], name: str | None, default: Span | None) -> Span | None:
    proc = procs.get(name) if name is not None else None
    return proc.span if proc is not None else default


def _procedures(program: ir.Program) -> Iterator[ir.Procedure]:
    yield from program.functions
    yield from program.instrs
    yield from (t.proc for t in program.tasks)
    yield from (p for p in (program.on_apply, program.on_load) if p is not None)
