"""The control flow of one code unit, as the translator emits it: basic blocks, counted
loops (``FORPREP`` .. ``FORLOOP``) and, where forward jumps nest that way, if/else trees.

A region whose jumps do not nest is emitted as a chain of blocks instead
(``regions.emit_chain``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from onboard.vm import isa

#: A node of an if/else tree over a list of items (indices into it): ``("block", k)``,
#: ``("loop", k)``, ``("jump", k)`` (a block ending in a jump to the tree's exit) or
#: ``("if", k, then_tree, else_tree or None)`` (block ``k`` ends with the branch).
TreeNode = tuple[Any, ...]

_JUMPS = (isa.JMP, isa.JZ, isa.JNZ)
_ENDS_BLOCK = (isa.JMP, isa.JZ, isa.JNZ, isa.RET, isa.RETV, isa.FORPREP, isa.FORLOOP)


@dataclass
class Block:
    """A basic block: instructions ``start`` to ``end`` (exclusive) of the unit."""

    start: int  # index into the instruction list
    end: int  # exclusive


@dataclass
class Loop:
    """A counted loop: its counter slot (the limit is the next one) and its body."""

    prep: int  # index of FORPREP (the last instruction of the block before)
    latch: int  # index of FORLOOP
    slot: int
    body: list[Block | Loop] = field(default_factory=list)


Item = Block | Loop


class ControlFlow:
    """The blocks, loops and jumps of one unit's decoded instructions."""

    def __init__(self, ins: list[isa.Decoded]) -> None:
        self.ins = ins
        self.index_of = {d.offset: i for i, d in enumerate(ins)}

    def block_starts(self, meters_alone: Callable[[isa.Decoded], bool]) -> set[int]:
        """Instruction indices where a basic block starts; an instruction for which
        ``meters_alone`` holds is a block of its own (it meters itself, or may suspend)."""
        starts = {0}
        n = len(self.ins)
        for i, d in enumerate(self.ins):
            t = d.target()
            if t is not None:
                starts.add(self.index_of[t])
            if d.opcode in _ENDS_BLOCK and i + 1 < n:
                starts.add(i + 1)
            if d.opcode == isa.FORLOOP:
                starts.add(i)
            if meters_alone(d):
                starts.add(i)
                if i + 1 < n:
                    starts.add(i + 1)
        return starts

    def items(self, lo: int, hi: int, starts: set[int]) -> list[Item]:
        """Blocks and loops of the instruction range [lo, hi)."""
        out: list[Item] = []
        i = lo
        current = lo
        while i < hi:
            d = self.ins[i]
            if i != current and i in starts:
                out.append(Block(current, i))
                current = i
            if d.opcode == isa.FORPREP:
                out.append(Block(current, i + 1))
                exit_ = d.target()
                assert exit_ is not None
                latch = self.index_of[exit_ - self.ins[self.index_of[exit_] - 1].size]
                loop = Loop(i, latch, d.operands[0])
                loop.body = self.items(i + 1, latch, starts)
                out.append(loop)
                i = latch + 1
                current = i
                continue
            i += 1
        if current < hi:
            out.append(Block(current, hi))
        return out

    def last_opcode(self, block: Block) -> int:
        """The opcode a block ends with."""
        return self.ins[block.end - 1].opcode

    def jump_target(self, block: Block) -> int | None:
        """Instruction index a block's final jump goes to, if it ends with one."""
        d = self.ins[block.end - 1]
        if d.opcode in _JUMPS:
            t = d.target()
            assert t is not None
            return self.index_of[t]
        return None

    def tree(self, items: list[Item], lo: int, hi: int, exit_at: int,
             starts: dict[int, int]) -> list[TreeNode] | None:
        """A nested if/else tree for items[lo:hi] whose jumps all stay inside or go to
        ``exit_at``; None if the jumps are not nested that way. ``starts`` maps the first
        instruction of each block to its index in ``items``."""
        def index(target: int) -> int | None:
            return hi if target == exit_at else starts.get(target)

        out: list[TreeNode] = []
        k = lo
        while k < hi:
            it = items[k]
            t = None if isinstance(it, Loop) else self.jump_target(it)
            if t is None:
                out.append(("loop" if isinstance(it, Loop) else "block", k))
                k += 1
                continue
            assert isinstance(it, Block)
            tk = index(t)
            if tk is None or tk <= k or tk > hi:
                return None
            if self.last_opcode(it) == isa.JMP:
                # to the exit of this sequence: the rest is skipped; code after an
                # unconditional jump out is not structured
                if tk != hi or k + 1 != hi:
                    return None
                out.append(("jump", k))
                k += 1
                continue
            node = self._if_else(items, k, tk, hi, starts, index) or \
                self._if(items, k, tk, t, starts)
            if node is None:
                return None
            out.append(node[0])
            k = node[1]
        return out

    def _if_else(self, items: list[Item], k: int, tk: int, hi: int, starts: dict[int, int],
                 index: Callable[[int], int | None]) -> tuple[TreeNode, int] | None:
        """Block ``k`` branches to item ``tk`` and the then branch (items k+1 .. tk) ends
        with a jump past an else branch: the if/else node and the index after it."""
        last = items[tk - 1] if tk - 1 > k else None
        if not (isinstance(last, Block) and self.last_opcode(last) == isa.JMP):
            return None
        e = self.jump_target(last)
        assert e is not None
        ek = index(e)
        if ek is None or not tk < ek <= hi:
            return None
        then_tree = self._subtree(items, k + 1, tk, e, starts)
        else_tree = self._subtree(items, tk, ek, e, starts)
        if then_tree is None or else_tree is None:
            return None
        return ("if", k, then_tree, else_tree), ek

    def _if(self, items: list[Item], k: int, tk: int, t: int,
            starts: dict[int, int]) -> tuple[TreeNode, int] | None:
        """Block ``k`` branches over items k+1 .. tk: the if node and the index after it."""
        then_tree = self._subtree(items, k + 1, tk, t, starts)
        if then_tree is None:
            return None
        return ("if", k, then_tree, None), tk

    def _subtree(self, items: list[Item], lo: int, hi: int, exit_at: int,
                 starts: dict[int, int]) -> list[TreeNode] | None:
        """The tree of items[lo:hi], None also if a block before ``lo`` jumps into it
        (which would break nesting)."""
        for j in range(0, lo):
            it = items[j]
            if isinstance(it, Block):
                t = self.jump_target(it)
                if t is not None:
                    tk = starts.get(t)
                    if tk is not None and lo < tk < hi:
                        return None
        if lo == hi:
            return []
        return self.tree(items, lo, hi, exit_at, starts)
