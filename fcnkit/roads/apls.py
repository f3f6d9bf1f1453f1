"""APLS, the Average Path Length Similarity of SpaceNet 3 / 5, as CosmiQ's apls computes it.

Semantics of CosmiQ/apls at commit 4a78807 (``apls/apls.py``: ``create_graph_midpoints``,
``insert_point_into_G``, ``insert_control_points``, ``make_graphs``, ``path_sim_metric``,
``compute_apls_metric``; Van Etten et al., "SpaceNet: A Remote Sensing Dataset and
Challenge Series", arXiv:1807.01232, eq. 1), written anew on networkx 3, shapely 2 and
scipy.sparse.csgraph:

1. control points of a graph = its nodes plus points every ``linestring_delta`` m along each
   edge (an edge shorter than 0.75 delta gets none, one up to delta gets its middle; with
   ``is_curved_eps`` >= 0 an edge whose bounding-box diagonal is within that fraction of
   its length counts as straight and gets none);
2. each control point of one graph is snapped onto the nearest edge of the other within
   ``max_snap_dist`` m (the edge is split there; a point landing on a node renames it);
3. for every pair of control nodes joined in the native graph (path >= ``min_path_length``),
   the path-length difference min(1, |L_a - L_b| / L_a), a missing path scoring 1;
   C = 1 - mean;
4. APLS = harmonic mean of C(ground truth onto proposal) and C(proposal onto ground truth),
   0 if either is <= 0.

Not copied from the reference: its printed "Tot APLS" (a mean that includes its own summary
rows) and its crash on edges without a speed (a default speed is used, said in the notes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
from shapely.geometry import LineString, Point

DEFAULT_SPEED_MPS = 13.41  # apls/CRESI default speed (30 mph) for edges without one
SNAP_NODE_TOLERANCE_M = 0.05  # apls: a split at a line end is that end if within 5 cm


@dataclass(frozen=True)
class AplsParams:
    """Every APLS parameter (recorded in each score output).

    Attributes:
        linestring_delta: spacing of midpoint control points, metres (apls HEAD: 50).
        is_curved_eps: straightness threshold; < 0 always inserts midpoints (apls HEAD: -1).
        max_snap_dist: snapping distance of control points, metres (apls: 4).
        min_path_length: shorter ground-truth paths are ignored, metres (apls: 0.001).
        weight: 'length' (SpaceNet 3, m) or 'travel_time_s' (SpaceNet 5, s).
        max_nodes: graphs with this many ground-truth nodes or more are sampled (apls: 500).
        seed: random seed of that sampling.
    """

    linestring_delta: float = 50.0
    is_curved_eps: float = -1.0
    max_snap_dist: float = 4.0
    min_path_length: float = 0.001
    weight: str = "length"
    max_nodes: int = 500
    seed: int = 0


@dataclass
class AplsResult:
    """APLS of one tile: ``apls`` and its two directions, total edge lengths (m), the
    number of control points, the parameters, and notes (empty graphs, default speeds)."""

    apls: float
    gt_onto_prop: float
    prop_onto_gt: float
    gt_length_m: float
    prop_length_m: float
    gt_control_points: int
    prop_control_points: int
    params: AplsParams
    notes: list = field(default_factory=list)


SPEED_KEYS_MPS = ("speed_m/s", "inferred_speed_mps")  # apls, SpaceNet 5 ground truth
MPH_TO_MPS = 0.44704


def edge_speed_mps(data: dict) -> float | None:
    """An edge's speed in m/s from ``speed_m/s``, ``inferred_speed_mps`` or ``speed_mph``
    (a list, from merged edges, gives its mean); None if it has none or it is not > 0."""
    for key, scale in [(k, 1.0) for k in SPEED_KEYS_MPS] + [("speed_mph", MPH_TO_MPS)]:
        if key in data:
            value = data[key]
            try:
                value = float(np.mean([float(v) for v in value])) if isinstance(value, list) \
                    else float(value)
            except (TypeError, ValueError):
                continue
            if value > 0:
                return value * scale
    return None


def set_travel_time(graph: nx.MultiGraph, default_speed: float = DEFAULT_SPEED_MPS) -> int:
    """Edge ``travel_time_s`` = ``length`` / speed (m/s, see :func:`edge_speed_mps`); returns
    how many edges had no speed and got ``default_speed``."""
    missing = 0
    for _, _, d in graph.edges(data=True):
        speed = edge_speed_mps(d)
        if speed is None:
            missing += 1
            speed = default_speed
        d["speed_m/s"] = speed
        d["travel_time_s"] = d["length"] / speed
    return missing


def _cut(line: LineString, distance: float):
    """apls ``cut_linestring``: two lines split ``distance`` along ``line``, or None at an end."""
    if distance <= 0.0 or distance >= line.length:
        return None
    import shapely

    coords = list(line.coords)
    along = shapely.line_locate_point(line, shapely.points(np.asarray(coords)))
    hits = np.flatnonzero(along >= distance)  # the first vertex at or past the cut
    if hits.size:
        i = int(hits[0])
        if along[i] == distance:
            return LineString(coords[: i + 1]), LineString(coords[i:])
        cp = line.interpolate(distance)
        return (LineString(coords[:i] + [(cp.x, cp.y)]),
                LineString([(cp.x, cp.y)] + coords[i:]))
    cp = line.interpolate(distance)  # a self-loop: the cut lies after the last vertex
    i = len(coords) - 1
    return LineString(coords[:i] + [(cp.x, cp.y)]), LineString([(cp.x, cp.y)] + coords[i:])


def _closest_edge(graph: nx.MultiGraph, point: Point):
    """The first edge (in networkx order) at the smallest distance, and that distance."""
    import shapely

    edges = list(graph.edges(keys=True, data=True))
    dists = shapely.distance(point, np.array([d["geometry"] for *_, d in edges], dtype=object))
    best = int(np.argmin(dists))  # first minimum, as apls' np.argmin
    return edges[best], float(dists[best])


def insert_point(graph: nx.MultiGraph, point: Point, node_id, max_dist: float,
                 allow_renaming: bool) -> nx.MultiGraph:
    """apls ``insert_point_into_G``: snap ``point`` onto the nearest edge within
    ``max_dist`` m as node ``node_id`` (split the edge; at a line end, rename that node if
    ``allow_renaming`` else join it by a 0-length edge). Returns the (possibly new) graph."""
    if graph.number_of_edges() == 0:
        return graph
    (u, v, key, data), dist = _closest_edge(graph, point)
    if dist > max_dist or node_id in graph:
        return graph
    line = data["geometry"]
    along = line.project(point)
    new = line.interpolate(along)
    halves = _cut(line, along)
    pu = (graph.nodes[u]["x"], graph.nodes[u]["y"])
    pv = (graph.nodes[v]["x"], graph.nodes[v]["y"])
    if halves is None:
        return _at_line_end(graph, new, node_id, data, (u, pu), (v, pv), allow_renaming)
    graph.add_node(node_id, x=new.x, y=new.y)
    first = line.coords[0]
    line1, line2 = halves if math.dist(pv, first) >= math.dist(pu, first) else halves[::-1]
    props = {k: val for k, val in data.items() if k not in ("geometry", "length")}
    if math.dist(pu, first) < math.dist(pv, first):
        graph.add_edge(u, node_id, **props, length=line1.length, geometry=line1)
        graph.add_edge(node_id, v, **props, length=line2.length, geometry=line2)
    else:
        graph.add_edge(node_id, u, **props, length=line1.length, geometry=line1)
        graph.add_edge(v, node_id, **props, length=line2.length, geometry=line2)
    graph.remove_edge(u, v, key)
    return graph


def _at_line_end(graph, new, node_id, data, end_u, end_v, allow_renaming):
    for node, (x, y) in (end_u, end_v):
        if abs(new.x - x) <= SNAP_NODE_TOLERANCE_M and abs(new.y - y) <= SNAP_NODE_TOLERANCE_M:
            break
    else:
        return graph
    if allow_renaming:
        return nx.relabel_nodes(graph, {node: node_id})
    graph.add_node(node_id, x=new.x, y=new.y)
    line = LineString([(new.x, new.y), (x, y)])
    props = {k: val for k, val in data.items() if k not in ("geometry", "length")}
    graph.add_edge(node_id, node, **props, length=line.length, geometry=line)
    return graph


def add_midpoints(graph: nx.MultiGraph, delta: float, is_curved_eps: float) -> nx.MultiGraph:
    """apls ``create_graph_midpoints``: a copy with midpoint control nodes inserted
    (ids from max(node id) + 1, in edge order)."""
    out = graph.copy()
    if graph.number_of_nodes() == 0:
        return out
    next_id = max(graph.nodes) + 1
    for _, _, d in graph.edges(data=True):
        length, line = d["length"], d["geometry"]
        minx, miny, maxx, maxy = line.bounds
        diag = math.hypot(maxx - minx, maxy - miny)
        if length > 0 and abs(diag - length) / length < is_curved_eps:
            continue
        if length < 0.75 * delta:
            continue
        if length <= delta:
            dists = [0.5 * line.length]
        else:
            npoints = len(np.arange(0, length, delta)) + 1
            dists = np.linspace(0, length, npoints)[1:-1]
        for dist in dists:
            out = insert_point(out, line.interpolate(dist), next_id, 5.0, False)
            next_id += 1
    return out


def snap_points(graph: nx.MultiGraph, points: list, max_dist: float) -> nx.MultiGraph:
    """apls ``insert_control_points`` (renaming allowed): a copy of ``graph`` with each
    (node_id, x, y) snapped in, in order."""
    out = graph.copy()
    for node_id, x, y in points:
        out = insert_point(out, Point(x, y), node_id, max_dist, True)
    return out


def _all_pairs(graph: nx.MultiGraph, weight: str):
    """Node list, node -> index, and (n, n) shortest path lengths (inf if unreachable),
    parallel edges taking the smaller weight (scipy.sparse.csgraph.dijkstra)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    nodes = list(graph.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    best: dict[tuple, float] = {}
    for u, v, d in graph.edges(data=True):
        if u == v:
            continue
        key = (min(index[u], index[v]), max(index[u], index[v]))
        # csgraph drops explicit zeros: keep 0-length edges as the smallest positive float
        w = max(float(d[weight]), np.nextafter(0.0, 1.0))
        best[key] = min(best.get(key, math.inf), w)
    n = len(nodes)
    if not best:
        dist = np.full((n, n), np.inf)
        np.fill_diagonal(dist, 0.0)
        return nodes, index, dist
    ij = np.array(list(best.keys()))
    mat = coo_matrix((np.array(list(best.values())), (ij[:, 0], ij[:, 1])), shape=(n, n))
    return nodes, index, dijkstra(mat.tocsr(), directed=False)


def path_similarity(native: nx.MultiGraph, prime: nx.MultiGraph, control: list,
                    weight: str, min_path_length: float) -> tuple[float, int]:
    """One direction of APLS (apls ``path_sim_metric``): 1 - mean path difference over
    the routes between ``control`` nodes of ``native``, measured again in ``prime``.

    A start node absent from ``prime`` scores 1 for every route from it; a route shorter
    than ``min_path_length`` in ``native`` is skipped. Returns (C, number of routes); C is 0
    when there are no routes.
    """
    if native.number_of_nodes() == 0:
        return 0.0, 0
    nodes, index, dist_n = _all_pairs(native, weight)
    p_nodes, p_index, dist_p = _all_pairs(prime, weight)
    cols = np.array([index[c] for c in control if c in index], dtype=int)
    p_cols = np.array([p_index.get(nodes[c], -1) for c in cols], dtype=int)
    total, count = 0.0, 0
    for c in control:
        row = dist_n[index[c], cols]
        reach = np.isfinite(row)
        if c not in p_index:
            n_routes = int(reach.sum()) - 1
            total, count = total + n_routes, count + n_routes
            continue
        keep = reach & (row >= min_path_length)
        gt = row[keep]
        targets = p_cols[keep]
        prop = np.where(targets >= 0, dist_p[p_index[c], np.maximum(targets, 0)], np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            diff = np.where(np.isfinite(prop), np.minimum(1.0, np.abs(gt - prop) / gt), 1.0)
        diff = np.where(gt <= 0, 0.0, diff)
        total, count = total + float(diff.sum()), count + int(keep.sum())
    return (1.0 - total / count if count else 0.0), count


def _control_points(graph: nx.MultiGraph, nodes: list) -> list:
    return [(n, graph.nodes[n]["x"], graph.nodes[n]["y"]) for n in nodes]


def apls(gt: nx.MultiGraph, prop: nx.MultiGraph, params: AplsParams = AplsParams()) -> AplsResult:
    """APLS of a proposal graph against a ground-truth graph (both from
    :mod:`fcnkit.roads.apls_graph` or :func:`fcnkit.roads.graph` outputs).

    Args:
        gt, prop: undirected MultiGraphs; nodes with x/y in metres (one UTM zone), edges with
            ``geometry`` (LineString, metres) and ``length`` (m); ``speed_m/s`` for
            ``weight='travel_time_s'`` (edges without get 13.41 m/s, counted in the notes).
        params: every parameter (:class:`AplsParams`).

    Returns:
        :class:`AplsResult`; APLS 0 with a note when either graph is empty.
    """
    from fcnkit.roads.apls_graph import orient_edge_geometries

    notes: list[str] = []
    gt_len = sum(d["length"] for _, _, d in gt.edges(data=True))
    prop_len = sum(d["length"] for _, _, d in prop.edges(data=True))
    empty = [name for name, g in (("ground truth", gt), ("proposal", prop))
             if g.number_of_nodes() == 0]
    if empty:
        notes.append(f"{' and '.join(empty)} graph empty: APLS is 0 by definition")
        return AplsResult(0.0, 0.0, 0.0, gt_len, prop_len, 0, 0, params, notes)
    gt0, prop0 = orient_edge_geometries(gt.copy()), orient_edge_geometries(prop.copy())
    if params.weight == "travel_time_s":
        missing = set_travel_time(gt0) + set_travel_time(prop0)
        if missing:
            notes.append(f"{missing} edges without speed got {DEFAULT_SPEED_MPS} m/s")
    if gt0.number_of_nodes() >= params.max_nodes:
        import random

        rng = random.Random(params.seed)
        gt_cp, prop_cp = gt0, prop0
        ctrl_gt = rng.sample(list(gt_cp.nodes), min(params.max_nodes, gt_cp.number_of_nodes()))
        ctrl_prop = rng.sample(list(prop_cp.nodes),
                               min(params.max_nodes, prop_cp.number_of_nodes()))
        notes.append(f"{gt0.number_of_nodes()} ground-truth nodes >= max_nodes: no midpoints, "
                     f"{len(ctrl_gt)} sampled control nodes (seed {params.seed})")
    else:
        gt_cp = add_midpoints(gt0, params.linestring_delta, params.is_curved_eps)
        prop_cp = add_midpoints(prop0, params.linestring_delta, params.is_curved_eps)
        ctrl_gt, ctrl_prop = list(gt_cp.nodes), list(prop_cp.nodes)
    prop_prime = snap_points(prop0, _control_points(gt_cp, ctrl_gt), params.max_snap_dist)
    gt_prime = snap_points(gt0, _control_points(prop_cp, ctrl_prop), params.max_snap_dist)
    if params.weight == "travel_time_s":  # split edges keep their speed: new times
        for g in (gt_cp, prop_cp, gt_prime, prop_prime):
            set_travel_time(g)
    c_gt, _ = path_similarity(gt_cp, prop_prime, ctrl_gt, params.weight, params.min_path_length)
    c_prop, _ = path_similarity(prop_cp, gt_prime, ctrl_prop, params.weight,
                                params.min_path_length)
    score = 0.0 if c_gt <= 0 or c_prop <= 0 else 2.0 * c_gt * c_prop / (c_gt + c_prop)
    return AplsResult(score, c_gt, c_prop, gt_len, prop_len, len(ctrl_gt), len(ctrl_prop),
                      params, notes)
