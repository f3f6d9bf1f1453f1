"""Helpers shared by the built-in layer modules (not a layer type, not auto-imported).

- :func:`opt`: an optional protobuf field, None when unset.
- :func:`new_filler`: a FillerParameter built without importing the generated schema.
- :func:`lazy`: cache a function that builds torch classes on first use (torch stays
  unimported until a module is built).
- :func:`axis_coord_map`: the coordinate map of a layer that works along one axis.
- :class:`ElementwiseLayer`: one bottom, one top of the same shape, identity map.
"""

from __future__ import annotations

import functools
from typing import Any

from fcnkit.layers import IDENTITY, CoordMap, Layer, NoCoordMap


def opt(msg, field: str):
    """``msg.field`` when set, else None (proto2 ``HasField``)."""
    return getattr(msg, field) if msg.HasField(field) else None


def new_filler(like: Any, type_: str = "constant", value: float = 0.0) -> Any:
    """A new FillerParameter of the same message class as ``like`` (any FillerParameter
    field, set or not), with ``type`` and ``value`` set: Caffe's built-in default fillers
    (PReLU 0.25, Scale 1)."""
    f = type(like)()
    f.type = type_
    f.value = value
    return f


def lazy(builder):
    """Decorator: build once, on first call, and cache (the ``_torch()`` pattern)."""
    return functools.cache(builder)


def axis_coord_map(axis: int, layer: Layer, what: str) -> CoordMap:
    """IDENTITY when ``axis`` is the batch or channel axis of an (N, C, H, W) blob
    (0, 1, -4, -3); otherwise the layer mixes or moves spatial positions.

    Raises:
        NoCoordMap: ``axis`` is a spatial axis.
    """
    if axis in (0, 1, -4, -3):
        return IDENTITY
    raise NoCoordMap(f"{layer.type} {what} along axis {axis}, a spatial axis")


class ElementwiseLayer(Layer):
    """A layer whose single top has the shape of its single bottom and whose output at a
    position depends on the input at that position (Caffe's NeuronLayer and friends):
    coordinate map IDENTITY, no FLOPs (FlopCounterMode counts none)."""

    def output_shapes(self, bottom_shapes):
        return [tuple(bottom_shapes[0])]

    def coord_map(self):
        return IDENTITY
