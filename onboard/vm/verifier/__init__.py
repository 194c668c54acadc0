"""The load-time bytecode verifier: what the VVM checks before it runs any uploaded code.

One linear pass per code unit, in the style of WebAssembly validation (``code``): decoding
is fused with checking, and the pass keeps only an operand-stack depth, the open
``FORPREP``/``FORLOOP`` loops and the forward jumps still waiting for their target; each
instruction is checked by the checker of its family. A unit that passes cannot underflow
or overflow its operand stack, name anything outside its image's tables, write a
read-only global or array, call a native it may not see, jump into the middle of an
instruction or into a loop, run past its end, or loop forever (a loop's counter and limit
are never written inside it). ``verify_image`` (``image_rules``) adds the image-level
rules: sections that fit the image's kind, data inside its declared ranges, entry points,
the VMlets used and the instructions bound to extension opcodes, no recursion, bounded
call depth (``calls``), memory budgets. ``interface`` holds the inputs, the facts and the
error.

Dead code (what ``if false { ... }`` or a statement after ``return`` compiles to) is
accepted, as WebAssembly accepts it: it must decode, its operands must be in bounds and its
jumps and loops well formed, but no stack rule applies to it, since no execution reaches it.
Its depth in ``UnitFacts.depth`` is -1; an execution engine never needs to translate it.

The verifier trusts nothing in the image: it raises ``VerifyError`` (and nothing else) on
any input and takes time linear in the size of the image. Stdlib only, besides ``onboard``
itself: the onboard side stands alone.

API (stable: the loader, the patcher and the tests call it)::

    verify_image(image: Image, target: Target, *,
                 vmlets: Sequence[Image] = (),
                 hidden: Mapping[str, Collection[str]] | None = None) -> ImageFacts

* ``target``: what the image runs on: the mission's limits and natives, ``Target.of(profile)``
  for a ``MissionProfile``. ``code_bytes`` and ``data_bytes`` are the memory this image may
  take (the loader subtracts what other loaded images hold).
* ``vmlets``: the images of the VMlets loaded on board; each VMlet in ``image.uses`` must be
  among them with the pinned version and content hash. They give the extension opcodes their
  instructions (argument count, result, call depth of the body) and the natives a
  configuration may call: those its VMlets expose and do not hide. A VMlet image's own code
  sees the natives it exposes, and may use its own instructions.
* ``hidden``: natives that each VMlet's ``on load`` has hidden since, by VMlet name; calls of
  them are refused like calls of natives no used VMlet exposes.
* Returns ``ImageFacts``: per code unit the deepest operand stack (``units[i].max_stack``),
  per-instruction offsets and depths, and the units and extension opcodes it calls; the
  resolved extension opcodes; the visible natives; the call height of every unit. Raises
  ``VerifyError(code, unit, offset, message)``: ``unit`` is the code unit's name (its index
  if it has none) or, for rules about the whole image, the image's name; ``offset`` is the
  byte offset in the unit, or None.

Reason codes (``VerifyError.code``; all in ``REASONS``), stable for tests and telemetry:

=========================  ================================================================
decoding                   ``bad-opcode``, ``truncated``, ``overlong-varint`` (more bytes
                           than the value needs, or more than five), ``varint-overflow``
                           (beyond 32 bits)
operands                   ``bad-local``, ``bad-global``, ``bad-array``, ``bad-func``,
                           ``bad-native`` (no such import, or unknown to the mission),
                           ``hidden-native``, ``bad-env``, ``bad-ext``
writes                     ``readonly-global``, ``readonly-array``, ``loop-counter-written``,
                           ``hide-outside-on-load``
control flow               ``bad-jump``, ``falls-off-end``
loops                      ``loop-structure``, ``loop-stack`` (operand stack not empty at
                           FORPREP/FORLOOP), ``jump-into-loop``, ``jump-out-of-loop``
operand stack              ``stack-underflow``, ``stack-overflow``, ``stack-mismatch``,
                           ``bad-return``
frame                      ``bad-frame`` (more parameters than locals, too many locals)
image                      ``bad-section``, ``bad-data``, ``bad-entry`` (also a task period
                           that is not a whole number of frames), ``bad-vmlet``,
                           ``recursion``, ``call-depth``, ``code-too-large``,
                           ``data-too-large`` (globals and arrays at their ranged widths
                           plus the deepest chain of call frames, ``onboard.vm.machine``)
costs                      ``frame-charge`` (one instruction charged in one piece more
                           than a frame leaves the tasks: it could never start)
=========================  ================================================================
"""

from onboard.vm.verifier.image_rules import verify_image
from onboard.vm.verifier.interface import (
    REASONS,
    ExtTarget,
    ImageFacts,
    NativeSig,
    Target,
    UnitFacts,
    VerifyError,
)

__all__ = ["REASONS", "ExtTarget", "ImageFacts", "NativeSig", "Target", "UnitFacts",
           "VerifyError", "verify_image"]
