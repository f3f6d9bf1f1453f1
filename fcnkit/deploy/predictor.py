"""One Predictor over three backends: torch (the compiled Caffe net), ONNX Runtime and
TensorRT engines.

The contract is the same whatever the backend::

    p = Predictor.from_path("fcn8s.onnx")            # or a prototxt, compiled dir, zoo name, .engine
    probs = p.predict(tiles)                          # tiles: float32 (N, C, H, W), C = model bands
    labels = p.predict(tiles, labels=True)            # uint8 (N, H, W): argmax over the classes

- input: float32 N x C x H x W (C = the model's bands; H, W = the tile size for backends
  built for a fixed tile), any N: tiles are cut into batches of ``batch_size``;
- output: float32 N x K x H x W class probabilities, or uint8 N x H x W labels with
  ``labels=True`` (computed on the device, so only labels are copied back; int32 for a model
  with more than 256 classes). A classification net gives N x K and N. An output that a
  Softmax layer produces is returned as it is; a raw multi-channel output (K >= 2 class
  scores) gets a softmax over the class axis (``probabilities=False`` returns the raw
  scores); a single-channel output (K = 1: a regression net such as FSRCNN's image, or a
  one-logit score) is never softmaxed (it would be all ones) and is returned raw.

Backends:

- ``torch``: the compiled module on CPU or CUDA in fp32, fp16 or bf16, optionally through
  ``torch.compile``; recompiled per tile size (a compiled Caffe net is built for fixed shapes).
- ``onnxruntime``: an ONNX file (or a Caffe model exported on the fly, parity-checked) with
  the CPU provider, or CUDA / TensorRT execution providers when onnxruntime-gpu is installed.
- ``tensorrt``: a serialized engine (``fcnkit engine``) through :class:`TrtRunner`.

On CUDA, host tiles go through pinned (page-locked) buffers with asynchronous copies on a copy
stream, so that the copy of batch i+1 overlaps the compute of batch i.
"""

from __future__ import annotations

import collections
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from fcnkit.deploy._common import canonical_dtype
from fcnkit.deploy.tiling_info import from_metadata, preprocess_for, preprocess_from_metadata, tiling_info
from fcnkit.errors import BackendUnavailableError, InputError

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
#: Default number of tiles per batch when the backend does not fix it.
DEFAULT_BATCH = 8


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
        probs = {n for n in compiled.outputs if _producer_type(compiled, n) == "Softmax"}
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
            mod = compiled.module
            if self.dtype != torch.float32 or self.device.type != "cpu":
                import copy

                mod = copy.deepcopy(mod) if mod is self.src.compiled.module else mod
                mod = mod.to(self.device, self.dtype)
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


def _producer_type(compiled, blob_name: str) -> str | None:
    net = compiled.net
    bid = net.final.get(blob_name, blob_name)
    node = net.producer.get(bid)
    return node.type if node is not None else None


class _OrtBackend:
    name = "onnxruntime"

    def __init__(self, model: bytes | str | Path, device: str, providers: Sequence[str] | None,
                 band_names=None, class_names=None):
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
        so = ort.SessionOptions()
        so.log_severity_level = 3
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

class Predictor:
    """Tiles in, probabilities or labels out, through one of three backends.

    Build with :meth:`from_path`. Attributes: ``backend`` (name), ``device``, ``dtype``,
    ``info`` (:class:`ModelInfo`), ``output`` (the output blob used), ``batch_size``.
    """

    def __init__(self, impl, *, device: str, dtype: str, output: str | None = None,
                 batch_size: int | None = None, probabilities: bool | None = None):
        self._impl = impl
        self.backend = impl.name
        self.device = device
        self.dtype = dtype
        self.info: ModelInfo = impl.info
        outs = self.info.outputs
        if output is None:
            output = outs[0] if len(outs) == 1 else next((o for o in outs if o in self.info.probabilities), outs[0])
        elif output not in outs:
            raise InputError(f"output '{output}' is not an output of the model ({', '.join(outs)})")
        self.output = output
        if probabilities is None:
            self._softmax = output not in self.info.probabilities
        else:
            self._softmax = bool(probabilities) and output not in self.info.probabilities
        limit = self.info.fixed_batch or self.info.max_batch
        if batch_size is None:
            batch_size = limit or DEFAULT_BATCH
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size}")
        if limit is not None and batch_size > limit:
            raise InputError(f"batch_size {batch_size} is larger than the {self.backend} model accepts ({limit})")
        self.batch_size = int(batch_size)
        self._keep: Any = None  # temporary directory of on-the-fly exports

    @property
    def bands(self) -> int:
        """Number of input bands C."""
        return self.info.channels

    @property
    def tile(self) -> tuple[int, int] | None:
        """(H, W) the backend is fixed to, or None when any size works."""
        return self.info.tile

    def __repr__(self) -> str:
        return (f"Predictor(backend={self.backend!r}, device={self.device!r}, dtype={self.dtype!r}, "
                f"input={self.info.input!r} C={self.info.channels}, output={self.output!r})")

    # ----------------------------------------------------------------------------------
    @classmethod
    def from_path(cls, path: str | Path, backend: str = "auto", device: str | None = None,
                  dtype: str | None = None, *, weights: str | Path | None = None,
                  tile: tuple[int, int] | str | None = None, batch_size: int | None = None,
                  output: str | None = None, probabilities: bool | None = None, compile: bool = False,
                  providers: Sequence[str] | None = None) -> "Predictor":
        """Open a model for prediction.

        Args:
            path: a prototxt (with ``weights``), compiled-model directory or zoo name (torch
                backend), an ``.onnx`` file (onnxruntime) or an ``.engine``/``.plan`` file
                (tensorrt).
            backend: ``auto`` (by what ``path`` is), ``torch``, ``onnxruntime`` or ``tensorrt``.
                A Caffe model with ``onnxruntime``/``tensorrt`` is exported (and parity-checked)
                to a temporary ONNX file first.
            device: ``cpu``, ``cuda`` or ``cuda:N``; default CUDA when available to the backend.
            dtype: torch backend ``fp32``/``fp16``/``bf16`` (default fp32 on CPU, fp16 on
                CUDA); ONNX/TensorRT files carry their precision (a Caffe model exported on
                the fly uses ``dtype``: fp32 or fp16).
            weights: caffemodel for a prototxt.
            tile: (H, W) for on-the-fly exports (default: the net's declared size), and the
                tile a TensorRT engine is built for when an ONNX file has dynamic H and W
                (``fcnkit export --dynamic-hw``).
            batch_size: tiles per batch (default: the backend's limit, else 8).
            output: the output blob to return (default: the only output, or the first that is
                already probabilities).
            probabilities: softmax raw multi-channel scores over the class axis (default
                True; False returns the raw output). Outputs of a Softmax layer and
                single-channel outputs (regression) are returned as they are either way.
            compile: wrap the torch module in ``torch.compile``.
            providers: ONNX Runtime execution providers (default: CUDA/TensorRT when
                ``device`` is CUDA, else CPU).

        Raises:
            InputError: an unknown backend, a model kind the backend cannot run, bad options.
            BackendUnavailableError: CUDA, onnxruntime-gpu or TensorRT is missing.
        """
        import torch

        if backend not in BACKENDS:
            raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
        p = Path(path)
        suffix = p.suffix.lower() if p.is_file() else ""
        kind = "engine" if suffix in ENGINE_SUFFIXES else "onnx" if suffix == ".onnx" else "caffe"
        if backend == "auto":
            backend = {"engine": "tensorrt", "onnx": "onnxruntime", "caffe": "torch"}[kind]
        cuda_ok = torch.cuda.is_available()
        if device is None:
            if backend == "tensorrt":
                device = "cuda"
            elif backend == "onnxruntime":
                import onnxruntime as ort

                device = "cuda" if "CUDAExecutionProvider" in ort.get_available_providers() and cuda_ok else "cpu"
            else:
                device = "cuda" if cuda_ok else "cpu"
        device = str(device)
        if device.startswith("cuda") and backend == "torch" and not cuda_ok:
            from fcnkit.deploy._common import require_cuda

            require_cuda("the torch backend on CUDA", device)
        if not (device == "cpu" or device.startswith("cuda")):
            raise InputError(f"device must be cpu, cuda or cuda:N, got '{device}'")
        if backend == "tensorrt" and device == "cpu":
            raise InputError("TensorRT runs on CUDA devices only; use backend onnxruntime or torch on the CPU")
        keep = None

        if backend == "torch":
            if kind != "caffe":
                raise InputError(f"the torch backend runs Caffe models (prototxt, compiled directory, zoo "
                                 f"name); {p.name} is an {kind} file: use backend "
                                 f"{'onnxruntime' if kind == 'onnx' else 'tensorrt'}")
            from fcnkit.deploy.model import load_model

            dt = canonical_dtype(dtype or ("fp16" if device.startswith("cuda") else "fp32"), option="dtype")
            src = load_model(path, weights=weights, tile=_tile(tile))
            impl = _TorchBackend(src, device, dt, compile)
        elif backend == "onnxruntime":
            model: Any = p
            names = (None, None)
            if kind == "engine":
                raise InputError(f"{p.name} is a TensorRT engine: use backend tensorrt")
            if kind == "caffe":
                model, names = _export_temp(path, weights, tile, dtype)
            dt = "fp16" if kind == "caffe" and canonical_dtype(dtype or "fp32", option="dtype") == "fp16" else None
            impl = _OrtBackend(model, device, providers, *names)
            dt = dt or ("fp16" if impl.in_dtype == np.float16 else "fp32")
            if dtype is not None and canonical_dtype(dtype, option="dtype") != dt:
                raise InputError(f"{p.name} is a {dt} ONNX file; dtype {dtype} would need another export "
                                 f"(`fcnkit export --dtype {canonical_dtype(dtype, option='dtype')}`)")
        else:
            engine = p
            if kind != "engine":
                from fcnkit.deploy._common import require_tensorrt
                from fcnkit.deploy.tensorrt import build_engine

                require_tensorrt("the tensorrt backend")
                keep = tempfile.TemporaryDirectory(prefix="fcnkit-trt-")
                onnx_path = p
                if kind == "caffe":
                    from fcnkit.deploy.onnx import export_model

                    onnx_path = Path(keep.name) / "model.onnx"
                    export_model(path, onnx_path, weights=weights, tile=tile,
                                 dtype=canonical_dtype(dtype or "fp16", allowed=("fp32", "fp16"), option="dtype"))
                engine = Path(keep.name) / "model.engine"
                # the tile matters for a --dynamic-hw ONNX file: its profile needs one
                build_engine(onnx_path, engine, batch=batch_size, tile=_tile(tile), device=device)
            impl = _TrtBackend(engine, device)
            dt = "fp16" if str(impl.runner.dtypes[impl.info.input]).endswith("float16") else "fp32"
        if kind == "caffe" and impl.info.preprocess is None:  # the stretch stored beside the weights
            impl.info.preprocess = preprocess_for(path, weights)
        pred = cls(impl, device=device, dtype=dt, output=output, batch_size=batch_size,
                   probabilities=probabilities)
        pred._keep = keep
        return pred

    # ----------------------------------------------------------------------------------
    def _check(self, x) -> np.ndarray:
        try:
            import torch

            if isinstance(x, torch.Tensor):
                x = x.detach().cpu().numpy()
        except ImportError:  # pragma: no cover
            pass
        x = np.asarray(x)
        if x.ndim != 4:
            hint = " (one tile? pass x[None])" if x.ndim == 3 else ""
            raise InputError(f"input must be N x C x H x W, got shape {x.shape}{hint}")
        if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
            raise InputError(f"input must be float32, got {x.dtype}")
        if x.shape[0] == 0:
            raise InputError("input has no tiles (N = 0)")
        if x.shape[1] != self.info.channels:
            raise InputError(f"the model takes {self.info.channels} bands, the input has {x.shape[1]} "
                             f"(shape {x.shape})")
        if self.info.tile is not None and tuple(x.shape[2:]) != tuple(self.info.tile):
            raise InputError(f"the {self.backend} model is built for {self.info.tile[0]}x{self.info.tile[1]} "
                             f"tiles, the input is {x.shape[2]}x{x.shape[3]}; export it at this tile "
                             "(--tile) or with --dynamic-hw")
        return x if x.dtype == np.float32 else x.astype(np.float32)

    def predict(self, x, *, labels: bool = False, batch_size: int | None = None) -> np.ndarray:
        """Run the model over tiles.

        Args:
            x: float32 array (or CPU tensor) N x C x H x W.
            labels: return uint8 N x H x W class indices (argmax over K) instead of
                probabilities.
            batch_size: tiles per batch for this call (default ``self.batch_size``).

        Returns:
            float32 N x K x H x W probabilities (or the raw output with
            ``probabilities=False``, and for a single-channel output), or uint8 N x H x W
            labels.

        Raises:
            InputError: wrong rank, band count, tile size or batch size, or ``labels=True``
                for an output without K >= 2 classes.
        """
        x = self._check(x)
        bs = self.batch_size if batch_size is None else int(batch_size)
        limit = self.info.fixed_batch or self.info.max_batch
        if bs < 1 or (limit is not None and bs > limit):
            raise InputError(f"batch_size must be between 1 and {limit or 'N'}, got {batch_size}")
        batches = (x[i:i + bs] for i in range(0, x.shape[0], bs))
        parts = list(self._impl.run(batches, self.output, self._softmax, labels))
        return np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]

    __call__ = predict


def _fill_tiling(info: ModelInfo, values: dict, preprocess: dict | None = None) -> None:
    rf = values.get("receptive_field")
    info.receptive_field = tuple(rf) if rf is not None else None
    info.output_stride, info.halo = values.get("output_stride"), values.get("halo")
    if preprocess is not None:
        info.preprocess = preprocess


def _tile(tile):
    from fcnkit.deploy._common import parse_tile

    return parse_tile(tile)


def _export_temp(path, weights, tile, dtype) -> tuple[bytes, tuple]:
    """Export a Caffe model to ONNX (checked against torch) in a temporary directory; return
    the file's bytes and (band names, class names)."""
    from fcnkit.deploy.model import load_model
    from fcnkit.deploy.onnx import export_onnx

    dt = canonical_dtype(dtype or "fp32", allowed=("fp32", "fp16"), option="dtype")
    src = load_model(path, weights=weights, tile=_tile(tile))
    with tempfile.TemporaryDirectory(prefix="fcnkit-onnx-") as d:
        out = Path(d) / "model.onnx"
        export_onnx(src, out, dtype=dt)
        return out.read_bytes(), (src.bands, src.classes)
