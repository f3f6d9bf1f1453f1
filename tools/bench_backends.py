#!/usr/bin/env python
"""Throughput of fcnkit's inference backends, side by side, in one run (not a test).

For each chosen model (zoo name or prototxt) and tile size it prints, per available backend
and precision: milliseconds per batch, tiles/s, megapixels/s, the model's GFLOP per tile
(2 FLOP per multiply-add, from fcnkit.analysis), the achieved TFLOP/s and, on a GPU with a
known peak, the fraction of the device's dense peak. It also runs an independent Caffe
runtime when one is installed (OpenCV dnn < 5, which reads the same prototxt + caffemodel),
and ends with the issue's targets:

- ONNX Runtime CPU >= 1.5x OpenCV dnn on the same caffemodel;
- TensorRT fp16 >= 50% of dense fp16 peak on FCN-8s 8-band 512x512 tiles, and >= 2x torch
  eager fp16.

Backends (each skipped with the reason when unavailable):
  torch-cpu, torch-cuda (eager; ``--compile`` adds torch.compile rows), onnxruntime-cpu,
  onnxruntime-cuda / onnxruntime-trt (onnxruntime-gpu), tensorrt (engine built with
  ``fcnkit.deploy.tensorrt``), opencv-dnn.

GPU rows time device-resident tensors (what the model costs); CPU rows time numpy in, numpy
out. Untrained zoo weights are made finite with ``fill_untrained`` first (speed does not
depend on the values, but NaN/inf can slow CPU kernels down).

Examples::

    python tools/bench_backends.py                              # FCN-8s + FC-DenseNet56, 256x256, CPU
    python tools/bench_backends.py --models fcn8s_8band --tiles 512 --batch 8 --device cuda
    python tools/bench_backends.py --models fcn_alexnet_8band --tiles 256 --backends onnxruntime,opencv
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Dense (no sparsity) tensor-core peaks in TFLOP/s: (fp16/bf16 with fp32 accumulate, tf32).
#: Vendor datasheets (NVIDIA H100/H200/A100/L4/L40S/A10/T4/V100/RTX 4090 specifications).
GPU_PEAKS = {
    "H200": (989.4, 494.7), "H100 SXM": (989.4, 494.7), "H100 80GB HBM3": (989.4, 494.7),
    "H100 NVL": (835.0, 417.5), "H100 PCIe": (756.0, 378.0), "H100": (989.4, 494.7),
    "A100": (312.0, 156.0), "L40S": (362.05, 183.0), "L4": (121.0, 60.0), "A10": (125.0, 62.5),
    "RTX 4090": (165.2, 82.6), "T4": (65.0, 8.1), "V100": (125.0, 15.7),
}


@dataclass
class Row:
    model: str
    tile: tuple[int, int]
    backend: str
    dtype: str
    batch: int
    ms: float = math.nan
    gflop_tile: float = math.nan
    peak: float | None = None
    note: str = ""

    @property
    def tiles_s(self) -> float:
        return self.batch / (self.ms / 1e3) if self.ms == self.ms else math.nan

    @property
    def mpix_s(self) -> float:
        return self.tiles_s * self.tile[0] * self.tile[1] / 1e6

    @property
    def tflops(self) -> float:
        return self.tiles_s * self.gflop_tile / 1e3

    @property
    def frac_peak(self) -> float | None:
        return self.tflops / self.peak if self.peak else None


def _time(fn, warmup: int, repeat: int, seconds: float, sync=None) -> float:
    """Median milliseconds of ``fn()`` after ``warmup`` calls (at least ``repeat`` runs, more
    while under ``seconds``)."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    t_end = time.perf_counter() + seconds
    while len(times) < repeat or (time.perf_counter() < t_end and len(times) < 1000):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _gpu_peak(dtype: str) -> tuple[float | None, str]:
    import torch

    name = torch.cuda.get_device_name()
    for key, (half, tf32) in GPU_PEAKS.items():
        if key in name:
            return (half if dtype in ("fp16", "bf16") else tf32), name
    return None, name


def _load(model: str, tile, batch):
    from fcnkit.deploy.model import fill_untrained, load_model

    src = load_model(model, tile=tile, batch=batch)
    fill_untrained(src.compiled)
    return src


def bench_model(model: str, tile: tuple[int, int], args, workdir: Path) -> list[Row]:
    import torch

    from fcnkit.deploy.onnx import export_onnx

    B = args.batch
    src = _load(model, tile, B)
    compiled = src.compiled
    name = compiled.inputs[0]
    shape = compiled.input_shapes[name]
    gflop = compiled.analysis.total_flops / shape[0] / 1e9
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    rows: list[Row] = []
    backends = args.backends
    out_name = compiled.outputs[0]
    cuda = args.device == "cuda"
    print(f"\n{model} at {tile[0]}x{tile[1]}, batch {B}: {gflop:.2f} GFLOP per tile", flush=True)

    def add(backend, dtype, ms=math.nan, peak=None, note=""):
        r = Row(model, tile, backend, dtype, B, ms, gflop, peak, note)
        rows.append(r)
        print("  " + _fmt_row(r), flush=True)

    # torch ------------------------------------------------------------------------------
    if "torch" in backends:
        mod = compiled.module.eval()
        if not cuda:
            xt = torch.from_numpy(x)
            with torch.inference_mode():
                add("torch-cpu", "fp32", _time(lambda: mod(xt)[out_name].numpy(), args.warmup, args.repeat, args.seconds))
        elif not torch.cuda.is_available():
            add("torch-cuda", "-", note="no CUDA device")
        else:
            import copy

            for dt in args.dtypes:
                tdt = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dt]
                m = copy.deepcopy(mod).to("cuda", tdt).eval()
                xc = torch.from_numpy(x).to("cuda", tdt)
                peak, _ = _gpu_peak(dt)
                with torch.inference_mode():
                    add("torch-cuda", dt, _time(lambda: m(xc), args.warmup, args.repeat, args.seconds,
                                                torch.cuda.synchronize), peak)
                    if args.compile:
                        mc = torch.compile(m, mode="max-autotune-no-cudagraphs")
                        add("torch-cuda-compile", dt, _time(lambda: mc(xc), args.warmup + 2, args.repeat,
                                                            args.seconds, torch.cuda.synchronize), peak)
                del m, xc
                torch.cuda.empty_cache()

    # ONNX Runtime ---------------------------------------------------------------------------
    onnx_files = {}
    if "onnxruntime" in backends or "tensorrt" in backends:
        for dt in (["fp32"] + (["fp16"] if cuda and "fp16" in args.dtypes else [])):
            path = workdir / f"{model}_{tile[0]}x{tile[1]}_{dt}.onnx"
            try:
                export_onnx(src, path, dtype=dt, parity_batch=1)
                onnx_files[dt] = path
            except Exception as e:  # noqa: BLE001 - report and go on
                print(f"  export {dt} failed: {e}", flush=True)
    if "onnxruntime" in backends and "fp32" in onnx_files:
        import onnxruntime as ort

        avail = ort.get_available_providers()
        provs = [("onnxruntime-cpu", ["CPUExecutionProvider"])]
        if cuda:
            provs = [("onnxruntime-cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]),
                     ("onnxruntime-trt", ["TensorrtExecutionProvider", "CUDAExecutionProvider"])]
        for label, p in provs:
            if p[0] not in avail:
                add(label, "fp32", note=f"{p[0]} not installed (pip install onnxruntime-gpu)")
                continue
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if not cuda and args.threads:
                so.intra_op_num_threads = args.threads
            for dt, f in onnx_files.items():
                sess = ort.InferenceSession(str(f), so, providers=p)
                xx = x.astype(np.float16) if dt == "fp16" else x
                add(label, dt, _time(lambda: sess.run(None, {name: xx}), args.warmup, args.repeat, args.seconds),
                    _gpu_peak(dt)[0] if cuda else None)

    # TensorRT -----------------------------------------------------------------------------
    if "tensorrt" in backends:
        try:
            from fcnkit.deploy.tensorrt import TrtRunner, build_engine

            if not cuda:
                raise RuntimeError("needs --device cuda")
            for dt in [d for d in args.dtypes if d in onnx_files]:
                eng = workdir / f"{model}_{tile[0]}x{tile[1]}_{dt}.engine"
                build_engine(onnx_files[dt], eng, batch=f"1,{B},{B}", timing_cache=workdir / "timing.cache",
                             opt_level=args.opt_level)
                r = TrtRunner(eng)
                xin = torch.from_numpy(x).to("cuda", r.dtypes[name])
                outs = r.infer({name: xin})
                add("tensorrt", dt, _time(lambda: r.infer({name: xin}, outs), args.warmup, args.repeat,
                                          args.seconds, r.stream.synchronize), _gpu_peak(dt)[0])
        except Exception as e:  # noqa: BLE001 - BackendUnavailableError and friends
            add("tensorrt", "-", note=str(e).split(";")[0][:110])

    # OpenCV dnn ---------------------------------------------------------------------------
    if "opencv" in backends and not cuda:
        try:
            import cv2

            major = int(cv2.__version__.split(".")[0])
            if major >= 5:
                raise RuntimeError(f"OpenCV {cv2.__version__} no longer reads Caffe files (need < 5)")
            proto, weights = _write_caffe(compiled, shape, workdir / model)
            net = cv2.dnn.readNetFromCaffe(str(proto), str(weights))
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
            if args.threads:
                cv2.setNumThreads(args.threads)

            def run_cv():
                net.setInput(x)
                return net.forward(out_name)

            ref = compiled.module(torch.from_numpy(x))[out_name].detach().numpy()
            got = run_cv()
            err = float(np.abs(got - ref).max() / max(1e-12, np.abs(ref).max()))
            add("opencv-dnn", "fp32", _time(run_cv, args.warmup, args.repeat, args.seconds),
                note=f"OpenCV {cv2.__version__}, rel. err vs torch {err:.1e}")
        except ImportError:
            add("opencv-dnn", "fp32", note="OpenCV not installed (pip install 'opencv-python-headless<5')")
        except Exception as e:  # noqa: BLE001
            add("opencv-dnn", "fp32", note=str(e)[:110])
    return rows


def _write_caffe(compiled, shape, stem: Path):
    """The deploy prototxt at ``shape`` and a caffemodel with the compiled weights."""
    from fcnkit import caffe
    from fcnkit.compile import export_blobs

    param = caffe.caffe_pb2.NetParameter()
    param.CopyFrom(compiled.net.param)
    for layer in param.layer:
        if layer.type == "Input":
            for s in layer.input_param.shape:
                if len(s.dim) == 4:
                    del s.dim[:]
                    s.dim.extend(shape)
    proto, weights = stem.with_suffix(".prototxt"), stem.with_suffix(".caffemodel")
    caffe.write_prototxt(proto, param)
    caffe.write_caffemodel(weights, param, export_blobs(compiled))
    return proto, weights


def _fmt_row(r: Row) -> str:
    if r.ms != r.ms:
        return f"{r.backend:<20} {r.dtype:<5} skipped: {r.note}"
    peak = f"{100 * r.frac_peak:5.1f}%" if r.frac_peak is not None else "    -"
    return (f"{r.backend:<20} {r.dtype:<5} {r.ms:9.2f} ms/batch {r.tiles_s:9.2f} tiles/s "
            f"{r.mpix_s:8.2f} MP/s {r.tflops:8.3f} TFLOP/s peak {peak}" + (f"  ({r.note})" if r.note else ""))


def _summary(rows: list[Row]) -> None:
    print("\n| model | tile | backend | dtype | batch | ms/batch | tiles/s | MP/s | GFLOP/tile | TFLOP/s | % peak | note |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if r.ms != r.ms:
            print(f"| {r.model} | {r.tile[0]}x{r.tile[1]} | {r.backend} | {r.dtype} | {r.batch} | - | - | - | "
                  f"{r.gflop_tile:.2f} | - | - | {r.note} |")
            continue
        peak = f"{100 * r.frac_peak:.1f}" if r.frac_peak is not None else "-"
        print(f"| {r.model} | {r.tile[0]}x{r.tile[1]} | {r.backend} | {r.dtype} | {r.batch} | {r.ms:.2f} | "
              f"{r.tiles_s:.2f} | {r.mpix_s:.2f} | {r.gflop_tile:.2f} | {r.tflops:.3f} | {peak} | {r.note} |")
    print("\ntargets:")
    by = {}
    for r in rows:
        if r.ms == r.ms:
            by[(r.model, r.tile, r.backend, r.dtype)] = r
    for (model, tile, backend, dtype), r in by.items():
        if backend == "onnxruntime-cpu" and dtype == "fp32":
            cv = by.get((model, tile, "opencv-dnn", "fp32"))
            if cv:
                ratio = r.tiles_s / cv.tiles_s
                print(f"  {model} {tile[0]}x{tile[1]}: ONNX Runtime CPU / OpenCV dnn = {ratio:.2f}x "
                      f"(target >= 1.5x: {'met' if ratio >= 1.5 else 'NOT met'})")
        if backend == "tensorrt" and dtype == "fp16":
            if r.frac_peak is not None:
                print(f"  {model} {tile[0]}x{tile[1]}: TensorRT fp16 at {100 * r.frac_peak:.1f}% of dense fp16 peak "
                      f"(target >= 50%: {'met' if r.frac_peak >= 0.5 else 'NOT met'})")
            te = by.get((model, tile, "torch-cuda", "fp16"))
            if te:
                ratio = r.tiles_s / te.tiles_s
                print(f"  {model} {tile[0]}x{tile[1]}: TensorRT fp16 / torch eager fp16 = {ratio:.2f}x "
                      f"(target >= 2x: {'met' if ratio >= 2 else 'NOT met'})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="fcn8s_8band,tiramisu56_8band",
                    help="comma-separated zoo names or prototxt paths")
    ap.add_argument("--tiles", default="256", help="comma-separated square tile sizes, or HxW")
    ap.add_argument("--batch", type=int, default=4, help="tiles per batch")
    ap.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    ap.add_argument("--backends", default="torch,onnxruntime,tensorrt,opencv")
    ap.add_argument("--dtypes", default="fp32,fp16", help="GPU precisions (CPU rows are fp32)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile on CUDA")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0, help="keep timing up to this long per row")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for ONNX Runtime / OpenCV (0: all)")
    ap.add_argument("--opt-level", type=int, default=None, help="TensorRT builder optimisation level")
    args = ap.parse_args(argv)

    import torch

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if args.device == "cpu":
        args.dtypes = ["fp32"]
    if args.threads:
        torch.set_num_threads(args.threads)
    tiles = []
    for t in args.tiles.split(","):
        h, _, w = t.lower().partition("x")
        tiles.append((int(h), int(w or h)))
    dev = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {os.cpu_count()} cores"
    print(f"fcnkit backend benchmark on {dev}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads; batch {args.batch}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="fcnkit-bench-") as d:
        for model in [m.strip() for m in args.models.split(",") if m.strip()]:
            for tile in tiles:
                try:
                    rows += bench_model(model, tile, args, Path(d))
                except Exception as e:  # noqa: BLE001 - keep benchmarking the others
                    print(f"{model} {tile}: failed: {type(e).__name__}: {e}", flush=True)
    _summary(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
