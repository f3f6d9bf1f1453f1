"""Tables that fit the terminal: the columns that carry the answer (layer, type, shape,
offset) are never wrapped or cut; the others are dropped, least useful first, until the
table fits, and fold (wrap inside the cell) if it still does not. Off a terminal (a file or
a pipe) tables are Markdown, whole."""

from __future__ import annotations

from typing import Sequence

from rich.console import Console
from rich.table import Table

#: The compile layer table on a terminal: the columns kept whole, and those left out (in
#: this order) while the table is wider than the terminal.
COMPILE_KEEP = ("layer", "type", "top shape", "offset", "cum. offset")
COMPILE_DROP = ("MFLOP", "params", "cum. factor", "factor")
#: Characters a rich table adds per column (two padding spaces and a border) and once.
_PER_COLUMN, _ONCE = 3, 1


def fit_columns(header: Sequence[str], rows: Sequence[Sequence[str]], width: int,
                keep: Sequence[str] = (), drop: Sequence[str] = ()) -> list[int]:
    """Indices of the columns to show in ``width`` characters (terminal columns).

    Columns named in ``drop`` are left out in that order while the table (every column at
    its widest cell) is wider than ``width``; columns named in ``keep`` and the rest stay.
    """
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    shown = list(range(len(header)))

    def total() -> int:
        return sum(widths[i] + _PER_COLUMN for i in shown) + _ONCE

    for name in drop:
        if total() <= width:
            break
        if name in header and name not in keep:
            shown.remove(list(header).index(name))
    return shown


def rich_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], width: int,
               keep: Sequence[str] = (), drop: Sequence[str] = (),
               row_styles: Sequence[str | None] | None = None) -> tuple[Table, list[str]]:
    """A rich Table fitted to ``width`` and the names of the columns it left out.

    Kept columns get ``no_wrap`` and a minimum width of their widest cell; the others fold.
    The first two columns are left-aligned, the rest right-aligned (numbers).
    """
    shown = fit_columns(header, rows, width, keep, drop)
    t = Table(title=title, header_style="bold")
    for i in shown:
        whole = header[i] in keep
        widest = max([len(header[i]), *(len(r[i]) for r in rows)])
        t.add_column(header[i], justify="left" if i < 2 else "right", no_wrap=whole,
                     min_width=widest if whole else None, overflow="ellipsis" if whole else "fold")
    for k, r in enumerate(rows):
        t.add_row(*(r[i] for i in shown), style=row_styles[k] if row_styles else None)
    return t, [h for i, h in enumerate(header) if i not in shown]


def print_fitted(console: Console, title: str, header: Sequence[str], rows: Sequence[Sequence[str]],
                 keep: Sequence[str] = (), drop: Sequence[str] = (),
                 row_styles: Sequence[str | None] | None = None) -> None:
    """Print a fitted rich table on a terminal (and which columns were left out), or a
    Markdown table when the output is not a terminal."""
    if not console.is_terminal:
        from fcnkit.analysis.report import table

        console.print(table(header, rows, "markdown", title), end="", markup=False, soft_wrap=True)
        return
    t, dropped = rich_table(title, header, rows, console.width, keep, drop, row_styles)
    console.print(t)
    if dropped:
        console.print(f"[dim]left out to fit {console.width} columns: {', '.join(dropped)} "
                      "(--format markdown or a wider terminal shows them)[/dim]", soft_wrap=True)


def print_offsets(console: Console, rows, crops, title: str, strict: bool = False,
                  misaligned: Sequence[str] = ()) -> None:
    """The ``fcnkit offsets`` report as rich tables: per-layer offsets, Crop layers
    (mismatches in red), misaligned branches."""
    from fcnkit.analysis.report import OFFSET_HEADER, offset_rows_as_cells

    print_fitted(console, title, OFFSET_HEADER, offset_rows_as_cells(rows),
                 keep=("layer", "type", "offset", "cumulative offset"),
                 drop=("kernel", "pad", "stride", "factor", "cumulative factor"))
    if crops:
        cells = [[c.layer, str(c.axis), ",".join(map(str, c.declared)),
                  "-" if c.computed is None else ",".join(map(str, c.computed)), c.status(strict)]
                 for c in crops]
        styles = [None if c.passes(strict) else "bold red" for c in crops]
        print_fitted(console, "Crop layers", ["crop layer", "axis", "declared offset",
                                              "computed offset", "status"], cells,
                     keep=("crop layer", "declared offset", "computed offset"), row_styles=styles)
    if misaligned:
        print_fitted(console, "Misaligned branches", ["misaligned branches"], [[m] for m in misaligned])
