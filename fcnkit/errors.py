"""The one exception hierarchy of fcnkit.

Every error that bad input can cause is a :class:`FcnkitError`. Its message says where
(file, line and column for text, layer name for graphs), what is wrong and what to do.
The CLI prints ``error: <message>`` and exits with status 2 for any of these; anything
else reaching the CLI is a bug in fcnkit, reported as an internal error with exit status 70
(``EX_SOFTWARE``) and a request for a bug report.
"""

from __future__ import annotations

from pathlib import Path


class FcnkitError(Exception):
    """Base class of every error fcnkit raises on bad input or an unavailable feature."""

    exit_code = 2


def _where(path: str | Path | None, line: int | None = None, column: int | None = None) -> str:
    if path is None:
        return ""
    where = str(path)
    if line is not None:
        where += f":{line}"
        if column is not None:
            where += f":{column}"
    return where + ": "


class CaffeFormatError(FcnkitError):
    """A prototxt or caffemodel cannot be read (syntax, unknown field, truncated file, ...).

    Attributes:
        path: the file, or None for in-memory text.
        line, column: 1-based position in a text file, when known.
    """

    def __init__(self, message: str, path: str | Path | None = None,
                 line: int | None = None, column: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.column = column
        self.reason = message
        super().__init__(_where(path, line, column) + message)

    @classmethod
    def unreadable(cls, exc: OSError, path: str | Path, kind: str) -> "CaffeFormatError":
        """The error for a ``kind`` file (``"caffemodel"``, ``"prototxt"``) at ``path`` that
        could not be opened or read: not found, a directory, or the system's reason."""
        if isinstance(exc, FileNotFoundError):
            return cls("file not found", path)
        if isinstance(exc, IsADirectoryError):
            return cls(f"is a directory, not a {kind} file", path)
        return cls(f"cannot read the file: {exc.strerror}", path)


class UpgradeError(CaffeFormatError):
    """A legacy (V0/V1) net cannot be upgraded to V2, or mixes `layer` and `layers`."""


class NetDefinitionError(FcnkitError):
    """The net is well-formed text but not a valid net: duplicate tops, missing bottoms,
    cycles, bad layer parameters. The message names the layer (and its line when known)."""


class UnsupportedLayerError(NetDefinitionError):
    """One or more layer types are not in the registry. Lists every such layer."""


class ShapeError(NetDefinitionError):
    """Shapes do not fit: a layer cannot take the shapes of its bottoms."""


class OffsetError(FcnkitError):
    """A crop offset cannot be computed (factor != 1, negative or fractional offset,
    blobs without a common ancestor) or a coordinate map does not exist."""


class WeightsError(FcnkitError):
    """Weights do not fit the net (blob count, element count), a weights file is bad, or
    it leaves the net without weights (no layer loads, a layer without a filler would be
    all zeros).

    Attributes:
        report: the :class:`fcnkit.compile.load_report.WeightsLoadReport` when the error is
            about what loaded, else None.
    """

    def __init__(self, message: str, report=None):
        self.report = report
        super().__init__(message)


class SurgeryError(FcnkitError):
    """A net-surgery step cannot be carried out on this net."""


class ExportError(FcnkitError):
    """ONNX export or its check failed (unsupported opset, parity beyond tolerance, ...)."""


class BackendUnavailableError(FcnkitError):
    """An optional backend (TensorRT, CUDA, onnxruntime-gpu) is not installed or has no device.
    The message says what to install."""


class InputError(FcnkitError):
    """A user-supplied input (array file, option value, raster) is unusable."""


class OutputError(FcnkitError):
    """An output file or directory cannot be written (permissions, a missing parent, a full
    disk). The message names the path the user asked for, never a temporary file."""


class OutputExistsError(OutputError):
    """The output path exists and fcnkit will not replace it: a file where a directory is
    to be written, or a directory that is not an earlier output of fcnkit (``--force``
    replaces a directory)."""


class LimitError(InputError):
    """An input would need more memory than fcnkit's limit (parameters, activations, array
    files): refused before anything is allocated. The message names the layer or file, the
    bytes needed and the limit, and how to raise it (``--memory-limit``,
    ``FCNKIT_MEMORY_LIMIT``)."""
