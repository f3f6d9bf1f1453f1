"""Road mask -> road graph: threshold, clean, skeletonise, build, clean the graph.

The pipeline and its defaults follow CRESI (Van Etten, avanetten/cresi,
``cresi/skeletonize.py`` ``make_skeleton`` / ``img_to_ske_G`` / ``add_small_segments`` /
``add_direction_change_nodes`` and ``configs/sn5_baseline.json``), whose graph step comes
from the SpaceNet 3 winner (albu). Each threshold is a named :class:`GraphParams` field; the
docstring of each says where its default comes from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from fcnkit.errors import InputError
from fcnkit.roads.skeleton import build_pixel_graph

MAX_MASK_PIXELS = 1 << 30


@dataclass(frozen=True)
class GraphParams:
    """Parameters of :func:`mask_to_pixel_graph` (pixels unless the name says metres).

    Attributes:
        threshold: road if probability > threshold; uint8 masks are read as value / 255
            (CRESI ``skeleton_thresh`` 0.3).
        min_object_px, min_hole_px: connected road blobs / holes smaller than this are
            removed / filled (CRESI ``hole_size`` 300).
        replicate_px, clip_px: the mask is padded by edge replication before thinning and the
            skeleton cropped back, its outer ``clip_px`` rows/cols cleared (CRESI 5 and 2).
        min_spur_length_m: terminal edges shorter than this are removed, in up to
            ``spur_rounds`` rounds (CRESI ``min_spur_length_m`` 10, 8 rounds).
        border_px: terminals this close to the raster border are kept (roads leaving the tile).
        min_subgraph_length_m: components whose longest path is shorter are removed
            (CRESI ``min_subgraph_length_pix`` 20 at 0.3 m GSD = 6 m).
        bridge_px, bridge_collinear_px, bridge_angle_deg: end nodes closer than
            ``bridge_px`` are joined; up to ``bridge_collinear_px`` apart when the two end
            segments are within ``bridge_angle_deg`` of collinear and the gap stays within
            ``bridge_px`` of the first one's line (CRESI ``add_small_segments`` 24, 80, 30).
        simplify_px: Douglas-Peucker tolerance of edge polylines (CRESI
            ``add_direction_change_nodes``: cv2.approxPolyDP epsilon 2).
    """

    threshold: float = 0.3
    min_object_px: int = 300
    min_hole_px: int = 300
    replicate_px: int = 5
    clip_px: int = 2
    min_spur_length_m: float = 10.0
    spur_rounds: int = 8
    border_px: int = 4
    min_subgraph_length_m: float = 6.0
    bridge_px: float = 24.0
    bridge_collinear_px: float = 80.0
    bridge_angle_deg: float = 30.0
    simplify_px: float = 2.0


def road_probability(mask: np.ndarray) -> np.ndarray:
    """A (rows, cols) road mask as float32 probability: uint8 / 255, bool as 0/1, floats as is.

    Raises:
        InputError: not 2-D, too large, or float values outside [0, 1].
    """
    if mask.ndim != 2:
        raise InputError(f"road mask must be one band (rows x cols), got shape {mask.shape}")
    if mask.size > MAX_MASK_PIXELS:
        raise InputError(f"road mask of {mask.size} pixels exceeds {MAX_MASK_PIXELS}")
    if mask.dtype == bool:
        return mask.astype(np.float32)
    if mask.dtype == np.uint8:
        return mask.astype(np.float32) / 255.0
    prob = mask.astype(np.float32)
    if prob.size and (np.nanmin(prob) < 0 or np.nanmax(prob) > 1):
        raise InputError("a float road mask must hold probabilities in [0, 1]; give a uint8 "
                         "mask (0..255) or rescale it")
    return np.nan_to_num(prob)


def skeleton_of(mask: np.ndarray, params: GraphParams = GraphParams()) -> np.ndarray:
    """Road skeleton (rows, cols) bool of a mask: threshold, drop small objects and holes,
    replicate the border, thin (scikit-image ``skeletonize``), crop back (CRESI)."""
    from skimage.morphology import skeletonize

    road = road_probability(mask) > params.threshold
    road = _drop_small(road, params.min_object_px, np.ones((3, 3), bool))  # 8-connected
    road = ~_drop_small(~road, params.min_hole_px, None)  # holes: 4-connected background
    rep, clip = params.replicate_px, params.clip_px
    padded = np.pad(road, rep, mode="edge") if rep > 0 else road
    skel = skeletonize(padded)
    rec = rep + clip
    if rec > 0:
        skel = np.pad(skel[rec:skel.shape[0] - rec, rec:skel.shape[1] - rec], clip)
    return skel


def _drop_small(binary: np.ndarray, min_px: int, structure) -> np.ndarray:
    """``binary`` without connected components of fewer than ``min_px`` pixels."""
    from scipy import ndimage

    if min_px <= 1 or not binary.any():
        return binary
    labels, _ = ndimage.label(binary, structure=structure)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_px
    keep[0] = False
    return keep[labels]


def _terminal_spurs(graph: nx.MultiGraph, min_px: float, shape, border_px: int) -> list:
    rows, cols = shape
    doomed = []
    for node in [n for n, d in graph.degree() if d == 1]:
        r, c = graph.nodes[node]["o"]
        if r < border_px or c < border_px or r >= rows - border_px or c >= cols - border_px:
            continue
        (_, other, data), = graph.edges(node, data=True)
        if data["weight"] < min_px and graph.degree(other) >= 3:
            doomed.append(node)
    return doomed


def remove_spurs(graph: nx.MultiGraph, min_px: float, shape, rounds: int,
                 border_px: int) -> int:
    """Remove terminal edges (an end of degree 1 whose other end is a junction) shorter than
    ``min_px``, repeatedly; returns the number removed."""
    removed = 0
    for _ in range(rounds):
        doomed = _terminal_spurs(graph, min_px, shape, border_px)
        if not doomed:
            break
        graph.remove_nodes_from(doomed)
        removed += len(doomed)
    return removed


def _end_direction(graph, node):
    """Unit vector pointing out of an end node along its edge's last few pixels."""
    (_, _, data), = graph.edges(node, data=True)
    pts = np.asarray(data["pts"], float)
    o = np.asarray(graph.nodes[node]["o"], float)
    if np.linalg.norm(pts[-1] - o) < np.linalg.norm(pts[0] - o):
        pts = pts[::-1]
    inner = pts[min(len(pts) - 1, 10)]
    vec = o - inner
    norm = np.linalg.norm(vec)
    return vec / norm if norm > 0 else vec


def bridge_gaps(graph: nx.MultiGraph, params: GraphParams) -> int:
    """Join pairs of end nodes across small gaps (CRESI ``add_small_segments``): closest pairs
    first, each end used once. Returns the number of bridges added."""
    from scipy.spatial.distance import pdist, squareform

    ends = [n for n, d in graph.degree() if d == 1]
    if len(ends) < 2:
        return 0
    xy = np.array([graph.nodes[n]["o"] for n in ends], float)
    dist = squareform(pdist(xy))
    cos_limit = math.cos(math.radians(params.bridge_angle_deg))
    pairs = []
    for i, j in zip(*np.nonzero(np.triu((dist > 0) & (dist < params.bridge_collinear_px), 1))):
        a, b = ends[i], ends[j]
        if graph.has_edge(a, b):
            continue
        if dist[i, j] >= params.bridge_px:
            da, gap = _end_direction(graph, a), (xy[j] - xy[i]) / dist[i, j]
            db = _end_direction(graph, b)
            off_line = abs(da[0] * (xy[j] - xy[i])[1] - da[1] * (xy[j] - xy[i])[0])
            if np.dot(da, gap) < cos_limit or np.dot(db, -gap) < cos_limit \
                    or off_line > params.bridge_px:
                continue
        pairs.append((dist[i, j], a, b))
    used, added = set(), 0
    for d, a, b in sorted(pairs):
        if a in used or b in used:
            continue
        used.update((a, b))
        pts = np.array([graph.nodes[a]["o"], graph.nodes[b]["o"]])
        graph.add_edge(a, b, pts=pts, weight=float(d), bridged=True)
        added += 1
    return added


def simplify_edges(graph: nx.MultiGraph, tolerance_px: float) -> None:
    """Douglas-Peucker each edge's pixel polyline (end points kept), in place."""
    from shapely.geometry import LineString

    if tolerance_px <= 0:
        return
    for _, _, data in graph.edges(data=True):
        pts = np.asarray(data["pts"], float)
        if len(pts) > 2:
            line = LineString(pts).simplify(tolerance_px, preserve_topology=False)
            data["pts"] = np.asarray(line.coords)


@dataclass
class CleaningReport:
    """Counts of what graph cleaning changed (spurs, self loops, subgraph nodes, bridges)."""

    spurs: int = 0
    self_loops: int = 0
    subgraph_nodes: int = 0
    bridges: int = 0


def clean_pixel_graph(graph: nx.MultiGraph, shape, gsd_m: float,
                      params: GraphParams = GraphParams()) -> CleaningReport:
    """CRESI-style cleaning of a sknw pixel graph, in place (``gsd_m``: metres per pixel)."""
    from fcnkit.roads.apls_graph import drop_small_subgraphs

    report = CleaningReport()
    loops = list(nx.selfloop_edges(graph, keys=True))
    graph.remove_edges_from(loops)
    report.self_loops = len(loops)
    report.spurs = remove_spurs(graph, params.min_spur_length_m / gsd_m, shape,
                                params.spur_rounds, params.border_px)
    report.bridges = bridge_gaps(graph, params)
    before = graph.number_of_nodes()
    drop_small_subgraphs(graph, params.min_subgraph_length_m / gsd_m, weight="weight")
    graph.remove_nodes_from([n for n, d in graph.degree() if d == 0])
    report.subgraph_nodes = before - graph.number_of_nodes()
    simplify_edges(graph, params.simplify_px)
    return report


def mask_to_pixel_graph(mask: np.ndarray, gsd_m: float, params: GraphParams = GraphParams(),
                        clean: bool = True) -> tuple[nx.MultiGraph, CleaningReport]:
    """Road mask (rows, cols) -> sknw pixel graph (nodes ``o`` = (row, col), edges ``pts``
    (row, col) polylines and ``weight`` in pixels), cleaned unless ``clean`` is False.

    Raises:
        InputError: see :func:`road_probability`; ``gsd_m`` not positive.
    """
    if not gsd_m > 0:
        raise InputError(f"ground sample distance {gsd_m} m: must be positive")
    skel = skeleton_of(mask, params)
    graph = build_pixel_graph(skel)
    report = clean_pixel_graph(graph, skel.shape, gsd_m, params) if clean else CleaningReport()
    return graph, report
