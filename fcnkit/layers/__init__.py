"""The layer registry: one Caffe layer type, one module, registered by its type string.

Register a custom layer type from user code::

    from fcnkit.layers import Layer, CoordMap, register

    @register
    class Upsample(Layer):
        type = "Upsample"
        def setup(self):
            self.scale = int(self.param.python_param.param_str or 2)
        def output_shapes(self, bottoms):
            n, c, h, w = bottoms[0]
            return [(n, c, h * self.scale, w * self.scale)]
        def coord_map(self):
            return CoordMap.make((self.scale, self.scale), ("0.5", "0.5"))
        def build_module(self, bottoms):
            import torch
            return torch.nn.Upsample(scale_factor=self.scale)

Registration replaces nothing silently: registering a type that exists raises unless
``replace=True``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Iterable, TypeVar

from fcnkit.layers.base import (IDENTITY, MAX_BLOB_ELEMENTS, CoordMap, Layer, NoCoordMap, Shape,
                                Window, canonical_axis, check_bottoms, prod, spatial_pair)

__all__ = ["Layer", "CoordMap", "NoCoordMap", "IDENTITY", "Shape", "Window", "register", "get",
           "lookup", "registered_types", "prod", "canonical_axis", "spatial_pair", "check_bottoms",
           "MAX_BLOB_ELEMENTS", "export_translations"]

_REGISTRY: dict[str, type[Layer]] = {}
_LOADED = False

L = TypeVar("L", bound=type[Layer])


def register(cls: L | None = None, *, replace: bool = False, aliases: Iterable[str] = ()):
    """Register a :class:`Layer` subclass under ``cls.type`` (usable as a decorator).

    Raises:
        ValueError: the type is already registered and ``replace`` is false, or the
            class has no ``type``.
    """

    def _do(c: L) -> L:
        if not c.type:
            raise ValueError(f"{c.__name__} has no 'type' class attribute")
        for name in (c.type, *aliases):
            if name in _REGISTRY and _REGISTRY[name] is not c and not replace:
                raise ValueError(f"layer type '{name}' is already registered "
                                 f"({_REGISTRY[name].__module__}); pass replace=True to override")
            _REGISTRY[name] = c
        return c

    return _do(cls) if cls is not None else _do


def _load_builtin() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in ("base",) and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def lookup(type_name: str) -> type[Layer] | None:
    """The registered class for a Caffe type string, or None."""
    _load_builtin()
    return _REGISTRY.get(type_name)


def get(type_name: str) -> type[Layer]:
    """The registered class for a Caffe type string.

    Raises:
        KeyError: the type is not registered.
    """
    cls = lookup(type_name)
    if cls is None:
        raise KeyError(type_name)
    return cls


def registered_types() -> list[str]:
    """All registered Caffe type strings, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def export_translations() -> dict:
    """{torch custom op: ONNX translation} for the export forms of the built-in layers
    (:meth:`Layer.export_module`), for ``torch.onnx.export(custom_translation_table=...)``.
    Imports torch and onnxscript."""
    from fcnkit.layers import _export_ops

    return dict(_export_ops.TRANSLATIONS)
