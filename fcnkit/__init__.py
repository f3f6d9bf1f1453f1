"""fcnkit: a Caffe-style declarative network compiler with FCN surgery tooling.

Prototxt/caffemodel (every format generation) -> checked graph -> shapes, scale factors
and crop offsets -> PyTorch (torch.fx) -> ONNX / TensorRT, plus fc->conv net surgery and
an 8-band road-segmentation model zoo.

The main entry points are importable from here; each is the library function itself (same
signature, parameters and docstring), imported on first use so that ``import fcnkit``
stays light (no torch, onnx or rasterio):

- :func:`load_net` (prototxt -> checked :class:`Net`, ``phase``/``stages``/``level``),
  :func:`read_prototxt`, :func:`read_caffemodel`, :func:`write_prototxt`,
  :func:`write_caffemodel`, :func:`upgrade_file`;
- :func:`analyse` (shapes, params, FLOPs, coordinate maps), :func:`offset_table`,
  :func:`crop_table`, :func:`render_offsets`, :func:`fix_crop_offsets_text`,
  :func:`net_to_dot`;
- :func:`compile_net` (Net -> :class:`CompiledNet`, ``deploy``), :func:`load` (a directory
  written by ``fcnkit compile -o``), :func:`time_forward`;
- :func:`fcn_surgery` (classifier -> FCN), :func:`export_onnx`, :class:`Predictor`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: public name -> the module that defines it (imported on first attribute access)
_ENTRY_POINTS = {
    "load_net": "fcnkit.graph",
    "Net": "fcnkit.graph",
    "NetState": "fcnkit.graph",
    "read_prototxt": "fcnkit.caffe",
    "write_prototxt": "fcnkit.caffe",
    "read_caffemodel": "fcnkit.caffe",
    "write_caffemodel": "fcnkit.caffe",
    "upgrade_file": "fcnkit.caffe.upgrade_files",
    "analyse": "fcnkit.analysis",
    "offset_table": "fcnkit.analysis",
    "crop_table": "fcnkit.analysis",
    "render_offsets": "fcnkit.analysis",
    "fix_crop_offsets_text": "fcnkit.analysis",
    "net_to_dot": "fcnkit.analysis.draw",
    "compile_net": "fcnkit.compile",
    "CompiledNet": "fcnkit.compile",
    "load": "fcnkit.compile",
    "time_forward": "fcnkit.deploy.timing",
    "fcn_surgery": "fcnkit.surgery",
    "export_onnx": "fcnkit.deploy.onnx",
    "Predictor": "fcnkit.deploy.predictor",
}

__all__ = ["__version__", "load_net", "Net", "NetState", "read_prototxt", "write_prototxt",
           "read_caffemodel", "write_caffemodel", "upgrade_file", "analyse", "offset_table",
           "crop_table", "render_offsets", "fix_crop_offsets_text", "net_to_dot", "compile_net",
           "CompiledNet", "load", "time_forward", "fcn_surgery", "export_onnx", "Predictor"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names resolve lazily
    from fcnkit.analysis import analyse, crop_table, fix_crop_offsets_text, offset_table, render_offsets
    from fcnkit.analysis.draw import net_to_dot
    from fcnkit.caffe import read_caffemodel, read_prototxt, write_caffemodel, write_prototxt
    from fcnkit.caffe.upgrade_files import upgrade_file
    from fcnkit.compile import CompiledNet, compile_net, load
    from fcnkit.deploy.onnx import export_onnx
    from fcnkit.deploy.predictor import Predictor
    from fcnkit.deploy.timing import time_forward
    from fcnkit.graph import Net, NetState, load_net
    from fcnkit.surgery import fcn_surgery


def __getattr__(name: str):
    """Import an entry point on first use (PEP 562)."""
    module = _ENTRY_POINTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fcnkit' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ENTRY_POINTS))
