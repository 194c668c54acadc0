"""What compiling one CCL file hands on: the checked program (IR), its image, the debug
information, the mission profile, and the compiled VMlets it runs on.

Proofs (``ccl.verify``), packing (``ccl.pack``) and the simulations take this, not the
driver that made it: the arrows run from the front end to them, never back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # names for the fields only: `ccl check` need not load the code generator
    from ccl import ir
    from ccl.codegen import DebugInfo
    from onboard.mission import MissionProfile
    from onboard.vm.image import Image


@dataclass(frozen=True)
class Compiled:
    """A compiled configuration or VMlet, with the VMlets it runs on."""

    program: ir.Program
    image: Image
    debug: DebugInfo
    mission: MissionProfile
    vmlets: tuple[Compiled, ...] = ()
