#!/usr/bin/env python
"""Benchmark caffemodel loading: fcnkit.caffe.read_caffemodel vs protobuf ParseFromString.

Writes a ~500 MB V2 caffemodel (AlexNet blob sizes, the 8 weighted layers repeated twice) into
a temporary directory, then loads it several times with each method, every load in a fresh
Python process, and reports load time and peak resident memory (VmHWM from /proc/self/status)
side by side, with peak RSS as a multiple of the file size.

Usage:
    python tools/bench_caffemodel_load.py [--copies 2] [--repeat 3] [--keep DIR]

"added RSS" is the peak minus the resident size after imports (interpreter, numpy, protobuf),
i.e. what the load itself cost. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2,
                        help="repetitions of AlexNet's layers (2 -> ~488 MB)")
    parser.add_argument("--repeat", type=int, default=3, help="loads per method")
    parser.add_argument("--keep", type=Path, help="write the model into this directory and keep it")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
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
