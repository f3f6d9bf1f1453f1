"""Input: Caffe src/caffe/layers/input_layer.cpp; and :class:`InputLayer`, the base of
every layer that produces net inputs (Data, ImageData, MemoryData, HDF5Data, DummyData,
WindowData).

An input layer has no bottoms. :meth:`InputLayer.declared_shapes` gives, per top, the
shape its parameters declare, or None where the data source decides it (a Data layer's
channels come from the database, an HDF5Data layer's shapes from the files). The graph
replaces those by ``--input-shape`` overrides; :meth:`InputLayer.output_shapes` returns
the declared shapes and names the top and the option for an unknown one.

``Input``: ``input_param.shape`` once per top, once for all tops, or not at all
(no declared shape).
"""

from __future__ import annotations

from fcnkit.errors import ShapeError
from fcnkit.layers import IDENTITY, Layer, register

PartialShape = tuple  # of int | None


class InputLayer(Layer):
    """Base of the layers that produce net inputs (role ``"input"``, no bottoms).

    Subclasses implement :meth:`partial_shapes`; :attr:`shape_source` says in words
    where the undeclared dimensions come from.
    """

    role = "input"
    bottoms = (0, 0)
    tops = (1, None)
    #: where the shape comes from when the parameters do not declare it (for messages)
    shape_source = "the data source decides it"

    def partial_shapes(self) -> list[PartialShape | None]:
        """Per top: the shape with None for each dimension the parameters do not fix,
        or None when not even the number of axes is known."""
        raise NotImplementedError

    def declared_shapes(self) -> list[tuple[int, ...] | None]:
        """Per top: the declared shape, or None when any dimension is unknown."""
        return [tuple(int(d) for d in s) if s is not None and all(d is not None for d in s)
                else None for s in self.partial_shapes()]

    def output_shapes(self, bottom_shapes):
        out = []
        for name, shape, part in zip(self.param.top, self.declared_shapes(), self.partial_shapes()):
            if shape is None:
                known = ""
                if part is not None:
                    known = " (known: " + " x ".join("?" if d is None else str(d) for d in part) + ")"
                raise self.error(f"the shape of top '{name}' is not declared: {self.shape_source}"
                                 f"{known}; give it with --input-shape {name}=N,C,H,W", ShapeError)
            out.append(shape)
        return out

    def coord_map(self):
        return IDENTITY

    def _check_tops(self, low: int, high: int | None) -> None:
        n = len(self.param.top)
        if n < low or (high is not None and n > high):
            want = f"exactly {low}" if low == high else (f"{low} to {high}" if high else f"at least {low}")
            raise self.error(f"needs {want} tops, has {n}")


def crop_size(param, legacy) -> int:
    """``transform_param.crop_size``, falling back to a legacy data-layer ``crop_size``
    (Caffe's upgrade moves it into transform_param)."""
    t = param.transform_param
    if t.crop_size:
        return int(t.crop_size)
    return int(getattr(legacy, "crop_size", 0) or 0)


@register
class Input(InputLayer):
    """Caffe ``Input``: one declared shape per top, or one for all, or none."""

    type = "Input"
    declares_input_shape = True
    shape_source = "input_param has no shape"

    def setup(self) -> None:
        shapes = self.param.input_param.shape
        ntop = len(self.param.top)
        if len(shapes) not in (0, 1, ntop):
            raise self.error(f"input_param has {len(shapes)} shapes for {ntop} tops; give one "
                             "shape, one per top, or none")
        for s in shapes:
            if any(d < 0 for d in s.dim):
                raise self.error(f"input shape {tuple(s.dim)} has a negative dimension")
        self.shapes = [tuple(int(d) for d in s.dim) for s in shapes]

    def partial_shapes(self):
        n = len(self.param.top)
        if not self.shapes:
            return [None] * n
        return [self.shapes[0] if len(self.shapes) == 1 else self.shapes[i] for i in range(n)]
