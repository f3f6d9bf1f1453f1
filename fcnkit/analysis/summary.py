"""One analysis of a net: shapes, coordinate maps, parameters, FLOPs and receptive field.

This is what ``fcnkit compile`` prints as its layer table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from fcnkit.analysis.coord_maps import CoordAnalysis, analyse_coord_maps
from fcnkit.analysis.report import html_page, pair, table
from fcnkit.analysis.shapes import infer_shapes
from fcnkit.graph import Net
from fcnkit.layers import Shape


@dataclass
class LayerCost:
    """Learnable parameters (count) and forward FLOPs (2 per multiply-add) of one layer."""

    params: int
    flops: int


@dataclass
class NetAnalysis:
    """Everything fcnkit computes about a net without running it.

    Attributes:
        net: the analysed net.
        shapes: blob id -> shape (Caffe axis order).
        coords: coordinate maps (per layer and cumulative per blob).
        costs: layer name -> LayerCost.
        receptive_field: blob id -> (rf_y, rf_x) in input pixels, where defined.
    """

    net: Net
    shapes: dict[str, Shape]
    coords: CoordAnalysis
    costs: dict[str, LayerCost]
    receptive_field: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def total_params(self) -> int:
        return sum(c.params for c in self.costs.values())

    @property
    def total_flops(self) -> int:
        return sum(c.flops for c in self.costs.values())

    def bottom_shapes(self, layer_name: str) -> list[Shape]:
        node = self.net.layer(layer_name)
        return [self.shapes[b] for b in node.bottoms]

    def top_shapes(self, layer_name: str) -> list[Shape]:
        node = self.net.layer(layer_name)
        return [self.shapes[t] for t in node.tops]

    def layer_table(self, table_format: str = "markdown") -> str:
        """The compile layer table: layer, type, top shapes, params, FLOPs, factor, offset,
        in ``table_format`` (markdown, csv, or html: a complete page). CSV numbers have no
        thousands separators."""
        header, cells = self.layer_cells(grouped=table_format != "csv")
        if table_format == "html":
            title = f"{self.net.name or 'net'}: layers"
            return html_page(title, table(header, cells, "html"))
        return table(header, cells, table_format)

    def layer_cells(self, grouped: bool = True) -> tuple[list[str], list[list[str]]]:
        """(header, rows) of :meth:`layer_table`, as strings (for a terminal table);
        ``grouped``: parameters and MFLOP with thousands separators (1,234,567)."""
        sep = "," if grouped else ""
        header = ["layer", "type", "top shape", "params", "MFLOP", "factor", "offset",
                  "cum. factor", "cum. offset"]
        cells = []
        for node in self.net.layers:
            lm = self.coords.layer_maps[node.name]
            own = None if isinstance(lm, str) else lm
            bm = self.coords.blob_maps.get(node.tops[0]) if node.tops else None
            cm = bm.map if bm is not None else None
            cost = self.costs[node.name]
            tops = "; ".join("x".join(map(str, self.shapes[t])) for t in node.tops) or "-"
            cells.append([node.name, node.type, tops, f"{cost.params:{sep}}", f"{cost.flops / 1e6:{sep}.1f}",
                          pair(own.factor) if own else "-", pair(own.offset) if own else "-",
                          pair(cm.factor) if cm else "-", pair(cm.offset) if cm else "-"])
        return header, cells


def receptive_fields(net: Net, coords: CoordAnalysis) -> dict[str, tuple[float, float]]:
    """Receptive field (input pixels per axis) of every blob reachable through spatial layers.

    Each layer grows the field of its bottoms (:meth:`fcnkit.layers.Layer.receptive_field`:
    convolution/pooling ``rf += (k_eff - 1) * jump``, ``jump *= s``; deconvolution
    ``rf += (ceil(k_eff / s) - 1) * jump``, ``jump /= s``; element-wise layers keep both);
    where branches meet the largest field wins. Layers without a coordinate map (in
    ``coords.layer_maps``) end the walk.
    """
    rf: dict[str, tuple[float, float]] = {}
    jump: dict[str, tuple[float, float]] = {}
    for node in net.layers:
        if node.role == "input":
            for t in node.tops:
                rf[t], jump[t] = (1.0, 1.0), (1.0, 1.0)
            continue
        idx = node.layer.coord_bottoms()
        ins = [node.bottoms[i] for i in idx if node.bottoms[i] in rf]
        if not ins or len(ins) != len(idx) or isinstance(coords.layer_maps[node.name], str):
            continue
        r = tuple(max(rf[b][a] for b in ins) for a in range(2))
        r, j = node.layer.receptive_field(r, jump[ins[0]])
        for t in node.tops:
            rf[t], jump[t] = r, j
    return rf


def analyse(net: Net, input_shapes: Mapping[str | None, Shape] | None = None) -> NetAnalysis:
    """Shapes, coordinate maps, parameter/FLOP counts and receptive fields of ``net``.

    Raises:
        ShapeError, InputError: see :func:`fcnkit.analysis.shapes.infer_shapes`.
    """
    shapes = infer_shapes(net, input_shapes)
    coords = analyse_coord_maps(net)
    costs = {}
    for node in net.layers:
        b = [shapes[x] for x in node.bottoms]
        t = [shapes[x] for x in node.tops]
        if node.role == "input":
            costs[node.name] = LayerCost(0, 0)
        else:
            costs[node.name] = LayerCost(node.layer.param_count(b), node.layer.flops(b, t))
    return NetAnalysis(net, shapes, coords, costs, receptive_fields(net, coords))
