"""Mission profiles: what the ground and the onboard VVM agree on about one spacecraft.

A profile is a TOML file (``missions/NAME/mission.toml``). This module reads the parts both
sides need: the CPU model (clock, frame, reconfiguration share, cycles per instruction cost
class), memory limits, the host natives (signatures, ranges, cost formulas, capabilities)
the environment keys and the TC receiver's settings. Ground-only sections (link, stations,
orbit) are kept raw for ``ground/`` to interpret.

A profile may define *variants*: ``[variant.NAME.SECTION]`` tables whose keys replace the
section's. ``find_mission("corot:flight")`` is CoRoT's profile with its ``flight`` variant
applied (``flight = true``: the same spacecraft, flown). The variant does not change the
mission's name, so configurations written for ``mission corot;`` apply to both.

Stdlib only: the onboard side must stand alone.
"""

from __future__ import annotations

import ast
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onboard.errors import OnboardError
from onboard.vm.isa import INT_MAX, INT_MIN, CostClass


class MissionError(OnboardError):
    """A mission that cannot be found or a profile that is malformed."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__("mission", message, hint=hint)


class UnknownMission(MissionError):
    """No profile of that name on the search path: the name given is wrong (a usage error
    on a command line), not the profile."""


# --------------------------------------------------------------------------- cost formulas

_ALLOWED_CALLS = {"min": min, "max": max}


@dataclass(frozen=True)
class CostFormula:
    """A native's cycle cost as an integer formula of its arguments, e.g. ``4 * w * h + 30``.

    Only integer literals, argument names, ``+ - * //`` and ``min``/``max`` are allowed, so the
    formula is total, cheap to evaluate on board, and exact to maximise on the ground.
    """

    text: str
    tree: ast.expr

    @staticmethod
    def parse(text: str, arg_names: Iterable[str]) -> CostFormula:
        try:
            tree = ast.parse(str(text), mode="eval").body
        except SyntaxError as exc:
            raise MissionError(f"cost formula {text!r} is not an expression: {exc.msg}") from None
        allowed = set(arg_names)
        for node in ast.walk(tree):
            ok = isinstance(
                node,
                (ast.BinOp, ast.UnaryOp, ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.USub,
                 ast.Load, ast.Call),
            )
            if isinstance(node, ast.Constant):
                ok = type(node.value) is int
            elif isinstance(node, ast.Name):
                ok = node.id in allowed or node.id in _ALLOWED_CALLS
            elif isinstance(node, ast.Call):
                ok = isinstance(node.func, ast.Name) and node.func.id in _ALLOWED_CALLS
            if not ok:
                raise MissionError(
                    f"cost formula {text!r}: {type(node).__name__} is not allowed",
                    "use integers, argument names, + - * //, min and max",
                )
        return CostFormula(str(text), tree)

    def evaluate(self, args: Mapping[str, int]) -> int:
        """Cycles for the given argument values."""
        return _eval(self.tree, args)

    def bounds(self, args: Mapping[str, tuple[int, int]]) -> tuple[int, int]:
        """The fewest and most cycles for arguments anywhere in their intervals ``args``
        (interval arithmetic: exact for the formulas missions declare, which use each
        argument once, and a sound bound otherwise)."""
        return _bounds(self.tree, args, [0])

    def magnitude(self, args: Mapping[str, tuple[int, int]]) -> int:
        """The largest magnitude any part of the formula takes for arguments in ``args``
        (how wide an exact encoding of it must be)."""
        most = [0]
        _bounds(self.tree, args, most)
        return most[0]


def formula_floordiv(a: int, b: int) -> int:
    """A cost formula's ``a // b``: floor division, 0 when ``b`` is 0 (formulas are total)."""
    return a // b if b else 0


def _eval(node: ast.expr, env: Mapping[str, int]) -> int:
    if isinstance(node, ast.Constant):
        assert type(node.value) is int  # checked by CostFormula.parse
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.UnaryOp):
        return -_eval(node.operand, env)
    if isinstance(node, ast.BinOp):
        a, b = _eval(node.left, env), _eval(node.right, env)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        return formula_floordiv(a, b)
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    return int(_ALLOWED_CALLS[node.func.id](*(_eval(a, env) for a in node.args)))


def _bounds(node: ast.expr, env: Mapping[str, tuple[int, int]],
            most: list[int]) -> tuple[int, int]:
    """Interval of ``node``; ``most[0]`` grows to the largest magnitude seen on the way."""
    lo, hi = _interval(node, env, most)
    most[0] = max(most[0], abs(lo), abs(hi))
    return lo, hi


def _interval(node: ast.expr, env: Mapping[str, tuple[int, int]],
              most: list[int]) -> tuple[int, int]:
    if isinstance(node, ast.Constant):
        assert type(node.value) is int
        return node.value, node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.UnaryOp):
        lo, hi = _bounds(node.operand, env, most)
        return -hi, -lo
    if isinstance(node, ast.BinOp):
        (alo, ahi), (blo, bhi) = _bounds(node.left, env, most), _bounds(node.right, env, most)
        if isinstance(node.op, ast.Add):
            return alo + blo, ahi + bhi
        if isinstance(node.op, ast.Sub):
            return alo - bhi, ahi - blo
        if isinstance(node.op, ast.Mult):
            p = (alo * blo, alo * bhi, ahi * blo, ahi * bhi)
            return min(p), max(p)
        # floor division, 0 when dividing by 0: the quotients at the corners, and 0
        q = [0] if blo <= 0 <= bhi else []
        q += [a // b for a in (alo, ahi) for b in (blo, bhi, -1, 1) if b and blo <= b <= bhi]
        return min(q), max(q)
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    parts = [_bounds(a, env, most) for a in node.args]
    fn = _ALLOWED_CALLS[node.func.id]
    return int(fn(lo for lo, _ in parts)), int(fn(hi for _, hi in parts))


# --------------------------------------------------------------------------- profile


@dataclass(frozen=True)
class ArgSpec:
    """One argument of a native: its name and the range it must lie in."""

    name: str
    lo: int
    hi: int


@dataclass(frozen=True)
class Native:
    """A host service the VVM can offer to programs, as declared by the mission."""

    name: str
    args: tuple[ArgSpec, ...]
    result: tuple[int, int] | None  # range of the result, None if it returns nothing
    cost: CostFormula
    capability: str
    doc: str = ""

    def worst_cost(self) -> int:
        """Cycles at the worst argument values (formulas are monotone in each argument
        over the declared ranges for every profile we ship; checked at load)."""
        return self.cost.evaluate({a.name: a.hi for a in self.args})


@dataclass(frozen=True)
class EnvKey:
    """An environment value the host reports (``env(ccd)``): its range and simulated value."""

    name: str
    lo: int
    hi: int
    value: int


#: The receiver's storage for patches in transit when a profile does not say
#: (``[memory] patch_buffer_bytes``).
DEFAULT_PATCH_BUFFER_BYTES = 131_072

#: Applications on one board are numbered 0 (the default application) .. MAX_APPLICATION:
#: a flight-build limit, which the TC link spends 4 bits on (``onboard.link.tc_frames``).
MAX_APPLICATION = 15


@dataclass(frozen=True)
class ReconfigCosts:
    """What handling a patch costs on board, in cycles of the patch reserve, and how long a
    new configuration stays on probation (``[reconfiguration]`` of the profile)."""

    check_per_byte: int = 80          # CRCs, HMAC-SHA256, decoding and rebuilding
    model_per_byte: int = 1_200       # the MODEL codec's decoder, per decoded byte
    verify_per_code_byte: int = 120   # the load-time bytecode verifier
    store_per_byte: int = 12          # writing a slot of the configuration store
    journal: int = 2_000              # one journal record (every store operation)
    bind_per_code_byte: int = 40      # binding and preparing code at the switch
    probation_frames: int = 600       # clean frames before a new configuration is kept
    max_pending: int = 4              # complete patches waiting for their turn
    on_load_cycles: int = 1_000_000   # cycles a VMlet's `on load` may use


@dataclass(frozen=True)
class ReceiverSettings:
    """The TC receiver's settings (``[receiver]`` of the profile): the link's security
    association and anti-replay window, and when a transfer in progress is given up."""

    spi: int = 1                       # security parameter index of the patch channel
    replay_window: int = 64            # frames below the highest sequence number accepted
    max_transfers: int = 8             # transfers in progress at once
    history: int = 64                  # finished transfers remembered for telemetry
    transfer_timeout_s: int = 259_200  # a transfer without a new share for this long is evicted


@dataclass(frozen=True)
class MissionProfile:
    """The shared facts about one spacecraft."""

    name: str
    path: Path
    mission_id: int
    spacecraft_id: int
    flight: bool
    clock_hz: int
    frame_ms: int
    share_percent: int
    patch_reserve_cycles_per_frame: int
    code_bytes: int
    data_bytes: int
    patch_buffer_bytes: int  # the receiver's storage for the shares of patches in transit
    max_stack: int
    max_call_depth: int
    cycles: Mapping[CostClass, int]
    natives: Mapping[str, Native]
    env: Mapping[str, EnvKey]
    raw: Mapping[str, Any]
    reconfig: ReconfigCosts = ReconfigCosts()
    receiver: ReceiverSettings = ReceiverSettings()
    variant: str = ""  # the variant applied ("" for the plain profile)
    frame_slot_cycles: int = 1  # a call frame's set-up, per local (``[cycles] frame_slot``)

    @property
    def frame_cycles(self) -> int:
        return self.clock_hz * self.frame_ms // 1000

    @property
    def share_cycles_per_frame(self) -> int:
        """Cycles the VVM may use in one frame: the reconfiguration share."""
        return self.frame_cycles * self.share_percent // 100

    @property
    def directory(self) -> Path:
        return self.path.parent


def load_profile(path: Path, variant: str = "") -> MissionProfile:
    """Read and check a ``mission.toml``, with the variant ``variant`` applied if given."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MissionError(f"cannot read mission profile {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise MissionError(f"{path}: not valid TOML: {exc}") from None
    variants = data.get("variant", {})
    if variant:
        if not isinstance(variants, dict) or not isinstance(variants.get(variant), dict):
            known = ", ".join(sorted(variants)) if isinstance(variants, dict) else ""
            raise MissionError(f"{path}: no variant `{variant}`",
                               f"known variants: {known}" if known else
                               "this profile defines no [variant.NAME] tables")
        data = _with_variant(data, variants[variant])
    try:
        return _profile(path, data, variant)
    except (KeyError, TypeError, ValueError) as exc:
        raise MissionError(f"{path}: malformed profile: {exc!r}",
                           "compare with missions/corot/mission.toml") from None


def _with_variant(data: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with each ``[variant.NAME.SECTION]`` key replacing the section's."""
    out = dict(data)
    for section, values in changes.items():
        if not isinstance(values, dict) or not isinstance(out.get(section, {}), dict):
            raise MissionError(f"variant table `{section}` must change a section's keys",
                               "write [variant.NAME.SECTION] with key = value lines")
        out[section] = {**out.get(section, {}), **values}
    return out


def _range(value: Any, what: str) -> tuple[int, int]:
    lo, hi = (int(v) for v in value)
    if not INT_MIN <= lo <= hi <= INT_MAX:
        raise ValueError(f"{what}: bad range [{lo}, {hi}]")
    return lo, hi


def _profile(path: Path, data: Mapping[str, Any], variant: str) -> MissionProfile:
    m, cpu, mem = data["mission"], data["cpu"], data["memory"]
    cycles_raw = data["cycles"]
    cycles = {}
    for cls in CostClass:
        if cls.value not in cycles_raw:
            raise ValueError(f"[cycles] lacks the cost class {cls.value!r}")
        cycles[cls] = int(cycles_raw[cls.value])
    frame_slot = int(cycles_raw.get("frame_slot", 1))
    if frame_slot < 0:
        raise ValueError("[cycles] frame_slot must not be negative")
    natives = {}
    for entry in data.get("native", []):
        args = tuple(
            ArgSpec(a["name"], *_range(a["range"], f"{entry['name']}.{a['name']}"))
            for a in entry.get("args", [])
        )
        result = _range(entry["result"], entry["name"]) if "result" in entry else None
        cost = CostFormula.parse(str(entry["cost"]), (a.name for a in args))
        native = Native(entry["name"], args, result, cost, entry.get("capability", ""),
                        entry.get("doc", ""))
        if native.name in natives:
            raise ValueError(f"native {native.name!r} declared twice")
        natives[native.name] = native
    env = {}
    for name, spec in data.get("env", {}).items():
        lo, hi = _range(spec["range"], f"env.{name}")
        env[name] = EnvKey(name, lo, hi, int(spec.get("value", lo)))
    return MissionProfile(
        name=m["name"],
        path=path,
        mission_id=int(m["id"]),
        spacecraft_id=int(m["spacecraft_id"]),
        flight=bool(m.get("flight", False)),
        clock_hz=int(cpu["clock_hz"]),
        frame_ms=int(cpu["frame_ms"]),
        share_percent=int(cpu["share_percent"]),
        patch_reserve_cycles_per_frame=int(cpu.get("patch_reserve_cycles_per_frame", 0)),
        code_bytes=int(mem["code_bytes"]),
        data_bytes=int(mem["data_bytes"]),
        patch_buffer_bytes=int(mem.get("patch_buffer_bytes", DEFAULT_PATCH_BUFFER_BYTES)),
        max_stack=int(mem["max_stack"]),
        max_call_depth=int(mem["max_call_depth"]),
        cycles=cycles,
        natives=natives,
        env=env,
        raw=data,
        reconfig=_reconfig(data.get("reconfiguration", {})),
        receiver=_receiver(data.get("receiver", {})),
        variant=variant,
        frame_slot_cycles=frame_slot,
    )


def _reconfig(table: Mapping[str, Any]) -> ReconfigCosts:
    known = ReconfigCosts.__dataclass_fields__
    for key in table:
        if key not in known:
            raise ValueError(f"[reconfiguration] has an unknown key {key!r} "
                             f"(known: {', '.join(known)})")
    values = {k: int(v) for k, v in table.items()}
    if any(v < 0 for v in values.values()) or values.get("max_pending", 1) < 1:
        raise ValueError("[reconfiguration] values must be >= 0 (max_pending >= 1)")
    return ReconfigCosts(**values)


def _receiver(table: Mapping[str, Any]) -> ReceiverSettings:
    known = ReceiverSettings.__dataclass_fields__
    for key in table:
        if key not in known:
            raise ValueError(f"[receiver] has an unknown key {key!r} (known: {', '.join(known)})")
    values = {k: int(v) for k, v in table.items()}
    if any(v < 1 for v in values.values()):
        raise ValueError("[receiver] values must be >= 1")
    return ReceiverSettings(**values)


# --------------------------------------------------------------------------- lookup

#: Environment variable naming extra mission folders (``os.pathsep``-separated).
MISSIONS_ENV = "CCL_MISSIONS"


def default_mission_dirs() -> list[Path]:
    """The project's own ``missions/`` folder (found beside this package)."""
    return [Path(__file__).resolve().parent.parent / "missions"]


def mission_search_path(extra: Iterable[Path] = ()) -> list[Path]:
    """Folders searched for missions: ``--missions`` folders, then $CCL_MISSIONS, then ours."""
    dirs = list(extra)
    env = os.environ.get(MISSIONS_ENV, "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    return dirs + default_mission_dirs()


def find_mission(name: str, extra: Iterable[Path] = ()) -> MissionProfile:
    """Load the profile of mission ``name`` from the search path; ``NAME:VARIANT`` applies
    one of its variants (e.g. ``corot:flight``)."""
    search = mission_search_path(extra)
    name, _, variant = name.partition(":")
    for folder in search:
        candidate = folder / name / "mission.toml"
        if candidate.is_file():
            return load_profile(candidate, variant)
    known = sorted({p.parent.name for d in search if d.is_dir() for p in d.glob("*/mission.toml")})
    raise UnknownMission(
        f"unknown mission `{name}`",
        (f"known missions: {', '.join(known)}; " if known else "")
        + f"add a folder with --missions DIR or ${MISSIONS_ENV}",
    )
