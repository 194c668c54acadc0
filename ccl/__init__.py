"""The ground compiler for CCL, in the order data flows: ``syntax`` (textX) -> ``sema``
(names, types, ranges) -> ``ir`` (typed IR) -> ``codegen`` (bytecode and image, against
``onboard.vm.isa``) -> ``compiled`` (what a compile hands on), driven by ``driver`` (files,
missions, VMlets). Beside codegen, taking the same IR and image: ``verify`` (the Z3 proofs)
and ``pack`` (image to patch). On top, ``soundness``: proven programs flown on the real VVM.
"""
