#!/usr/bin/env python
"""Scene inference figures of ``fcnkit predict`` (not a test): peak memory across scene
sizes, end-to-end vs model-only throughput, and fcnkit vs a naive whole-scene loop.

For synthetic 8-band uint16 scenes (written strip by strip, never held whole) and one small
8-band FCN (conv/pool/deconv, output stride 2, seeded fillers), it prints:

1. peak RSS (VmHWM of a fresh child process) of ``predict_scene`` per scene size: flat when
   the largest is <= 1.25x the smallest (the issue's target);
2. end-to-end Mpx/s (read + stretch + tiles + blend + write) against model-only Mpx/s
   (the same number of tiles, already in memory, same Predictor and batch), per size:
   target ratio >= 0.9;
3. ``predict_scene`` against a naive loop (read the whole scene, predict tile after tile
   without pipelining, write the whole mask at the end, as CRESI and most notebooks do), on
   the sizes up to ``--naive-max``: the time ratio.

Throughput runs are interleaved (e2e, model-only, naive, repeated) and medians are printed.

Examples::

    python tools/bench_predict.py                         # 2048, 8192, 16384 px scenes
    python tools/bench_predict.py --sizes 512,1024,2048 --repeat 3
    python tools/bench_predict.py --device cuda --backend torch --tile 512
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/benchlib.py
from benchlib import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def net_text(tile: int) -> str:
    """An 8-band FCN: conv3x3(16)+ReLU, max pool 2/2, conv3x3(16)+ReLU, score 1x1(2),
    deconv 4/2 (bilinear, per class), crop, Softmax."""
    conv = ('layer {{ name: "{n}" type: "Convolution" bottom: "{b}" top: "{n}" convolution_param {{ num_output: {o} '
            'kernel_size: {k} pad: {p} weight_filler {{ type: "gaussian" std: 0.05 }} }} }}\n')
    return (f'name: "bench"\nlayer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 1 dim: 8 '
            f'dim: {tile} dim: {tile} }} }} }}\n'
            + conv.format(n="conv1", b="data", o=16, k=3, p=1)
            + 'layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }\n'
            'layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX '
            'kernel_size: 2 stride: 2 } }\n'
            + conv.format(n="conv2", b="pool1", o=16, k=3, p=1)
            + 'layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }\n'
            + conv.format(n="score", b="conv2", o=2, k=1, p=0)
            + 'layer { name: "up" type: "Deconvolution" bottom: "score" top: "up" convolution_param { num_output: 2 '
            'group: 2 kernel_size: 4 stride: 2 bias_term: false weight_filler { type: "bilinear" } } }\n'
            'layer { name: "crop" type: "Crop" bottom: "up" bottom: "data" top: "crop" crop_param { axis: 2 offset: 1 } }\n'
            'layer { name: "prob" type: "Softmax" bottom: "crop" top: "prob" }\n')


def make_scene(path: Path, size: int) -> None:
    """An 8-band uint16 scene of size x size px in EPSG:32611, written in 512-row strips."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    prof = {"driver": "GTiff", "width": size, "height": size, "count": 8, "dtype": "uint16", "crs": "EPSG:32611",
            "transform": from_origin(500000.0, 4000000.0, 0.3, 0.3), "tiled": True, "blockxsize": 512,
            "blockysize": 512}
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **prof) as dst:
        for r0 in range(0, size, 512):
            h = min(512, size - r0)
            yy, xx = np.mgrid[r0:r0 + h, 0:size]
            base = (np.sin(yy / 37.0) + np.cos(xx / 53.0)) * 300 + 1000
            dst.write((base[None] + rng.normal(0, 80, (8, h, size))).clip(1, 2047).astype(np.uint16),
                      window=Window(0, r0, size, h))


def open_predictor(args, net: Path):
    from fcnkit.deploy.predictor import Predictor

    return Predictor.from_path(net, backend=args.backend, device=args.device, batch_size=args.batch)


def options(args):
    from fcnkit.geo.predict import SceneOptions

    return SceneOptions(tile=args.tile, halo=args.halo, blend="hann", batch=args.batch, stretch="2,98")


def child_rss(args, net: Path, scene: Path, out: Path) -> dict:
    """Run one predict_scene in a fresh process; its peak RSS (VmHWM) in MiB and seconds."""
    cmd = [sys.executable, __file__, "--child", str(net), str(scene), str(out), "--tile", str(args.tile),
           "--halo", str(args.halo), "--batch", str(args.batch), "--backend", args.backend, "--device", args.device]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if res.returncode != 0:
        raise SystemExit(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_child(argv) -> None:
    from fcnkit.geo.predict import predict_scene

    net, scene, out = Path(argv.child), Path(argv.scene), Path(argv.out)
    t = time.perf_counter()
    predict_scene(open_predictor(argv, net), scene, out, options(argv))
    seconds = time.perf_counter() - t
    hwm = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmHWM"))
    print(json.dumps({"peak_rss_mib": hwm / 1024, "seconds": seconds}))


def model_only(predictor, n_tiles: int, args) -> float:
    """Seconds to predict ``n_tiles`` tiles already in memory (same batch)."""
    rng = np.random.default_rng(1)
    chunk = rng.uniform(0, 255, (args.batch, 8, args.tile, args.tile)).astype(np.float32)
    t = time.perf_counter()
    left = n_tiles
    while left > 0:
        n = min(left, args.batch)
        predictor.predict(chunk[:n])
        left -= n
    return time.perf_counter() - t


def naive(predictor, scene: Path, out: Path, args) -> float:
    """The notebook way: whole scene in memory, tile after tile, no halo reuse or pipelining,
    one write at the end (same tile, halo and stretch)."""
    import rasterio

    from fcnkit.geo.stretch import percentile_stretch
    from fcnkit.geo.tiling import tile_windows

    t = time.perf_counter()
    with rasterio.open(scene) as src:
        s = percentile_stretch(src, range(1, 9), (2, 98))
        img = s.apply(src.read())
        profile = {**src.profile, "count": 1, "dtype": "uint8"}
    h = args.halo
    padded = np.pad(img, ((0, 0), (h, h + args.tile), (h, h + args.tile)), mode="reflect")
    mask = np.zeros(img.shape[1:], np.uint8)
    for strip in tile_windows(img.shape[1:], args.tile, h):
        for tl in strip:
            r, c = int(tl.window.row_off) + h, int(tl.window.col_off) + h
            p = predictor.predict(padded[None, :, r:r + args.tile, c:c + args.tile])[0]
            cr, cc, ch, cw = int(tl.core.row_off), int(tl.core.col_off), int(tl.core.height), int(tl.core.width)
            mask[cr:cr + ch, cc:cc + cw] = np.argmax(p[:, h:h + ch, h:h + cw], axis=0)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(mask[None])
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2048,8192,16384")
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--halo", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--naive-max", type=int, default=4096)
    ap.add_argument("--rss-only", action="store_true", help="only the peak-RSS rows")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child")
    ap.add_argument("scene", nargs="?")
    ap.add_argument("out", nargs="?")
    args = ap.parse_args()
    if args.child:
        run_child(args)
        return
    from fcnkit.geo.predict import predict_scene
    from fcnkit.geo.tiling import tile_windows

    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"CPU: {cpu_model()}; cores {os.cpu_count()}; python {platform.python_version()}; backend "
          f"{args.backend} on {args.device}; tile {args.tile}, halo {args.halo}, batch {args.batch}, blend hann")
    with tempfile.TemporaryDirectory(prefix="fcnkit-bench-") as d:
        d = Path(d)
        net = d / "bench.prototxt"
        net.write_text(net_text(args.tile))
        predictor = open_predictor(args, net)
        rss_rows, speed_rows = [], []
        for size in sizes:
            scene = d / f"scene{size}.tif"
            make_scene(scene, size)
            rss = child_rss(args, net, scene, d / f"rss{size}")
            rss_rows.append((size, rss["peak_rss_mib"]))
            if args.rss_only:
                scene.unlink()
                continue
            n_tiles = sum(len(s) for s in tile_windows((size, size), args.tile, args.halo, 2))
            e2e, mo, nv = [], [], []
            for i in range(args.repeat):
                t = time.perf_counter()
                predict_scene(predictor, scene, d / f"e2e{size}_{i}", options(args))
                e2e.append(time.perf_counter() - t)
                mo.append(model_only(predictor, n_tiles, args))
                if size <= args.naive_max:
                    nv.append(naive(predictor, scene, d / f"naive{size}_{i}.tif", args))
            speed_rows.append((size, n_tiles, statistics.median(e2e), statistics.median(mo),
                               statistics.median(nv) if nv else None))
            scene.unlink()
        report(rss_rows, speed_rows)


def report(rss_rows, speed_rows) -> None:
    """Print the two tables and the targets, met or not."""
    print("\n| scene px | peak RSS MiB | x smallest |\n|---|---|---|")
    base = rss_rows[0][1]
    for size, mib in rss_rows:
        print(f"| {size}² | {mib:.0f} | {mib / base:.2f} |")
    flat = rss_rows[-1][1] <= 1.25 * base
    print(f"peak RSS flat (largest <= 1.25x smallest): {'met' if flat else 'NOT met'}")
    if not speed_rows:
        return
    print("\n| scene px | tiles | e2e s | e2e Mpx/s | model-only Mpx/s | e2e / model | naive s | naive / fcnkit |")
    print("|---|---|---|---|---|---|---|---|")
    for size, n, e2e, mo, nv in speed_rows:
        mpx = size * size / 1e6
        nv_txt = (f"{nv:.2f} | {nv / e2e:.2f}" if nv is not None else "- | -")
        print(f"| {size}² | {n} | {e2e:.2f} | {mpx / e2e:.2f} | {mpx / mo:.2f} | {mo / e2e:.2f} | {nv_txt} |")
    ok = all(mo / e2e >= 0.9 for _, _, e2e, mo, _ in speed_rows)
    print(f"end-to-end >= 0.9 x model-only: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
