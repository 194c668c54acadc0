"""Semantic analysis: one pass over the syntax tree that produces the typed IR.

It resolves names (a configuration sees natives and VMlet instructions only through the
VMlets it ``uses``), gives every expression a type and a range, folds constants, computes
loop bounds, and rejects what CCL forbids: unknown or duplicate names, values outside their
declared ranges, recursion, ``while``, natives no used VMlet exposes, wrong argument counts.

It collects every error it can (not just the first) and raises them together. It does not
prove anything: overflow, bounds and budgets are ``ccl verify``'s job.

The units, in the order the analysis uses them: ``reporter`` (spans and the errors
collected), ``symbols`` (typed symbols and scopes), ``declarations`` (header, ``uses``,
names, data, signatures), ``constants``, ``expressions`` and ``calls``, ``statements`` and
``bodies`` (procedures and rules), ``checks`` (recursion, instruction count, nesting), and
``analyzer``, which runs them in order.
"""

from __future__ import annotations

from ccl import ir
from ccl.diagnostics import Source
from ccl.limits import recursion_headroom
from ccl.sema.analyzer import Analyzer
from ccl.sema.declarations import ImportLoader, MissionLoader, VmletLoader
from ccl.sema.reporter import MAX_ERRORS
from ccl.syntax import ParseCache, parse, parse_reusing

__all__ = ["MAX_ERRORS", "ImportLoader", "MissionLoader", "VmletLoader", "analyze", "parse"]


def analyze(source: Source, mission_loader: MissionLoader, vmlets: VmletLoader,
            reuse: ParseCache | None = None,
            imports: ImportLoader | None = None) -> ir.Program:
    """Check a parsed source and build its IR; with ``reuse``, the declarations parsed by
    an earlier call with it are not parsed again (an editor's buffer, ``ccl lsp``). Without
    it, a big file's bodies stay packed until each is analyzed (``syntax.parse``)."""
    model = parse(source, pack_bodies=True) if reuse is None else parse_reusing(source, reuse)
    with recursion_headroom():  # the analysis recurses as deep as the program nests
        return Analyzer(source, model, mission_loader, vmlets, imports).run()
