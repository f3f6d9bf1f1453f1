"""The result of one ONNX export (:func:`fcnkit.deploy.onnx.export.export_onnx`): what was
written and what the checks measured."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from fcnkit.deploy.onnx.parity import ParityRow


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote and measured.

    Attributes:
        path: the ONNX file.
        opset: the file's ``ai.onnx`` opset (equal to the one requested).
        dtype: ``fp32`` or ``fp16`` (the graph's input/output and weight precision).
        inputs, outputs: {name: shape}, dynamic axes as strings (``"batch"``).
        parity: one row per output (and per checked input size).
        dynamic_batch, dynamic_hw: which axes are dynamic in the file.
        notes: things the user should know (e.g. why H and W stayed static).
        warnings: things that make the result doubtful (a parity run that was not
            meaningful because the torch reference does not vary with the input).
        metadata: the ``metadata_props`` written into the file.
        node_types: ONNX op type -> count.
        size_bytes: file size in bytes.
        seconds: wall time of export + checks (s).
    """

    path: Path
    opset: int
    dtype: str
    inputs: dict[str, list]
    outputs: dict[str, list]
    parity: list[ParityRow]
    dynamic_batch: bool
    dynamic_hw: bool
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    node_types: dict[str, int] = field(default_factory=dict)
    size_bytes: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def max_abs(self) -> float:
        return max((r.max_abs for r in self.parity), default=0.0)

    @property
    def relative(self) -> float:
        return max((r.relative for r in self.parity), default=0.0)

    @property
    def tolerance(self) -> float:
        return min((r.tolerance for r in self.parity), default=math.nan)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.parity)

    @property
    def meaningful(self) -> bool:
        """Whether parity was measured and every torch reference varied with the input."""
        return bool(self.parity) and all(r.varies for r in self.parity)

    def summary(self) -> str:
        """One line: opset, precision, I/O shapes and the parity measured against torch."""
        def io(d):
            return ", ".join(f"{k}({','.join(map(str, v))})" for k, v in d.items())

        text = f"opset {self.opset}, {self.dtype}, {io(self.inputs)} -> {io(self.outputs)}"
        if self.parity:
            text += (f"; ONNX Runtime vs torch: max abs {self.max_abs:.3g}, relative "
                     f"{self.relative:.3g} (tolerance {self.tolerance:g})")
            if not self.meaningful:
                text += " NOT MEANINGFUL: the torch output does not vary with the input"
        else:
            text += "; parity not checked"
        return text

    def lines(self) -> list[str]:
        """Per-output parity lines, then the notes."""
        out = []
        for r in self.parity:
            at = f" at {r.size[0]}x{r.size[1]}" if r.size else ""
            const = "" if r.varies else ", constant reference"
            out.append(f"{r.output} ({','.join(map(str, r.shape))}){at}: max abs {r.max_abs:.3g}, relative {r.relative:.3g} "
                       f"({'ok' if r.ok else 'FAIL'}, tolerance {r.tolerance:g}{const})")
        return out + [f"note: {n}" for n in self.notes] + [f"warning: {w}" for w in self.warnings]
