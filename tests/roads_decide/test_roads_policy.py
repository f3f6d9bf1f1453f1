"""Gridworld navigation policies (fcnkit.roads.policy): BFS step counts on a certain road
network, policy iteration = value iteration, Bellman optimality checked independently."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from fcnkit.errors import InputError
from fcnkit.roads import policy as pol


def _network():
    m = np.zeros((30, 36))
    m[4, 2:34] = 1
    m[4:26, 6] = 1
    m[25, 6:30] = 1
    m[10:26, 29] = 1
    m[14, 6:20] = 1
    m[14:20, 19] = 1  # a dead end
    return m


def test_greedy_path_from_every_road_pixel_takes_the_bfs_number_of_steps():
    prob = _network()
    goal = (25, 20)
    sol = pol.policy_iteration(pol.Gridworld(prob, goal))
    assert sol.converged
    g = nx.grid_2d_graph(*prob.shape)
    g.remove_nodes_from([n for n in list(g) if prob[n] == 0])
    steps = nx.single_source_shortest_path_length(g, goal)
    for start, want in steps.items():
        path, reached = pol.follow(sol.actions, start)
        assert reached and len(path) - 1 == want, start
        assert all(prob[p] == 1 for p in path)


@pytest.mark.parametrize("slip", [False, True])
def test_policy_iteration_and_value_iteration_agree(slip):
    prob = np.random.default_rng(3).uniform(0.0, 1.0, (24, 28))
    world = pol.Gridworld(prob, (12, 9), gamma=0.95, slip=slip)
    vi = pol.value_iteration(world, tol=1e-11)
    pi = pol.policy_iteration(world, tol=1e-11)
    assert vi.converged and pi.converged
    np.testing.assert_allclose(vi.values, pi.values, atol=1e-8)
    # where one action is clearly best, both pick it
    q = np.stack([world.q_value(vi.values.ravel(), world.outcomes(a)) for a in range(4)])
    top2 = np.sort(q, axis=0)[-2:]
    clear = (top2[1] - top2[0] > 1e-6).reshape(prob.shape)
    clear[12, 9] = False
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(vi.actions[clear], pi.actions[clear])


def test_bellman_optimality_written_out_for_one_cell():
    # the value of cell (1, 1) from its neighbours, transcribed from the MDP's definition
    prob = np.random.default_rng(5).uniform(0.1, 0.9, (4, 5))
    world = pol.Gridworld(prob, (0, 4), gamma=0.9, step_cost=0.05, goal_reward=2.0, slip=True)
    v = pol.value_iteration(world, tol=1e-12).values
    moves = {0: (0, 1), 1: (1, 2), 2: (2, 1), 3: (1, 0)}
    sides = {0: (1, 3), 1: (0, 2), 2: (1, 3), 3: (0, 2)}
    best = -np.inf
    for a, t in moves.items():
        q = -0.05 + prob[t] * (2.0 * (t == (0, 4)) + 0.9 * v[t])
        for s in sides[a]:
            q += (1 - prob[t]) / 2 * 0.9 * v[moves[s]]
        best = max(best, q)
    assert v[1, 1] == pytest.approx(best, abs=1e-9)


def test_blocks_and_follow():
    prob = np.arange(1, 31, dtype=float).reshape(5, 6) / 30
    b = pol.block_probabilities(prob, 4)
    assert b.shape == (2, 2)
    assert b[0, 0] == prob[:4, :4].max() and b[1, 1] == prob[4:, 4:].max()
    assert pol.block_probabilities(prob, 4, "mean")[1, 1] == pytest.approx(prob[4:, 4:].sum() / 16)
    actions = np.array([[1, 2], [0, pol.GOAL_ACTION]], np.uint8)
    assert pol.follow(actions, (0, 0)) == ([(0, 0), (0, 1), (1, 1)], True)
    assert pol.follow(np.array([[1, 3]], np.uint8), (0, 0)) == ([(0, 0), (0, 1)], False)
    with pytest.raises(InputError):
        pol.block_probabilities(prob, 0)
    with pytest.raises(InputError):
        pol.Gridworld(prob, (0, 0), gamma=1.0)


def test_quiver_png_is_a_png():
    prob = _network()
    sol = pol.value_iteration(pol.Gridworld(prob, (25, 20)))
    data = pol.quiver_png(prob, sol.actions, (25, 20), dpi=30)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"


def test_goal_off_the_road_is_refused():
    prob = _network()
    with pytest.raises(InputError, match="probability 0"):
        pol.Gridworld(prob, (0, 0))
    with pytest.raises(InputError, match="outside"):
        pol.Gridworld(prob, (99, 0))
