"""The TOPO metric (Biagioni & Eriksson, "Inferring Road Maps from GPS Traces", TRR 2012), as
CosmiQ's apls ``topo_metric.compute_topo`` computes it (commit 4a78807):

around a ground-truth node, the connected subgraph of nodes within ``subgraph_radius`` m
gets "holes" every ``interval`` m along its edges (measured outward from that node); around
the proposal node nearest to it (within ``hole_size`` m) the same is done with "marbles";
each marble falls into the nearest free hole within ``hole_size`` m (true positive) or is a
false positive; empty holes are false negatives. Counts are summed over ``n_nodes`` origin
nodes drawn at random (with replacement, as apls; seeded here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np
from shapely.geometry import LineString


@dataclass
class TopoResult:
    """Summed true/false positives and false negatives, and the precision/recall/F1."""

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float


def _xy(graph: nx.MultiGraph) -> tuple[list, np.ndarray]:
    nodes = list(graph.nodes)
    return nodes, np.array([(graph.nodes[n]["x"], graph.nodes[n]["y"]) for n in nodes], float)


def _local_holes(graph: nx.MultiGraph, origin, radius: float, interval: float) -> np.ndarray:
    """(k, 2) hole positions: the nodes of the origin's connected neighbourhood within
    ``radius`` m, plus points every ``interval`` m along its edges away from the origin."""
    from fcnkit.roads.apls import insert_point

    nodes, xy = _xy(graph)
    ox, oy = graph.nodes[origin]["x"], graph.nodes[origin]["y"]
    near = [n for n, (x, y) in zip(nodes, xy) if math.hypot(x - ox, y - oy) <= radius]
    sub = graph.subgraph(nx.node_connected_component(graph.subgraph(near), origin)).copy()
    for _, _, d in sub.edges(data=True):  # radially outward, so both graphs agree
        coords = list(d["geometry"].coords)
        if math.dist((ox, oy), coords[-1]) < math.dist((ox, oy), coords[0]):
            d["geometry"] = LineString(coords[::-1])
    out = sub.copy()
    next_id = max(sub.nodes) + 1
    for _, _, d in sub.edges(data=True):
        if d["length"] < interval:
            continue
        for dist in np.arange(0, d["length"], interval)[1:]:
            out = insert_point(out, d["geometry"].interpolate(dist), next_id, 5.0, False)
            next_id += 1
    return _xy(out)[1]


def _match(holes: np.ndarray, marbles: np.ndarray, hole_size: float) -> tuple[int, int, int]:
    """Marbles in order, each into the nearest still-empty hole within ``hole_size``."""
    filled = np.zeros(len(holes), bool)
    tp = fp = 0
    for m in marbles:
        d = np.hypot(*(holes - m).T) if len(holes) else np.empty(0)
        free = np.flatnonzero((d <= hole_size) & ~filled)
        if free.size == 0:
            fp += 1
            continue
        filled[free[np.argmin(d[free])]] = True
        tp += 1
    return tp, fp, len(holes) - tp


def topo(gt: nx.MultiGraph, prop: nx.MultiGraph, *, subgraph_radius: float = 150.0,
         interval: float = 30.0, hole_size: float = 4.0, n_nodes: int = 500,
         seed: int = 0) -> TopoResult:
    """TOPO of a proposal against ground truth (graphs as for :func:`fcnkit.roads.apls.apls`,
    metres). apls' ``execute`` defaults: radius 150 m, interval 30 m, hole 4 m, 500 nodes."""
    if gt.number_of_nodes() == 0 or prop.number_of_nodes() == 0:
        return TopoResult(0, 0, 0, 0.0, 0.0, 0.0)
    rng = np.random.default_rng(seed)
    gt_nodes = list(gt.nodes)
    p_nodes, p_xy = _xy(prop)
    tp = fp = fn = 0
    for idx in rng.choice(len(gt_nodes), min(n_nodes, len(gt_nodes))):
        origin = gt_nodes[idx]
        holes = _local_holes(gt, origin, subgraph_radius, interval)
        o = np.array([gt.nodes[origin]["x"], gt.nodes[origin]["y"]])
        d = np.hypot(*(p_xy - o).T)
        if d.min() > hole_size:
            fn += len(holes)
            continue
        marbles = _local_holes(prop, p_nodes[int(np.argmin(d))], subgraph_radius, interval)
        a, b, c = _match(holes, marbles, hole_size)
        tp, fp, fn = tp + a, fp + b, fn + c
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return TopoResult(tp, fp, fn, precision, recall, f1)
