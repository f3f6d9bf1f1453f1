"""Small helpers shared by the deployment modules: option parsing, dtype names, error
measures and the checks for the optional GPU backends.

Nothing here imports torch, onnx or tensorrt at module import time.
"""

from __future__ import annotations

from typing import Any, Sequence

from fcnkit.errors import BackendUnavailableError, InputError

#: Precision names accepted by ``--dtype`` and ``Predictor(dtype=...)``.
DTYPES = ("fp32", "fp16", "bf16")

_DTYPE_ALIASES = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32", "f32": "fp32",
    "fp16": "fp16", "float16": "fp16", "half": "fp16", "f16": "fp16",
    "bf16": "bf16", "bfloat16": "bf16",
}

#: ONNX TensorProto element types (onnx.TensorProto.DataType values) by fcnkit name.
ONNX_ELEM_TYPE = {"fp32": 1, "fp16": 10, "bf16": 16}
#: And back: ONNX element type -> numpy dtype name (for the types a deployed net uses).
ONNX_TO_NUMPY = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16", 2: "uint8",
                 3: "int8", 6: "int32", 7: "int64", 9: "bool"}

#: TensorRT ``DataType`` member names -> torch dtype attribute names. Written against the
#: TensorRT 10/11 Python API (``tensorrt.DataType``); kept as names so that the mapping is
#: usable (and tested) without TensorRT installed.
TRT_TO_TORCH = {
    "FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8",
    "INT32": "int32", "INT64": "int64", "BOOL": "bool", "UINT8": "uint8",
    "FP8": "float8_e4m3fn",
}

INSTALL_TENSORRT = ("install TensorRT with `pip install 'fcnkit[gpu]'` (or `pip install tensorrt`) "
                    "on a machine with an NVIDIA GPU, its driver and CUDA 12 or newer")
INSTALL_CUDA = ("a CUDA-capable NVIDIA GPU, its driver and a CUDA build of PyTorch are needed "
                "(see https://pytorch.org/get-started/locally/)")


def canonical_dtype(name: str | None, *, allowed: Sequence[str] = DTYPES, option: str = "--dtype") -> str:
    """Normalise a precision name (``fp32``, ``float16``, ``half``, ``bf16`` ...) to one of
    ``allowed``.

    Raises:
        InputError: unknown or not allowed here.
    """
    key = _DTYPE_ALIASES.get(str(name).strip().lower()) if name is not None else "fp32"
    if key is None or key not in allowed:
        raise InputError(f"{option} must be one of {', '.join(allowed)}, got '{name}'")
    return key


def torch_dtype(name: str):
    """The torch dtype of a canonical precision name (``fp32`` -> ``torch.float32``)."""
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[canonical_dtype(name)]


def parse_tile(text: str | Sequence[int] | None, option: str = "--tile") -> tuple[int, int] | None:
    """``"512,512"``, ``"512x384"``, ``"512"`` (square) or ``(H, W)`` -> (H, W) in pixels.

    Raises:
        InputError: not one or two positive integers.
    """
    if text is None:
        return None
    if isinstance(text, (tuple, list)):
        parts = list(text)
    else:
        parts = [p for p in str(text).replace("x", ",").replace(" ", "").split(",") if p]
    try:
        vals = [int(p) for p in parts]
    except (TypeError, ValueError):
        raise InputError(f"{option} must be H,W (pixels), got '{text}'") from None
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or min(vals) <= 0:
        raise InputError(f"{option} must be two positive integers H,W (or one for a square tile), got '{text}'")
    return vals[0], vals[1]


def parse_batch(value: str | int | None, option: str = "--batch") -> int | None:
    """``"dynamic"`` (or None) -> None (a dynamic batch axis); ``"4"`` / 4 -> 4.

    Raises:
        InputError: neither ``dynamic`` nor a positive integer.
    """
    if value is None:
        return None
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("dynamic", "dyn", "n", "-1"):
            return None
        try:
            value = int(v)
        except ValueError:
            raise InputError(f"{option} must be a positive integer or 'dynamic', got '{value}'") from None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"{option} must be a positive integer or 'dynamic', got '{value}'")
    return value


def require_tensorrt(what: str = "this command") -> Any:
    """Import and return the ``tensorrt`` module.

    Raises:
        BackendUnavailableError: TensorRT is not installed (the message says what to install).
    """
    try:
        import tensorrt  # type: ignore[import-not-found]
    except ImportError as e:
        raise BackendUnavailableError(f"{what} needs NVIDIA TensorRT, which is not installed ({e}); "
                                      f"{INSTALL_TENSORRT}") from None
    return tensorrt


def tensorrt_major(trt) -> int:
    """Major version of an imported tensorrt module (10, 11, ...); 0 when unknown."""
    try:
        return int(str(trt.__version__).split(".")[0])
    except (AttributeError, ValueError):
        return 0


def require_cuda(what: str = "this command", device: Any = None):
    """Return the torch CUDA device to use.

    Raises:
        BackendUnavailableError: torch has no CUDA support or no GPU is visible.
    """
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build of PyTorch" if torch.version.cuda is None else "no visible GPU"
        raise BackendUnavailableError(f"{what} needs a CUDA GPU, but this machine has {build}; {INSTALL_CUDA}")
    dev = torch.device(device if device is not None else "cuda")
    if dev.type != "cuda":
        raise InputError(f"{what} runs on a CUDA device, got device '{device}'")
    if dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    if dev.index >= torch.cuda.device_count():
        raise BackendUnavailableError(f"{what}: CUDA device {dev.index} does not exist "
                                      f"({torch.cuda.device_count()} visible)")
    return dev


def write_public(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`fcnkit.atomic.write_bytes`) and give the
    file the usual permissions (0666 less the umask): the atomic writer's temporary file is
    created 0600 by ``tempfile.mkstemp``, which would leave exported models unreadable to
    other users (a Triton server, a teammate)."""
    import os

    from fcnkit.atomic import write_bytes

    write_bytes(path, data)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
