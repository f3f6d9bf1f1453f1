"""TensorRT engines from fcnkit's ONNX files, and a runner for them.

Written against the TensorRT 10/11 Python API (NVIDIA TensorRT developer guide and Python
API reference; the 10.x -> 11.x migration guide):

- build: ``trt.Builder`` -> ``create_network`` (explicit shapes are the only mode since
  TensorRT 10; on 10.x fcnkit asks for a strongly typed network, which 11.x always is, so
  there the deprecated, ignored ``STRONGLY_TYPED`` flag is not passed) ->
  ``trt.OnnxParser.parse_from_file`` (every parser error is reported) ->
  ``create_builder_config`` with ``set_memory_pool_limit(MemoryPoolType.WORKSPACE, ...)``,
  ``builder_optimization_level``, one optimisation profile over the batch axis
  (``create_optimization_profile`` / ``set_shape`` / ``add_optimization_profile``) and a
  persistent timing cache (``create_timing_cache`` / ``set_timing_cache``, saved back with
  ``serialize``) -> ``build_serialized_network`` -> the engine file and its JSON sidecar,
  written as an atomic pair (:func:`write_engine_files`).
- precision follows the ONNX file: TensorRT 11 is strongly typed (``BuilderFlag.FP16`` is
  gone), so fp16 comes from ``fcnkit export --dtype fp16``; on TensorRT 10 ``fp16=True``
  builds a weakly typed network with ``BuilderFlag.FP16``.
- run: ``trt.Runtime.deserialize_cuda_engine`` -> ``create_execution_context``; per call
  ``set_input_shape``, ``set_tensor_address`` for every I/O tensor (torch-allocated CUDA
  memory) and ``execute_async_v3`` on the runner's own CUDA stream.

Everything that needs no TensorRT (parsing ``--batch min,opt,max``, reading the ONNX inputs,
computing the optimisation-profile shapes, checking option values, dtype mapping) is plain
Python in :mod:`fcnkit.deploy.tensorrt_profile` (re-exported here), tested without a
GPU. Functions that need TensorRT or CUDA raise
:class:`fcnkit.errors.BackendUnavailableError` saying what to install.

Beside each engine ``X.engine`` fcnkit writes ``X.engine.json``: the ONNX file's fcnkit
metadata (band and class names, which outputs are probabilities), I/O names, the profile and
the TensorRT version, so that a :class:`fcnkit.deploy.predictor.Predictor` knows the model.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from fcnkit.deploy._common import require_cuda, require_tensorrt, tensorrt_major
from fcnkit.deploy.tensorrt_profile import (DEFAULT_BATCH, DEFAULT_WORKSPACE_MIB, ENGINE_TOLERANCE,
                                            OPT_LEVELS, SIDECAR_SUFFIX, BatchProfile, EngineInput,
                                            check_build_options, onnx_engine_inputs, profile_shapes,
                                            read_sidecar, sidecar_path, torch_dtype_of)
from fcnkit.errors import ExportError, InputError

__all__ = ["DEFAULT_BATCH", "DEFAULT_WORKSPACE_MIB", "ENGINE_TOLERANCE", "OPT_LEVELS", "SIDECAR_SUFFIX",
           "BatchProfile", "EngineInput", "EngineBuildResult", "TrtRunner", "build_engine",
           "check_build_options", "network_flags", "onnx_engine_inputs", "parser_errors",
           "profile_shapes", "read_sidecar", "sidecar_path", "torch_dtype_of", "write_engine_files"]


# --------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------

@dataclass
class EngineBuildResult:
    """What :func:`build_engine` wrote.

    Attributes:
        path: the engine file; ``sidecar``: its JSON description.
        profile: {input: (min, opt, max) shapes}.
        tensorrt_version, device: what it was built with / for (engines are specific to both).
        precision: ``fp32``/``fp16`` of the ONNX file, plus ``+fp16 flag`` on TensorRT 10.
        build_seconds: builder time (s); ``engine_bytes``: file size.
        parity: (max abs, relative) of the engine against ONNX Runtime CPU, or None.
        timing_cache: the cache file used and updated, or None.
    """

    path: Path
    sidecar: Path
    profile: dict
    tensorrt_version: str
    device: str
    precision: str
    build_seconds: float
    engine_bytes: int
    parity: tuple[float, float] | None = None
    tolerance: float = ENGINE_TOLERANCE
    timing_cache: Path | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        prof = "; ".join(f"{k} min {list(v[0])} opt {list(v[1])} max {list(v[2])}" for k, v in self.profile.items())
        text = (f"TensorRT {self.tensorrt_version} on {self.device}, {self.precision}, {prof}, "
                f"{self.engine_bytes / 2**20:.1f} MiB, built in {self.build_seconds:.1f} s")
        if self.parity is not None:
            text += (f"; engine vs ONNX Runtime: max abs {self.parity[0]:.3g}, relative {self.parity[1]:.3g} "
                     f"(tolerance {self.tolerance:g})")
        return text


class _Logger:
    """Factory of a trt.ILogger that keeps warnings and errors for error messages."""

    @staticmethod
    def make(trt, verbose: bool):
        class Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.messages: list[tuple[str, str]] = []

            def log(self, severity, msg):
                name = getattr(severity, "name", str(severity))
                level = int(severity)  # INTERNAL_ERROR 0, ERROR 1, WARNING 2, INFO 3, VERBOSE 4
                if level <= int(trt.ILogger.Severity.WARNING):
                    self.messages.append((name, msg))
                if verbose or level <= int(trt.ILogger.Severity.ERROR):
                    import sys

                    print(f"[TensorRT {name}] {msg}", file=sys.stderr)

        return Logger()


def parser_errors(parser) -> list[str]:
    """Every error an ``OnnxParser`` recorded, as readable lines (node, operator, message)."""
    out = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        parts = []
        for attr in ("node_name", "node_operator"):
            fn = getattr(err, attr, None)
            try:
                v = fn() if callable(fn) else fn
            except Exception:  # noqa: BLE001 - optional accessors differ between versions
                v = None
            if v:
                parts.append(str(v))
        node = getattr(err, "node", None)
        try:
            idx = node() if callable(node) else node
        except Exception:  # noqa: BLE001
            idx = None
        where = f"node {idx}" if isinstance(idx, int) and idx >= 0 else ""
        where = " ".join(p for p in [where, *parts] if p)
        desc = err.desc() if callable(getattr(err, "desc", None)) else str(err)
        out.append(f"{where + ': ' if where else ''}{desc}")
    return out


def network_flags(trt, major: int, fp16: bool = False) -> int:
    """The ``create_network`` flags: ``STRONGLY_TYPED`` on TensorRT 10 (where weak typing
    is still the default) unless ``fp16`` asks for a weakly typed network with
    ``BuilderFlag.FP16``; none on TensorRT >= 11, where every network is strongly typed and
    the flag is deprecated and ignored (TensorRT 11 API reference,
    ``NetworkDefinitionCreationFlag``). Explicit batch is the only mode since TensorRT 10."""
    strongly = getattr(getattr(trt, "NetworkDefinitionCreationFlag", None), "STRONGLY_TYPED", None)
    if strongly is None or fp16 or major >= 11:
        return 0
    return 1 << int(strongly)


def write_engine_files(engine_path: str | Path, data: bytes, sidecar: Mapping[str, Any]) -> Path:
    """Write an engine and its JSON description beside it, as a pair: the sidecar first,
    then the engine; if the engine cannot be written the sidecar is put back as it was
    (removed, or its earlier content restored), so a failure leaves neither new file and
    an earlier pair intact. Each file is written atomically
    (:func:`fcnkit.deploy._common.write_public`).

    Returns:
        The sidecar path.

    Raises:
        OutputError: a file cannot be written (the message names the path).
    """
    from fcnkit.deploy._common import write_public

    engine_path = Path(engine_path)
    side = sidecar_path(engine_path)
    old = side.read_bytes() if side.is_file() else None
    write_public(side, (json.dumps(sidecar, indent=2) + "\n").encode())
    try:
        write_public(engine_path, data)
    except BaseException:
        if old is None:
            side.unlink(missing_ok=True)
        else:
            write_public(side, old)
        raise
    return side


def build_engine(onnx_path: str | Path, engine_path: str | Path, *,
                 batch: BatchProfile | str | int | None = None, tile: tuple[int, int] | str | None = None,
                 workspace_mib: int = DEFAULT_WORKSPACE_MIB, timing_cache: str | Path | None = None,
                 opt_level: int | None = None, fp16: bool = False, check: bool = True,
                 tolerance: float = ENGINE_TOLERANCE, verbose: bool = False, device: Any = None) -> EngineBuildResult:
    """Build a TensorRT engine from an ONNX file and write it, with its JSON sidecar, as an
    atomic pair (:func:`write_engine_files`: a failure leaves neither new file).

    Args:
        onnx_path: an ONNX file (from ``fcnkit export``; any ONNX file with a batch axis works).
        engine_path: the engine file to write; ``<engine>.json`` is written beside it.
        batch: the profile's batch sizes (``"min,opt,max"``, ``N`` = ``1,N,N``); default
            :data:`DEFAULT_BATCH` for a dynamic batch axis, the static batch otherwise.
        tile: (H, W) to build for when the ONNX file has dynamic H and W.
        workspace_mib: limit of the workspace memory pool (MiB).
        timing_cache: a file to read the timing cache from (if it exists) and write it back to
            (atomically) after the build, so that later builds skip the kernel timing.
        opt_level: builder optimisation level 0..5 (TensorRT's default 3 when None).
        fp16: TensorRT 10 only: let the builder pick fp16 kernels (``BuilderFlag.FP16``).
        check: run the engine on a random input at the profile's opt shape and compare with
            ONNX Runtime (CPU); beyond ``tolerance`` (relative) nothing is written.
        verbose: print TensorRT's verbose log.
        device: CUDA device (default: the current one).

    Raises:
        InputError: bad options, or options the ONNX file cannot take (checked first, without
            TensorRT).
        BackendUnavailableError: TensorRT or a CUDA GPU is missing (says what to install).
        ExportError: the parser reports errors (all of them are listed), the build fails, or
            the engine disagrees with ONNX Runtime.
    """
    from fcnkit.atomic import write_bytes
    from fcnkit.deploy.onnx import inspect_onnx

    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    inputs = onnx_engine_inputs(onnx_path)
    shapes = profile_shapes(inputs, batch, tile)
    check_build_options(workspace_mib=workspace_mib, opt_level=opt_level, fp16=False)
    trt = require_tensorrt("building a TensorRT engine")
    major = tensorrt_major(trt)
    check_build_options(workspace_mib=workspace_mib, opt_level=opt_level, fp16=fp16, trt_major=major)
    dev = require_cuda("building a TensorRT engine", device)
    import torch

    info = inspect_onnx(onnx_path)
    logger = _Logger.make(trt, verbose)
    with torch.cuda.device(dev):
        builder = trt.Builder(logger)
        network, parser = _parsed_network(trt, builder, logger, onnx_path, major, fp16)
        cache_path = Path(timing_cache) if timing_cache is not None else None
        config = _builder_config(trt, builder, shapes, workspace_mib, opt_level, fp16, cache_path)
        data, seconds = _serialized_plan(builder, network, config, logger)
        parity = None
        if check:
            runner = TrtRunner(data, device=dev)
            parity = _engine_parity(runner, onnx_path, shapes)
            if not parity[1] <= tolerance:
                raise ExportError(f"the engine disagrees with ONNX Runtime: max abs {parity[0]:.3g}, relative "
                                  f"{parity[1]:.3g} > {tolerance:g}; no engine was written")
        # The timing cache first: it only speeds later builds up, whatever happens next.
        if cache_path is not None:
            write_bytes(cache_path, bytes(memoryview(config.get_timing_cache().serialize())))
        precision = info.dtype + ("+fp16 flag" if fp16 else "")
        side = _sidecar(engine_path, onnx_path, info, inputs, shapes, precision,
                        str(trt.__version__), torch.cuda.get_device_name(dev))
        write_engine_files(engine_path, data, side)
    return EngineBuildResult(engine_path, sidecar_path(engine_path), shapes, str(trt.__version__),
                             torch.cuda.get_device_name(dev), precision, seconds, len(data), parity,
                             tolerance, cache_path,
                             [m for s, m in logger.messages if s == "WARNING"])


def _parsed_network(trt, builder, logger: "_Logger", onnx_path: Path, major: int, fp16: bool):
    """(network, parser) with the ONNX file parsed; the parser is returned because it owns
    the weights the network refers to until the build.

    Raises:
        ExportError: the parser rejects the file (every error listed).
    """
    network = builder.create_network(network_flags(trt, major, fp16))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errs = parser_errors(parser) or [m for s, m in logger.messages if s in ("ERROR", "INTERNAL_ERROR")]
        raise ExportError(f"TensorRT's ONNX parser rejects {onnx_path.name} ({len(errs)} error(s)):\n  "
                          + "\n  ".join(errs or ["no error message"]))
    return network, parser


def _builder_config(trt, builder, shapes: Mapping, workspace_mib: int, opt_level: int | None,
                    fp16: bool, cache_path: Path | None):
    """The builder config: workspace pool (MiB), optimisation level, the FP16 flag
    (TensorRT 10), one optimisation profile {input: (min, opt, max)} and the timing cache
    read from ``cache_path`` (empty when the file does not exist).

    Raises:
        ExportError: TensorRT refuses the timing cache.
    """
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    if opt_level is not None:
        config.builder_optimization_level = int(opt_level)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, (lo, op, hi) in shapes.items():
        profile.set_shape(name, lo, op, hi)
    config.add_optimization_profile(profile)
    if cache_path is not None:
        blob = cache_path.read_bytes() if cache_path.is_file() else b""
        cache = config.create_timing_cache(blob)
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            raise ExportError(f"{cache_path}: TensorRT cannot use this timing cache (made by another "
                              "TensorRT version or GPU?); delete it to start a new one")
    return config


def _serialized_plan(builder, network, config, logger: "_Logger") -> tuple[bytes, float]:
    """(the serialized engine, builder seconds).

    Raises:
        ExportError: the build fails (TensorRT's errors listed).
    """
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - t0
    if plan is None:
        errs = [m for s, m in logger.messages if s in ("ERROR", "INTERNAL_ERROR")]
        raise ExportError("TensorRT could not build the engine" + (":\n  " + "\n  ".join(errs) if errs else
                          "; run with --verbose for TensorRT's log"))
    return bytes(memoryview(plan)), seconds


def _sidecar(engine_path: Path, onnx_path: Path, info, inputs, shapes: Mapping, precision: str,
             trt_version: str, device_name: str) -> dict:
    """The engine's JSON sidecar: its ONNX file, TensorRT version, device, precision, I/O,
    softmax outputs, profile and the ONNX file's ``fcnkit.*`` metadata."""
    meta = {k: info.meta_json(k) for k in info.metadata if k.startswith("fcnkit.")}
    return {
        "engine": engine_path.name, "onnx": str(onnx_path.name), "tensorrt_version": trt_version,
        "device": device_name, "precision": precision,
        "inputs": [asdict(i) for i in inputs], "outputs": [[n, s, t] for n, s, t in info.outputs],
        "softmax_outputs": sorted(info.softmax_outputs),
        "profile": {k: [list(s) for s in v] for k, v in shapes.items()}, "onnx_metadata": meta,
    }


def _engine_parity(runner: "TrtRunner", onnx_path: Path, shapes: Mapping) -> tuple[float, float]:
    """(max abs, relative) of the engine against ONNX Runtime CPU at the opt shapes."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from fcnkit.compile.verify import relative_error

    rng = np.random.default_rng(0)
    feeds = {}
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    types = {i.name: i.type for i in sess.get_inputs()}
    for name, (_, opt, _) in shapes.items():
        x = rng.standard_normal(opt).astype(np.float32)
        feeds[name] = x.astype(np.float16) if types.get(name) == "tensor(float16)" else x
    ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    got = runner.infer({k: torch.from_numpy(v).to(runner.device) for k, v in feeds.items()})
    runner.stream.synchronize()
    worst = (0.0, 0.0)
    for name, r in ref.items():
        a, rel = relative_error(got[name].float().cpu().numpy(), r.astype(np.float32))
        worst = max(worst, (a, rel), key=lambda t: t[1])
    return worst


# --------------------------------------------------------------------------------------
# Run
# --------------------------------------------------------------------------------------

class TrtRunner:
    """Runs a serialized TensorRT engine on CUDA tensors allocated by torch.

    ``infer({input: tensor (N, C, H, W) on the runner's device})`` sets each input's shape
    (``set_input_shape``), binds every I/O tensor (``set_tensor_address``), allocates the
    outputs with torch and enqueues the engine with ``execute_async_v3`` on the runner's own
    CUDA stream. The call returns once the work is enqueued: synchronise ``runner.stream``
    (or wait on it from another stream) before reading the outputs.

    Attributes:
        inputs, outputs: tensor names, in engine order.
        dtypes: {name: torch dtype}.
        profile: {input name: (min, opt, max) shapes} of optimisation profile 0.

    Raises:
        BackendUnavailableError: no TensorRT or no CUDA GPU.
        ExportError: the engine cannot be deserialised (built by another TensorRT version or
            for another GPU).
    """

    def __init__(self, engine: str | Path | bytes, device: Any = None):
        trt = require_tensorrt("running a TensorRT engine")
        self.device = require_cuda("running a TensorRT engine", device)
        import torch

        data = engine if isinstance(engine, (bytes, bytearray, memoryview)) else Path(engine).read_bytes()
        self._logger = _Logger.make(trt, False)
        with torch.cuda.device(self.device):
            self.runtime = trt.Runtime(self._logger)
            self.engine = self.runtime.deserialize_cuda_engine(bytes(data))
            if self.engine is None:
                errs = [m for s, m in self._logger.messages if s in ("ERROR", "INTERNAL_ERROR")]
                raise ExportError("TensorRT cannot deserialise the engine (it is specific to the TensorRT "
                                  "version and GPU it was built with)" + (": " + "; ".join(errs) if errs else ""))
            self.context = self.engine.create_execution_context()
            self.stream = torch.cuda.Stream(self.device)
        self.inputs, self.outputs, self.dtypes, self.profile = [], [], {}, {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            self.dtypes[name] = torch_dtype_of(self.engine.get_tensor_dtype(name))
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs.append(name)
                self.profile[name] = tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(name, 0))
            else:
                self.outputs.append(name)

    @property
    def max_batch(self) -> int:
        """Largest batch the engine's profile accepts."""
        return min(p[2][0] for p in self.profile.values()) if self.profile else 1

    def infer(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any] | None = None) -> dict:
        """Enqueue one inference; returns {output name: torch CUDA tensor}.

        Args:
            inputs: {input name: contiguous CUDA tensor of the engine's dtype and a shape
                inside the profile}. Work already queued on the current torch stream (e.g.
                the copies that filled them) is waited for.
            outputs: optional preallocated output tensors (reused between calls).

        Raises:
            InputError: a missing input, a wrong dtype, device or shape.
            ExportError: TensorRT refuses the shapes or fails to enqueue.
        """
        import torch

        missing = [n for n in self.inputs if n not in inputs]
        if missing:
            raise InputError(f"the engine needs inputs {self.inputs}; missing {missing}")
        ctx = self.context
        for name in self.inputs:
            t = inputs[name]
            if t.dtype != self.dtypes[name] or t.device != self.device:
                raise InputError(f"input '{name}' must be a {self.dtypes[name]} tensor on {self.device}, "
                                 f"got {t.dtype} on {t.device}")
            if not t.is_contiguous():
                raise InputError(f"input '{name}' must be contiguous")
            lo, _, hi = self.profile[name]
            if any(not (a <= d <= b) for a, d, b in zip(lo, t.shape, hi)):
                raise InputError(f"input '{name}' has shape {tuple(t.shape)}, outside the engine's profile "
                                 f"{list(lo)} .. {list(hi)}")
            if not ctx.set_input_shape(name, tuple(t.shape)):
                raise ExportError(f"TensorRT refuses shape {tuple(t.shape)} for input '{name}'")
            ctx.set_tensor_address(name, t.data_ptr())
        result = {}
        for name in self.outputs:
            shape = tuple(ctx.get_tensor_shape(name))
            t = outputs.get(name) if outputs else None
            if t is None or tuple(t.shape) != shape:
                t = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
            ctx.set_tensor_address(name, t.data_ptr())
            result[name] = t
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        if not ctx.execute_async_v3(self.stream.cuda_stream):
            raise ExportError("TensorRT failed to enqueue the engine (execute_async_v3 returned False)")
        for t in list(inputs.values()) + list(result.values()):
            t.record_stream(self.stream)
        return result
