#!/usr/bin/env python
"""APLS timing, side by side, in one run (not a test).

1. All-pairs path lengths, the inner cost of APLS: ``scipy.sparse.csgraph.dijkstra`` (what
   fcnkit uses) against ``networkx.all_pairs_dijkstra_path_length`` (what CosmiQ's apls uses),
   on grid road graphs of growing size; interleaved repeats, medians, ratio.
2. Whole APLS per tile on the real oracle tiles (img99, the solaris anchor), median seconds.

Prints the CPU model. Example::

    PYTHONPATH=. python tools/bench_roads_apls.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import networkx as nx
from shapely.geometry import LineString

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/benchlib.py
from benchlib import cpu_model  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "spacenet"


def grid_graph(side: int, step: float = 50.0) -> nx.MultiGraph:
    g = nx.MultiGraph()
    for r in range(side):
        for c in range(side):
            g.add_node(r * side + c, x=c * step, y=r * step)
    for r in range(side):
        for c in range(side):
            for dr, dc in ((0, 1), (1, 0)):
                if r + dr < side and c + dc < side:
                    a, b = r * side + c, (r + dr) * side + c + dc
                    line = LineString([(c * step, r * step), ((c + dc) * step, (r + dr) * step)])
                    g.add_edge(a, b, geometry=line, length=line.length)
    return g


def bench_all_pairs(repeats: int) -> None:
    from fcnkit.roads.apls import _all_pairs

    print("all-pairs path lengths (median of interleaved repeats)")
    print(f"{'nodes':>7} {'csgraph s':>10} {'networkx s':>11} {'ratio':>7}")
    for side in (10, 20, 30):
        g = grid_graph(side)
        ours, ref = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            _all_pairs(g, "length")
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            dict(nx.all_pairs_dijkstra_path_length(g, weight="length"))
            ref.append(time.perf_counter() - t)
        a, b = statistics.median(ours), statistics.median(ref)
        print(f"{side * side:>7} {a:>10.4f} {b:>11.4f} {b / a:>6.1f}x")


def bench_tiles(repeats: int) -> None:
    from fcnkit.roads.apls import AplsParams, apls
    from fcnkit.roads.apls_graph import graph_from_lines
    from fcnkit.roads.vector import read_road_lines

    d = DATA / "apls" / "img99"
    if not d.is_dir():
        print(f"tile timing skipped: {d} not present")
        return
    gt = graph_from_lines(read_road_lines(d / "spacenetroads_AOI_2_Vegas_img99.geojson"))
    prop = graph_from_lines(read_road_lines(d / "osm_AOI_2_Vegas_img99.geojson"),
                            first_node_id=500)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        score = apls(gt, prop, AplsParams()).apls
        times.append(time.perf_counter() - t)
    print(f"img99 APLS {score:.6f}: median {statistics.median(times) * 1000:.1f} ms per tile")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}")
    bench_all_pairs(args.repeats)
    bench_tiles(args.repeats)


if __name__ == "__main__":
    main()
