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
  CPU: torch-cpu (eager fp32, fcnkit's inference module), onnxruntime-cpu (fp32),
  onnxruntime-1t-cpu (fp32, one intra-op thread) and onnxruntime-spin-cpu (fp32, idle threads
  spin): the auto probe's other paths, opencv-dnn (fp32),
  auto-cpu (what ``Predictor(backend="auto")`` runs on this machine, with its choice: tools/bench_auto.py);
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/benchlib.py
from benchlib import conv_ceiling, load_line, machine_line  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: The real Caffe files (../shared/data/caffe, see its README.md).
DATA = ROOT.parent / "shared" / "data" / "caffe"
#: Real nets with trained weights, benchmarked at their declared input shape:
#: name -> (prototxt, caffemodel) relative to :data:`DATA`.
REAL_NETS = {
    "lenet": ("lenet_ahmdtaha/mnist_deploy.prototxt", "lenet_ahmdtaha/lenet_iter_10000.caffemodel"),
    "cifar10_quick": ("bvlc_caffe/v2/examples/cifar10/cifar10_quick.prototxt",
                      "cifar10quick_ikkichung/cifar10_quick_iter_5000.caffemodel"),
    "fsrcnn": ("fsrcnn_espcn_wangxuewen99/FSRCNN_mat.prototxt",
               "fsrcnn_espcn_wangxuewen99/fsrcnn_snapshot_iter_2546000.caffemodel"),
    "resnet50_stem": ("resnet50_stem_htshinichi/test.prototxt", "resnet50_stem_htshinichi/test.caffemodel"),
}
#: The zoo models of the CPU targets (issue 16), at 1 x 8 x 512 x 512.
CPU_ZOO = ("fcn8s_8band", "fcn_alexnet_8band", "tiramisu56_8band")

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
#: What ``--preset cpu`` runs: the CPU targets of issue 16 (zoo at 1x8x512x512 + the real nets).
CPU_PRESET = {"models": ",".join(CPU_ZOO) + ",real", "tiles": "512", "batch": 1, "dtypes": "fp32"}
DEFAULTS = {"models": "fcn8s_8band,tiramisu56_8band", "tiles": "256", "batch": 4, "dtypes": "fp32,fp16"}
TARGET_MODEL, TARGET_TILE = "fcn8s_8band", (512, 512)
ALL_BACKENDS = ("torch", "onnxruntime", "tensorrt", "opencv", "auto")
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
    iqr: tuple[float, float] | None = None  # (q1, q3) ms of the interleaved CPU rounds
    ceiling: float | None = None  # the machine's measured conv ceiling, GFLOP/s (CPU rows)

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
    def frac_ceiling(self) -> float | None:
        """Achieved GFLOP/s over the measured conv ceiling (CPU rows)."""
        return self.tflops * 1e3 / self.ceiling if self.ceiling and self.measured else None

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
    """The model compiled at (batch, tile) (tile None: as declared), with its caffemodel when
    it is one of :data:`REAL_NETS`, else with seeded weights where untrained."""
    from fcnkit.deploy.model import fill_untrained, load_model

    real = REAL_NETS.get(model)
    src = load_model(DATA / real[0] if real else model, weights=DATA / real[1] if real else None,
                     tile=None if real else tile, batch=batch)
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
    tile = tuple(shape[2:4]) if len(shape) == 4 else (1, 1)
    out_name = compiled.outputs[0]
    out_shape = tuple(compiled.analysis.shapes[compiled.net.final[out_name]])
    gflop = compiled.analysis.total_flops / shape[0] / 1e9
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    rows: list[Row] = []
    backends = args.backends
    print(f"\n{model} at {tile[0]}x{tile[1]}, batch {B}: {gflop:.2f} GFLOP per tile", flush=True)

    def add(backend, dtype, ms=math.nan, peak=None, note="", iqr=None):
        r = Row(model, tile, backend, dtype, B, ms, gflop, peak, note, iqr, args.ceiling if peak is None else None)
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

    # CPU backends: always, interleaved in random order (tools/benchlib.py) -----------------------
    _bench_cpu(compiled, shape, x, name, out_name, onnx_files, workdir / Path(model).stem, args, add)

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


def _bench_cpu(compiled, shape, x, name, out_name, onnx_files, stem: Path, args, add) -> None:
    """torch eager, ONNX Runtime (fcnkit's session options) and OpenCV dnn (a child process,
    :func:`_opencv_peer`) on the CPU, interleaved: ``args.rounds`` rounds in random order
    with gaps (:func:`benchlib.interleaved`); one row each with the median and the IQR."""
    import torch

    from benchlib import interleaved

    fns, notes, closers = {}, {}, []
    xt = torch.from_numpy(x)
    if "torch" in args.backends:
        # what fcnkit runs for inference (Predictor, fcnkit run): the fused, channels-last
        # module, with the heap thresholds fcnkit's entry points set (fcnkit.runtime)
        from fcnkit.runtime import tune_malloc

        tune_malloc()
        module = compiled.inference_module()

        def run_torch():
            with torch.inference_mode():
                return module(xt)[out_name].numpy()
        fns["torch-cpu"] = run_torch
    if "onnxruntime" in args.backends:
        if "fp32" in onnx_files:
            import onnxruntime as ort

            from fcnkit.deploy.backends import session_options

            # fcnkit's default session, then the auto probe's other ONNX Runtime paths: one
            # intra-op thread (no hand-off per node), and idle threads that spin
            for row, options in (("onnxruntime-cpu", {"intra_op_threads": args.threads or None}),
                                 ("onnxruntime-1t-cpu", {"intra_op_threads": 1}),
                                 ("onnxruntime-spin-cpu", {"intra_op_threads": args.threads or None,
                                                           "spinning": True})):
                so = session_options(ort, ["CPUExecutionProvider"], **options)
                sess = ort.InferenceSession(str(onnx_files["fp32"]), so, providers=["CPUExecutionProvider"])
                fns[row] = lambda sess=sess: sess.run([out_name], {name: x})
        else:
            notes["onnxruntime-cpu"] = "not evaluated (the fp32 export failed)"
    if "opencv" in args.backends:
        with torch.inference_mode():
            ref = compiled.module(xt)[out_name].numpy()
        try:
            fn, close, note = _opencv_peer(compiled, shape, x, ref, out_name, stem, args)
            fns["opencv-dnn"], notes["opencv-dnn"] = fn, note
            closers.append(close)
        except Exception as e:  # noqa: BLE001 - report and go on
            notes["opencv-dnn"] = f"not evaluated ({_short(e)})"
    if "auto" in args.backends:
        from bench_auto import auto_call

        try:
            fns["auto-cpu"], notes["auto-cpu"] = auto_call(_write_caffe, compiled, shape, x, out_name, stem)
        except Exception as e:  # noqa: BLE001 - report and go on
            notes["auto-cpu"] = f"not evaluated ({_short(e)})"
    try:
        stats = interleaved(fns, rounds=args.rounds, warmup=args.warmup, gap_s=args.gap,
                            min_round_s=args.min_round) if fns else {}
    finally:
        for close in closers:
            close()
    for backend in ("torch-cpu", "onnxruntime-cpu", "onnxruntime-1t-cpu", "onnxruntime-spin-cpu", "opencv-dnn",
                    "auto-cpu"):
        if backend in stats:
            st = stats[backend]
            add(backend, "fp32", st.median, note=notes.get(backend, ""), iqr=(st.q1, st.q3))
        elif backend in notes:
            add(backend, "fp32", note=notes[backend])


def _opencv_peer(compiled, shape, x, ref, out_name, stem: Path, args):
    """(timed call, closer, note): OpenCV 4.x dnn on the same prototxt + caffemodel (written
    by :func:`_write_caffe`) in a child process of ``args.opencv_python``
    (tools/opencv_peer.py); its output is compared with torch's first.

    Raises:
        RuntimeError: the interpreter has no OpenCV 4.x, or the net does not load there.
    """
    import subprocess

    proto, weights = _write_caffe(compiled, shape, stem)
    inp = stem.with_suffix(".input.npy")
    np.save(inp, x)
    child = subprocess.Popen([args.opencv_python, str(Path(__file__).with_name("opencv_peer.py")), str(proto),
                              str(weights), str(inp), out_name, str(args.threads)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def ask(cmd: str) -> str:
        child.stdin.write(cmd + "\n")
        child.stdin.flush()
        return child.stdout.readline().strip()

    def close():
        if child.poll() is None:
            child.stdin.write("quit\n")
            child.stdin.close()
            child.wait(timeout=30)

    first = child.stdout.readline().strip()
    if not first.startswith("ready"):
        err = child.stderr.read()
        child.wait()
        last = [ln for ln in err.splitlines() if ln.strip()][-1:] or ["no output"]
        raise RuntimeError(f"{args.opencv_python}: {last[0]} ({OPENCV_INSTALL}, --opencv-python)")
    version = first.split(" ", 1)[1]
    if int(version.split(".")[0]) >= 5:
        close()
        raise RuntimeError(f"OpenCV {version} no longer reads Caffe files (need < 5; --opencv-python)")
    out = stem.with_suffix(".opencv.npy")
    if ask(f"out {out}") != "ok":
        close()
        raise RuntimeError("the OpenCV peer failed to run the net")
    got = np.load(out)
    err = float(np.abs(got - ref).max() / max(1e-12, np.abs(ref).max())) if got.shape == ref.shape else math.inf
    return (lambda: float(ask("run"))), close, f"OpenCV {version}, rel. err vs torch {err:.1e}"


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


def _spread(r: Row) -> str:
    return f"{r.iqr[0]:.2f}-{r.iqr[1]:.2f}" if r.iqr else "-"


def _fmt_row(r: Row) -> str:
    if not r.measured:
        return f"{r.backend:<20} {r.dtype:<5} {r.note}"
    if r.frac_ceiling is not None:
        frac = f"ceiling {100 * r.frac_ceiling:5.1f}%"
    else:
        frac = "peak " + (f"{100 * r.frac_peak:5.1f}%" if r.frac_peak is not None else "    -")
    return (f"{r.backend:<20} {r.dtype:<5} {r.ms:9.2f} ms/batch (IQR {_spread(r)}) {r.tiles_s:9.2f} tiles/s "
            f"{r.mpix_s:8.2f} MP/s {r.tflops * 1e3:8.1f} GFLOP/s {frac}" + (f"  ({r.note})" if r.note else ""))


def _summary(rows: list[Row]) -> None:
    print("\n| model | tile | backend | dtype | batch | ms/batch | IQR ms | GFLOP/tile | GFLOP/s | % conv ceiling "
          "| % GPU peak | note |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if not r.measured:
            print(f"| {r.model} | {r.tile[0]}x{r.tile[1]} | {r.backend} | {r.dtype} | {r.batch} | - | - | "
                  f"{r.gflop_tile:.3g} | - | - | - | {r.note} |")
            continue
        ceil = f"{100 * r.frac_ceiling:.1f}" if r.frac_ceiling is not None else "-"
        peak = f"{100 * r.frac_peak:.1f}" if r.frac_peak is not None else "-"
        print(f"| {r.model} | {r.tile[0]}x{r.tile[1]} | {r.backend} | {r.dtype} | {r.batch} | {r.ms:.2f} | "
              f"{_spread(r)} | {r.gflop_tile:.3g} | {r.tflops * 1e3:.1f} | {ceil} | {peak} | {r.note} |")
    for line in cpu_target_lines(rows) + target_lines(rows):
        print(line)


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def cpu_target_lines(rows: list[Row]) -> list[str]:
    """Issue 16's CPU targets, one line each, for every model measured on the CPU: the
    fastest fcnkit CPU path (torch-cpu, onnxruntime-cpu, onnxruntime-1t-cpu or
    onnxruntime-spin-cpu: the paths the auto backend chooses from, called directly) >= 80 %
    of the conv ceiling
    (stated for FCN-8s and FC-DenseNet56) and >= 1.8x OpenCV dnn (zoo models), no slower than
    OpenCV dnn (real nets), torch within 1.15x of ONNX Runtime (zoo models); and, where the
    ``auto-cpu`` row ran, what ``backend="auto"`` chose and its time over the fastest fixed path."""
    out = ["\nCPU targets (issue 16; ratios measured side by side in this run):"]
    paths = ("torch-cpu", "onnxruntime-cpu", "onnxruntime-1t-cpu", "onnxruntime-spin-cpu")
    cpu = [r for r in rows if r.backend in paths + ("opencv-dnn",) and r.measured]
    configs = list(dict.fromkeys((r.model, r.tile) for r in cpu))
    if not configs:
        return out + ["  not evaluated (no CPU row was measured)"]
    by = {(r.model, r.tile, r.backend): r for r in cpu}
    auto_rows = {(r.model, r.tile): r for r in rows if r.backend == "auto-cpu" and r.measured}
    for model, tile in configs:
        where = f"  {model} {tile[0]}x{tile[1]}:"
        torch_row, ort, cv = (by.get((model, tile, b)) for b in ("torch-cpu", "onnxruntime-cpu", "opencv-dnn"))
        best = min((by[(model, tile, b)] for b in paths if (model, tile, b) in by), key=lambda r: r.ms, default=None)
        if best is None:
            out.append(f"{where} not evaluated (no fcnkit CPU row)")
            continue
        zoo = model in CPU_ZOO or model.startswith(("fcn", "tiramisu"))
        if model in ("fcn8s_8band", "tiramisu56_8band") and best.frac_ceiling is not None:
            out.append(f"{where} fastest fcnkit CPU path ({best.backend}) at {100 * best.frac_ceiling:.1f}% of the conv "
                       f"ceiling (target >= 80%: {_verdict(best.frac_ceiling >= 0.8)})")
        if cv is None:
            out.append(f"{where} fcnkit vs OpenCV dnn: not evaluated (OpenCV dnn not measured)")
        else:
            ratio, want = cv.ms / best.ms, (1.8 if zoo else 1.0)
            out.append(f"{where} OpenCV dnn / fastest fcnkit ({best.backend}) = {ratio:.2f}x "
                       f"(target >= {want:g}x: {_verdict(ratio >= want)})")
        if zoo and torch_row and ort:
            ratio = torch_row.ms / ort.ms
            out.append(f"{where} torch / ONNX Runtime = {ratio:.2f}x (target <= 1.15x: {_verdict(ratio <= 1.15)})")
        auto = auto_rows.get((model, tile))
        if auto is not None:
            out.append(f"{where} backend auto ran {auto.note.split(';')[0]}: {auto.ms:.2f} ms = "
                       f"{auto.ms / best.ms:.2f}x the fastest fixed path ({best.backend}, {best.ms:.2f} ms)")
    return out


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
    ap.add_argument("--preset", choices=("target", "cpu"), default=None,
                    help="target: the targets' configuration (FCN-8s 8-band, 512x512 tiles, batch 8, fp32+fp16); "
                         "cpu: issue 16's CPU targets (zoo FCN-8s, FCN-AlexNet, FC-DenseNet56 at 1x8x512x512 and "
                         "the real nets); options given explicitly still win")
    ap.add_argument("--models", default=None, help=f"comma-separated zoo names or prototxt paths "
                                                   f"(default {DEFAULTS['models']})")
    ap.add_argument("--tiles", default=None, help=f"comma-separated square tile sizes, or HxW (default {DEFAULTS['tiles']})")
    ap.add_argument("--batch", type=int, default=None, help=f"tiles per batch (default {DEFAULTS['batch']})")
    ap.add_argument("--no-gpu", action="store_true", help="CPU backends only, even with a CUDA device")
    ap.add_argument("--backends", default=",".join(ALL_BACKENDS))
    ap.add_argument("--dtypes", default=None, help="GPU precisions (CPU rows are fp32; default fp32,fp16)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile on CUDA")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved CPU rounds (random order each round)")
    ap.add_argument("--gap", type=float, default=0.2, help="seconds of sleep between two timed CPU calls")
    ap.add_argument("--min-round", type=float, default=0.2,
                    help="a CPU call shorter than this is repeated within its round (mean of the calls)")
    ap.add_argument("--opencv-python", default=None,
                    help="Python with OpenCV 4.x (opencv-python-headless<5) for the OpenCV dnn peer; default "
                         "/tmp/cv410/bin/python when it exists, else this one")
    ap.add_argument("--no-ceiling", action="store_true", help="skip measuring the conv ceiling")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0, help="keep timing up to this long per row")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch / ONNX Runtime / OpenCV (0: all)")
    ap.add_argument("--opt-level", type=int, default=None, help="TensorRT builder optimisation level")
    args = ap.parse_args(argv)
    preset = {"target": TARGET_PRESET, "cpu": CPU_PRESET}.get(args.preset, {})
    for key, default in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, preset.get(key, default))
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in args.backends if b not in ALL_BACKENDS]
    if unknown:
        ap.error(f"unknown backend(s) {unknown}; choose from {', '.join(ALL_BACKENDS)}")
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if args.opencv_python is None:
        args.opencv_python = "/tmp/cv410/bin/python" if Path("/tmp/cv410/bin/python").exists() else sys.executable
    args.ceiling = None
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
    print(machine_line())
    print(f"at start: {load_line()}")
    if not args.no_ceiling:
        args.ceiling, line = conv_ceiling()
        print(line)
    print(f"CPU rows: {args.rounds} interleaved rounds in random order, {args.gap:g} s gaps, median (IQR); "
          f"OpenCV peer: {args.opencv_python}", flush=True)
    rows: list[Row] = []
    models = []
    for m in (m.strip() for m in args.models.split(",") if m.strip()):
        models += list(REAL_NETS) if m == "real" else [m]
    with tempfile.TemporaryDirectory(prefix="fcnkit-bench-") as d:
        for model in models:
            for tile in args.tile_list[:1] if model in REAL_NETS else args.tile_list:
                try:
                    rows += bench_model(model, tile, args, Path(d), gpu)
                except Exception as e:  # noqa: BLE001 - keep benchmarking the others
                    print(f"{model} {tile}: failed: {type(e).__name__}: {e}", flush=True)
    print(f"\nat end: {load_line()}")
    _summary(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
