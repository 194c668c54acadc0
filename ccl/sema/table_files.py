"""Table contents read from a CSV file (`table t : ... = from "file.csv" column c;`)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ccl import ir
from ccl.sema.reporter import Reporter
from ccl.syntax import literal_value


def read_table_file(rep: Reporter, d: Any, init: Any, ty: ir.IntType,
                    length: int) -> tuple[int, ...]:
    """The ``length`` values of table ``d`` from the file ``init`` names (relative to the
    source), each within ``ty``; a failure is an error at ``init``."""
    sp = rep.span(init)
    path = Path(rep.src.path).parent / init.path
    try:
        reader = csv.reader(path.read_text(encoding="utf-8-sig").splitlines())
        # Each row with the CSV file's own line number, for messages (``path:line``).
        rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error):
        raise rep.fail("E-READ", f"cannot read table data {path}", sp,
                       "the path is relative to the .ccl file") from None
    rows = [(n, r) for n, r in rows if r and not r[0].lstrip().startswith("#")]
    column = 0
    if init.column:
        header = [h.strip() for h in rows[0][1]] if rows else []
        if init.column not in header:
            raise rep.fail("E-TABLE-FILE", f"{path} has no column `{init.column}`", sp,
                           f"columns: {', '.join(header)}")
        column = header.index(init.column)
        rows = rows[1:]
    if len(rows) != length:
        raise rep.fail("E-SIZE", f"{path} has {len(rows)} rows; table `{d.name}` has "
                       f"{length} entries", sp)
    values = []
    for n, row in rows:
        where = f"{path}:{n}"
        if column >= len(row):
            raise rep.fail("E-TABLE-FILE", f"{where}: the row has no column "
                           f"{init.column or 1}", sp)
        cell = row[column].strip()
        try:
            v = -literal_value(cell[1:]) if cell[:1] == "-" else literal_value(cell)
        except ValueError as exc:
            raise rep.fail("E-TABLE-FILE", f"{where}: {exc}", sp,
                           "table data are integers written as in CCL: `1200`, `-5`, "
                           "`0xFF`, without leading zeros") from None
        if not ty.contains(v):
            raise rep.fail("E-OUT-OF-RANGE", f"{where}: value {v} is outside {ty}", sp)
        values.append(v)
    return tuple(values)
