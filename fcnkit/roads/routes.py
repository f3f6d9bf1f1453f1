"""The maximum-likelihood route between two pixels of a road probability map.

Cost model (one definition, used by every solver here and by the tests' networkx graph):

* pixel cost ``c = -log(p) + length_cost`` (p = 0: impassable); ``length_cost`` (default
  1e-3 per pixel length) breaks ties between equally likely routes in favour of the shorter;
* 8-connected moves; the cost of the edge u -> v is ``d(u, v) * (c_u + c_v) / 2`` with
  d = 1 for a side neighbour and sqrt(2) for a diagonal one: the trapezoid rule for the
  integral of c along the straight segment between the pixel centres. This is exactly the
  edge cost of scikit-image's ``MCP_Geometric``
  (skimage/graph/_mcp.pyx, "geometric" travel cost), which solves it.

A route's cost is therefore the length-weighted negative log-likelihood of the road along it
(in pixel lengths). Its reported *likelihood* is the product of the road probabilities of the
pixels it visits (each once), ``exp(sum(log p))``; the log of it is reported too, as the
product underflows on long routes. ``metric="pixel"`` instead sums ``c`` over the visited
pixels (scikit-image ``MCP``; every step weighs the same), which maximises that product
exactly, at the price of diagonal steps counting as short as side steps.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from fcnkit.errors import InputError

SQRT2 = math.sqrt(2.0)
#: (drow, dcol, step length in pixels) of the 8 neighbours.
NEIGHBOURS = [(dr, dc, SQRT2 if dr and dc else 1.0)
              for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]


@dataclass
class Route:
    """A route between two pixels.

    Attributes:
        pixels: (n, 2) int array of (row, col) from start to end.
        cost: the route's total cost (module docstring).
        log_likelihood: sum of log p over the visited pixels (natural log).
        likelihood: exp(log_likelihood), the product of the visited pixels' p.
        length_px: length of the polyline through the pixel centres, in pixel lengths.
        length_m: that length in metres (None without a CRS), geodesic for a geographic CRS.
    """

    pixels: np.ndarray
    cost: float
    log_likelihood: float
    likelihood: float
    length_px: float
    length_m: float | None = None


def pixel_costs(prob: np.ndarray, length_cost: float = 1e-3) -> np.ndarray:
    """Per-pixel cost ``-log p + length_cost`` (float64, rows x cols); inf where p = 0."""
    if length_cost < 0:
        raise InputError(f"--length-cost must be >= 0, not {length_cost}")
    with np.errstate(divide="ignore"):
        return -np.log(prob.astype(np.float64)) + length_cost


def _check_ends(costs: np.ndarray, start, end) -> None:
    for name, (r, c) in (("--from", start), ("--to", end)):
        if not np.isfinite(costs[r, c]):
            raise InputError(f"{name} pixel (row {r}, col {c}) has road probability 0: no route "
                             "can start or end there")


def _finish(prob, costs, pixels, cost, start, end) -> Route:
    if not np.isfinite(cost):
        raise InputError(f"no route from pixel {tuple(start)} to {tuple(end)}: every path "
                         "crosses pixels of road probability 0")
    pixels = np.asarray(pixels, int).reshape(-1, 2)
    logl = float(np.log(prob[pixels[:, 0], pixels[:, 1]].astype(np.float64)).sum())
    steps = np.abs(np.diff(pixels, axis=0))
    length = float(np.where(steps.sum(axis=1) == 2, SQRT2, 1.0).sum()) if len(steps) else 0.0
    return Route(pixels, float(cost), logl, math.exp(logl), length)


def mcp_route(prob: np.ndarray, start, end, *, length_cost: float = 1e-3,
              metric: str = "geometric") -> Route:
    """The least-cost route from pixel ``start`` to ``end`` (row, col) with scikit-image MCP.

    ``prob`` (rows, cols) in [0, 1]. Raises InputError if no route exists or an end has p = 0.
    """
    from skimage.graph import MCP, MCP_Geometric

    costs = pixel_costs(prob, length_cost)
    _check_ends(costs, start, end)
    if metric not in ("geometric", "pixel"):
        raise InputError(f"--metric must be geometric or pixel, not {metric}")
    solver = (MCP_Geometric if metric == "geometric" else MCP)(costs, fully_connected=True)
    cumulative, _ = solver.find_costs([tuple(start)], [tuple(end)])
    cost = cumulative[tuple(end)]
    pixels = solver.traceback(tuple(end)) if np.isfinite(cost) else []
    return _finish(prob, costs, pixels, cost, start, end)


def astar_route(prob: np.ndarray, start, end, *, length_cost: float = 1e-3) -> Route:
    """A* search for the same route as :func:`mcp_route` (geometric metric).

    Heuristic: straight-line distance to ``end`` (pixel lengths) times the smallest pixel
    cost, which never overestimates (every edge costs at least d * min c) and is consistent
    (triangle inequality), so A* returns an optimal route (Hart, Nilsson & Raphael 1968).
    It pays off when ``length_cost`` is a large share of the cost (confident maps); it is a
    Python priority-queue loop, so MCP is faster when it must explore most of the map.
    """
    costs = pixel_costs(prob, length_cost)
    _check_ends(costs, start, end)
    rows, cols = costs.shape
    flat = costs.ravel().tolist()
    cmin = float(costs[np.isfinite(costs)].min())
    goal = end[0] * cols + end[1]
    er, ec = end
    origin = start[0] * cols + start[1]
    best, parent, done = {origin: 0.0}, {}, set()
    heap = [(0.0, 0.0, origin)]  # (f = g + h, g, flat index)
    while heap:
        _, g, u = heapq.heappop(heap)
        if u in done:
            continue
        if u == goal:
            break
        done.add(u)
        ur, uc = divmod(u, cols)
        for dr, dc, d in NEIGHBOURS:
            vr, vc = ur + dr, uc + dc
            if 0 <= vr < rows and 0 <= vc < cols:
                v = vr * cols + vc
                ng = g + d * (flat[u] + flat[v]) / 2
                if ng < best.get(v, math.inf):
                    best[v], parent[v] = ng, u
                    h = cmin * math.hypot(vr - er, vc - ec)
                    heapq.heappush(heap, (ng + h, ng, v))
    cost = best.get(goal, math.inf)
    pixels = []
    if math.isfinite(cost):
        node = goal
        while node in parent:
            pixels.append(divmod(node, cols))
            node = parent[node]
        pixels.append(tuple(start))
        pixels.reverse()
    return _finish(prob, costs, pixels, cost, start, end)


def route_length_m(pixels: np.ndarray, transform, crs) -> float | None:
    """Length in metres of the polyline through the centres of ``pixels`` ((n, 2) row, col).

    Projected CRS: Euclidean length times the axis unit's metre factor; geographic CRS: the
    geodesic length on the CRS's ellipsoid (pyproj ``Geod.line_length``); no CRS: None.
    """
    from fcnkit.roads.points import pixel_centres

    if crs is None or len(pixels) < 2:
        return None if crs is None else 0.0
    from pyproj import CRS

    x, y = pixel_centres(pixels[:, 0], pixels[:, 1], transform)
    proj = CRS.from_user_input(crs.to_wkt())
    if proj.is_geographic:
        return float(proj.get_geod().line_length(x, y))
    factor = proj.axis_info[0].unit_conversion_factor if proj.axis_info else 1.0
    return float(np.hypot(np.diff(x), np.diff(y)).sum() * factor)


def route_geojson(route: Route, transform, crs) -> dict:
    """The route as a GeoJSON FeatureCollection with one LineString Feature.

    With a CRS the coordinates are WGS 84 longitude, latitude of the pixel centres (RFC 7946);
    without one, pixel coordinates (column, row of the centres) and ``"crs": "pixel"`` among
    the properties.
    """
    from fcnkit.roads.points import pixel_centres

    x, y = pixel_centres(route.pixels[:, 0], route.pixels[:, 1], transform)
    props = {"cost": route.cost, "log_likelihood": route.log_likelihood,
             "likelihood": route.likelihood, "length_px": route.length_px,
             "length_m": route.length_m, "pixels": int(len(route.pixels))}
    if crs is None:
        props["crs"] = "pixel"
    else:
        from pyproj import Transformer

        to_wgs84 = Transformer.from_crs(crs.to_wkt(), "EPSG:4326", always_xy=True)
        x, y = to_wgs84.transform(x, y)
    coords = [[float(a), float(b)] for a, b in zip(x, y)]
    feature = {"type": "Feature", "properties": props,
               "geometry": {"type": "LineString", "coordinates": coords}}
    return {"type": "FeatureCollection", "features": [feature]}
