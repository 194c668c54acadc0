"""The bytecode verifier's interface: what an image is checked against (``Target``), what the
verifier learns (``UnitFacts``, ``ImageFacts``), and how it refuses (``VerifyError`` with a
reason code from ``REASONS``). The reason codes are listed in ``onboard.vm.verifier``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from onboard.errors import OnboardError
from onboard.mission import MissionProfile
from onboard.vm.image import CodeUnit, Image
from onboard.vm.machine import CostModel, Limits

REASONS = frozenset({
    "bad-opcode", "truncated", "overlong-varint", "varint-overflow",
    "bad-local", "bad-global", "bad-array", "bad-func", "bad-native", "hidden-native",
    "bad-env", "bad-ext",
    "readonly-global", "readonly-array", "loop-counter-written", "hide-outside-on-load",
    "bad-jump", "falls-off-end",
    "loop-structure", "loop-stack", "jump-into-loop", "jump-out-of-loop",
    "stack-underflow", "stack-overflow", "stack-mismatch", "bad-return",
    "bad-frame",
    "bad-section", "bad-data", "bad-entry", "bad-vmlet", "recursion", "call-depth",
    "code-too-large", "data-too-large", "frame-charge",
})

class VerifyError(OnboardError):
    """Code the VVM refuses to load: a stable reason code, where, and one sentence why."""

    def __init__(self, code: str, unit: str | int, offset: int | None, message: str) -> None:
        super().__init__(code, message, field=str(unit), offset=offset)
        self.unit = unit

    @property
    def where(self) -> str:
        """``unit`` or ``unit +offset`` (a code offset, not a byte of the image)."""
        return f"{self.unit}" if self.offset is None else f"{self.unit} +{self.offset}"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def __repr__(self) -> str:
        return f"VerifyError({self.code!r}, {self.unit!r}, {self.offset!r}, {self.message!r})"


# --------------------------------------------------------------------------- inputs and facts


@dataclass(frozen=True)
class NativeSig:
    """What the verifier needs of a mission native: its argument count and whether it
    returns a value."""

    n_args: int
    returns: bool


@dataclass(frozen=True)
class Target:
    """What an image is verified against: the mission's limits, natives and environment."""

    max_stack: int  # operand stack entries per code unit
    max_call_depth: int  # nested calls (an extension opcode's body counts as one)
    code_bytes: int  # bytecode this image may take
    data_bytes: int  # globals, arrays and the deepest chain of call frames
    max_locals: int  # locals of one code unit
    natives: Mapping[str, NativeSig] = field(default_factory=dict)
    env: frozenset[str] = frozenset()
    costs: CostModel | None = None  # with a frame budget: no fixed charge may exceed it
    frame_budget: int = 0  # cycles a frame leaves the tasks (0: not checked)
    frame_ms: int = 0  # task periods must be multiples of it (0: not checked)

    @staticmethod
    def of(profile: MissionProfile) -> Target:
        """The target of ``profile``'s spacecraft, with all its memory free: the machine
        model's ``Limits``. A frame's locals may take at most the data memory, which keeps a
        hostile ``n_locals`` from exhausting the host."""
        limits = Limits.of(profile)
        return Target(
            max_stack=limits.max_stack,
            max_call_depth=limits.max_call_depth,
            code_bytes=limits.code_bytes,
            data_bytes=limits.data_bytes,
            max_locals=limits.max_locals,
            natives={name: NativeSig(len(n.args), n.result is not None)
                     for name, n in profile.natives.items()},
            env=frozenset(profile.env),
            costs=CostModel.of(profile),
            frame_budget=limits.frame_budget,
            frame_ms=profile.frame_ms,
        )

    def measuring(self) -> Target:
        """This target with every memory and depth limit lifted, to measure an image rather
        than to judge it (the ground compares the figures with the limits itself)."""
        big = 1 << 62
        return replace(self, code_bytes=big, data_bytes=big, max_call_depth=big,
                       max_stack=big, max_locals=big, frame_budget=0)


@dataclass(frozen=True)
class ExtTarget:
    """Extension opcode ``EXT_BASE + k`` resolved: the VMlet instruction's body (code unit
    ``function`` of VMlet ``vmlet``) and its signature."""

    vmlet: str
    function: int
    n_params: int
    returns: bool
    n_locals: int  # its frame: what the dispatch sets up


@dataclass(frozen=True)
class UnitFacts:
    """What the verifier learned about one code unit, for the loader and the translator."""

    max_stack: int  # deepest operand stack any execution reaches
    offsets: tuple[int, ...]  # offset of each instruction, ascending
    depth: tuple[int, ...]  # stack depth before each instruction; -1: dead code
    calls: tuple[int, ...]  # code units of this image called with CALL (sorted, each once)
    exts: tuple[int, ...]  # extension indices used (opcode - EXT_BASE; sorted, each once)
    # offsets of the first instruction of each distinct one-piece charge (per opcode, and
    # per callee of CALL and native of CALLN), ascending: all the frame-charge rule reads
    charge_sites: tuple[int, ...] = ()


@dataclass(frozen=True)
class ImageFacts:
    """What the verifier learned about one image."""

    units: tuple[UnitFacts, ...]  # by code unit index
    ext: tuple[ExtTarget, ...]  # by extension index
    visible: frozenset[str]  # natives this image's code may call
    call_heights: tuple[int, ...]  # nested calls below each unit (0: it calls nothing)
    frame_chains: tuple[int, ...] = ()  # bytes of the deepest chain of frames from each unit
    static_data: int = 0  # bytes of globals and arrays at their ranged widths
    largest_charge: int = 0  # the largest fixed charge of one instruction (0: not computed)
    # a VMlet's: the fixed cost of each code unit as an instruction body, None where it is
    # charged as it runs (the machine model's ``units_fixed_cost``; empty: not computed)
    unit_fixed: tuple[int | None, ...] = ()

    @property
    def call_depth(self) -> int:
        """The longest chain of nested calls from any unit."""
        return max(self.call_heights, default=0)

    @property
    def data_bytes(self) -> int:
        """The image's data memory: globals, arrays and its deepest chain of frames."""
        return self.static_data + max(self.frame_chains, default=0)


def unit_label(unit: CodeUnit, index: int) -> str | int:
    """How errors name code unit ``index``: its name, or its index if it has none."""
    return unit.name if unit.name else index


def image_error(image: Image, code: str, message: str) -> VerifyError:
    """A refusal under a rule about the whole image: named by the image, no offset."""
    return VerifyError(code, image.name, None, message)
