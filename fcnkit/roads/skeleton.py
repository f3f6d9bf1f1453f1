"""Skeleton -> pixel graph with the node/edge semantics of sknw (Yan Xiaolong,
github.com/Image-Py/sknw, ``build_sknw(ske, multi=True, iso=True, ring=True, full=True)``),
written with NumPy/SciPy instead of numba.

On the 8-connected skeleton, a pixel with exactly two skeleton neighbours is an edge pixel;
any other skeleton pixel is a node pixel. Each 8-connected cluster of node pixels is one node
(its centre: the rounded mean of its pixels). Edges are traced from the node pixels through
edge pixels (scanning pixels in row-major order, neighbours in the order (-1,-1), (-1,0),
(-1,1), (0,-1), (0,1), (1,-1), (1,0), (1,1)) until another node pixel; a closed loop of
edge pixels becomes a node of its own (ring). Edge points are (row, col) with the two end
points replaced by the node centres.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
from scipy import ndimage

_OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _mark(skel: np.ndarray) -> np.ndarray:
    """Padded uint32 image: 0 background, 1 edge pixel, 2 node pixel."""
    buf = np.pad(skel.astype(bool), 1).astype(np.uint32)
    count = ndimage.convolve(buf, np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], np.uint32),
                             mode="constant")
    return np.where(buf == 0, 0, np.where(count == 2, 1, 2)).astype(np.uint32)


def _fill_node(img, start, num, nbs):
    """Flood a cluster of node pixels with label ``num``; returns (isolated, pixels)."""
    img[start] = num
    pixels, cur, isolated = [start], 0, True
    while cur < len(pixels):
        p = pixels[cur]
        for dp in nbs:
            q = p + dp
            if img[q] == 2:
                img[q] = num
                pixels.append(q)
            if img[q] == 1:
                isolated = False
        cur += 1
    return isolated, pixels


def _trace(img, p, nbs):
    """Walk edge pixels from ``p``; returns (node label a, node label b, flat indices)."""
    c1 = c2 = 0
    first = None
    path = [None, p]
    while True:
        img[p] = 0
        newp = None
        last_node = None
        for dp in nbs:
            q = p + dp
            if img[q] >= 10:
                if c1 == 0:
                    c1, first = img[q], q
                else:
                    c2, last_node = img[q], q
            if img[q] == 1:
                newp = q
        if c2 != 0:
            path.append(last_node)
            break
        if newp is None:  # dead end without a node: cannot happen on a marked skeleton
            break
        p = newp
        path.append(p)
    path[0] = first if first is not None else path[1]
    return int(c1) - 10, int(c2) - 10, path


def build_pixel_graph(skel: np.ndarray) -> nx.MultiGraph:
    """sknw-equivalent graph of a 2-D skeleton (rows x cols, nonzero = skeleton).

    Returns:
        MultiGraph: node i has ``pts`` ((k, 2) int rows/cols of its pixels) and ``o``
        (its centre, rounded); edge (s, e) has ``pts`` ((m, 2) row/col polyline, ends at the
        node centres) and ``weight`` (its length in pixels).

    Raises:
        ValueError: ``skel`` is not 2-D.
    """
    if skel.ndim != 2:
        raise ValueError(f"skeleton must be 2-D (rows x cols), got shape {skel.shape}")
    img = _mark(skel)
    shape = img.shape
    flat = img.ravel()
    nbs = [dr * shape[1] + dc for dr, dc in _OFFSETS]
    nodes, num = [], 10
    for p in np.flatnonzero(flat == 2):
        if flat[p] != 2:
            continue
        _, pixels = _fill_node(flat, int(p), num, nbs)
        num += 1
        nodes.append(pixels)
    edges = []
    for p in np.flatnonzero(flat >= 10):
        for dp in nbs:
            if flat[p + dp] == 1:
                edges.append(_trace(flat, int(p + dp), nbs))
    for p in np.flatnonzero(flat == 1):  # rings: loops of edge pixels without a node
        if flat[p] != 1:
            continue
        flat[p] = num
        num += 1
        nodes.append([int(p)])
        for dp in nbs:
            if flat[p + dp] == 1:
                edges.append(_trace(flat, int(p + dp), nbs))
    return _to_graph(nodes, edges, shape)


def _rc(indices, shape) -> np.ndarray:
    r, c = np.divmod(np.asarray(indices, dtype=np.int64), shape[1])
    return np.column_stack([r - 1, c - 1])


def _to_graph(nodes, edges, shape) -> nx.MultiGraph:
    graph = nx.MultiGraph()
    centres = []
    for i, pixels in enumerate(nodes):
        pts = _rc(pixels, shape)
        centre = pts.mean(axis=0).round().astype(np.int64)
        centres.append(centre)
        graph.add_node(i, pts=pts, o=centre)
    for s, e, path in edges:
        pts = _rc(path, shape)
        pts[0], pts[-1] = centres[s], centres[e]
        weight = float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())
        graph.add_edge(s, e, pts=pts, weight=weight)
    return graph


def graph_wkt_pix(graph: nx.MultiGraph) -> list[str]:
    """One WKT_Pix LINESTRING per edge (x = column, y = row), SpaceNet submission style."""
    out = []
    for _, _, d in graph.edges(data=True):
        pts = d["pts"]
        coords = ", ".join(f"{int(c)} {int(r)}" for r, c in pts)
        out.append(f"LINESTRING ({coords})")
    return out
