#!/usr/bin/env python
"""Throughput of fcnkit's inference backends, side by side, in one run (not a test).

For each chosen model (zoo name or prototxt) and tile size it measures every available
backend in the same run: the CPU backends always, the GPU backends when a CUDA device is
present (each backend that cannot run is listed as "not evaluated" with the reason). Per
backend and precision it prints milliseconds per batch, tiles/s, megapixels/s, the model's
GFLOP per tile (2 FLOP per multiply-add, from fcnkit.analysis), the achieved TFLOP/s and, on
a GPU with a known peak, the fraction of the device's dense peak. It ends with the issue's
targets, each "met", "NOT met" or "not evaluated (reason)":

- ONNX Runtime CPU >= 1.5x OpenCV dnn (< 5, an independent Caffe runtime that reads the same
  prototxt + caffemodel) on the same model;
- TensorRT fp16 >= 50% of dense fp16 peak on FCN-8s 8-band 512x512 tiles, and >= 2x torch
  eager fp16 (``--preset target`` runs exactly that configuration).

Backends:
  CPU: torch-cpu (eager fp32), onnxruntime-cpu (fp32), opencv-dnn (fp32);
  GPU: torch-cuda (eager; ``--compile`` adds torch.compile rows), onnxruntime-cuda and
  onnxruntime-trt (onnxruntime-gpu), tensorrt (engine built with ``fcnkit.deploy.tensorrt``).

What is timed: CPU rows take numpy in and give numpy out. GPU rows time device-resident
tensors (what the model costs): torch and TensorRT run on torch CUDA tensors; the ONNX
Runtime CUDA / TensorRT-provider rows bind a torch CUDA input and a preallocated torch CUDA
output through ``IOBinding`` (no host copies inside the timed call). Untrained zoo weights are
made finite with ``fill_untrained`` first (speed does not depend on the values, but NaN/inf
can slow CPU kernels down).

Examples::

    python tools/bench_backends.py                                   # FCN-8s + FC-DenseNet56, 256x256
    python tools/bench_backends.py --preset target                   # the targets' configuration
    python tools/bench_backends.py --models fcn8s_8band --tiles 128 --batch 1 --seconds 2
    python tools/bench_backends.py --models net.prototxt --tiles 64 --backends onnxruntime,opencv
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

#: What ``--preset target`` runs: the configuration the issue's targets name.
TARGET_PRESET = {"models": "fcn8s_8band", "tiles": "512", "batch": 8, "dtypes": "fp32,fp16"}
DEFAULTS = {"models": "fcn8s_8band,tiramisu56_8band", "tiles": "256", "batch": 4, "dtypes": "fp32,fp16"}
TARGET_MODEL, TARGET_TILE = "fcn8s_8band", (512, 512)
ALL_BACKENDS = ("torch", "onnxruntime", "tensorrt", "opencv")
OPENCV_INSTALL = "OpenCV not installed (pip install 'opencv-python-headless<5')"


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
    def measured(self) -> bool:
        return self.ms == self.ms

    @property
    def tiles_s(self) -> float:
        return self.batch / (self.ms / 1e3) if self.measured else math.nan

    @property
    def mpix_s(self) -> float:
        return self.tiles_s * self.tile[0] * self.tile[1] / 1e6

    @property
    def tflops(self) -> float:
        return self.tiles_s * self.gflop_tile / 1e3

    @property
    def frac_peak(self) -> float | None:
        return self.tflops / self.peak if self.peak and self.measured else None


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


def _gpu_peak(dtype: str) -> float | None:
    import torch

    name = torch.cuda.get_device_name()
    for key, (half, tf32) in GPU_PEAKS.items():
        if key in name:
            return half if dtype in ("fp16", "bf16") else tf32
    return None


def _load(model: str, tile, batch):
    from fcnkit.deploy.model import fill_untrained, load_model

    src = load_model(model, tile=tile, batch=batch)
    fill_untrained(src.compiled)
    return src


def _short(e: BaseException) -> str:
    return str(e).split(";")[0].strip()[:120]


def bench_model(model: str, tile: tuple[int, int], args, workdir: Path, gpu: str | None) -> list[Row]:
    """All rows of one model at one tile. ``gpu`` is None when a CUDA device is usable, else
    the reason why the GPU backends are not evaluated."""
    import torch

    from fcnkit.deploy.onnx import export_onnx

    B = args.batch
    src = _load(model, tile, B)
    compiled = src.compiled
    name = compiled.inputs[0]
    shape = compiled.input_shapes[name]
    out_name = compiled.outputs[0]
    out_shape = tuple(compiled.analysis.shapes[compiled.net.final[out_name]])
    gflop = compiled.analysis.total_flops / shape[0] / 1e9
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    rows: list[Row] = []
    backends = args.backends
    print(f"\n{model} at {tile[0]}x{tile[1]}, batch {B}: {gflop:.2f} GFLOP per tile", flush=True)

    def add(backend, dtype, ms=math.nan, peak=None, note=""):
        r = Row(model, tile, backend, dtype, B, ms, gflop, peak, note)
        rows.append(r)
        print("  " + _fmt_row(r), flush=True)

    mod = compiled.module.eval()
    gpu_dtypes = [d for d in args.dtypes if d in ("fp32", "fp16", "bf16")]

    # ONNX files: fp32 always (CPU rows), fp16 for the GPU rows -------------------------------
    onnx_files: dict[str, Path] = {}
    if "onnxruntime" in backends or "tensorrt" in backends:
        want = ["fp32"] + (["fp16"] if gpu is None and "fp16" in gpu_dtypes else [])
        for dt in want:
            path = workdir / f"{Path(model).stem}_{tile[0]}x{tile[1]}_{dt}.onnx"
            try:
                export_onnx(src, path, dtype=dt, parity_batch=1)
                onnx_files[dt] = path
            except Exception as e:  # noqa: BLE001 - report and go on
                print(f"  export {dt} failed: {e}", flush=True)

    # CPU backends: always ---------------------------------------------------------------------
    if "torch" in backends:
        xt = torch.from_numpy(x)
        with torch.inference_mode():
            add("torch-cpu", "fp32", _time(lambda: mod(xt)[out_name].numpy(), args.warmup, args.repeat,
                                           args.seconds))
    if "onnxruntime" in backends:
        import onnxruntime as ort

        if "fp32" in onnx_files:
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if args.threads:
                so.intra_op_num_threads = args.threads
            sess = ort.InferenceSession(str(onnx_files["fp32"]), so, providers=["CPUExecutionProvider"])
            add("onnxruntime-cpu", "fp32", _time(lambda: sess.run(None, {name: x}), args.warmup, args.repeat,
                                                 args.seconds))
            del sess
        else:
            add("onnxruntime-cpu", "fp32", note="not evaluated (the fp32 export failed)")
    if "opencv" in backends:
        _bench_opencv(compiled, shape, x, out_name, workdir / Path(model).stem, args, add)

    # GPU backends: when a CUDA device is there ---------------------------------------------------
    if gpu is not None:
        for b, label in (("torch", "torch-cuda"), ("onnxruntime", "onnxruntime-cuda"),
                         ("onnxruntime", "onnxruntime-trt"), ("tensorrt", "tensorrt")):
            if b in backends:
                add(label, "-", note=f"not evaluated ({gpu})")
        return rows

    if "torch" in backends:
        import copy

        for dt in gpu_dtypes:
            tdt = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dt]
            m = copy.deepcopy(mod).to("cuda", tdt).eval()
            xc = torch.from_numpy(x).to("cuda", tdt)
            peak = _gpu_peak(dt)
            with torch.inference_mode():
                add("torch-cuda", dt, _time(lambda: m(xc), args.warmup, args.repeat, args.seconds,
                                            torch.cuda.synchronize), peak)
                if args.compile:
                    mc = torch.compile(m, mode="max-autotune-no-cudagraphs")
                    add("torch-cuda-compile", dt, _time(lambda: mc(xc), args.warmup + 2, args.repeat,
                                                        args.seconds, torch.cuda.synchronize), peak)
            del m, xc
            torch.cuda.empty_cache()

    if "onnxruntime" in backends:
        _bench_ort_gpu(onnx_files, name, out_name, out_shape, x, args, add)

    if "tensorrt" in backends:
        try:
            from fcnkit.deploy.tensorrt import TrtRunner, build_engine

            dts = [d for d in gpu_dtypes if d in onnx_files]
            if not dts:
                raise RuntimeError("no ONNX file to build from (the export failed)")
            for dt in dts:
                eng = workdir / f"{Path(model).stem}_{tile[0]}x{tile[1]}_{dt}.engine"
                build_engine(onnx_files[dt], eng, batch=f"1,{B},{B}", timing_cache=workdir / "timing.cache",
                             opt_level=args.opt_level)
                r = TrtRunner(eng)
                xin = torch.from_numpy(x).to("cuda", r.dtypes[name])
                outs = r.infer({name: xin})
                add("tensorrt", dt, _time(lambda: r.infer({name: xin}, outs), args.warmup, args.repeat,
                                          args.seconds, r.stream.synchronize), _gpu_peak(dt))
        except Exception as e:  # noqa: BLE001 - BackendUnavailableError and friends
            add("tensorrt", "-", note=f"not evaluated ({_short(e)})")
    return rows


def _bench_ort_gpu(onnx_files, name, out_name, out_shape, x, args, add) -> None:
    """ONNX Runtime's CUDA and TensorRT execution providers on device-resident tensors:
    the input is a torch CUDA tensor and the output a preallocated torch CUDA tensor, both
    bound with ``IOBinding`` (``bind_input`` / ``bind_output`` with their device pointers),
    so that the timed ``run_with_iobinding`` copies nothing between host and device."""
    import onnxruntime as ort
    import torch

    avail = ort.get_available_providers()
    for label, provs in (("onnxruntime-cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]),
                         ("onnxruntime-trt", ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                              "CPUExecutionProvider"])):
        if provs[0] not in avail:
            add(label, "-", note=f"not evaluated ({provs[0]} not installed: pip install onnxruntime-gpu)")
            continue
        for dt, f in onnx_files.items():
            try:
                so = ort.SessionOptions()
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                sess = ort.InferenceSession(str(f), so, providers=provs)
                tdt, ndt = (torch.float16, np.float16) if dt == "fp16" else (torch.float32, np.float32)
                xin = torch.from_numpy(x).to("cuda", tdt).contiguous()
                yout = torch.empty(out_shape, dtype=tdt, device="cuda")
                dev = xin.device.index or 0
                binding = sess.io_binding()
                binding.bind_input(name, "cuda", dev, ndt, tuple(xin.shape), xin.data_ptr())
                binding.bind_output(out_name, "cuda", dev, ndt, tuple(yout.shape), yout.data_ptr())
                torch.cuda.synchronize()  # the input copy (torch's stream) is done before ORT reads it

                def run(sess=sess, binding=binding):
                    sess.run_with_iobinding(binding)
                    binding.synchronize_outputs()

                add(label, dt, _time(run, args.warmup, args.repeat, args.seconds), _gpu_peak(dt))
                del sess, binding, xin, yout
            except Exception as e:  # noqa: BLE001 - an EP that fails to build a session
                add(label, dt, note=f"not evaluated ({_short(e)})")


def _bench_opencv(compiled, shape, x, out_name, stem: Path, args, add) -> None:
    import torch

    try:
        import cv2
    except ImportError:
        add("opencv-dnn", "fp32", note=f"not evaluated ({OPENCV_INSTALL})")
        return
    try:
        major = int(cv2.__version__.split(".")[0])
        if major >= 5:
            raise RuntimeError(f"OpenCV {cv2.__version__} no longer reads Caffe files (need < 5)")
        proto, weights = _write_caffe(compiled, shape, stem)
        net = cv2.dnn.readNetFromCaffe(str(proto), str(weights))
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        if args.threads:
            cv2.setNumThreads(args.threads)

        def run_cv():
            net.setInput(x)
            return net.forward(out_name)

        with torch.no_grad():
            ref = compiled.module(torch.from_numpy(x))[out_name].numpy()
        got = run_cv()
        err = float(np.abs(got - ref).max() / max(1e-12, np.abs(ref).max()))
        add("opencv-dnn", "fp32", _time(run_cv, args.warmup, args.repeat, args.seconds),
            note=f"OpenCV {cv2.__version__}, rel. err vs torch {err:.1e}")
    except Exception as e:  # noqa: BLE001
        add("opencv-dnn", "fp32", note=f"not evaluated ({_short(e)})")


#: Layer types that feed a net from files or memory: replaced by one Input layer.
_SOURCE_TYPES = {"Data", "ImageData", "HDF5Data", "MemoryData", "WindowData", "DummyData", "Input",
                 "Python", "AnnotatedData"}


def _write_caffe(compiled, shape, stem: Path):
    """A deploy prototxt at ``shape`` and a caffemodel with the compiled weights, for an
    independent Caffe runtime.

    The net's sources, whatever they were (an Input layer, Data/ImageData/HDF5Data/... layers
    of a train_val net, or legacy ``input:``/``input_shape``/``input_dim`` fields, which the
    upgrade turns into an Input layer), become one Input layer with the compiled input
    shapes (``shape`` for the first). Layers the deploy compile dropped (losses, metrics,
    layers that only used labels) and phase rules (include/exclude) are left out.
    """
    from fcnkit import caffe
    from fcnkit.compile import export_blobs, module_name

    net = compiled.net
    kept = set(dict(compiled.module.named_children()))
    param = caffe.caffe_pb2.NetParameter()
    param.name = net.param.name
    inp = param.layer.add()
    inp.name, inp.type = "input", "Input"
    for i, top in enumerate(compiled.inputs):
        inp.top.append(top)
        dims = shape if i == 0 else compiled.input_shapes[top]
        inp.input_param.shape.add().dim.extend(int(d) for d in dims)
    available = set(compiled.inputs)
    for node in net.layers:
        if node.role in ("input", "loss", "metric") or node.type in _SOURCE_TYPES or node.type == "Silence":
            continue
        if node.type != "Split" and module_name(node.name) not in kept:
            continue  # dropped by the deploy compile (it only fed a loss or used the labels)
        if not set(node.param.bottom) <= available:
            continue
        layer = param.layer.add()
        layer.CopyFrom(node.param)
        del layer.include[:]
        del layer.exclude[:]
        layer.ClearField("phase")
        available |= set(layer.top)
    proto, weights = stem.with_suffix(".prototxt"), stem.with_suffix(".caffemodel")
    caffe.write_prototxt(proto, param)
    blobs = {k: v for k, v in export_blobs(compiled).items() if any(lp.name == k for lp in param.layer)}
    caffe.write_caffemodel(weights, param, blobs)
    return proto, weights


def _fmt_row(r: Row) -> str:
    if not r.measured:
        return f"{r.backend:<20} {r.dtype:<5} {r.note}"
    peak = f"{100 * r.frac_peak:5.1f}%" if r.frac_peak is not None else "    -"
    return (f"{r.backend:<20} {r.dtype:<5} {r.ms:9.2f} ms/batch {r.tiles_s:9.2f} tiles/s "
            f"{r.mpix_s:8.2f} MP/s {r.tflops:8.3f} TFLOP/s peak {peak}" + (f"  ({r.note})" if r.note else ""))


def _summary(rows: list[Row]) -> None:
    print("\n| model | tile | backend | dtype | batch | ms/batch | tiles/s | MP/s | GFLOP/tile | TFLOP/s | % peak | note |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if not r.measured:
            print(f"| {r.model} | {r.tile[0]}x{r.tile[1]} | {r.backend} | {r.dtype} | {r.batch} | - | - | - | "
                  f"{r.gflop_tile:.2f} | - | - | {r.note} |")
            continue
        peak = f"{100 * r.frac_peak:.1f}" if r.frac_peak is not None else "-"
        print(f"| {r.model} | {r.tile[0]}x{r.tile[1]} | {r.backend} | {r.dtype} | {r.batch} | {r.ms:.2f} | "
              f"{r.tiles_s:.2f} | {r.mpix_s:.2f} | {r.gflop_tile:.2f} | {r.tflops:.3f} | {peak} | {r.note} |")
    for line in target_lines(rows):
        print(line)


def _reason(row: Row | None, default: str) -> str:
    if row is None:
        return default
    note = row.note
    if note.startswith("not evaluated (") and note.endswith(")"):
        note = note[len("not evaluated ("):-1]
    return note or default


def target_lines(rows: list[Row]) -> list[str]:
    """The targets section: for every (model, tile) measured, each target as met / NOT met /
    not evaluated (reason); and a note when the targets' own configuration was not run."""
    out = ["\ntargets (issue 5; configuration: FCN-8s 8-band 512x512 tiles, `--preset target`):"]
    configs = list(dict.fromkeys((r.model, r.tile) for r in rows))
    if not configs:
        return out + ["  not evaluated (no model was benchmarked)"]
    by = {(r.model, r.tile, r.backend, r.dtype): r for r in rows}
    any_row = {(r.model, r.tile, r.backend): r for r in rows}
    for model, tile in configs:
        where = f"  {model} {tile[0]}x{tile[1]}:"
        ort_cpu = by.get((model, tile, "onnxruntime-cpu", "fp32"))
        cv = by.get((model, tile, "opencv-dnn", "fp32"))
        if ort_cpu and cv and ort_cpu.measured and cv.measured:
            ratio = ort_cpu.tiles_s / cv.tiles_s
            out.append(f"{where} ONNX Runtime CPU / OpenCV dnn = {ratio:.2f}x (target >= 1.5x: "
                       f"{'met' if ratio >= 1.5 else 'NOT met'})")
        else:
            missing = cv if not (cv and cv.measured) else ort_cpu
            why = _reason(missing, "OpenCV dnn not run (--backends)" if missing is cv
                          else "ONNX Runtime CPU not run (--backends)")
            out.append(f"{where} ONNX Runtime CPU >= 1.5x OpenCV dnn: not evaluated ({why})")
        trt = by.get((model, tile, "tensorrt", "fp16"))
        if trt is None or not trt.measured:
            why = _reason(trt or any_row.get((model, tile, "tensorrt")), "TensorRT fp16 not run (--backends/--dtypes)")
            out.append(f"{where} TensorRT fp16 >= 50% of dense fp16 peak: not evaluated ({why})")
            out.append(f"{where} TensorRT fp16 >= 2x torch eager fp16: not evaluated ({why})")
            continue
        if trt.frac_peak is not None:
            out.append(f"{where} TensorRT fp16 at {100 * trt.frac_peak:.1f}% of dense fp16 peak (target >= 50%: "
                       f"{'met' if trt.frac_peak >= 0.5 else 'NOT met'})")
        else:
            out.append(f"{where} TensorRT fp16 >= 50% of dense fp16 peak: not evaluated (this GPU's peak is "
                       "not in GPU_PEAKS)")
        te = by.get((model, tile, "torch-cuda", "fp16"))
        if te and te.measured:
            ratio = trt.tiles_s / te.tiles_s
            out.append(f"{where} TensorRT fp16 / torch eager fp16 = {ratio:.2f}x (target >= 2x: "
                       f"{'met' if ratio >= 2 else 'NOT met'})")
        else:
            out.append(f"{where} TensorRT fp16 >= 2x torch eager fp16: not evaluated "
                       f"({_reason(te or any_row.get((model, tile, 'torch-cuda')), 'torch-cuda fp16 not run')})")
    if (TARGET_MODEL, TARGET_TILE) not in configs:
        out.append(f"  note: the GPU targets are stated for {TARGET_MODEL} at {TARGET_TILE[0]}x{TARGET_TILE[1]}, "
                   "which this run did not include (run with --preset target)")
    return out


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=("target",), default=None,
                    help="target: the targets' configuration (FCN-8s 8-band, 512x512 tiles, batch 8, fp32+fp16); "
                         "options given explicitly still win")
    ap.add_argument("--models", default=None, help=f"comma-separated zoo names or prototxt paths "
                                                   f"(default {DEFAULTS['models']})")
    ap.add_argument("--tiles", default=None, help=f"comma-separated square tile sizes, or HxW (default {DEFAULTS['tiles']})")
    ap.add_argument("--batch", type=int, default=None, help=f"tiles per batch (default {DEFAULTS['batch']})")
    ap.add_argument("--no-gpu", action="store_true", help="CPU backends only, even with a CUDA device")
    ap.add_argument("--backends", default=",".join(ALL_BACKENDS))
    ap.add_argument("--dtypes", default=None, help="GPU precisions (CPU rows are fp32; default fp32,fp16)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile on CUDA")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0, help="keep timing up to this long per row")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch / ONNX Runtime / OpenCV (0: all)")
    ap.add_argument("--opt-level", type=int, default=None, help="TensorRT builder optimisation level")
    args = ap.parse_args(argv)
    preset = TARGET_PRESET if args.preset == "target" else {}
    for key, default in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, preset.get(key, default))
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in args.backends if b not in ALL_BACKENDS]
    if unknown:
        ap.error(f"unknown backend(s) {unknown}; choose from {', '.join(ALL_BACKENDS)}")
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    args.tile_list = []
    for t in args.tiles.split(","):
        h, _, w = t.lower().partition("x")
        args.tile_list.append((int(h), int(w or h)))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.no_gpu:
        gpu = "--no-gpu"
    elif not torch.cuda.is_available():
        gpu = "no CUDA device" + (": CPU-only PyTorch build" if torch.version.cuda is None else "")
    else:
        gpu = None
    dev = f"CPU, {os.cpu_count()} cores" + (f" + {torch.cuda.get_device_name()}" if gpu is None else "")
    print(f"fcnkit backend benchmark on {dev}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads; batch {args.batch}"
          + (f"; GPU backends not evaluated: {gpu}" if gpu else ""))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="fcnkit-bench-") as d:
        for model in [m.strip() for m in args.models.split(",") if m.strip()]:
            for tile in args.tile_list:
                try:
                    rows += bench_model(model, tile, args, Path(d), gpu)
                except Exception as e:  # noqa: BLE001 - keep benchmarking the others
                    print(f"{model} {tile}: failed: {type(e).__name__}: {e}", flush=True)
    _summary(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
