"""Python: Caffe's include/caffe/layers/python_layer.hpp (``python_param { module: "m"
layer: "C" }``; created by src/caffe/layer_factory.cpp, it has no src/caffe/layers/ file),
a layer whose computation is a user's Python class that Caffe imports.

fcnkit never imports the module (text from an input file never selects code to import), so
it can use a Python layer only where the layer's computation does not matter: as a **data
source**. A Python layer without bottoms (fcn.berkeleyvision.org's ``voc_layers.VOCSegDataLayer``
and ``siftflow_layers``, whose tops are ``data`` and ``label``) is an input like a Data layer:
its shapes come from ``--input-shape`` (Caffe learns them from the data the class loads).

A Python layer with bottoms computes something (Faster R-CNN's ``proposal_layer``, a Python
loss): it is reported with the unsupported layer types, naming its module and class
(:meth:`Python.unsupported_reason`); analyses that need no shapes (``fcnkit offsets``) see it
as a layer without a coordinate map.
"""

from __future__ import annotations

from fcnkit.errors import ShapeError
from fcnkit.layers import IDENTITY, NoCoordMap, register
from fcnkit.layers.input import InputLayer


def _module_class(param) -> str:
    pp = param.python_param
    return f"module '{pp.module or '?'}', class '{pp.layer or '?'}'"


@register
class Python(InputLayer):
    """Caffe ``Python`` used as a data source (no bottoms); see the module docstring."""

    type = "Python"
    bottoms = (0, None)
    tops = (0, None)

    @classmethod
    def unsupported_reason(cls, param) -> str | None:
        if len(param.bottom) == 0:
            return None
        return (f"a Python layer ({_module_class(param)}) inside the net: fcnkit does not run "
                "Python layer code; only a Python data layer (no bottoms) can be replaced by "
                "an input (--input-shape)")

    def setup(self) -> None:
        self.shape_source = f"a Python data layer ({_module_class(self.param)}) decides it"
        if len(self.param.bottom):
            self.role = "compute"

    def partial_shapes(self):
        return [None] * len(self.param.top)

    def output_shapes(self, bottom_shapes):
        if self.role != "input":
            raise self.error(self.unsupported_reason(self.param), ShapeError)
        return super().output_shapes(bottom_shapes)

    def coord_map(self):
        if self.role != "input":
            raise NoCoordMap(f"Python layer ({_module_class(self.param)})")
        return IDENTITY
