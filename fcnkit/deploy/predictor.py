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

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fcnkit.deploy._common import canonical_dtype
from fcnkit.deploy.backends import ModelInfo, _OrtBackend, _TorchBackend, _TrtBackend
from fcnkit.deploy.tiling_info import preprocess_for
from fcnkit.errors import InputError

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
#: Default number of tiles per batch when the backend does not fix it.
DEFAULT_BATCH = 8


class Predictor:
    """Tiles in, probabilities or labels out, through one of three backends.

    Build with :meth:`from_path`. Attributes: ``backend`` (name), ``backend_detail``
    (that and, for ``auto``, why), ``device``, ``dtype``,
    ``info`` (:class:`ModelInfo`), ``output`` (the output blob used), ``batch_size``.
    """

    def __init__(self, impl, *, device: str, dtype: str, output: str | None = None,
                 batch_size: int | None = None, probabilities: bool | None = None):
        from fcnkit.runtime import tune_for_inference

        tune_for_inference()  # glibc heap thresholds, intra-op threads (docs/performance.md)
        self._impl = impl
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
    def backend(self) -> str:
        """The backend that runs (``auto``'s choice for the last tile size run; before
        any run, for the first): ``torch``, ``onnxruntime`` or ``tensorrt``."""
        return self._impl.name

    @property
    def backend_detail(self) -> str:
        """:attr:`backend` in words; for ``auto`` on the CPU also how it was chosen (the
        probe's figures, :mod:`fcnkit.deploy.auto_probe`)."""
        return getattr(self._impl, "detail", self._impl.name)

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
            backend: ``auto`` (by what ``path`` is: an engine runs in TensorRT, an ONNX file
                in ONNX Runtime; a Caffe model on the CPU in fp32 without ``compile`` runs on
                the faster of torch and ONNX Runtime (on an export cached on disk) for this
                model and machine, by a timed probe stored with the export
                (:mod:`fcnkit.deploy.auto_backend`, :mod:`fcnkit.deploy.auto_probe`; torch
                where it cannot be exported), else in torch), ``torch``, ``onnxruntime`` or
                ``tensorrt``.
                A Caffe model with ``onnxruntime``/``tensorrt`` is exported (and parity-checked)
                to a temporary ONNX file first.
            device: ``cpu``, ``cuda`` or ``cuda:N``; default CUDA when available to the backend.
            dtype: torch backend ``fp32``/``fp16``/``bf16`` (default fp32 on CPU, fp16 on
                CUDA); ONNX/TensorRT files carry their precision (a Caffe model exported on
                the fly uses ``dtype``: fp32 or fp16).
            weights: caffemodel for a prototxt (a zoo name without it uses the zoo's
                bundled weight set and its preprocess JSON, if it has one).
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
        if backend not in BACKENDS:
            raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
        p = Path(path)
        suffix = p.suffix.lower() if p.is_file() else ""
        if weights is None and not p.exists():  # a zoo name: its bundled weight set, if any
            from fcnkit.zoo.bundled import default_weights

            weights = default_weights(path, None)
        kind = "engine" if suffix in ENGINE_SUFFIXES else "onnx" if suffix == ".onnx" else "caffe"
        auto = backend == "auto"
        if auto:
            backend = {"engine": "tensorrt", "onnx": "onnxruntime", "caffe": "torch"}[kind]
        device = _checked_device(backend, device)
        request = OpenRequest(path, p, kind, device, dtype, weights, tile, batch_size, compile, providers)
        opener = _OPENERS[backend]
        if auto and kind == "caffe" and device == "cpu" and not compile and providers is None \
                and canonical_dtype(dtype or "fp32", option="dtype") == "fp32":
            opener = _open_auto_cpu
        impl, dt, keep = opener(request)
        if kind == "caffe" and impl.info.preprocess is None:  # the stretch stored beside the weights
            impl.info.preprocess = preprocess_for(path, weights)
        pred = cls(impl, device=device, dtype=dt, output=output, batch_size=batch_size,
                   probabilities=probabilities)
        pred._keep = keep
        return pred

    # ----------------------------------------------------------------------------------
    def _validated_input(self, x) -> np.ndarray:
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
        x = self._validated_input(x)
        bs = self.batch_size if batch_size is None else int(batch_size)
        limit = self.info.fixed_batch or self.info.max_batch
        if bs < 1 or (limit is not None and bs > limit):
            raise InputError(f"batch_size must be between 1 and {limit or 'N'}, got {batch_size}")
        batches = (x[i:i + bs] for i in range(0, x.shape[0], bs))
        parts = list(self._impl.run(batches, self.output, self._softmax, labels))
        return np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]

    __call__ = predict


@dataclass(frozen=True)
class OpenRequest:
    """What :meth:`Predictor.from_path` was asked to open, for a backend's opener.

    Attributes:
        source: the MODEL argument as given (path, compiled directory or zoo name).
        path: ``source`` as a Path.
        kind: ``caffe``, ``onnx`` or ``engine`` (what ``path`` is).
        device: ``cpu``, ``cuda`` or ``cuda:N`` (checked).
        dtype, weights, tile, batch_size, compile, providers: as given to ``from_path``.
    """

    source: str | Path
    path: Path
    kind: str
    device: str
    dtype: str | None
    weights: str | Path | None
    tile: tuple[int, int] | str | None
    batch_size: int | None
    compile: bool
    providers: Sequence[str] | None


#: backend name -> opener: OpenRequest -> (backend object, dtype name, temporary directory
#: to keep alive or None). One per backend, registered with :func:`register_backend`.
_OPENERS: dict[str, Any] = {}


def register_backend(name: str):
    """Decorator: register the opener of backend ``name`` (see :data:`_OPENERS`)."""

    def register(opener):
        _OPENERS[name] = opener
        return opener

    return register


def _checked_device(backend: str, device: str | None) -> str:
    """The device to run on: as given, or CUDA when the backend can use it, else the CPU.

    Raises:
        InputError: not cpu / cuda / cuda:N, or TensorRT on the CPU.
        BackendUnavailableError: CUDA asked for the torch backend but not available.
    """
    import torch

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
    return device


@register_backend("torch")
def _open_torch(req: OpenRequest):
    """A Caffe model (prototxt, compiled directory, zoo name), compiled to torch."""
    if req.kind != "caffe":
        raise InputError(f"the torch backend runs Caffe models (prototxt, compiled directory, zoo "
                         f"name); {req.path.name} is an {req.kind} file: use backend "
                         f"{'onnxruntime' if req.kind == 'onnx' else 'tensorrt'}")
    from fcnkit.deploy.model import load_model

    dt = canonical_dtype(req.dtype or ("fp16" if req.device.startswith("cuda") else "fp32"), option="dtype")
    src = load_model(req.source, weights=req.weights, tile=_tile(req.tile))
    return _TorchBackend(src, req.device, dt, req.compile), dt, None


def _open_auto_cpu(req: OpenRequest):
    """``auto`` for a Caffe model on the CPU in fp32: the fastest of torch and ONNX Runtime
    on a cached export, by a timed probe (:mod:`fcnkit.deploy.auto_backend`), else, when
    onnxruntime is missing or the model cannot be exported, the torch backend (the reason
    logged at debug level)."""
    import logging

    try:
        from fcnkit.deploy.auto_backend import AutoCpuBackend

        return AutoCpuBackend.open(req.source, req.weights, _tile(req.tile)), "fp32", None
    except Exception as e:  # noqa: BLE001 - whatever prevents ONNX Runtime, torch can run it
        logging.getLogger("fcnkit.deploy.auto_backend").debug(
            "backend auto: ONNX Runtime not used for %s (%s: %s); using torch", req.source, type(e).__name__, e)
    return _open_torch(req)


@register_backend("onnxruntime")
def _open_onnxruntime(req: OpenRequest):
    """An ONNX file, or a Caffe model exported (and parity-checked) to ONNX in memory."""
    model: Any = req.path
    names = (None, None)
    if req.kind == "engine":
        raise InputError(f"{req.path.name} is a TensorRT engine: use backend tensorrt")
    if req.kind == "caffe":
        model, names = _export_temp(req.source, req.weights, req.tile, req.dtype)
    dt = "fp16" if req.kind == "caffe" and canonical_dtype(req.dtype or "fp32", option="dtype") == "fp16" else None
    impl = _OrtBackend(model, req.device, req.providers, *names)
    dt = dt or ("fp16" if impl.in_dtype == np.float16 else "fp32")
    if req.dtype is not None and canonical_dtype(req.dtype, option="dtype") != dt:
        raise InputError(f"{req.path.name} is a {dt} ONNX file; dtype {req.dtype} would need another export "
                         f"(`fcnkit export --dtype {canonical_dtype(req.dtype, option='dtype')}`)")
    return impl, dt, None


@register_backend("tensorrt")
def _open_tensorrt(req: OpenRequest):
    """A TensorRT engine; an ONNX file or a Caffe model is first exported and built into a
    temporary engine (kept alive with the Predictor)."""
    engine, keep = req.path, None
    if req.kind != "engine":
        from fcnkit.deploy._common import require_tensorrt
        from fcnkit.deploy.tensorrt import build_engine

        require_tensorrt("the tensorrt backend")
        keep = tempfile.TemporaryDirectory(prefix="fcnkit-trt-")
        onnx_path = req.path
        if req.kind == "caffe":
            from fcnkit.deploy.onnx import export_model

            onnx_path = Path(keep.name) / "model.onnx"
            export_model(req.source, onnx_path, weights=req.weights, tile=req.tile,
                         dtype=canonical_dtype(req.dtype or "fp16", allowed=("fp32", "fp16"), option="dtype"))
        engine = Path(keep.name) / "model.engine"
        # the tile matters for a --dynamic-hw ONNX file: its profile needs one
        build_engine(onnx_path, engine, batch=req.batch_size, tile=_tile(req.tile), device=req.device)
    impl = _TrtBackend(engine, req.device)
    dt = "fp16" if str(impl.runner.dtypes[impl.info.input]).endswith("float16") else "fp32"
    return impl, dt, keep


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
