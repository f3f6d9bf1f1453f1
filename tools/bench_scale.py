#!/usr/bin/env python3
"""Benchmark: time of each pass over a net against its size (issue 15: every pass is linear
or n log n in layers and blobs). Prints figures; asserts nothing.

Two generated nets, at sizes N (default 1,000, 10,000, 100,000):
- ``slice``: one Slice layer with N tops (a 60,000-top Slice used to never finish: the
  duplicate-top check was quadratic);
- ``chain``: N ReLU layers in a chain.
For each: load_net (parse + graph), analyse (shapes, coordinate maps, costs), compile_net
(torch.fx; chain only up to --compile-max layers: fx's own code generation dominates).
The last column is the time per element relative to the smallest size: near 1 is linear.

Usage: python tools/bench_scale.py [--sizes 1000,10000,100000] [--compile-max 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]


def slice_net(n: int):
    from fcnkit.caffe import caffe_pb2

    p = caffe_pb2.NetParameter(name=f"slice{n}")
    i = p.layer.add(name="data", type="Input", top=["data"])
    i.input_param.shape.add().dim.extend([1, n, 1, 1])
    p.layer.add(name="slice", type="Slice", bottom=["data"], top=[f"t{k}" for k in range(n)])
    return p


def chain_net(n: int):
    from fcnkit.caffe import caffe_pb2

    p = caffe_pb2.NetParameter(name=f"chain{n}")
    i = p.layer.add(name="data", type="Input", top=["data"])
    i.input_param.shape.add().dim.extend([1, 1, 2, 2])
    bottom = "data"
    for k in range(n):
        p.layer.add(name=f"relu{k}", type="ReLU", bottom=[bottom], top=[f"r{k}"])
        bottom = f"r{k}"
    return p


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--compile-max", type=int, default=10000)
    args = ap.parse_args(argv)
    from fcnkit.analysis import analyse
    from fcnkit.compile import compile_net
    from fcnkit.graph import load_net
    from fcnkit.limits import set_memory_limit

    set_memory_limit(0)
    from benchlib import machine_line

    print(machine_line())
    print("| net | N | load_net (s) | analyse (s) | compile_net (s) | load per element vs smallest |")
    print("|---|---:|---:|---:|---:|---:|")
    sizes = [int(s) for s in args.sizes.split(",")]
    for make in (slice_net, chain_net):
        base = None
        for n in sizes:
            param = make(n)
            net, t_load = _timed(lambda: load_net(param))
            analysis, t_an = _timed(lambda: analyse(net))
            t_comp = "-"
            if n <= args.compile_max:
                _, t = _timed(lambda: compile_net(net, analysis=analysis))
                t_comp = f"{t:.2f}"
            per = t_load / n
            base = base or per
            print(f"| {make.__name__.removesuffix('_net')} | {n:,} | {t_load:.2f} | {t_an:.2f} | "
                  f"{t_comp} | {per / base:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
