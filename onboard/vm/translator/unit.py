"""One code unit translated into the source of one (generator) function, its local ranges
iterated to a fixpoint."""

from __future__ import annotations

from onboard.vm.translator.context import ImageContext, UnitSpec
from onboard.vm.translator.instructions import emitter_for
from onboard.vm.translator.ranges import FULL, Range, hull
from onboard.vm.translator.regions import emit_region
from onboard.vm.translator.state import UnitState
from onboard.vm.translator.writer import fill_empty_suites


class UnitTranslator:
    """One pass over a unit: its source, given what its locals may hold."""

    def __init__(self, ctx: ImageContext, spec: UnitSpec, local_ranges: dict[int, Range]) -> None:
        self.state = UnitState(ctx, spec, local_ranges, emitter_for)

    def translate(self) -> str:
        """The unit's function; ``self.state.stored`` then says what its locals got."""
        st = self.state
        cu = st.spec.bound.image.functions[st.spec.unit]
        params = ", ".join(f"l{i}" for i in range(cu.n_params))
        head = f"def {st.spec.fn_name}(budget{', ' if params else ''}{params}):"
        for slot in range(cu.n_params, cu.n_locals):
            st.emit(f"l{slot} = 0")
        ins = st.flow.ins
        starts = st.flow.block_starts(st.costs.meters_alone)
        emit_region(st, st.flow.items(0, len(ins), starts), len(ins))
        if st.metered:
            st.emit("yield budget  # never reached: makes this a generator")
        return "\n".join([head, *st.out.lines])


def translate_unit(ctx: ImageContext, spec: UnitSpec, max_passes: int) -> str:
    """The source of one unit, its local ranges iterated to a fixpoint."""
    ranges: dict[int, Range] = {}
    cu = spec.bound.image.functions[spec.unit]
    for slot in range(cu.n_params):
        ranges[slot] = FULL  # arguments: any value (a store must not narrow them)
    for slot in range(cu.n_params, cu.n_locals):
        ranges[slot] = (0, 0)  # locals start at zero
    # Ranges only grow from pass to pass. After ``max_passes`` a local still growing (a
    # counter: ``n = n + 1``) may hold any 32-bit value; the others keep what they proved
    # (one such counter must not cost every other local its range). Each widening makes
    # at least one more local FULL for good, so this ends.
    for passes in range(max_passes + len(ranges) + 1):
        ut = UnitTranslator(ctx, spec, ranges)
        src = ut.translate()
        new = dict(ranges)
        for slot, r in ut.state.stored.items():
            new[slot] = hull(new.get(slot, r), r)
        if new == ranges:
            break
        if passes + 1 >= max_passes:
            new = {slot: FULL if new[slot] != ranges.get(slot) else r
                   for slot, r in new.items()}
        ranges = new
    else:
        # not settled: everything assigned in the unit may be any 32-bit value
        ranges = {slot: FULL for slot in ranges}
        src = UnitTranslator(ctx, spec, ranges).translate()
    return "\n".join(fill_empty_suites(src.split("\n")))
