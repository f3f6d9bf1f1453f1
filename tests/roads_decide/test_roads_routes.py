"""Maximum-likelihood routes (fcnkit.roads.routes) against networkx Dijkstra on the same
-log p graph, written here from the documented edge cost."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from fcnkit.errors import InputError
from fcnkit.roads import routes


def _grid_graph(prob, length_cost=1e-3):
    cost = -np.log(prob.astype(np.float64)) + length_cost
    rows, cols = prob.shape
    geometric, pixel = nx.Graph(), nx.DiGraph()
    for r in range(rows):
        for c in range(cols):
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if (dr or dc) and 0 <= rr < rows and 0 <= cc < cols:
                        d = math.sqrt(dr * dr + dc * dc)
                        geometric.add_edge((r, c), (rr, cc), weight=d * (cost[r, c] + cost[rr, cc]) / 2)
                        pixel.add_edge((r, c), (rr, cc), weight=cost[rr, cc])
    return geometric, pixel, cost


@pytest.mark.parametrize("seed", [0, 1])
def test_route_cost_equals_networkx_dijkstra(seed):
    prob = np.random.default_rng(seed).uniform(0.02, 1.0, (11, 13)).astype(np.float32)
    start, end = (0, 1), (10, 12)
    geometric, pixel, cost = _grid_graph(prob)
    want = nx.dijkstra_path_length(geometric, start, end)
    assert routes.mcp_route(prob, start, end).cost == pytest.approx(want, rel=1e-9)
    assert routes.astar_route(prob, start, end).cost == pytest.approx(want, rel=1e-9)
    want_pixel = nx.dijkstra_path_length(pixel, start, end) + cost[start]
    r = routes.mcp_route(prob, start, end, metric="pixel")
    assert r.cost == pytest.approx(want_pixel, rel=1e-9)
    # the pixel metric's cost is exactly -log(product of p) + length_cost per pixel
    assert r.log_likelihood == pytest.approx(-(r.cost - 1e-3 * len(r.pixels)), rel=1e-9)


def test_route_follows_the_bend_not_the_straight_line():
    prob = np.full((40, 40), 0.05, np.float32)
    prob[35, 2:36] = 0.98  # an L-shaped road from (35, 2) to (35, 35) then up to (4, 35)
    prob[4:36, 35] = 0.98
    start, end = (35, 2), (4, 35)
    for route in (routes.mcp_route(prob, start, end), routes.astar_route(prob, start, end)):
        on_road = prob[route.pixels[:, 0], route.pixels[:, 1]] > 0.5
        assert on_road.all()
        assert route.length_px == pytest.approx(33 + 31, abs=1.0)  # along the legs
        assert route.likelihood == pytest.approx(0.98 ** len(route.pixels), rel=1e-5)
        assert tuple(route.pixels[0]) == start and tuple(route.pixels[-1]) == end


def test_no_route_through_a_zero_wall_is_a_clear_error():
    prob = np.ones((6, 6), np.float32)
    prob[:, 3] = 0.0
    with pytest.raises(InputError, match="no route"):
        routes.mcp_route(prob, (0, 0), (5, 5))
    with pytest.raises(InputError, match="no route"):
        routes.astar_route(prob, (0, 0), (5, 5))
    with pytest.raises(InputError, match="probability 0"):
        routes.mcp_route(prob, (0, 3), (5, 5))


def test_length_in_metres_projected_and_geographic():
    pixels = np.array([[0, 0], [0, 1], [1, 2], [1, 3]])
    utm = Affine(0.3, 0, 500000, 0, -0.3, 4000000)
    got = routes.route_length_m(pixels, utm, CRS.from_epsg(32611))
    assert got == pytest.approx(0.3 * (2 + math.sqrt(2)))
    # geographic: 1e-4 degree steps of longitude on the equator (WGS 84: a = 6378137 m)
    geo = Affine(1e-4, 0, 10.0, 0, -1e-4, 1e-4 / 2)
    along = routes.route_length_m(np.array([[0, 0], [0, 1], [0, 2]]), geo, CRS.from_epsg(4326))
    assert along == pytest.approx(2 * 6378137 * math.radians(1e-4), rel=1e-6)
    assert routes.route_length_m(pixels, Affine.identity(), None) is None
