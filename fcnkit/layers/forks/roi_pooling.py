"""ROIPooling: Faster R-CNN, rbgirshick/py-faster-rcnn caffe-fast-rcnn
src/caffe/layers/roi_pooling_layer.cpp.

Bottoms: features (N, C, H, W) and regions (R, 5) rows ``[batch index, x1, y1, x2, y2]`` in
image pixels; top: (R, C, pooled_h, pooled_w). Each region is scaled by ``spatial_scale``
and rounded (C ``round``: halves away from zero) to feature cells ``[x1, x2] x [y1, y2]``
(at least 1 x 1); bin (ph, pw) covers rows ``floor(ph bh) .. ceil((ph + 1) bh)`` (``bh`` =
region height / pooled_h, in float) offset by y1 and clipped to the map, likewise columns,
and holds the maximum of its cells, or 0 for an empty bin.

The region count is data-dependent: fcnkit computes it in torch (a loop over regions) and
does not export it to ONNX. No coordinate map (the output is per region).
"""

from __future__ import annotations

from fcnkit.caffe.forks import fork_param
from fcnkit.errors import ShapeError
from fcnkit.layers import Layer, NoCoordMap, register
from fcnkit.layers._common import lazy


@register
class ROIPooling(Layer):
    """Faster R-CNN ``ROIPooling`` (``roi_pooling_param``)."""

    type = "ROIPooling"
    fork = "Faster R-CNN (rbgirshick/py-faster-rcnn)"
    bottoms = (2, 2)

    def setup(self) -> None:
        p = fork_param(self.param, "roi_pooling_param")
        if p is None or p.pooled_h <= 0 or p.pooled_w <= 0:
            raise self.error("roi_pooling_param needs pooled_h and pooled_w > 0")
        self.pooled = (int(p.pooled_h), int(p.pooled_w))
        self.spatial_scale = float(p.spatial_scale)

    def output_shapes(self, bottom_shapes):
        feat, rois = (tuple(s) for s in bottom_shapes)
        if len(feat) != 4:
            raise self.error(f"features must be N, C, H, W, got {feat}", ShapeError)
        if len(rois) < 2 or rois[1] != 5:
            raise self.error(f"regions must be (R, 5) rows [batch, x1, y1, x2, y2], got {rois}",
                             ShapeError)
        return [(rois[0], feat[1]) + self.pooled]

    def coord_map(self):
        raise NoCoordMap("ROIPooling outputs one map per region")

    def static_hw_reason(self, module):
        return "pools a data-dependent list of regions (not exported)"

    def export_module(self, module, bottom_shapes):
        raise self.error("ROIPooling is computed with a loop over a data-dependent number of "
                         "regions and is not exported to ONNX; export the backbone (the net up "
                         "to the features) instead")

    def build_module(self, bottom_shapes):
        return _torch().ROIPool(self.pooled, self.spatial_scale)


@lazy
def _torch():
    import math
    import types

    import torch

    def c_round(v: float) -> int:
        return int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))

    class ROIPool(torch.nn.Module):
        def __init__(self, pooled, spatial_scale):
            super().__init__()
            self.pooled, self.spatial_scale = tuple(pooled), float(spatial_scale)

        def forward(self, x, rois):
            rois = rois.reshape(-1, 5)
            _, c, height, width = x.shape
            ph_n, pw_n = self.pooled
            out = x.new_zeros((rois.shape[0], c, ph_n, pw_n))
            for r, roi in enumerate(rois.tolist()):
                b = int(roi[0])
                x1, y1, x2, y2 = (c_round(v * self.spatial_scale) for v in roi[1:])
                bh = float(max(y2 - y1 + 1, 1)) / ph_n
                bw = float(max(x2 - x1 + 1, 1)) / pw_n
                for ph in range(ph_n):
                    h0 = min(max(int(math.floor(ph * bh)) + y1, 0), height)
                    h1 = min(max(int(math.ceil((ph + 1) * bh)) + y1, 0), height)
                    for pw in range(pw_n):
                        w0 = min(max(int(math.floor(pw * bw)) + x1, 0), width)
                        w1 = min(max(int(math.ceil((pw + 1) * bw)) + x1, 0), width)
                        if h1 > h0 and w1 > w0:
                            out[r, :, ph, pw] = x[b, :, h0:h1, w0:w1].amax(dim=(1, 2))
            return out

    return types.SimpleNamespace(ROIPool=ROIPool)
