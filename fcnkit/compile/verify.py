"""Per-layer comparison of a compiled net against a reference dump (``fcnkit verify``).

A reference comes in one of two conventions, which :func:`verify_reference` detects:

- keyed by **layer** name, each entry that layer's own (first) output, as OpenCV's
  ``net.forward(layer_names)`` gives it (``opencv_oracle_*/layer_outputs.npz``): for an
  in-place chain the entry of ``conv1`` is the convolution's output, not the ReLU's;
- keyed by **blob** name, each entry the blob's value after the forward pass, as pycaffe's
  ``{k: v.data for k, v in net.blobs.items()}`` dumps it: for an in-place chain the entry
  of ``conv1`` is the value after its last in-place layer (the ReLU's output).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np


@dataclass
class LayerDiff:
    """Error of one layer's output: ``relative = max|diff| / max|reference|``. ``layer``
    is the reference key (a layer name, or a blob name for a blob-keyed reference; then
    ``type`` is the type of the layer that last wrote the blob)."""

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


#: The two reference conventions: what a key names and what its entry holds.
CONVENTIONS = {
    "layer": "layer names (each layer's own output, as OpenCV's layer_outputs.npz)",
    "blob": "blob names (a blob's value after its in-place layers, as pycaffe's net.blobs)",
}


@dataclass
class Verification:
    """What :func:`verify_reference` compared.

    Attributes:
        convention: ``"layer"`` or ``"blob"`` (:data:`CONVENTIONS`).
        reason: why that convention (detected from the keys or values, or asked for).
        rows: one per reference key the net computes, in net order.
        total: how many layers (``layer``) or blobs (``blob``) the net computes.
        missing: reference keys that the net does not compute under the convention.
    """

    convention: str
    reason: str
    rows: list[LayerDiff]
    total: int
    missing: list[str] = field(default_factory=list)

    @property
    def compared(self) -> int:
        return len(self.rows)

    @property
    def worst(self) -> float:
        return max((r.relative for r in self.rows), default=0.0)

    @property
    def unit(self) -> str:
        return "layers" if self.convention == "layer" else "blobs"

    def status(self, tolerance: float) -> str:
        """``FAIL`` (an error beyond ``tolerance``), ``missing`` (a key the net does not
        compute), ``partial`` (all within tolerance but fewer than half of the net's layers
        compared) or ``ok``."""
        if self.worst > tolerance:
            return "FAIL"
        if self.missing:
            return "missing"
        return "partial" if 2 * self.compared < self.total else "ok"


def _layer_values(compiled, values) -> dict[str, tuple[str, object]]:
    """{layer name: (type, its own first output)} for the layers the compiled net computes."""
    return {n.name: (n.type, values[n.tops[0]]) for n in compiled.net.layers
            if n.role not in ("input", "alias", "sink") and n.tops and n.tops[0] in values}


def _blob_values(compiled, values) -> dict[str, tuple[str, object]]:
    """{blob name: (type of the layer that last wrote it, its final value)}; a Split top
    resolves to the Split's bottom, which it aliases."""
    net, out = compiled.net, {}
    for name, bid in net.final.items():
        while bid not in values and bid in net.producer and net.producer[bid].role == "alias":
            bid = net.producer[bid].bottoms[0]
        if bid in values:
            prod = net.producer.get(bid)
            out[name] = (prod.type if prod is not None else "Input", values[bid])
    return out


def _diff(value, reference) -> tuple[float, float] | None:
    """(max abs, relative) of a torch value against a reference array; None when their
    element counts differ."""
    out = value.detach().cpu().numpy()
    ref = np.asarray(reference)
    if out.size != ref.size:
        return None
    return relative_error(out.reshape(ref.shape), ref)


def detect_convention(compiled, values, reference: Mapping[str, np.ndarray]) -> tuple[str, str]:
    """(``"layer"`` or ``"blob"``, why): keys that name only a layer (``relu1``) or only a
    blob count for their convention; a key that names both counts for the convention whose
    value is nearer the reference where the two differ (an in-place chain). When nothing
    tells them apart the two conventions give the same values: ``layer``."""
    layers, blobs = _layer_values(compiled, values), _blob_values(compiled, values)
    only_layer = [k for k in reference if k in layers and k not in blobs]
    only_blob = [k for k in reference if k in blobs and k not in layers]
    near_layer, near_blob = [], []
    for k in reference:
        if k in layers and k in blobs and layers[k][1] is not blobs[k][1]:
            a, b = _diff(layers[k][1], reference[k]), _diff(blobs[k][1], reference[k])
            ea = a[1] if a else np.inf
            eb = b[1] if b else np.inf
            (near_layer if ea < eb else near_blob if eb < ea else []).append(k)
    votes_layer, votes_blob = len(only_layer) + len(near_layer), len(only_blob) + len(near_blob)
    if votes_layer == votes_blob == 0:
        return "layer", "no key tells the conventions apart (no in-place layer changes a compared blob)"
    if votes_blob > votes_layer:
        why = (f"{len(only_blob)} key(s) name only a blob (e.g. '{only_blob[0]}')" if only_blob else
               f"{len(near_blob)} in-place blob(s) match their value after the in-place layers "
               f"(e.g. '{near_blob[0]}')")
        return "blob", why
    why = (f"{len(only_layer)} key(s) name only a layer (e.g. '{only_layer[0]}')" if only_layer else
           f"{len(near_layer)} in-place blob(s) match their first layer's own output "
           f"(e.g. '{near_layer[0]}')")
    return "layer", why


def verify_reference(compiled, inputs, reference: Mapping[str, np.ndarray],
                     convention: str = "auto") -> Verification:
    """Run ``compiled`` on ``inputs`` (torch tensors, in ``compiled.inputs`` order) and
    compare it with ``reference`` ({key: array}; a key's array may have any shape with the
    element count of the net's value, e.g. OpenCV's flattened InnerProduct outputs).

    Args:
        convention: ``"layer"``, ``"blob"`` (:data:`CONVENTIONS`) or ``"auto"``
            (:func:`detect_convention`).

    Returns:
        :class:`Verification`: rows in net order, the count compared vs the net's total,
        and the keys the net does not compute.

    Raises:
        InputError: an unknown convention, or a reference array whose element count
            differs from the value it is compared with.
    """
    from fcnkit.errors import InputError

    if convention not in ("auto", *CONVENTIONS):
        raise InputError(f"--keys must be auto, layer or blob, got '{convention}'")
    values = compiled.run_all(*inputs)
    if convention == "auto":
        convention, reason = detect_convention(compiled, values, reference)
    else:
        reason = "asked for"
    table = _layer_values(compiled, values) if convention == "layer" else _blob_values(compiled, values)
    rows = []
    for key, (type_, value) in table.items():
        if key not in reference:
            continue
        d = _diff(value, reference[key])
        if d is None:
            raise InputError(f"reference '{key}' has shape {np.shape(reference[key])}, the net's "
                             f"{convention} '{key}' is {tuple(value.shape)}")
        rows.append(LayerDiff(key, type_, tuple(value.shape), *d))
    missing = [k for k in reference if k not in table]
    return Verification(convention, reason, rows, len(table), missing)
