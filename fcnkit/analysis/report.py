"""Rendering of analysis tables as Markdown, CSV, HTML and JSON (plain strings).

The offset table follows the layout of Table 2 of the NVIDIA DIGITS 5 article; the layer
table of ``fcnkit compile`` adds shapes, parameters and FLOPs. Per-axis values print as one
number when y and x agree, else as ``y,x``.
"""

from __future__ import annotations

import csv
import html
import io
import json
from fractions import Fraction
from typing import Any, Sequence

from fcnkit.analysis.coord_maps import format_fraction
from fcnkit.analysis.offsets import CropRow, OffsetRow

FORMATS = ("markdown", "csv", "html", "json")


def pair(v) -> str:
    """(y, x) -> "y" when equal else "y,x"; None -> "-"."""
    if v is None:
        return "-"
    vals = [format_fraction(x) if isinstance(x, Fraction) else str(x) for x in v]
    return vals[0] if len(set(vals)) == 1 else ",".join(vals)


def _num(x: Fraction) -> float | int:
    x = Fraction(x)
    return x.numerator if x.denominator == 1 else float(x)


OFFSET_HEADER = ["layer", "type", "kernel", "stride", "pad", "factor", "cumulative factor",
                 "offset", "cumulative offset"]


def offset_rows_as_cells(rows: Sequence[OffsetRow]) -> list[list[str]]:
    return [[r.name, r.type, pair(r.kernel), pair(r.stride), pair(r.pad), pair(r.factor),
             pair(r.cumulative_factor), pair(r.offset), pair(r.cumulative_offset)] for r in rows]


def table(header: Sequence[str], cells: Sequence[Sequence[str]], table_format: str, title: str = "",
          row_classes: Sequence[str] | None = None) -> str:
    """Render a header + rows in ``markdown``, ``csv`` or ``html`` (an HTML ``<table>``
    fragment; ``row_classes``: a CSS class per row, e.g. ``mismatch``; see :func:`html_page`)."""
    if table_format == "markdown":
        out = [f"**{title}**", ""] if title else []
        out.append("| " + " | ".join(h.replace("|", "\\|") for h in header) + " |")
        out.append("|" + "|".join("---" for _ in header) + "|")
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        return "\n".join(out) + "\n"
    if table_format == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(cells)
        return buf.getvalue()
    if table_format == "html":
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        classes = row_classes or [""] * len(cells)
        body = "\n".join((f'<tr class="{html.escape(k)}">' if k else "<tr>")
                         + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                         for row, k in zip(cells, classes))
        cap = f"<caption>{html.escape(title)}</caption>" if title else ""
        return f"<table>{cap}\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n"
    raise ValueError(f"unknown table format '{table_format}'")


_PAGE_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0 2em; font-size: 0.9em; }
caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f0f0f0; }
td:nth-child(n+3) { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
tr.mismatch, tr.mismatch:nth-child(even) { background: #ffd6d6; color: #900; font-weight: bold; }
"""


def html_page(title: str, body: str) -> str:
    """A complete HTML5 page (doctype, charset, title, CSS) around ``body`` (HTML
    fragments from :func:`table`); rows of class ``mismatch`` are shown in red."""
    t = html.escape(title)
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{t}</title>\n<style>{_PAGE_CSS}</style>\n</head>\n<body>\n<h1>{t}</h1>\n"
            f"{body}</body>\n</html>\n")


def offsets_json(rows: Sequence[OffsetRow], crops: Sequence[CropRow],
                 misaligned: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON document of ``fcnkit offsets --format json`` (numbers as decimals).

    ``{"layers": [{"name", "type", "factor": [fy, fx], "offset": [oy, ox],
    "cumulative_factor", "cumulative_offset"}], "crops": [{"layer", "axis", "declared",
    "computed", "exact": [oy, ox], "alignment": "exact" | "half-pixel"}], "misaligned":
    [message]}``; offsets in pixels of the layer's top, ``null`` where undefined;
    ``misaligned`` lists the layers whose bottoms meet at different coordinate maps
    (:func:`fcnkit.analysis.analyse_coord_maps`).
    """

    def vec(v):
        return None if v is None else [_num(x) for x in v]

    return {
        "layers": [{"name": r.name, "type": r.type, "factor": vec(r.factor), "offset": vec(r.offset),
                    "cumulative_factor": vec(r.cumulative_factor),
                    "cumulative_offset": vec(r.cumulative_offset),
                    **({"note": r.note} if r.note else {})} for r in rows],
        "crops": [{"layer": c.layer, "axis": c.axis, "declared": list(c.declared),
                   "computed": None if c.computed is None else list(c.computed),
                   "exact": vec(c.exact),
                   "alignment": (None if c.computed is None
                                 else "half-pixel" if c.half_pixel else "exact"),
                   **({"error": c.error} if c.error else {})} for c in crops],
        "misaligned": list(misaligned),
    }


def render_offsets(rows: Sequence[OffsetRow], crops: Sequence[CropRow], table_format: str = "markdown",
                   title: str = "", strict: bool = False, misaligned: Sequence[str] = ()) -> str:
    """The full ``fcnkit offsets`` report in one format: the per-layer table, the Crop
    layers' declared and computed offsets (``strict``: half-pixel crops are marked as not
    pixel-exact, see :meth:`CropRow.status`) and the misaligned branches, if any."""
    if table_format == "json":
        return json.dumps(offsets_json(rows, crops, misaligned), indent=2) + "\n"
    text = table(OFFSET_HEADER, offset_rows_as_cells(rows), table_format,
                 "" if table_format == "html" else title)
    if crops:
        crop_cells = [[c.layer, str(c.axis), ",".join(map(str, c.declared)),
                       "-" if c.computed is None else ",".join(map(str, c.computed)),
                       c.status(strict)] for c in crops]
        classes = ["" if c.passes(strict) else "mismatch" for c in crops]
        text += "\n" + table(["crop layer", "axis", "declared offset", "computed offset", "status"],
                             crop_cells, table_format, "Crop layers" if table_format != "csv" else "",
                             classes)
    if misaligned:
        text += "\n" + table(["misaligned branches"], [[m] for m in misaligned], table_format,
                             "Misaligned branches" if table_format != "csv" else "",
                             ["mismatch"] * len(misaligned))
    return html_page(title, text) if table_format == "html" else text
