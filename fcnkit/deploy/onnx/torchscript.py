"""The TorchScript-based exporter (``torch.onnx.export(dynamo=False)``), the fast path of
:func:`fcnkit.deploy.onnx.export_onnx` with ``exporter="auto"``.

Why: for a small net the dynamo exporter costs seconds of imports (``torch.export``,
onnxscript, its op registry) and of tracing, where tracing the module with TorchScript
takes a fraction of a second (issue 16: 10.5 s against 1.4 s for a 2-conv net on the same
machine). The parity run that follows every export compares the graph with torch either
way, so the choice changes speed, never what passes.

Used only where it is known to give the same graph semantics: fp32, static H and W (a
trace bakes the sizes of the example input into shape arithmetic), and no layer swapped
for a custom op (LRN, explicit-padding pooling: their ONNX translations are onnxscript
functions, which only the dynamo exporter reads). Anything else, or any failure of the
trace, goes to the dynamo exporter.
"""

from __future__ import annotations

import io
import warnings
from typing import Sequence


def can_use_torchscript(half: bool, want_hw: bool, table) -> str | None:
    """None when the TorchScript exporter may be used, else why not (for a debug note)."""
    if half:
        return "fp16 export (the trace would run fp16 kernels on the CPU)"
    if want_hw:
        return "dynamic H and W (a trace fixes the sizes)"
    if table:
        return "layers exported as custom ops (onnxscript translations)"
    return None


def torchscript_export(module, args: tuple, *, opset: int, input_names: Sequence[str],
                       output_names: Sequence[str], dynamic_batch: bool):
    """The ONNX ModelProto of ``module`` traced on ``args`` (float32 N, C, H, W tensors),
    constant-folded, with a dynamic batch axis named ``batch`` when ``dynamic_batch``.

    Raises:
        whatever the exporter or ``onnx.load_from_string`` raise (the caller falls back to
        the dynamo exporter).
    """
    import onnx
    import torch

    dynamic_axes = {n: {0: "batch"} for n in list(input_names) + list(output_names)} if dynamic_batch else None
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice and tracer warnings
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(module, args, buf, dynamo=False, opset_version=opset,
                              input_names=list(input_names), output_names=list(output_names),
                              dynamic_axes=dynamic_axes, do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())
