"""The backends behind :class:`fcnkit.deploy.predictor.Predictor` and what they know of their
model (:class:`ModelInfo`): the compiled torch module, an ONNX Runtime session, a TensorRT
engine. Each takes float32 (N, C, H, W) batches and yields class probabilities
(N, K, H, W float32) or labels (N, H, W uint8), post-processed on its device.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from fcnkit.deploy.tiling_info import from_metadata, preprocess_from_metadata, tiling_info
from fcnkit.errors import BackendUnavailableError, InputError

@dataclass
class ModelInfo:
    """What a backend knows about its model (names are Caffe blob names).

    Attributes:
        input: the image input; channels: C; tile: (H, W) the backend is fixed to, or None.
        outputs: output names; probabilities: the outputs that already are probabilities
            (produced by a Softmax layer).
        band_names, class_names: from the zoo / ONNX metadata, when known.
        fixed_batch: the batch the backend must be fed (static-batch ONNX), or None.
        max_batch: the largest batch it accepts (TensorRT profile), or None.
        receptive_field: (rf_y, rf_x) input pixels; output_stride: pixels; halo: the
            recommended tile overlap per side in pixels (:mod:`fcnkit.deploy.tiling_info`);
            None where unknown.
        preprocess: the preprocess JSON stored with the model (contracts: stretch
            parameters), or None.
    """

    input: str
    channels: int
    tile: tuple[int, int] | None
    outputs: list[str]
    probabilities: set[str] = field(default_factory=set)
    band_names: list[str] | None = None
    class_names: list[str] | None = None
    fixed_batch: int | None = None
    max_batch: int | None = None
    receptive_field: tuple[int, int] | None = None
    output_stride: int | None = None
    halo: int | None = None
    preprocess: dict | None = None


# --------------------------------------------------------------------------------------
# Post-processing shared by the backends (torch tensors on any device, or numpy)
# --------------------------------------------------------------------------------------

def _class_axis(shape, labels: bool) -> bool:
    """Whether an output of ``shape`` has a class axis of K >= 2 (axis 1), which a softmax
    and labels need; ``labels=True`` without one is an error."""
    multi = len(shape) >= 2 and int(shape[1]) >= 2
    if labels and not multi:
        raise InputError(f"labels=True needs an output with a class axis of K >= 2 classes (N x K x ...), "
                         f"got shape {tuple(shape)}; this output is not a class score")
    return multi


def _post_torch(y, softmax: bool, labels: bool):
    import torch

    y = y.float()
    multi = _class_axis(y.shape, labels)
    if labels:
        idx = torch.argmax(y, dim=1)
        return idx.to(torch.uint8) if y.shape[1] <= 256 else idx.to(torch.int32)
    return torch.softmax(y, dim=1) if softmax and multi else y


def _post_numpy(y: np.ndarray, softmax: bool, labels: bool) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    multi = _class_axis(y.shape, labels)
    if labels:
        idx = np.argmax(y, axis=1)
        return idx.astype(np.uint8) if y.shape[1] <= 256 else idx.astype(np.int32)
    if softmax and multi:
        e = np.exp(y - y.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return y


class _CudaPipeline:
    """Host batches -> pinned buffers -> device (copy stream) -> ``fn`` (compute stream) ->
    pinned host results. Yields numpy results in order, one batch behind the submission, so
    that host preparation, the H2D copy of the next batch and the compute of this one overlap.
    """

    def __init__(self, device, in_dtype):
        import torch

        self.torch = torch
        self.device = device
        self.in_dtype = in_dtype
        self.copy_stream = torch.cuda.Stream(device)
        self.compute_stream = torch.cuda.Stream(device)

    def run(self, batches: Iterable[np.ndarray], fn) -> Iterator[np.ndarray]:
        torch = self.torch
        pending: collections.deque = collections.deque()
        for b in batches:
            host = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32)).pin_memory()
            with torch.cuda.stream(self.copy_stream):
                x = host.to(self.device, non_blocking=True)
                if x.dtype != self.in_dtype:
                    x = x.to(self.in_dtype)
                copied = torch.cuda.Event()
                copied.record(self.copy_stream)
            with torch.cuda.stream(self.compute_stream):
                self.compute_stream.wait_event(copied)
                x.record_stream(self.compute_stream)
                y = fn(x, self.compute_stream)
                out = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
                out.copy_(y, non_blocking=True)
                done = torch.cuda.Event()
                done.record(self.compute_stream)
            pending.append((done, out, host))
            if len(pending) > 1:
                ev, res, _ = pending.popleft()
                ev.synchronize()
                yield res.numpy()
        while pending:
            ev, res, _ = pending.popleft()
            ev.synchronize()
            yield res.numpy()


# --------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------

class _TorchBackend:
    name = "torch"

    def __init__(self, src, device, dtype: str, compile: bool):
        import torch

        from fcnkit.deploy._common import torch_dtype

        compiled = src.compiled
        if len(compiled.inputs) != 1:
            raise InputError(f"the Predictor takes nets with one image input; this one has {compiled.inputs}")
        name = compiled.inputs[0]
        shape = compiled.input_shapes[name]
        if len(shape) != 4:
            raise InputError(f"the Predictor takes an N,C,H,W input; '{name}' has shape {shape}")
        self.src = src
        self.device = torch.device(device)
        self.dtype = torch_dtype(dtype)
        self.compile = compile
        self._modules: dict[tuple[int, int], Any] = {}
        probs = {n for n in compiled.outputs if _output_kind(compiled, n) == "probabilities"}
        self.info = ModelInfo(name, int(shape[1]), None, list(compiled.outputs), probs, src.bands, src.classes)
        _fill_tiling(self.info, tiling_info(compiled))
        self._pipeline = _CudaPipeline(self.device, self.dtype) if self.device.type == "cuda" else None

    def _module(self, hw: tuple[int, int]):
        import torch

        from fcnkit.deploy.model import reshape

        mod = self._modules.get(hw)
        if mod is None:
            compiled = self.src.compiled
            shape = compiled.input_shapes[self.info.input]
            if tuple(shape[2:]) != hw:
                compiled = reshape(compiled, {self.info.input: (shape[0], shape[1], *hw)})
            cpu_fp32 = self.device.type == "cpu" and self.dtype == torch.float32
            # fused, channels-last, prepacked for oneDNN on the CPU; shares the weights
            mod = compiled.inference_module(prepack=None if cpu_fp32 else False)
            if not cpu_fp32:
                import copy

                mod = copy.deepcopy(mod).to(self.device, self.dtype)
            mod.eval()
            if self.compile:
                mod = torch.compile(mod)
            self._modules[hw] = mod
        return mod

    def run(self, batches, output, softmax, labels):
        import torch

        first = None
        for b in batches:
            first = b
            break
        if first is None:
            return
        mod = self._module(tuple(first.shape[2:]))

        def fn(x, stream=None):
            with torch.inference_mode():
                return _post_torch(mod(x)[output], softmax, labels)

        def chain():
            yield first
            yield from batches

        if self._pipeline is not None:
            yield from self._pipeline.run(chain(), fn)
            return
        for b in chain():
            x = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32))
            if self.dtype != torch.float32:
                x = x.to(self.dtype)
            yield fn(x).cpu().numpy()


def _output_kind(compiled, blob_name: str) -> str:
    """``"probabilities"`` or ``"scores"``: what the net output ``blob_name`` holds."""
    net = compiled.net
    bid = net.final.get(blob_name, blob_name)
    node = net.producer.get(bid)
    return node.layer.output_kind if node is not None else "scores"


def session_options(ort, providers: Sequence[str], intra_op_threads: int | None = None,
                    spinning: bool = False):
    """ONNX Runtime ``SessionOptions`` for inference: every graph optimisation
    (``ORT_ENABLE_ALL``: constant folding, Conv+BatchNorm/Add/activation fusions, layout
    transforms), the CPU memory arena on (activations reuse one pool instead of a ``malloc``
    per tensor), and, on the CPU provider alone, one intra-op thread per core this process
    may use (:func:`fcnkit.runtime.available_cpus`: affinity and cgroup quota, as for
    torch's pool and the auto probe's record; ORT's own default counts the machine's cores, which
    oversubscribes a process confined to fewer), and idle intra-op threads that sleep
    instead of spinning (``session.intra_op.allow_spinning=0``: when another process holds a
    core, spinning threads steal its time; measured on a shared 2-core machine, CIFAR-10
    quick at batch 4 took 14.3 ms spinning against 5.9 ms without). Source: ONNX Runtime
    docs, "Tune performance: threading" and ``SessionOptions``. ``intra_op_threads``: another
    count on the CPU provider (``backend="auto"`` also tries 1: no hand-offs between threads,
    which wins on tiny nets; :mod:`fcnkit.deploy.auto_probe`). ``spinning``: let idle
    intra-op threads spin (``backend="auto"`` tries it too: on a quiet machine a tiny net's
    per-node hand-off then costs a spin instead of a wake-up; LeNet 117 against 236 µs)."""
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_cpu_mem_arena = True
    if list(providers) == ["CPUExecutionProvider"]:
        from fcnkit.runtime import available_cpus

        so.intra_op_num_threads = intra_op_threads or available_cpus()
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return so


class _OrtBackend:
    name = "onnxruntime"

    def __init__(self, model: bytes | str | Path, device: str, providers: Sequence[str] | None,
                 band_names=None, class_names=None, intra_op_threads: int | None = None,
                 spinning: bool = False):
        import onnxruntime as ort

        from fcnkit.deploy.onnx import inspect_onnx

        available = ort.get_available_providers()
        if providers is None:
            if device.startswith("cuda"):
                providers = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available]
                if not providers:
                    raise BackendUnavailableError(
                        "ONNX Runtime on CUDA needs onnxruntime-gpu (`pip install 'fcnkit[gpu]'` or "
                        f"`pip install onnxruntime-gpu`); this onnxruntime has {', '.join(available)}")
                providers = providers + ["CPUExecutionProvider"]
            else:
                providers = ["CPUExecutionProvider"]
        missing = [p for p in providers if p not in available]
        if missing:
            raise BackendUnavailableError(f"ONNX Runtime execution provider(s) {missing} are not installed "
                                          f"(available: {', '.join(available)}); CUDA and TensorRT providers "
                                          "come with `pip install onnxruntime-gpu`")
        # ONNX Runtime reads the file (or bytes) itself: no proto round trip of the weights
        if isinstance(model, (str, Path)):
            info = inspect_onnx(model)
            source: Any = str(model)
        else:
            import onnx

            info = inspect_onnx(onnx.load_from_string(model))
            source = model
        if len(info.inputs) != 1:
            raise InputError(f"the Predictor takes graphs with one image input; this one has "
                             f"{[i[0] for i in info.inputs]}")
        name, shape, np_dtype = info.inputs[0]
        if len(shape) != 4 or not isinstance(shape[1], int):
            raise InputError(f"the Predictor takes an N,C,H,W input; '{name}' has shape {shape}")
        so = session_options(ort, providers, intra_op_threads, spinning)
        self.session = ort.InferenceSession(source, so, providers=list(providers))
        self.providers = self.session.get_providers()
        self.in_dtype = np.float16 if np_dtype == "float16" else np.float32
        kinds = info.meta_json("fcnkit.output_kinds", {}) or {}
        probs = {n for n, k in kinds.items() if k == "probabilities"} if kinds else set(info.softmax_outputs)
        tile = (shape[2], shape[3]) if all(isinstance(d, int) for d in shape[2:]) else None
        bands = info.meta_json("fcnkit.bands") if info.meta_json("fcnkit.bands_named") else None
        classes = info.meta_json("fcnkit.classes") or None
        self.info = ModelInfo(name, int(shape[1]), tile, [o[0] for o in info.outputs], probs,
                              band_names or bands, class_names or classes,
                              fixed_batch=shape[0] if isinstance(shape[0], int) else None)
        _fill_tiling(self.info, from_metadata(info.metadata), preprocess_from_metadata(info.metadata))

    def run(self, batches, output, softmax, labels):
        fixed = self.info.fixed_batch
        for b in batches:
            n = b.shape[0]
            x = np.ascontiguousarray(b, dtype=self.in_dtype)
            if fixed is not None and n < fixed:
                x = np.concatenate([x, np.zeros((fixed - n,) + x.shape[1:], x.dtype)])
            y = self.session.run([output], {self.info.input: x})[0][:n]
            yield _post_numpy(y, softmax, labels)


class _TrtBackend:
    name = "tensorrt"

    def __init__(self, engine_path: Path, device):
        from fcnkit.deploy.tensorrt import TrtRunner, read_sidecar

        self.runner = TrtRunner(engine_path, device)
        side = read_sidecar(engine_path)
        meta = side.get("onnx_metadata", {}) or {}
        r = self.runner
        if len(r.inputs) != 1:
            raise InputError(f"the Predictor takes engines with one image input; this one has {r.inputs}")
        name = r.inputs[0]
        lo, _, hi = r.profile[name]
        if len(lo) != 4 or lo[1] != hi[1]:
            raise InputError(f"the Predictor takes an N,C,H,W input; '{name}' has profile {lo}..{hi}")
        tile = (lo[2], lo[3]) if tuple(lo[2:]) == tuple(hi[2:]) else None
        kinds = meta.get("fcnkit.output_kinds") or {}
        probs = ({n for n, k in kinds.items() if k == "probabilities"} if kinds
                 else set(side.get("softmax_outputs", [])))
        self.info = ModelInfo(name, int(lo[1]), tile, list(r.outputs), probs,
                              meta.get("fcnkit.bands") if meta.get("fcnkit.bands_named") else None,
                              meta.get("fcnkit.classes") or None, max_batch=r.max_batch)
        # the sidecar holds the metadata decoded from JSON; the readers take the JSON text
        meta_str = {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
        _fill_tiling(self.info, from_metadata(meta_str), preprocess_from_metadata(meta_str))
        self._pipeline = _CudaPipeline(r.device, r.dtypes[name])

    def run(self, batches, output, softmax, labels):
        r = self.runner
        name = self.info.input

        def fn(x, stream):
            outs = r.infer({name: x.contiguous()})
            stream.wait_stream(r.stream)
            return _post_torch(outs[output], softmax, labels)

        yield from self._pipeline.run(batches, fn)


# --------------------------------------------------------------------------------------
# Predictor
# --------------------------------------------------------------------------------------


def _fill_tiling(info: ModelInfo, values: dict, preprocess: dict | None = None) -> None:
    rf = values.get("receptive_field")
    info.receptive_field = tuple(rf) if rf is not None else None
    info.output_stride, info.halo = values.get("output_stride"), values.get("halo")
    if preprocess is not None:
        info.preprocess = preprocess
