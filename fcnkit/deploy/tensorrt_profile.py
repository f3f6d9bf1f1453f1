"""The TensorRT-free side of fcnkit's engines: ``--batch min,opt,max`` profiles, the ONNX
file's inputs, the optimisation-profile shapes, option checks, TensorRT -> torch dtypes and
the engine's JSON sidecar path and reader. Plain Python, tested without a GPU; used by
:mod:`fcnkit.deploy.tensorrt` (which re-exports every public name)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from fcnkit.deploy._common import TRT_TO_TORCH, parse_tile
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
