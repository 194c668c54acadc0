"""The image's call graph: no recursion, call depth within the mission's limit, and the
deepest chain of call frames from each unit (the machine model's ``call_frame_bytes``)."""

from __future__ import annotations

from collections.abc import Sequence

from onboard.vm.image import Image
from onboard.vm.machine import call_frame_bytes
from onboard.vm.verifier.interface import ExtTarget, UnitFacts, VerifyError, unit_label


def check_calls(image: Image, units: Sequence[UnitFacts], ext: Sequence[ExtTarget],
                 ext_heights: Sequence[int], ext_chains: Sequence[int],
                 max_call_depth: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """No recursion, and no chain of more than ``max_call_depth`` nested calls; return the
    call height of every unit and the bytes of its deepest chain of frames (its own frame
    included: the machine model's ``call_frame_bytes``).

    Edges are CALLs and uses of this image's own instructions (a VMlet's); the body of
    another VMlet's instruction adds its own height plus one, and its own frame chain. An
    iterative depth-first search: linear in units plus edges.
    """
    n = len(units)
    own = [e.function if h < 0 else -1 for e, h in zip(ext, ext_heights, strict=True)]
    edges: list[list[int]] = [
        list(u.calls) + [own[k] for k in u.exts if own[k] >= 0] for u in units]
    base = [max((ext_heights[k] + 1 for k in u.exts if ext_heights[k] >= 0), default=0)
            for u in units]
    chain_base = [max((ext_chains[k] for k in u.exts if ext_chains[k] >= 0), default=0)
                  for u in units]
    chain = [0] * n
    height = [-1] * n  # -1: not visited; -2: on the current path; >= 0: done
    below = [-1] * n  # the callee that realises height[u] (-1: none, or another VMlet)

    def label(w: int) -> str:
        return str(unit_label(image.functions[w], w))

    for root in range(n):
        if height[root] != -1:
            continue
        stack: list[tuple[int, int]] = [(root, 0)]  # (unit, next edge to look at)
        height[root] = -2
        while stack:
            u, i = stack[-1]
            if i < len(edges[u]):
                stack[-1] = (u, i + 1)
                v = edges[u][i]
                if height[v] == -2:
                    path = [w for w, _ in stack]
                    cycle = " -> ".join(label(w) for w in path[path.index(v):] + [v])
                    raise VerifyError("recursion", unit_label(image.functions[v], v), None,
                                      f"calls itself through {cycle}")
                if height[v] == -1:
                    height[v] = -2
                    stack.append((v, 0))
                continue
            stack.pop()
            best, via = base[u], -1
            for v in edges[u]:
                if height[v] + 1 > best:
                    best, via = height[v] + 1, v
            height[u], below[u] = best, via
            f = image.functions[u]
            chain[u] = call_frame_bytes(f.n_locals, f.max_stack) + max(
                chain_base[u], max((chain[v] for v in edges[u]), default=0))
    for u in range(n):
        if height[u] > max_call_depth:
            chain = [u]
            while below[chain[-1]] >= 0:
                chain.append(below[chain[-1]])
            names = " -> ".join(label(w) for w in chain)
            raise VerifyError("call-depth", unit_label(image.functions[u], u), None,
                              f"makes {height[u]} nested calls ({names}"
                              f"{' -> a VMlet instruction' if base[chain[-1]] else ''}), the "
                              f"mission allows {max_call_depth}")
    return tuple(height), tuple(chain)
