"""TOPO on hand-made graphs whose holes and marbles can be counted by hand."""

from __future__ import annotations

import networkx as nx
import pytest
from shapely.geometry import LineString

from fcnkit.roads.topo import TopoResult, topo


def _line(y0: float, first_id: int = 0, length: float = 100.0) -> nx.MultiGraph:
    g = nx.MultiGraph()
    g.add_node(first_id, x=0.0, y=y0)
    g.add_node(first_id + 1, x=length, y=y0)
    line = LineString([(0.0, y0), (length, y0)])
    g.add_edge(first_id, first_id + 1, geometry=line, length=line.length)
    return g


def test_parallel_proposal_within_the_hole_size_matches_everything():
    # 100 m edge, holes at 30, 60, 90 m + 2 nodes = 5 per origin; 2 origins drawn
    result = topo(_line(0.0), _line(3.0, 500), n_nodes=2, seed=0)
    assert (result.fp, result.fn) == (0, 0) and result.tp == 10
    assert result.f1 == pytest.approx(1.0)


def test_proposal_too_far_leaves_every_hole_empty():
    result = topo(_line(0.0), _line(10.0, 500), n_nodes=2, seed=0)
    assert (result.tp, result.fp, result.fn) == (0, 0, 10)
    assert result.recall == 0.0


def test_shorter_proposal_counts_by_hand():
    gt, prop = _line(0.0), _line(0.0, 500, length=45.0)
    # seed 1 draws origin node 0 (x = 0): holes at x = 0, 100, 30, 60, 90; the proposal's
    # origin is its node at x = 0, marbles at x = 0, 45, 30: 0 and 30 fall into holes, 45 is
    # 15 m from the nearest hole (a false positive); 60, 90 and 100 stay empty
    result = topo(gt, prop, n_nodes=1, seed=1)
    assert isinstance(result, TopoResult)
    assert (result.tp, result.fp, result.fn) == (2, 1, 3)
    assert (result.precision, result.recall) == pytest.approx((2 / 3, 2 / 5))
    assert result.f1 == pytest.approx(2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5))
    # seed 0 draws node 1 (x = 100): no proposal node within 4 m, all 5 holes empty
    result = topo(gt, prop, n_nodes=1, seed=0)
    assert (result.tp, result.fp, result.fn) == (0, 0, 5)
