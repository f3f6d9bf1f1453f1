"""Percolation connectivity (fcnkit.roads.percolation) against physics, exact answers and an
independent per-realisation networkx check."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

from fcnkit.errors import InputError
from fcnkit.roads import percolation


def test_crossing_probability_switches_around_the_site_threshold():
    # square-lattice site percolation, p_c = 0.592746 (Newman & Ziff 2000); L = 128
    below = percolation.crossing_probability(np.full((128, 128), 0.55, np.float32),
                                             realisations=200, seed=1)
    above = percolation.crossing_probability(np.full((128, 128), 0.65, np.float32),
                                             realisations=200, seed=2)
    assert below.estimate < 0.1
    assert above.estimate > 0.9


def test_certain_corridor_is_connected_and_a_zero_wall_is_not():
    prob = np.full((20, 30), 0.5, np.float32)
    prob[10, :] = 1.0
    res, _ = percolation.monte_carlo(prob, [(10, 0)], [(10, 29)], realisations=50, seed=3)
    assert (res.estimate, res.connected) == (1.0, 50)
    assert res.low == pytest.approx(1 - 1.96 ** 2 / (50 + 1.96 ** 2), abs=1e-3)  # Wilson at 50/50
    prob[:, 15] = 0.0
    for conn in (4, 8):
        res, _ = percolation.monte_carlo(prob, [(10, 0)], [(10, 29)], realisations=50, seed=3,
                                         connectivity=conn)
        assert res.estimate == 0.0 and res.high < 0.08


def _two_bridges(p_bridge):
    # a road on each side of a zero wall; two one-pixel bridges through it, each road with
    # p_bridge, independent: P(A <-> B) = 1 - (1 - p)^2 exactly
    prob = np.zeros((7, 9), np.float32)
    prob[:, :4] = 1.0
    prob[:, 5:] = 1.0
    prob[1, 4] = prob[5, 4] = p_bridge
    return prob


def test_wilson_interval_covers_the_known_answer():
    prob = _two_bridges(0.3)
    truth = 1 - 0.7 ** 2
    covered = []
    for seed in range(60):
        res, _ = percolation.monte_carlo(prob, [(3, 0)], [(3, 8)], realisations=100, seed=seed,
                                         connectivity=4)
        covered.append(res.low <= truth <= res.high)
    assert np.mean(covered) >= 0.88  # nominal 95 %; 60 draws
    res, _ = percolation.monte_carlo(prob, [(3, 0)], [(3, 8)], realisations=4000, seed=99,
                                     connectivity=4)
    assert abs(res.estimate - truth) < 0.025


def test_wilson_formula_against_closed_forms():
    z = percolation.Z95
    assert percolation.wilson_interval(0, 10) == pytest.approx((0.0, z * z / (10 + z * z)))
    low, high = percolation.wilson_interval(5, 10)
    half = z * math.sqrt(10 * 0.25 + z * z / 4) / (10 + z * z)
    assert (low, high) == pytest.approx((0.5 - half, 0.5 + half))
    with pytest.raises(InputError):
        percolation.wilson_interval(3, 0)


def test_batched_labelling_matches_a_networkx_loop_over_the_same_realisations():
    rng = np.random.default_rng(7)
    prob = rng.uniform(0.4, 0.8, (12, 14)).astype(np.float32)
    a, b = (0, 0), (11, 13)
    res, reach = percolation.monte_carlo(prob, [a], [b], realisations=40, seed=5, reach=True,
                                         connectivity=8, batch=7)
    draws = np.random.default_rng(5).random((40,) + prob.shape, dtype=np.float32) < prob
    hits, reach_count = 0, np.zeros(prob.shape)
    for mask in draws:
        g = nx.Graph()
        g.add_nodes_from(zip(*np.nonzero(mask)))
        for r, c in list(g.nodes):
            for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):
                if (r + dr, c + dc) in g:
                    g.add_edge((r, c), (r + dr, c + dc))
        if a in g:
            comp = nx.node_connected_component(g, a)
            hits += b in comp
            for node in comp:
                reach_count[node] += 1
    assert res.connected == hits
    np.testing.assert_allclose(reach, reach_count / 40, atol=1e-7)
    assert reach[b] == pytest.approx(res.estimate)


def test_batch_size_and_seed():
    prob = np.random.default_rng(0).uniform(0.5, 0.7, (30, 30)).astype(np.float32)
    one = percolation.monte_carlo(prob, [(0, 0)], [(29, 29)], realisations=64, seed=11, batch=64)[0]
    many = percolation.monte_carlo(prob, [(0, 0)], [(29, 29)], realisations=64, seed=11, batch=5)[0]
    assert one == many


def test_exact_thresholded_variant():
    prob = np.full((5, 5), 0.2, np.float32)
    prob[2, :] = 0.6
    res, reach = percolation.exact(prob, [(2, 0)], [(2, 4)], threshold=0.5, reach=True)
    assert res.estimate == 1.0 and res.realisations == 1
    np.testing.assert_array_equal(reach, (prob >= 0.5).astype(np.float32))
    assert percolation.exact(prob, [(2, 0)], [(2, 4)], threshold=0.7)[0].estimate == 0.0
    with pytest.raises(InputError):
        percolation.exact(prob, [(2, 0)], [(2, 4)], threshold=0.0)


def test_four_versus_eight_connectivity_on_a_diagonal():
    prob = np.eye(6, dtype=np.float32)
    assert percolation.exact(prob, [(0, 0)], [(5, 5)], connectivity=8)[0].estimate == 1.0
    assert percolation.exact(prob, [(0, 0)], [(5, 5)], connectivity=4)[0].estimate == 0.0
    with pytest.raises(InputError):
        percolation.check_connectivity(6)
