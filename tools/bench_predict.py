#!/usr/bin/env python
"""Scene inference figures of ``fcnkit predict`` (not a test): peak memory across scene
sizes, end-to-end vs model-only throughput, and fcnkit vs a naive whole-tile loop.

Synthetic 8-band uint16 scenes (written window by window, compressed, never held whole), two
models: *tiny*, an 8-band FCN (conv/pool/deconv, output stride 2, seeded fillers) whose
forward costs about as much as reading the pixels, and *real*, a zoo road model
(``tiramisu56_8band``, FC-DenseNet56 with its bundled trained weights and stored stretch).
It prints:

1. peak RSS (VmHWM of a fresh child process, nothing subtracted) of ``predict_scene`` with
   the tiny model per scene size (default 2048², 8192², 16384²): flat when the largest is
   <= 1.25x the smallest (the issue's target);
2. end-to-end Mpx/s (read + stretch + tiles + blend + write) against model-only Mpx/s (the
   same number of tiles, already in memory, same Predictor and batch): target >= 0.9 with
   the realistic model; the tiny model's ratio for information;
3. the same run against a naive loop (whole scene in memory, tile after tile with batch 1,
   centre crop, one write at the end, as CRESI and most notebooks do): the time ratio.

Throughput rounds are interleaved (e2e, model-only, naive, repeated) and medians printed.

Examples::

    python tools/bench_predict.py                         # RSS 2048/8192/16384, speed rows
    python tools/bench_predict.py --sizes 1024,4096 --skip-speed
    python tools/bench_predict.py --skip-rss --real-size 384 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/benchlib.py
from benchlib import machine_line  # noqa: E402

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
    """An 8-band uint16 scene of size x size px in EPSG:32611, written in 512-row windows
    with a cheap pattern (smooth waves, a per-band offset, a fine hash texture), tiled 512,
    DEFLATE level 1, band-interleaved (so the per-band percentile sample decodes each block
    once): a 16384² scene (4 GiB raw) is written in about a minute and never held whole."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    prof = {"driver": "GTiff", "width": size, "height": size, "count": 8, "dtype": "uint16", "crs": "EPSG:32611",
            "transform": from_origin(500000.0, 4000000.0, 0.3, 0.3), "tiled": True, "blockxsize": 512,
            "blockysize": 512, "compress": "deflate", "zlevel": 1, "interleave": "band", "bigtiff": "if_safer"}
    xx = np.arange(size)
    wave_x = (np.cos(xx / 53.0) * 300).astype(np.float32)
    with rasterio.open(path, "w", **prof) as dst:
        for r0 in range(0, size, 512):
            h = min(512, size - r0)
            yy = np.arange(r0, r0 + h)[:, None]
            base = (np.sin(yy / 37.0) * 300).astype(np.float32) + wave_x + 1000
            texture = ((yy * 31 + xx * 17) & 127).astype(np.float32)
            plane = base + texture
            block = np.empty((8, h, size), np.uint16)
            for b in range(8):
                block[b] = np.clip(plane + 40 * b, 1, 2047)
            dst.write(block, window=Window(0, r0, size, h))


def open_predictor(model: str, args):
    from fcnkit.deploy.predictor import Predictor

    return Predictor.from_path(model, backend=args.backend, device=args.device, batch_size=args.batch)


def options(tile: int, halo: int | None, batch: int, stretch: str):
    from fcnkit.geo.predict import SceneOptions

    return SceneOptions(tile=tile, halo=halo, blend="hann", batch=batch, stretch=stretch)


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
    predict_scene(open_predictor(str(net), argv), scene, out, options(argv.tile, argv.halo, argv.batch, "2,98"))
    seconds = time.perf_counter() - t
    hwm = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmHWM"))
    print(json.dumps({"peak_rss_mib": hwm / 1024, "seconds": seconds}))


def model_only(predictor, n_tiles: int, tile: int, batch: int) -> float:
    """Seconds to predict ``n_tiles`` tiles already in memory (same batch)."""
    rng = np.random.default_rng(1)
    chunk = rng.uniform(0, 255, (batch, predictor.info.channels, tile, tile)).astype(np.float32)
    t = time.perf_counter()
    left = n_tiles
    while left > 0:
        n = min(left, batch)
        predictor.predict(chunk[:n])
        left -= n
    return time.perf_counter() - t


def naive(predictor, scene: Path, out: Path, plan, stretch) -> float:
    """The notebook way: whole scene in memory, tile after tile (batch 1), no pipelining,
    centre crop, one write at the end (same tile, halo and stretch as fcnkit's run)."""
    import rasterio

    from fcnkit.geo.tiling import tile_windows

    t = time.perf_counter()
    with rasterio.open(scene) as src:
        img = stretch.apply(src.read())
        profile = {**src.profile, "count": 1, "dtype": "uint8"}
    h, tile = plan.halo, plan.tile
    padded = np.pad(img, ((0, 0), (h, h + tile), (h, h + tile)), mode="reflect")
    mask = np.zeros(img.shape[1:], np.uint8)
    for strip in tile_windows(img.shape[1:], tile, h, plan.stride):
        for tl in strip:
            r, c = int(tl.window.row_off) + h, int(tl.window.col_off) + h
            p = predictor.predict(padded[None, :, r:r + tile, c:c + tile])[0]
            cr, cc, ch, cw = int(tl.core.row_off), int(tl.core.col_off), int(tl.core.height), int(tl.core.width)
            mask[cr:cr + ch, cc:cc + cw] = np.argmax(p[:, h:h + ch, h:h + cw], axis=0)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(mask[None])
    return time.perf_counter() - t


def speed(label: str, predictor, scene: Path, size: int, d: Path, opts, repeat: int) -> tuple:
    """Interleaved rounds (fcnkit e2e, model-only, naive); medians in seconds."""
    from fcnkit.geo.io import open_scene
    from fcnkit.geo.predict import predict_scene, resolve_stretch
    from fcnkit.geo.scene import plan_tiling
    from fcnkit.geo.tiling import tile_windows

    plan = plan_tiling(predictor.info, opts.tile, opts.halo, opts.blend)
    src, _ = open_scene(scene)
    with src:
        stretch = resolve_stretch(src, list(range(1, 9)), opts.stretch, predictor.info)
    n_tiles = sum(len(s) for s in tile_windows((size, size), plan.tile, plan.halo, plan.stride))
    model_only(predictor, opts.batch, plan.tile, opts.batch)  # warm-up: first-call allocations count in no round
    e2e, mo, nv = [], [], []
    for i in range(repeat):
        t = time.perf_counter()
        predict_scene(predictor, scene, d / f"e2e_{label}{size}_{i}", opts)
        e2e.append(time.perf_counter() - t)
        mo.append(model_only(predictor, n_tiles, plan.tile, opts.batch))
        nv.append(naive(predictor, scene, d / f"naive_{label}{size}_{i}.tif", plan, stretch))
        print(f"  {label} {size}² round {i + 1}: e2e {e2e[-1]:.2f} s, model-only {mo[-1]:.2f} s, "
              f"naive {nv[-1]:.2f} s", flush=True)
    return (label, size, n_tiles, plan, statistics.median(e2e), statistics.median(mo), statistics.median(nv))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2048,8192,16384", help="scene sizes of the peak-RSS rows (px)")
    ap.add_argument("--speed-size", type=int, default=2048, help="scene size of the tiny-model speed row")
    ap.add_argument("--real-model", default="tiramisu56_8band", help="the realistic road model (zoo name)")
    ap.add_argument("--real-size", type=int, default=512, help="scene size of the realistic-model speed row")
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--halo", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child")
    ap.add_argument("scene", nargs="?")
    ap.add_argument("out", nargs="?")
    args = ap.parse_args()
    if args.child:
        run_child(args)
        return
    print(f"{machine_line()}; backend {args.backend} on {args.device}; batch {args.batch}, blend hann", flush=True)
    rss_rows, speed_rows = [], []
    with tempfile.TemporaryDirectory(prefix="fcnkit-bench-") as d:
        d = Path(d)
        net = d / "bench.prototxt"
        net.write_text(net_text(args.tile))
        for size in ([] if args.skip_rss else [int(s) for s in args.sizes.split(",")]):
            scene = d / f"scene{size}.tif"
            t = time.perf_counter()
            make_scene(scene, size)
            made = time.perf_counter() - t
            rss = child_rss(args, net, scene, d / f"rss{size}")
            rss_rows.append((size, rss["peak_rss_mib"], rss["seconds"]))
            print(f"  {size}²: scene written in {made:.0f} s; predict {rss['seconds']:.0f} s, peak RSS "
                  f"{rss['peak_rss_mib']:.0f} MiB", flush=True)
            scene.unlink()
        if not args.skip_speed:
            for label, model, size, halo, stretch in (("tiny", str(net), args.speed_size, args.halo, "2,98"),
                                                      ("real", args.real_model, args.real_size, None, "model")):
                scene = d / f"speed{size}.tif"
                make_scene(scene, size)
                predictor = open_predictor(model, args)
                speed_rows.append(speed(label, predictor, scene, size, d,
                                        options(args.tile, halo, args.batch, stretch), args.repeat))
                scene.unlink()
    report(rss_rows, speed_rows, args)
    print(f"(end of run) {machine_line()}; the machine was shared with other jobs: speed figures are noisy")


def report(rss_rows, speed_rows, args) -> None:
    """Print the tables and the targets, met or not."""
    if rss_rows:
        print(f"\nPeak RSS, tiny model, tile {args.tile}, halo {args.halo}, one fresh process per scene:")
        print("| scene px | predict s | peak RSS MiB | x smallest |\n|---|---|---|---|")
        base = rss_rows[0][1]
        for size, mib, sec in rss_rows:
            print(f"| {size}² | {sec:.0f} | {mib:.0f} | {mib / base:.2f} |")
        flat = rss_rows[-1][1] <= 1.25 * base
        print(f"peak RSS flat (largest <= 1.25x smallest): {'met' if flat else 'NOT met'}")
    if not speed_rows:
        return
    print(f"\nThroughput, medians of {args.repeat} interleaved rounds (e2e, model-only, naive):")
    print("| model | scene px | tile/halo | tiles | e2e s | e2e Mpx/s | model-only Mpx/s | e2e / model-only "
          "| naive s | naive / fcnkit |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, size, n, plan, e2e, mo, nv in speed_rows:
        mpx = size * size / 1e6
        print(f"| {label} | {size}² | {plan.tile}/{plan.halo} | {n} | {e2e:.2f} | {mpx / e2e:.4f} | {mpx / mo:.4f} "
              f"| {mo / e2e:.2f} | {nv:.2f} | {nv / e2e:.2f} |")
    real = [r for r in speed_rows if r[0] == "real"]
    if real:
        ok = real[0][5] / real[0][4] >= 0.9
        print(f"end-to-end >= 0.9 x model-only (realistic model): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
