#!/usr/bin/env python
"""Benchmark caffemodel loading: fcnkit.caffe.read_caffemodel vs protobuf ParseFromString.

Writes a ~500 MB V2 caffemodel (AlexNet blob sizes, the 8 weighted layers repeated twice) into
a temporary directory, then loads it several times with each method, every load in a fresh
Python process, and reports load time and peak resident memory (VmHWM from /proc/self/status)
side by side, with peak RSS as a multiple of the file size.

With ``--compile`` it measures ``compile_net(net, PATH)`` instead (issue 16: a load from a
caffemodel peaks at <= 1.6x the weights): the zoo's FCN-8s with 8 bands (512 MiB of
float32 weights, written once as a caffemodel by fcnkit's writer), one compile per fresh
process, peak RSS (VmHWM) as a multiple of the weights' bytes. ``--before DIR`` adds the
same measurement of another fcnkit checkout (e.g. ``git archive OLD fcnkit | tar -x -C
DIR``), interleaved with this one's in random order.

Usage:
    python tools/bench_caffemodel_load.py [--copies 2] [--repeat 3] [--keep DIR]
    python tools/bench_caffemodel_load.py --compile [--repeat 3] [--before DIR] [--keep DIR]

"added RSS" is the peak minus the resident size after imports (interpreter, numpy, protobuf;
with --compile also torch and the parsed net), i.e. what the load itself cost. Linux only
(/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (name, type, weight shape, bias length): AlexNet's weighted layers.
ALEXNET = [
    ("conv1", "Convolution", (96, 3, 11, 11), 96),
    ("conv2", "Convolution", (256, 48, 5, 5), 256),
    ("conv3", "Convolution", (384, 256, 3, 3), 384),
    ("conv4", "Convolution", (384, 192, 3, 3), 384),
    ("conv5", "Convolution", (256, 192, 3, 3), 256),
    ("fc6", "InnerProduct", (4096, 9216), 4096),
    ("fc7", "InnerProduct", (4096, 4096), 4096),
    ("fc8", "InnerProduct", (1000, 4096), 1000),
]


def make_model(path: Path, copies: int) -> None:
    """Write an AlexNet-sized V2 caffemodel with ``copies`` repetitions of its layers."""
    import numpy as np

    from fcnkit.caffe import caffe_pb2, write_caffemodel

    rng = np.random.default_rng(0)
    net = caffe_pb2.NetParameter(name="bench_alexnet_x%d" % copies)
    blobs = {}
    for k in range(copies):
        for name, kind, wshape, nbias in ALEXNET:
            layer = net.layer.add(name=f"{name}_{k}", type=kind)
            layer.bottom.append("data")
            layer.top.append(layer.name)
            blobs[layer.name] = [rng.standard_normal(wshape, dtype=np.float32),
                                 rng.standard_normal(nbias, dtype=np.float32)]
    write_caffemodel(path, net, blobs)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(method: str, path: str) -> None:
    """Load ``path`` once with ``method`` and print a JSON line with time and memory."""
    import numpy  # noqa: F401  (imports are part of the baseline, not of the load)

    from fcnkit.caffe import caffe_pb2, read_caffemodel

    baseline = _status_kb("VmRSS")
    start = time.perf_counter()
    if method == "fcnkit":
        model = read_caffemodel(path)
        n_values = sum(a.size for arrays in model.blobs.values() for a in arrays)
    else:
        with open(path, "rb") as f:
            data = f.read()
        net = caffe_pb2.NetParameter()
        net.ParseFromString(data)
        n_values = sum(len(b.data) for layer in net.layer for b in layer.blobs)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "vmhwm_kb": _status_kb("VmHWM"),
                      "baseline_kb": baseline, "values": n_values}))


def measure(method: str, path: Path, repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, __file__, "--child", method, str(path)],
                             capture_output=True, text=True, check=True, cwd=ROOT)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_mb": max(r["vmhwm_kb"] for r in runs) / 1024,
        "added_mb": max(r["vmhwm_kb"] - r["baseline_kb"] for r in runs) / 1024,
        "values": runs[0]["values"],
    }


# Child of --compile, run with ``python -c`` and PYTHONPATH set to the fcnkit checkout
# measured. VmHWM is reset first (/proc/self/clear_refs "5", Linux >= 4.0).
COMPILE_CHILD = r"""
import json, sys, time
try:
    open("/proc/self/clear_refs", "w").write("5")
except OSError:
    pass
def status_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
import numpy, torch, fcnkit  # imports are not what is measured
from fcnkit.compile import compile_net
from fcnkit.graph import load_net
net = load_net(sys.argv[1])
baseline = status_kb("VmRSS")
start = time.perf_counter()
compiled = compile_net(net, sys.argv[2], deploy=True)
seconds = time.perf_counter() - start
n_values = sum(t.numel() for t in compiled.module.state_dict().values())
print(json.dumps({"seconds": seconds, "vmhwm_kb": status_kb("VmHWM"), "baseline_kb": baseline,
                  "values": n_values, "fcnkit": fcnkit.__file__}))
"""


def make_fcn8s(folder: Path) -> tuple[Path, Path]:
    """The zoo's FCN-8s (8 bands, 512x512, deploy) as a prototxt and a caffemodel of its
    filler-drawn weights, written once into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    prototxt, weights = folder / "fcn8s_8band.prototxt", folder / "fcn8s_8band.caffemodel"
    if weights.is_file() and prototxt.is_file():
        return prototxt, weights
    from fcnkit import caffe, zoo
    from fcnkit.compile import compile_net, export_blobs
    from fcnkit.graph import load_net

    prototxt.write_text(zoo.render("fcn8s_8band"))
    compiled = compile_net(load_net(prototxt), None, deploy=True)
    caffe.write_caffemodel(weights, compiled.net.param, export_blobs(compiled))
    return prototxt, weights


def _compile_once(checkout: Path, prototxt: Path, weights: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    # cwd too: `python -c` puts the working directory first on sys.path
    out = subprocess.run([sys.executable, "-c", COMPILE_CHILD, str(prototxt), str(weights)],
                         env=env, cwd=checkout, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["fcnkit"].startswith(str(checkout.resolve())), result["fcnkit"]
    return result


def bench_compile(folder: Path, repeat: int, before: Path | None) -> None:
    """Peak RSS of compile_net from FCN-8s's caffemodel, this checkout (and ``before``)."""
    t0 = time.perf_counter()
    prototxt, weights = make_fcn8s(folder)
    print(f"FCN-8s 8 bands: {weights} ready in {time.perf_counter() - t0:.1f} s")
    checkouts = {"this checkout": ROOT} | ({f"before ({before})": before} if before else {})
    runs: dict[str, list[dict]] = {k: [] for k in checkouts}
    for _ in range(repeat):
        for label in random.sample(list(checkouts), len(checkouts)):
            runs[label].append(_compile_once(checkouts[label], prototxt, weights))
    n_values = {r["values"] for rs in runs.values() for r in rs}
    assert len(n_values) == 1, n_values
    weights_mib = n_values.pop() * 4 / 2**20
    print(f"\nweights {weights_mib:.1f} MiB of float32 (file {weights.stat().st_size / 2**20:.1f} "
          f"MiB); compile_net(net, caffemodel, deploy=True), {repeat} fresh processes each, "
          "in random order; medians\n")
    header = (f"{'fcnkit':<40}{'compile s':>10}{'peak RSS MiB':>14}{'peak/weights':>14}"
              f"{'added MiB':>11}{'added/weights':>15}")
    print(header + "\n" + "-" * len(header))
    for label, rs in runs.items():
        peak = statistics.median(r["vmhwm_kb"] for r in rs) / 1024
        added = statistics.median(r["vmhwm_kb"] - r["baseline_kb"] for r in rs) / 1024
        seconds = statistics.median(r["seconds"] for r in rs)
        print(f"{label[:39]:<40}{seconds:>10.2f}{peak:>14.0f}{peak / weights_mib:>14.2f}"
              f"{added:>11.0f}{added / weights_mib:>15.2f}")
    print("\ntarget (issue 16): peak RSS <= 1.6x the weights")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2,
                        help="repetitions of AlexNet's layers (2 -> ~488 MB)")
    parser.add_argument("--repeat", type=int, default=3, help="loads per method")
    parser.add_argument("--keep", type=Path, help="write the model into this directory and keep it")
    parser.add_argument("--compile", action="store_true",
                        help="measure compile_net of the zoo's FCN-8s from a caffemodel instead")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="with --compile: also measure the fcnkit checkout in DIR")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    if args.compile:
        with tempfile.TemporaryDirectory(prefix="fcnkit-bench-") as tmp:
            bench_compile(args.keep or Path(tmp), args.repeat, args.before)
        return 0

    with tempfile.TemporaryDirectory(prefix="fcnkit-bench-") as tmp:
        folder = args.keep or Path(tmp)
        path = Path(folder) / "bench.caffemodel"
        t0 = time.perf_counter()
        make_model(path, args.copies)
        size_mb = path.stat().st_size / 1e6
        size_mib = path.stat().st_size / 2**20
        print(f"wrote {path} ({size_mb:.1f} MB) in {time.perf_counter() - t0:.1f} s")
        results = {m: measure(m, path, args.repeat) for m in ("fcnkit", "protobuf")}

    assert results["fcnkit"]["values"] == results["protobuf"]["values"]
    print(f"\nfile: {size_mb:.1f} MB ({size_mib:.1f} MiB), {results['fcnkit']['values']:,} floats; "
          f"median of {args.repeat} loads, each in a fresh process\n")
    header = (f"{'method':<28}{'load s':>9}{'peak RSS MiB':>14}{'peak/file':>11}"
              f"{'added MiB':>11}{'added/file':>12}")
    print(header)
    print("-" * len(header))
    names = {"fcnkit": "fcnkit read_caffemodel", "protobuf": "protobuf ParseFromString"}
    for m, r in results.items():
        print(f"{names[m]:<28}{r['seconds']:>9.3f}{r['peak_mb']:>14.1f}"
              f"{r['peak_mb'] / size_mib:>11.2f}{r['added_mb']:>11.1f}"
              f"{r['added_mb'] / size_mib:>12.2f}")
    f, p = results["fcnkit"], results["protobuf"]
    print(f"\nfcnkit / protobuf: time {f['seconds'] / p['seconds']:.2f}x, "
          f"peak RSS {f['peak_mb'] / p['peak_mb']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
