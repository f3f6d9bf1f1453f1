"""Parity of an ONNX graph with the torch module it was exported from: ONNX Runtime (CPU)
and torch (fp32) on the same seeded random input, max abs and relative error per output,
and whether the reference varies with the input at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from fcnkit.deploy.onnx.exporter_log import short_error
from fcnkit.deploy.onnx.rewrite import resolve_blob
from fcnkit.errors import ExportError


#: Parity tolerance of an fp32 export (relative: max abs error / max |reference|).
FP32_TOLERANCE = 1e-4


#: Parity tolerance of an fp16 export against the fp32 torch module (relative). fp16 keeps
#: 11 significant bits (unit round-off 4.9e-4); every layer rounds its weights and its
#: output once, and the errors add up over depth (FCN-8s has ~20 weighted layers): 1e-2
#: leaves headroom over the 1e-3..5e-3 measured on the real nets and zoo models, and still
#: fails a wrong graph, whose error is of the order of the outputs themselves.
FP16_TOLERANCE = 1e-2


@dataclass
class ParityRow:
    """Agreement of one ONNX output with the torch module.

    Attributes:
        output: the output (Caffe blob) name.
        shape: shape of the compared tensors (N, C, H, W for images).
        max_abs: max |onnxruntime - torch| (output units, e.g. probability).
        relative: ``max_abs / max |torch|``.
        tolerance: the relative tolerance it was held to.
        size: (H, W) of the input it was measured at, or None for non-image inputs.
        varies: whether the torch reference changes with the input (a reference that is
            constant over the random input, or the same for every sample of the batch,
            makes the comparison meaningless: an untrained net whose weights are all 0
            gives 0.5 everywhere through ONNX Runtime and torch alike).
        value_range: (min, max) of the torch reference.
    """

    output: str
    shape: tuple[int, ...]
    max_abs: float
    relative: float
    tolerance: float
    size: tuple[int, int] | None = None
    varies: bool = True
    value_range: tuple[float, float] = (math.nan, math.nan)

    @property
    def ok(self) -> bool:
        return self.relative <= self.tolerance


def _ort_session(model_bytes: bytes):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    # Basic (semantics-preserving) graph optimisations only: the extended/layout passes cost
    # seconds on large models (4.8 s vs 1.2 s for FCN-8s) and are not what is being checked.
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def random_inputs(shapes: Mapping[str, Sequence[int]], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(tuple(s)).astype(np.float32) for k, s in shapes.items()}


#: A torch reference whose values spread by less than this fraction of their magnitude
#: over the random parity input (or between its samples) is taken as not varying with it.
CONSTANT_REFERENCE = 1e-6


def reference_outputs(compiled, inputs: Mapping[str, np.ndarray], names: Sequence[str]) -> dict:
    """The torch module's fp32 values of the blobs ``names`` on ``inputs`` ({input name:
    float32 (N, C, H, W)}): the module's outputs, and for other blobs (extra ONNX outputs)
    their value inside the forward pass (:meth:`fcnkit.compile.CompiledNet.run_all`).

    Returns:
        {name: torch tensor}.
    """
    import torch

    args = [torch.from_numpy(inputs[n]) for n in compiled.inputs]
    with torch.no_grad():
        if all(n in compiled.outputs for n in names):
            out = compiled.module(*args)
            return {n: out[n] for n in names}
        values = compiled.run_all(*args)
    return {n: values[resolve_blob(compiled, n)] for n in names}


def varies(r: np.ndarray) -> bool:
    """Whether a reference changes with the input: not constant over all its elements and,
    with several samples, not the same for every sample."""
    scale = float(np.max(np.abs(r))) if r.size else 0.0
    tol = CONSTANT_REFERENCE * scale
    if r.size == 0 or scale == 0.0 or float(np.ptp(r)) <= tol:
        return False
    if r.ndim >= 1 and r.shape[0] > 1 and float(np.max(np.abs(r - r[:1]))) <= tol:
        return False
    return True


def run_parity(model_bytes: bytes, compiled, inputs: Mapping[str, np.ndarray], *, half: bool,
               tolerance: float) -> list[ParityRow]:
    """Run the ONNX graph in ONNX Runtime (CPU) and the torch module (fp32) on ``inputs``
    ({name: float32 (N, C, H, W)}); one :class:`ParityRow` per ONNX output (a graph output
    that is no output of the module, from ``extra_outputs``, is compared with the blob's
    value inside the forward pass). Each row also says whether the reference varies with
    the input (:attr:`ParityRow.varies`).

    Raises:
        ExportError: ONNX Runtime cannot load or run the graph, an output's shape differs,
            or the torch reference is not finite.
    """
    import torch

    from fcnkit.compile.verify import relative_error

    try:
        sess = _ort_session(model_bytes)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ExportError(f"ONNX Runtime cannot load the exported graph: {short_error(e)}") from None
    feeds = {k: (v.astype(np.float16) if half else v) for k, v in inputs.items()}
    try:
        got = sess.run(None, feeds)
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"ONNX Runtime cannot run the exported graph: {short_error(e)}") from None
    names = [o.name for o in sess.get_outputs()]
    del sess  # the session holds a copy of every weight
    ref = reference_outputs(compiled, inputs, names)
    size = next(((v.shape[2], v.shape[3]) for v in inputs.values() if v.ndim == 4), None)
    for name in names:
        r = ref[name]
        if r.is_floating_point() and not bool(torch.isfinite(r).all()):
            bad = int((~torch.isfinite(r)).sum())
            raise ExportError(
                f"the torch module itself gives {bad} non-finite values (NaN/inf) in output '{name}' "
                f"on a standard-normal input, so parity cannot be measured. An untrained net does "
                "this: Caffe's initial BatchNorm statistics are 0, and each BatchNorm then divides "
                "by sqrt(eps). Load trained weights (or fcnkit.deploy.model.fill_untrained for a "
                "benchmark), or export with --no-check")
    rows = []
    for name, value in zip(names, got):
        r = ref[name].detach().float().numpy()
        if tuple(value.shape) != tuple(r.shape):
            raise ExportError(f"output '{name}': ONNX Runtime gives shape {tuple(value.shape)}, "
                              f"torch {tuple(r.shape)}")
        max_abs, rel = relative_error(np.asarray(value, dtype=np.float32), r)
        span = (float(r.min()), float(r.max())) if r.size else (math.nan, math.nan)
        rows.append(ParityRow(name, tuple(r.shape), max_abs, rel, tolerance, size, varies(r), span))
    return rows


def constant_reference_warning(rows: Sequence[ParityRow]) -> str | None:
    """The warning for parity rows whose torch reference does not vary with the input (None
    when every one varies): such a comparison passes whatever the graph computes."""
    flat = [r for r in rows if not r.varies]
    if not flat:
        return None
    outs = ", ".join(dict.fromkeys(
        f"'{r.output}' ({r.value_range[0]:.4g} everywhere)" if r.value_range[0] == r.value_range[1]
        else f"'{r.output}' ({r.value_range[0]:.4g}..{r.value_range[1]:.4g}, the same for every sample)"
        for r in flat))
    return (f"parity was NOT meaningful: the torch output {outs} does not change with the random input, "
            "so ONNX Runtime would agree with it whatever the graph computes. The net is untrained "
            "(Caffe fills a layer without a weight_filler with 0) or saturated. Export with trained "
            "weights (--weights X.caffemodel) to check the graph, or, for a speed benchmark only, "
            "with --fill-untrained (fcnkit.deploy.model.fill_untrained: seeded He-normal weights)")
