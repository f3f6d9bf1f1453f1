"""A net-specification DSL: write Caffe nets in Python, get ``caffe_pb2.NetParameter``.

- :class:`NetSpec`, :data:`L`, :data:`P`: the DSL itself (:mod:`fcnkit.netspec.spec`);
- crop offsets computed at build time, ``offset="auto"`` / ``"center"``
  (:mod:`fcnkit.netspec.crops`);
- building blocks shared by the model zoo: conv-ReLU, VGG blocks, FCN score/upscore/crop
  heads, DenseNet layers and blocks, transitions down and up (:mod:`fcnkit.netspec.blocks`).

``fcnkit.caffe.format_prototxt(n.to_proto())`` renders the prototxt.
"""

from fcnkit.netspec.crops import CropOffset
from fcnkit.netspec.spec import L, LayerFn, NetSpec, P, Top, param_fields

__all__ = ["NetSpec", "L", "P", "Top", "LayerFn", "CropOffset", "param_fields"]
