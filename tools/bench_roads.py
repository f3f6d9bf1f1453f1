#!/usr/bin/env python3
"""Benchmark of the road decisions (issue 11). Prints figures; asserts nothing.

On one synthetic SIZE x SIZE probability tile (default 1300, SpaceNet's tile size: a grid of
roads 8 px wide, P(road) ~ 0.75 on them and ~ 0.2 off them, noise and speckles), CPU only (the
implementation is numpy/scipy; there is no GPU path):

1. percolation: REALISATIONS Monte Carlo realisations of P(A <-> B) (batched labelling)
   against the straightforward loops over the same realisations: one scipy label per
   realisation, and one networkx graph + has_path per realisation (measured on a few
   realisations, scaled per realisation);
2. route: scikit-image MCP (and fcnkit's A*) against networkx Dijkstra on the same -log p
   graph (networkx measured on a crop, CROP x CROP, because its graph of the whole tile
   needs several GB; MCP measured on the same crop for the ratio);
3. policy: value and policy iteration to convergence on k x k blocks (--block), and the time
   of one whole-grid sweep at full resolution, against a per-cell Python loop sweep;
4. dense CRF: 5 mean-field iterations with the bilateral-grid appearance kernel, against the
   exact appearance sum (measured on a crop, scaled per pixel).

Repetitions are interleaved (ours, theirs, ours, ...) and the median is printed.

Usage: python tools/bench_roads.py [--size 1300] [--realisations 1000] [--reps 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/benchlib.py
from benchlib import cpu_model  # noqa: E402


def synthetic(size: int, seed: int = 0):
    """(prob (size, size) float32, image (3, size, size) 0..255, truth bool): a road grid,
    P(road) ~ 0.75 on it and ~ 0.2 off it (noise 0.15), 2 % of off-road pixels speckles at
    0.85; the image is bright on the roads."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((size, size), bool)
    for k in range(40, size - 8, 150):
        truth[k:k + 8, :] = True
        truth[:, k:k + 8] = True
    prob = np.where(truth, 0.75, 0.2) + rng.normal(0, 0.15, truth.shape)
    prob[(rng.random(truth.shape) < 0.02) & ~truth] = 0.85
    image = np.where(truth, 180.0, 80.0)[None].repeat(3, 0) + rng.normal(0, 12, (3, size, size))
    return np.clip(prob, 0.0, 1.0).astype(np.float32), image, truth


def ends(size: int):
    """A and B on the first and the last horizontal road of :func:`synthetic`."""
    last = list(range(40, size - 8, 150))[-1]
    return (44, 5), (last + 4, size - 5)


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, out


def interleaved(reps, *fns):
    times = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            times[i].append(timed(fn)[0])
    return [statistics.median(t) for t in times]


def loop_scipy(prob, a, b, n, seed):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    st = ndimage.generate_binary_structure(2, 2)
    hits = 0
    for _ in range(n):
        labels, _ = ndimage.label(rng.random(prob.shape, dtype=np.float32) < prob, structure=st)
        hits += labels[a] != 0 and labels[a] == labels[b]
    return hits


def _edges(rows, cols):
    """(r, c, dr, dc) index grids of every 8-neighbour pair, each pair once."""
    for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):
        r, c = np.mgrid[0:rows - dr, max(0, -dc):cols - max(0, dc)]
        yield r.ravel(), c.ravel(), dr, dc


def loop_networkx(prob, a, b, n, seed):
    import networkx as nx

    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n):
        mask = rng.random(prob.shape, dtype=np.float32) < prob
        g = nx.Graph()
        g.add_nodes_from(zip(*np.nonzero(mask)))
        for r, c, dr, dc in _edges(*prob.shape):
            keep = mask[r, c] & mask[r + dr, c + dc]
            r, c = r[keep], c[keep]
            g.add_edges_from(zip(zip(r, c), zip(r + dr, c + dc)))
        hits += a in g and b in g and nx.has_path(g, a, b)
    return hits


def bench_percolation(prob, args):
    from fcnkit.roads import percolation

    size = prob.shape[0]
    a, b = ends(size)
    chunk = min(args.realisations, 100)
    ours, scipy_loop = interleaved(
        args.reps, lambda: percolation.monte_carlo(prob, [a], [b], realisations=chunk, seed=1),
        lambda: loop_scipy(prob, a, b, chunk, 1))
    nx_time, _ = timed(loop_networkx, prob, a, b, args.nx_realisations, 1)
    full, (res, _) = timed(percolation.monte_carlo, prob, [a], [b],
                           realisations=args.realisations, seed=1)
    per_nx = nx_time / args.nx_realisations
    print(f"percolation {size}x{size}: {args.realisations} realisations in {full:.1f} s "
          f"(P = {res.estimate:.3f} [{res.low:.3f}, {res.high:.3f}])")
    print(f"  per realisation: batched {1e3 * ours / chunk:.1f} ms, scipy loop "
          f"{1e3 * scipy_loop / chunk:.1f} ms (ratio {scipy_loop / ours:.2f}x), networkx loop "
          f"{1e3 * per_nx:.0f} ms on {args.nx_realisations} (ratio {per_nx * chunk / ours:.0f}x)")


def networkx_route(prob, a, b):
    import networkx as nx

    from fcnkit.roads.routes import pixel_costs

    cost = pixel_costs(prob)
    rows, cols = prob.shape
    g = nx.Graph()
    for r, c, dr, dc in _edges(rows, cols):
        w = math.hypot(dr, dc) * (cost[r, c] + cost[r + dr, c + dc]) / 2
        g.add_weighted_edges_from(zip(zip(r, c), zip(r + dr, c + dc), w))
    return nx.dijkstra_path_length(g, a, b)


def bench_route(prob, args):
    from fcnkit.roads import routes

    size = prob.shape[0]
    a, b = ends(size)
    t_mcp, r = timed(routes.mcp_route, prob, a, b)
    t_astar, r2 = timed(routes.astar_route, prob, a, b)
    print(f"route {size}x{size}: MCP {t_mcp:.2f} s, A* {t_astar:.2f} s (costs {r.cost:.3f} / "
          f"{r2.cost:.3f}, {len(r.pixels)} pixels)")
    crop = prob[:args.crop, :args.crop]
    ca, cb = ends(args.crop)
    ours, theirs = interleaved(args.reps_slow, lambda: routes.mcp_route(crop, ca, cb),
                               lambda: networkx_route(crop, ca, cb))
    print(f"  on a {args.crop}x{args.crop} crop: MCP {ours:.3f} s, networkx Dijkstra (graph + "
          f"search) {theirs:.1f} s, ratio {theirs / ours:.0f}x")


def python_sweep(world, values):
    rows, cols = world.prob.shape
    new = values.copy()
    for s in range(rows * cols):
        best = -math.inf
        for a in range(4):
            q = -world.step_cost
            for p, t, r in world.outcomes(a):
                pp = p if np.isscalar(p) else p[s]
                rr = r if np.isscalar(r) else r[s]
                q += pp * (rr + world.gamma * values[s if t is None else t[s]])
            best = max(best, q)
        new[s] = best
    return new


def bench_policy(prob, args):
    from fcnkit.roads import policy as pol

    size = prob.shape[0]
    grid = pol.block_probabilities(prob, args.block)
    goal = (44 // args.block, size // 2 // args.block)
    world = pol.Gridworld(grid, goal)
    t_vi, vi = timed(pol.value_iteration, world)
    t_pi, pi = timed(pol.policy_iteration, world)
    q = np.stack([world.q_value(vi.values.ravel(), world.outcomes(a)) for a in range(4)])
    top2 = np.sort(q, axis=0)[-2:]
    clear = (top2[1] - top2[0] > 1e-6).reshape(grid.shape)
    agree = float((vi.actions == pi.actions)[clear].mean())
    print(f"policy {size}x{size} in {args.block}x{args.block} blocks ({grid.shape[0]}x"
          f"{grid.shape[1]} states): value iteration {t_vi:.1f} s ({vi.sweeps} sweeps), policy "
          f"iteration {t_pi:.1f} s ({pi.iterations} improvements, {pi.sweeps} sweeps); "
          f"actions agree on {100 * agree:.2f} % of the {100 * clear.mean():.1f} % of cells whose "
          "best action is better than the next by > 1e-6 (the others are ties)")
    full = pol.Gridworld(prob.astype(np.float64), (44, size // 2))
    compiled = full.compiled_actions()
    values = np.zeros(prob.size)

    def vi_sweep():
        new = full.sweep_q(values, compiled[0])
        for c in compiled[1:]:
            np.maximum(new, full.sweep_q(values, c), out=new)

    sweep = statistics.median(timed(vi_sweep)[0] for _ in range(args.reps + 1))
    small = pol.Gridworld(grid[:60, :60].copy(), (10, 10))
    t_py, _ = timed(python_sweep, small, np.zeros(small.prob.size))
    t_np = statistics.median(timed(lambda: np.max([small.q_value(np.zeros(3600), small.outcomes(a))
                                                   for a in range(4)], 0))[0] for _ in range(5))
    print(f"  one whole-grid sweep at {size}x{size}: {1e3 * sweep:.0f} ms; per-cell Python loop "
          f"sweep (60x60 cells) {1e3 * t_py:.0f} ms vs vectorised {1e3 * t_np:.2f} ms "
          f"(ratio {t_py / t_np:.0f}x)")


def bench_crf(prob, image, truth, args):
    from fcnkit.roads import crf

    size = prob.shape[0]
    t, q = timed(crf.dense_crf, prob, image, crf.CrfParams(), 2048)
    iou = lambda m: (m & truth).sum() / (m | truth).sum()  # noqa: E731
    print(f"CRF {size}x{size}: 5 iterations, theta_alpha 80, bilateral grid: {t:.1f} s "
          f"(IoU vs truth {iou(prob > 0.5):.3f} -> {iou(q > 0.5):.3f})")
    c = args.crf_crop
    values = np.stack([1 - prob[:c, :c], prob[:c, :c]]).astype(np.float64)
    img = image[:, :c, :c]
    ours, exact = interleaved(1, lambda: crf._bilateral_grid(values, img, 20.0, 13.0),
                              lambda: crf._bilateral_exact(values, img, 20.0, 13.0))
    print(f"  appearance sum on a {c}x{c} crop, theta_alpha 20: grid {ours:.2f} s, exact "
          f"windowed {exact:.1f} s (ratio {exact / ours:.0f}x; exact grows with theta_alpha^2)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1300)
    ap.add_argument("--realisations", type=int, default=1000)
    ap.add_argument("--nx-realisations", type=int, default=2)
    ap.add_argument("--crop", type=int, default=400)
    ap.add_argument("--crf-crop", type=int, default=200)
    ap.add_argument("--block", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--reps-slow", type=int, default=1)
    ap.add_argument("--only", choices=["percolation", "route", "policy", "crf"])
    args = ap.parse_args()
    print(f"CPU: {cpu_model()}; numpy {np.__version__}; CUDA: not used (numpy/scipy only)")
    prob, image, truth = synthetic(args.size)
    steps = {"percolation": lambda: bench_percolation(prob, args),
             "route": lambda: bench_route(prob, args),
             "policy": lambda: bench_policy(prob, args),
             "crf": lambda: bench_crf(prob, image, truth, args)}
    for name, step in steps.items():
        if args.only in (None, name):
            step()


if __name__ == "__main__":
    main()
