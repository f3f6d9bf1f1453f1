"""Deployment: ONNX export with parity checks, TensorRT engines, and one Predictor over the
torch, ONNX Runtime and TensorRT backends.

- :mod:`fcnkit.deploy.onnx`: :func:`export_onnx` (compiled net -> checked ONNX file),
  :func:`inspect_onnx`, :func:`dynamic_hw_blockers`.
- :mod:`fcnkit.deploy.tensorrt`: :func:`build_engine` (ONNX -> serialized engine),
  :class:`TrtRunner`, and the TensorRT-free argument/profile logic.
- :mod:`fcnkit.deploy.predictor`: :class:`Predictor` (N x C x H x W float32 tiles ->
  N x K x H x W probabilities or N x H x W uint8 labels).
- :mod:`fcnkit.deploy.model`: MODEL arguments (prototxt, compiled directory, zoo name).

Names are imported lazily so that ``import fcnkit.deploy`` needs neither torch nor onnx.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "export_onnx": "fcnkit.deploy.onnx",
    "export_model": "fcnkit.deploy.onnx",
    "ExportResult": "fcnkit.deploy.onnx",
    "inspect_onnx": "fcnkit.deploy.onnx",
    "dynamic_hw_blockers": "fcnkit.deploy.onnx",
    "build_engine": "fcnkit.deploy.tensorrt",
    "BatchProfile": "fcnkit.deploy.tensorrt",
    "TrtRunner": "fcnkit.deploy.tensorrt",
    "Predictor": "fcnkit.deploy.predictor",
    "load_model": "fcnkit.deploy.model",
    "ModelSource": "fcnkit.deploy.model",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'fcnkit.deploy' has no attribute '{name}'")
    return getattr(importlib.import_module(mod), name)
