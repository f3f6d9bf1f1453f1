"""Per-layer comparison of a compiled net against a reference dump.

The reference is keyed by layer name, each entry that layer's own (first) output, as
OpenCV's ``net.forward(layer_names)`` and Caffe's per-layer dumps give it: for in-place
chains the entry of ``conv1`` is the convolution's output, not the ReLU's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np


@dataclass
class LayerDiff:
    """Error of one layer's output: ``relative = max|diff| / max|reference|``."""

    layer: str
    type: str
    shape: tuple[int, ...]
    max_abs: float
    relative: float


def relative_error(actual, reference) -> tuple[float, float]:
    """(max |actual - reference|, that divided by max |reference|) over all elements: the
    one error metric of fcnkit (``fcnkit verify``, the ONNX and TensorRT parity checks).

    The largest absolute error is scaled by the reference's largest magnitude, so that
    near-zero elements do not blow it up; when the reference is all zeros the relative
    error is the absolute one. Arrays of different shapes, or whose non-finite values
    (NaN, inf) differ in place or value, are infinitely apart; equal non-finite values
    count as equal. Computed in float64.
    """
    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if a.shape != r.shape:
        return math.inf, math.inf
    if a.size == 0:
        return 0.0, 0.0
    if not (np.isfinite(a).all() and np.isfinite(r).all()):
        same = np.array_equal(np.isnan(a), np.isnan(r)) and np.array_equal(a[~np.isfinite(a)], r[~np.isfinite(r)])
        if not same:
            return math.inf, math.inf
        a, r = np.where(np.isfinite(a), a, 0.0), np.where(np.isfinite(r), r, 0.0)
    max_abs = float(np.max(np.abs(a - r)))
    scale = float(np.max(np.abs(r)))
    return max_abs, (max_abs / scale if scale > 0 else max_abs)


def compare_layers(compiled, inputs, reference: Mapping[str, np.ndarray]) -> list[LayerDiff]:
    """Run ``compiled`` on ``inputs`` and compare each layer present in ``reference``.

    Raises:
        InputError: a reference array's element count differs from the layer's output.
    """
    from fcnkit.errors import InputError

    values = compiled.run_all(*inputs)
    rows = []
    for node in compiled.net.layers:
        if node.name not in reference or not node.tops or node.tops[0] not in values:
            continue
        out = values[node.tops[0]].detach().cpu().numpy()
        ref = np.asarray(reference[node.name])
        if out.size != ref.size:
            raise InputError(f"reference '{node.name}' has shape {ref.shape}, the layer outputs {out.shape}")
        d, r = relative_error(out.reshape(ref.shape), ref)
        rows.append(LayerDiff(node.name, node.type, tuple(out.shape), d, r))
    return rows
