"""Structured control flow written as Python: a region's blocks and loops become
``if``/``else`` trees where its forward jumps nest (a chain of guarded blocks where they do
not), and counted loops become ``for`` loops, metered as a whole where that is exact.

A loop whose body is one straight-line block of fixed cost is charged for all the
iterations left at once when the budget covers them (then runs unmetered), else runs as a
headroom loop, batched to what the budget covers. A loop whose
iterations cannot suspend on their own runs as many iterations as the budget covers on
their most expensive path without checking the budget (the headroom loop), then one checked
iteration, and again. A trap in code charged ahead gives back what did not run. A loop
that cannot suspend and whose counter only loads one array it does not store iterates a
slice of that array instead of indexing it (``for w2 in A0[l2:e2]``)."""

from __future__ import annotations

import re
from collections.abc import Callable

from onboard.vm import isa
from onboard.vm.translator.blocks import emit_block
from onboard.vm.translator.state import UnitState
from onboard.vm.translator.structure import Block, Item, Loop, TreeNode

#: A headroom loop's batch charge: the body's if/else tree, the cycles every iteration
#: spends (its top-level blocks and FORLOOP), and for each top-level node what of those
#: follows it.
HoistPlan = tuple[list[TreeNode], int, list[int]]


def emit_region(st: UnitState, items: list[Item], end: int) -> None:
    """Emit a sequence of items; forward jumps target items of the same sequence or
    ``end`` (an instruction index: the region's exit)."""
    starts = {it.start: k for k, it in enumerate(items) if isinstance(it, Block)}
    tree = st.flow.tree(items, 0, len(items), end, starts)
    if tree is not None:
        emit_tree(st, tree, items)
    else:
        emit_chain(st, items, end, starts)


def emit_tree(st: UnitState, tree: list[TreeNode], items: list[Item]) -> None:
    """Emit an if/else tree over ``items``."""
    for node in tree:
        kind = node[0]
        if kind == "loop":
            emit_loop(st, items[node[1]])  # type: ignore[arg-type]
        elif kind in ("block", "jump"):
            emit_block(st, items[node[1]])  # type: ignore[arg-type]
            st.spill()
        else:
            _emit_if(st, node, items)


def _emit_if(st: UnitState, node: TreeNode, items: list[Item]) -> None:
    _, k, then_tree, else_tree = node
    cond = emit_block(st, items[k])  # type: ignore[arg-type]
    assert cond is not None
    st.spill()
    depth = len(st.stack)
    st.emit(f"if {cond}:")
    with st.indented():
        emit_tree(st, then_tree, items) if then_tree else st.emit("pass")
    # Where the branches join, the stack holds what the jump carried; with an else, what
    # the then branch's final jump carries. (A then branch that ends in a return leaves a
    # stack that says nothing about the join.)
    join = depth
    if else_tree:
        join = len(st.stack)
        st.reset_stack(depth)
        st.emit("else:")
        with st.indented():
            emit_tree(st, else_tree, items)
    st.reset_stack(join)


def emit_chain(st: UnitState, items: list[Item], end: int, starts: dict[int, int]) -> None:
    """General forward jumps: run item k when the chain variable says k."""
    var = f"x{st.chain_depth}"
    st.chain_depth += 1
    st.emit(f"{var} = 0")
    depth_at: dict[int, int] = {0: len(st.stack)}
    for k, it in enumerate(items):
        st.emit(f"if {var} == {k}:")
        with st.indented():
            st.reset_stack(depth_at.get(k, 0))
            if isinstance(it, Loop):
                emit_loop(st, it)
                st.emit(f"{var} = {k + 1}")
                depth_at[k + 1] = 0
            else:
                _emit_chain_block(st, it, k, var, len(items), end, starts, depth_at)
    st.chain_depth -= 1
    st.reset_stack(depth_at.get(len(items), 0))


def _emit_chain_block(st: UnitState, block: Block, k: int, var: str, n_items: int, end: int,
                      starts: dict[int, int], depth_at: dict[int, int]) -> None:
    """Block ``k`` of a chain, then the chain variable set to the item that runs next."""
    cond = emit_block(st, block)
    op = st.flow.last_opcode(block)
    t = st.flow.jump_target(block)
    tk = n_items if t == end else (starts.get(t) if t is not None else None)
    st.spill()
    depth = len(st.stack)
    if op == isa.JMP:
        st.emit(f"{var} = {tk}")
        depth_at[tk] = depth  # type: ignore[index]
    elif cond is not None:
        st.emit(f"{var} = {k + 1} if {cond} else {tk}")
        depth_at[k + 1] = depth
        depth_at[tk] = depth  # type: ignore[index]
    elif op not in (isa.RET, isa.RETV):
        st.emit(f"{var} = {k + 1}")
        depth_at[k + 1] = depth


def emit_loop(st: UnitState, loop: Loop) -> None:
    """A counted loop as a Python ``for`` loop over its counter."""
    s = loop.slot
    lim = s + 1
    # In the body the counter is below the limit (the verifier guarantees the body
    # writes neither), which removes most index and argument checks on it.
    # The block that ends with FORPREP set the counter and the limit: their ranges there
    # are sharper than the flow-insensitive ones (which include the initial zero).
    outer = st.local_ranges.get(s)
    start = st.known.get(s, st.lrange(s))
    limit = st.known.get(lim, st.lrange(lim))
    st.local_ranges[s] = (start[0], max(start[0], limit[1] - 1))
    st.emit(f"if l{s} < l{lim}:")
    with st.indented():
        per_iteration = st.costs.fixed_body_cost(loop)
        if per_iteration is not None and st.metered:
            _emit_batched_loop(st, loop, per_iteration)
        else:
            _emit_metered_loop(st, loop, per_iteration is None)
    if outer is None:
        del st.local_ranges[s]
    else:
        st.local_ranges[s] = outer


def _emit_batched_loop(st: UnitState, loop: Loop, per_iteration: int) -> None:
    """A straight-line body of fixed cost: when the budget covers every iteration left,
    charge them all at once and run the body unmetered (else as any loop). A trap gives
    back what the iterations after it (and the rest of its own) would have cost."""
    s, lim = loop.slot, loop.slot + 1
    forloop = st.bound.op_cost[isa.FORLOOP]
    st.emit(f"c = (l{lim} - l{s}) * {per_iteration}")
    st.emit("if budget >= c:")
    with st.indented():
        st.emit("budget -= c")

        def body() -> None:
            st.reset_stack(0)
            st.metered = False
            st.refund_extra = f" + {forloop} + (l{lim} - 1 - l{s}) * {per_iteration}"
            try:
                emit_region(st, loop.body, loop.latch)
            finally:
                st.metered = True
                st.refund_extra = ""

        _emit_unsuspended_for(st, loop, f"l{lim}", body)
        st.emit(f"l{s} = l{lim}")
    st.emit("else:")
    with st.indented():
        # The iterations left do not fit in this frame: batch to what fits (a budget
        # check every iteration would cost as much as the body itself).
        _emit_metered_loop(st, loop, True)


def _emit_metered_loop(st: UnitState, loop: Loop, may_batch: bool) -> None:
    """The loop with its budget checked: by batches of iterations the budget covers at
    their worst (``may_batch``, when that worst is known), else iteration by iteration."""
    worst = st.costs.worst_iteration_cost(loop) if may_batch else None
    if worst is not None and st.metered and not st.unchecked:
        _emit_headroom_loop(st, loop, worst)
        return
    s, lim = loop.slot, loop.slot + 1

    def body() -> None:
        st.reset_stack(0)
        if loop.body:
            emit_region(st, loop.body, loop.latch)
        st.meter_single(st.bound.op_cost[isa.FORLOOP])

    if st.metered:
        st.emit(f"for l{s} in range(l{s}, l{lim}):")
        with st.indented():
            body()
    else:  # nothing in it is metered: it cannot suspend
        _emit_unsuspended_for(st, loop, f"l{lim}", body)
    st.emit(f"l{s} = l{lim}")


def _emit_headroom_loop(st: UnitState, loop: Loop, worst: int) -> None:
    """A loop whose iterations cannot suspend on their own: run as many iterations as
    the budget covers even on their most expensive path without checking the budget
    (charging exactly what runs), then one checked iteration, and again. What every
    iteration runs (its top-level blocks and FORLOOP) is charged once per batch when
    the body's structure allows; a trap gives back what the batch did not run."""
    s, lim = loop.slot, loop.slot + 1
    st.emit(f"while l{s} < l{lim}:")
    with st.indented():
        st.emit(f"k{s} = budget // {worst}")
        st.emit(f"if k{s}:")
        with st.indented():
            st.emit(f"e{s} = min(l{lim}, l{s} + k{s})")
            plan = _hoisting(st, loop)
            if plan is not None:
                st.emit(f"budget -= (e{s} - l{s}) * {plan[1]}")
            _emit_unsuspended_for(st, loop, f"e{s}",
                                  lambda: _emit_unchecked_iteration(st, loop, plan))
            st.emit(f"l{s} = e{s}")
        st.emit("else:")
        with st.indented():
            st.reset_stack(0)
            emit_region(st, loop.body, loop.latch)
            st.meter_single(st.bound.op_cost[isa.FORLOOP])
            st.emit(f"l{s} += 1")


def _emit_unchecked_iteration(st: UnitState, loop: Loop, plan: HoistPlan | None) -> None:
    """The body of a headroom loop's batch: charged without checks, or (with a ``plan``)
    not at all where the batch's charge covered it."""
    s = loop.slot
    st.reset_stack(0)
    st.unchecked = True
    outer_extra = st.refund_extra
    try:
        if plan is None:
            emit_region(st, loop.body, loop.latch)
            st.meter_single(st.bound.op_cost[isa.FORLOOP])
        else:
            tree, base, rest = plan
            blocks = [it for it in loop.body if isinstance(it, Block)]  # all of the body
            st.precharged = frozenset(blocks[node[1]].start for node in tree)
            for node, after in zip(tree, rest, strict=True):
                st.refund_extra = f" + {after} + (e{s} - 1 - l{s}) * {base}" + outer_extra
                emit_tree(st, [node], loop.body)
    finally:
        st.unchecked = False
        st.precharged = frozenset()
        st.refund_extra = outer_extra


def _hoisting(st: UnitState, loop: Loop) -> HoistPlan | None:
    """For a headroom loop: what every iteration spends, charged once per batch (see
    ``HoistPlan``). None when the body may return or is not structured."""
    body = loop.body
    blocks = [it for it in body if isinstance(it, Block)]
    if len(blocks) != len(body) or any(st.flow.ins[i].opcode in (isa.RET, isa.RETV)
                                       for it in blocks for i in range(it.start, it.end)):
        return None
    starts = {it.start: k for k, it in enumerate(blocks)}
    tree = st.flow.tree(body, 0, len(body), loop.latch, starts)
    if tree is None:
        return None
    costs = [st.costs.block_cost(blocks[node[1]]) for node in tree]
    forloop = st.bound.op_cost[isa.FORLOOP]
    rest = [sum(costs[j + 1:]) + forloop for j in range(len(costs))]
    return tree, sum(costs) + forloop, rest


def _emit_unsuspended_for(st: UnitState, loop: Loop, stop: str,
                          body: Callable[[], None]) -> None:
    """``for`` the counter from its value to ``stop`` (a name), ``body`` writing an
    iteration that cannot suspend (charged ahead). Where the counter serves only to load one
    array the loop does not store (an array read in order, as a checksum does), the loop
    iterates a slice of that array instead, as a programmer would: nothing can change the
    array between the slice and the loads it stands for (no store to it, no call, no
    suspension). If anything else reads the counter (a check, a trap's refund), it is
    written again as a loop over the counter."""
    s = loop.slot
    a = _iterated_array(st, loop)
    if a is not None:
        mark, temp, stored = len(st.out.lines), st.ctx.temp_mark(), dict(st.stored)
        name = f"w{s}"
        st.emit(f"for {name} in A{a}[l{s}:{stop}]:")
        st.element = (s, a, name)
        try:
            with st.indented():
                body()
        finally:
            st.element = None
        counter = re.compile(rf"\bl{s}\b")
        if not any(counter.search(line) for line in st.out.lines[mark + 1:]):
            return
        del st.out.lines[mark:]
        st.ctx.temp_rewind(temp)
        st.stored = stored
    st.emit(f"for l{s} in range(l{s}, {stop}):")
    with st.indented():
        body()


def _iterated_array(st: UnitState, loop: Loop) -> int | None:
    """The array a loop may iterate instead of its counter: the one it loads most often at
    the counter, if the loop is straight blocks that store no array it loads at the counter,
    call nothing that is not inlined and meter nothing alone; None otherwise."""
    if not all(isinstance(it, Block) for it in loop.body):
        return None
    ins = st.flow.ins
    body = [ins[i] for it in loop.body if isinstance(it, Block) for i in range(it.start, it.end)]
    if any(st.costs.meters_alone(d) for d in body):
        return None
    loads: dict[int, int] = {}
    for prev, d in zip(body, body[1:], strict=False):
        if d.opcode == isa.LOAD_A and prev.opcode == isa.LOAD_L and \
                prev.operands[0] == loop.slot:
            loads[d.operands[0]] = loads.get(d.operands[0], 0) + 1
    for d in body:
        if d.opcode == isa.STORE_A:
            loads.pop(d.operands[0], None)
    return max(loads, key=loads.__getitem__) if loads else None
