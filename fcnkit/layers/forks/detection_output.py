"""DetectionOutput: SSD, weiliu89/caffe (branch ssd) src/caffe/layers/detection_output_layer.cpp.

Decodes box predictions against the priors and runs per-class non-maximum suppression.
Bottoms: loc (N, P * 4 or P * 4 * classes), conf (N, P * classes), priors (1, 2, P * 4).
The top is (1, 1, D, 7) rows ``[image_id, label, score, xmin, ymin, xmax, ymax]`` with D
known only after NMS; Caffe's Reshape declares D = 1 before the first forward
("we manually set it to (fake) 1"), and so does fcnkit's shape rule.

fcnkit does not compile NMS (data-dependent output; ONNX's NonMaxSuppression differs from
SSD's per-class top-k and eta rules). The layer's role is ``postprocess``: compiling or
exporting with ``--deploy`` drops it, so the torch module and the ONNX file end at its
bottoms (loc, conf, priors), and the user runs SSD's decoding and NMS on those.
"""

from __future__ import annotations

from fcnkit.caffe.forks import fork_param
from fcnkit.layers import Layer, NoCoordMap, register


@register
class DetectionOutput(Layer):
    """SSD ``DetectionOutput`` (``detection_output_param``): shape rule only."""

    type = "DetectionOutput"
    fork = "SSD (weiliu89/caffe)"
    role = "postprocess"
    bottoms = (3, 4)

    def setup(self) -> None:
        p = fork_param(self.param, "detection_output_param")
        if p is None or not p.HasField("num_classes"):
            raise self.error("detection_output_param needs num_classes")
        self.num_classes = int(p.num_classes)

    def output_shapes(self, bottom_shapes):
        return [(1, 1, 1, 7)]

    def coord_map(self):
        raise NoCoordMap("DetectionOutput outputs a list of boxes")

    def build_module(self, bottom_shapes):
        raise self.error(
            "runs SSD's box decoding and non-maximum suppression, which fcnkit does not compile "
            "or export; compile/export with --deploy to end the model at its bottoms ("
            + ", ".join(self.param.bottom) + ") and run SSD's decoding and NMS on those")
