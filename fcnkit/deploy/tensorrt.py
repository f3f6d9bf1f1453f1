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
Python here and tested without a GPU. Functions that need TensorRT or CUDA raise
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
from typing import Any, Mapping, Sequence

from fcnkit.deploy._common import (TRT_TO_TORCH, parse_tile, require_cuda,
                                   require_tensorrt, tensorrt_major)
from fcnkit.errors import ExportError, InputError

#: Default workspace memory pool limit, MiB.
DEFAULT_WORKSPACE_MIB = 4096
#: TensorRT's builder optimisation levels (``IBuilderConfig.builder_optimization_level``):
#: 0 (fastest build) .. 5 (most tactics); TensorRT's default is 3.
OPT_LEVELS = range(0, 6)
#: Parity tolerance (relative) of an engine against ONNX Runtime (CPU, fp32). fp32 engines
#: run convolutions in TF32 by default (10-bit mantissa, like fp16), so both get the fp16
#: export tolerance.
ENGINE_TOLERANCE = 1e-2
SIDECAR_SUFFIX = ".json"


# --------------------------------------------------------------------------------------
# TensorRT-free logic: options, ONNX inputs, profile shapes
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchProfile:
    """The batch sizes of the optimisation profile: TensorRT accepts any batch in
    [min, max] and tunes its kernels for ``opt``."""

    min: int
    opt: int
    max: int

    def __post_init__(self):
        for k in ("min", "opt", "max"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"--batch: {k} must be a positive integer, got {v!r}")
        if not self.min <= self.opt <= self.max:
            raise InputError(f"--batch must satisfy min <= opt <= max, got {self.min},{self.opt},{self.max}")

    @classmethod
    def parse(cls, value: "str | int | Sequence[int] | BatchProfile | None") -> "BatchProfile | None":
        """``"1,8,16"`` -> (1, 8, 16); ``"8"`` or 8 -> (1, 8, 8) (any batch up to 8, tuned for
        8); ``"4,4,4"`` -> exactly 4; None -> None.

        Raises:
            InputError: not one or three positive integers with min <= opt <= max.
        """
        if value is None or isinstance(value, BatchProfile):
            return value
        if isinstance(value, (int, float)):  # bool too: refused below, by name
            parts = [value]
        elif isinstance(value, str):
            parts = [p for p in value.replace(" ", "").split(",") if p]
        else:
            parts = list(value)
        typed = value if isinstance(value, str) else ",".join(map(str, parts))
        try:
            if any(isinstance(p, (bool, float)) for p in parts):
                raise TypeError
            nums = [int(p) for p in parts]
        except (TypeError, ValueError):
            raise InputError(f"--batch must be N or min,opt,max (positive integers), got '{typed}'") from None
        if len(nums) not in (1, 3):
            raise InputError(f"--batch must be N or min,opt,max (one or three positive integers), got '{typed}'")
        if min(nums) < 1:
            # name what was typed: `--batch 0` is the batch N (= opt and max) of the profile
            raise InputError(f"--batch takes positive batch sizes (N, or min,opt,max), got '{typed}'")
        if len(nums) == 1:
            return cls(1, nums[0], nums[0])
        if not nums[0] <= nums[1] <= nums[2]:
            raise InputError(f"--batch min,opt,max must satisfy min <= opt <= max, got '{typed}'")
        return cls(*nums)

    def __str__(self) -> str:
        return f"{self.min},{self.opt},{self.max}"


#: Profile used when the ONNX batch axis is dynamic and no ``--batch`` is given.
DEFAULT_BATCH = BatchProfile(1, 8, 16)


@dataclass(frozen=True)
class EngineInput:
    """One network input as the ONNX file declares it: ``shape`` has -1 for each dynamic
    axis; ``dtype`` is a numpy dtype name."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def dynamic_axes(self) -> list[int]:
        return [i for i, d in enumerate(self.shape) if d < 0]


def onnx_engine_inputs(onnx_path: str | Path) -> list[EngineInput]:
    """The real inputs of an ONNX graph (initializers listed as inputs by old exporters are
    left out), with -1 for dynamic axes.

    Raises:
        InputError: unreadable file, or a graph without inputs.
    """
    from fcnkit.deploy.onnx import inspect_onnx

    info = inspect_onnx(onnx_path)
    if not info.inputs:
        raise InputError(f"{onnx_path}: the ONNX graph has no inputs")
    return [EngineInput(n, tuple(d if isinstance(d, int) else -1 for d in s), t) for n, s, t in info.inputs]


def profile_shapes(inputs: Sequence[EngineInput], batch: BatchProfile | str | int | None = None,
                   tile: tuple[int, int] | str | None = None) -> dict[str, tuple[tuple[int, ...], ...]]:
    """The (min, opt, max) shapes of the optimisation profile, per input.

    - A dynamic axis 0 (batch) takes ``batch`` (default :data:`DEFAULT_BATCH`).
    - A static batch axis is kept; a ``batch`` that asks for anything else is an error.
    - Dynamic H and W (axes 2 and 3 of an N, C, H, W input, from ``--dynamic-hw``) take
      ``tile`` for min, opt and max; without ``tile`` that is an error.
    - Any other dynamic axis is an error (fcnkit's exports have none).

    Returns:
        {input name: (min shape, opt shape, max shape)}.

    Raises:
        InputError: a profile that the ONNX file cannot take.
    """
    profile = BatchProfile.parse(batch)
    tile = parse_tile(tile)
    out = {}
    for inp in inputs:
        lo, op, hi = list(inp.shape), list(inp.shape), list(inp.shape)
        if not inp.shape:
            out[inp.name] = (tuple(lo), tuple(op), tuple(hi))
            continue
        if inp.shape[0] < 0:
            p = profile or DEFAULT_BATCH
            lo[0], op[0], hi[0] = p.min, p.opt, p.max
        elif profile is not None and (profile.min, profile.opt, profile.max) != (inp.shape[0],) * 3:
            raise InputError(f"input '{inp.name}' has a static batch of {inp.shape[0]} in the ONNX file, "
                             f"so --batch {profile} cannot be honoured; export with --batch dynamic "
                             f"(the default) or build with --batch {inp.shape[0]},{inp.shape[0]},{inp.shape[0]}")
        for ax in inp.dynamic_axes:
            if ax == 0:
                continue
            if len(inp.shape) == 4 and ax in (2, 3):
                if tile is None:
                    raise InputError(f"input '{inp.name}' has dynamic H and W {list(inp.shape)}; give "
                                     "the tile size to build for with --tile H,W")
                lo[ax] = op[ax] = hi[ax] = tile[ax - 2]
            else:
                raise InputError(f"input '{inp.name}' has a dynamic axis {ax} {list(inp.shape)} that "
                                 "fcnkit cannot build a profile for")
        if tile is not None and len(inp.shape) == 4 and 2 not in inp.dynamic_axes and tuple(inp.shape[2:]) != tile:
            raise InputError(f"input '{inp.name}' is static at {inp.shape[2]}x{inp.shape[3]} in the ONNX "
                             f"file; --tile {tile[0]},{tile[1]} needs an export at that tile (or --dynamic-hw)")
        out[inp.name] = (tuple(lo), tuple(op), tuple(hi))
    return out


def check_build_options(*, workspace_mib: int | None = DEFAULT_WORKSPACE_MIB, opt_level: int | None = None,
                        fp16: bool = False, trt_major: int | None = None) -> None:
    """Check engine-build options before anything is built.

    Raises:
        InputError: non-positive workspace, optimisation level outside 0..5, or ``fp16`` on
            TensorRT >= 11 (strongly typed: export the ONNX in fp16 instead).
    """
    if workspace_mib is not None and (isinstance(workspace_mib, bool) or int(workspace_mib) <= 0):
        raise InputError(f"--workspace must be a positive number of MiB, got {workspace_mib}")
    if opt_level is not None and int(opt_level) not in OPT_LEVELS:
        raise InputError(f"--opt-level must be between {OPT_LEVELS.start} and {OPT_LEVELS.stop - 1}, got {opt_level}")
    if fp16 and trt_major is not None and trt_major >= 11:
        raise InputError("TensorRT 11 builds strongly typed networks only (BuilderFlag.FP16 was removed): "
                         "export the ONNX file in fp16 (`fcnkit export --dtype fp16`) and build without --fp16")


def torch_dtype_of(trt_dtype: Any):
    """torch dtype of a TensorRT ``DataType`` (member or its name, e.g. ``"HALF"``).

    Raises:
        ExportError: a type fcnkit does not map.
    """
    import torch

    name = getattr(trt_dtype, "name", None) or str(trt_dtype).rsplit(".", 1)[-1]
    attr = TRT_TO_TORCH.get(name.upper())
    if attr is None or not hasattr(torch, attr):
        raise ExportError(f"TensorRT data type {name} has no torch equivalent here")
    return getattr(torch, attr)


def sidecar_path(engine_path: str | Path) -> Path:
    """``X.engine`` -> ``X.engine.json``."""
    p = Path(engine_path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def read_sidecar(engine_path: str | Path) -> dict:
    """The JSON written beside an engine by :func:`build_engine` ({} when absent)."""
    p = sidecar_path(engine_path)
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except ValueError as e:
        raise InputError(f"{p}: not valid JSON ({e})") from None


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
        network = builder.create_network(network_flags(trt, major, fp16))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errs = parser_errors(parser) or [m for s, m in logger.messages if s in ("ERROR", "INTERNAL_ERROR")]
            raise ExportError(f"TensorRT's ONNX parser rejects {onnx_path.name} ({len(errs)} error(s)):\n  "
                              + "\n  ".join(errs or ["no error message"]))
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
        cache_path = Path(timing_cache) if timing_cache is not None else None
        if cache_path is not None:
            blob = cache_path.read_bytes() if cache_path.is_file() else b""
            cache = config.create_timing_cache(blob)
            if not config.set_timing_cache(cache, ignore_mismatch=False):
                raise ExportError(f"{cache_path}: TensorRT cannot use this timing cache (made by another "
                                  "TensorRT version or GPU?); delete it to start a new one")
        t0 = time.perf_counter()
        plan = builder.build_serialized_network(network, config)
        seconds = time.perf_counter() - t0
        if plan is None:
            errs = [m for s, m in logger.messages if s in ("ERROR", "INTERNAL_ERROR")]
            raise ExportError("TensorRT could not build the engine" + (":\n  " + "\n  ".join(errs) if errs else
                              "; run with --verbose for TensorRT's log"))
        data = bytes(memoryview(plan))
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
        meta = {k: info.meta_json(k) for k in info.metadata if k.startswith("fcnkit.")}
        side = {
            "engine": engine_path.name, "onnx": str(onnx_path.name), "tensorrt_version": str(trt.__version__),
            "device": torch.cuda.get_device_name(dev), "precision": precision,
            "inputs": [asdict(i) for i in inputs], "outputs": [[n, s, t] for n, s, t in info.outputs],
            "softmax_outputs": sorted(info.softmax_outputs),
            "profile": {k: [list(s) for s in v] for k, v in shapes.items()}, "onnx_metadata": meta,
        }
        write_engine_files(engine_path, data, side)
    return EngineBuildResult(engine_path, sidecar_path(engine_path), shapes, str(trt.__version__),
                             torch.cuda.get_device_name(dev), precision, seconds, len(data), parity,
                             tolerance, cache_path,
                             [m for s, m in logger.messages if s == "WARNING"])


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
