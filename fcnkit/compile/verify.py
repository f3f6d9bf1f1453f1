"""Per-layer comparison of a compiled net against a reference dump.

The reference is keyed by layer name, each entry that layer's own (first) output, as
OpenCV's ``net.forward(layer_names)`` and Caffe's per-layer dumps give it: for in-place
chains the entry of ``conv1`` is the convolution's output, not the ReLU's.
"""

from __future__ import annotations

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


def relative_error(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(max |out - ref|, that divided by max |ref|) — the acceptance metric."""
    diff = float(np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64)))) if out.size else 0.0
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    return diff, diff / scale if scale > 0 else diff


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
