"""PriorBox: SSD, weiliu89/caffe (branch ssd) src/caffe/layers/prior_box_layer.cpp.

Default boxes of one feature map. Bottoms: the feature map (N, C, H, W) and the image
(N, C', IH, IW); top: (1, 2, H * W * P * 4), channel 0 the boxes (xmin, ymin, xmax, ymax)
normalised by the image size, channel 1 the variances. Per position (h, w), row-major, the
P priors are, for each ``min_size`` s: the square s x s, then (with ``max_size`` m) the
square sqrt(s m), then for each aspect ratio r != 1 the box (s sqrt(r), s / sqrt(r)).
Aspect ratios: 1 first, then each given ratio once (|r - r'| < 1e-6 counts as equal) and,
with ``flip`` (default true), its inverse. Centres: ``((w + offset) step_w, (h + offset)
step_h)``, ``offset`` 0.5; ``step`` defaults to image size / feature size, the image size to
bottom 1's unless ``img_size``/``img_h``/``img_w``. ``clip`` clamps to [0, 1]. Variance:
one value for all four coordinates, four values, or 0.1 when none is given.

The top depends only on shapes, so the torch module holds it as a constant (computed in
float64, stored as float32 as Caffe does). No coordinate map.
"""

from __future__ import annotations

import math

import numpy as np

from fcnkit.caffe.forks import fork_param
from fcnkit.errors import ShapeError
from fcnkit.layers import Layer, NoCoordMap, register
from fcnkit.layers._common import lazy


@register
class PriorBox(Layer):
    """SSD ``PriorBox`` (``prior_box_param``)."""

    type = "PriorBox"
    fork = "SSD (weiliu89/caffe)"
    bottoms = (2, 2)
    min_bottom_rank = 4

    def setup(self) -> None:
        p = fork_param(self.param, "prior_box_param")
        if p is None or not len(p.min_size):
            raise self.error("prior_box_param needs at least one min_size")
        self.min_sizes = [float(s) for s in p.min_size]
        self.max_sizes = [float(s) for s in p.max_size]
        if any(s <= 0 for s in self.min_sizes):
            raise self.error(f"min_size must be positive, got {self.min_sizes}")
        if self.max_sizes and len(self.max_sizes) != len(self.min_sizes):
            raise self.error(f"give max_size once per min_size ({len(self.min_sizes)}), "
                             f"got {len(self.max_sizes)}")
        if any(m <= s for m, s in zip(self.max_sizes, self.min_sizes)):
            raise self.error("each max_size must be greater than its min_size")
        self.ratios = [1.0]
        for r in p.aspect_ratio:
            if any(abs(r - q) < 1e-6 for q in self.ratios):
                continue
            self.ratios.append(float(r))
            if p.flip:
                self.ratios.append(1.0 / float(r))
        self.clip = bool(p.clip)
        self.variance = [float(v) for v in p.variance] or [0.1]
        if len(self.variance) not in (1, 4) or any(v <= 0 for v in self.variance):
            raise self.error(f"variance must be one or four positive values, got {self.variance}")
        self.img = _pair(p, "img_size", "img_h", "img_w", self)
        self.step = _pair(p, "step", "step_h", "step_w", self)
        self.offset = float(p.offset)

    def num_priors(self) -> int:
        """Boxes per feature-map position."""
        return len(self.ratios) * len(self.min_sizes) + len(self.max_sizes)

    def output_shapes(self, bottom_shapes):
        for s in bottom_shapes:
            if len(s) != 4:
                raise self.error(f"bottoms must be N, C, H, W, got {s}", ShapeError)
        h, w = bottom_shapes[0][2:]
        return [(1, 2, h * w * self.num_priors() * 4)]

    def coord_map(self):
        raise NoCoordMap("PriorBox outputs box coordinates, not a spatial map")

    def priors(self, bottom_shapes) -> np.ndarray:
        """The top, (1, 2, H * W * P * 4) float32 (prior_box_layer.cpp Forward_cpu)."""
        layer_h, layer_w = bottom_shapes[0][2:]
        img_h, img_w = self.img if all(self.img) else bottom_shapes[1][2:]
        step_h, step_w = self.step if all(self.step) else (img_h / layer_h, img_w / layer_w)
        sizes = []
        for k, s in enumerate(self.min_sizes):
            sizes.append((s, s))
            if self.max_sizes:
                m = math.sqrt(s * self.max_sizes[k])
                sizes.append((m, m))
            sizes += [(s * math.sqrt(r), s / math.sqrt(r)) for r in self.ratios if abs(r - 1) >= 1e-6]
        sizes = np.asarray(sizes, dtype=np.float64)                       # (P, 2): width, height
        cy = (np.arange(layer_h, dtype=np.float64) + self.offset) * step_h
        cx = (np.arange(layer_w, dtype=np.float64) + self.offset) * step_w
        cy, cx = np.meshgrid(cy, cx, indexing="ij")
        cx, cy = cx[..., None], cy[..., None]                              # (H, W, 1)
        bw, bh = sizes[:, 0], sizes[:, 1]
        boxes = np.stack([(cx - bw / 2) / img_w, (cy - bh / 2) / img_h,
                          (cx + bw / 2) / img_w, (cy + bh / 2) / img_h], axis=-1)
        boxes = boxes.astype(np.float32).reshape(-1)
        if self.clip:
            boxes = np.clip(boxes, 0, 1)
        var = np.resize(np.asarray(self.variance, dtype=np.float32), boxes.size)
        return np.stack([boxes, var])[None]

    def build_module(self, bottom_shapes):
        return _torch().Constant(self.priors(bottom_shapes))

    def static_hw_reason(self, module):
        return "outputs boxes computed for the compile-time feature-map and image sizes"


def _pair(p, single: str, h: str, w: str, layer: Layer) -> tuple[float, float]:
    """(h, w) from ``single`` or from ``h`` and ``w``; (0, 0) when none is set."""
    if p.HasField(single):
        if p.HasField(h) or p.HasField(w):
            raise layer.error(f"give {single} or {h} and {w}, not both")
        return float(getattr(p, single)), float(getattr(p, single))
    if p.HasField(h) != p.HasField(w):
        raise layer.error(f"{h} and {w} must be given together")
    return float(getattr(p, h)), float(getattr(p, w))


@lazy
def _torch():
    import types

    import torch

    class Constant(torch.nn.Module):
        """Returns a constant computed from shapes; its inputs only fix the graph's order."""

        def __init__(self, value):
            super().__init__()
            self.register_buffer("value", torch.from_numpy(value), persistent=False)

        def forward(self, feature, image):
            return self.value

    return types.SimpleNamespace(Constant=Constant)
