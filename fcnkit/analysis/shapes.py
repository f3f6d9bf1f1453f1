"""Shape inference for every blob version of a net, with Caffe's rounding rules.

The rules themselves live with each layer type (``Layer.output_shapes``); this module walks
the net in order, feeds input shapes (declared by the input layers or given by the user)
and checks the results (positive dimensions, no absurd sizes).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from fcnkit.errors import InputError, ShapeError
from fcnkit.graph import Net
from fcnkit.layers import MAX_BLOB_ELEMENTS, Shape, prod


def parse_shape(text: str) -> Shape:
    """``"1,8,512,512"`` (or ``1x8x512x512``) -> (1, 8, 512, 512).

    Raises:
        InputError: not a list of positive integers.
    """
    parts = [p for p in text.replace("x", ",").replace(" ", "").split(",") if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise InputError(f"bad shape '{text}': expected comma-separated integers like 1,3,500,500") from None
    if not shape or any(d <= 0 for d in shape):
        raise InputError(f"bad shape '{text}': dimensions must be positive integers")
    return shape


def parse_input_shapes(specs: Sequence[str] | None) -> dict[str | None, Shape]:
    """CLI ``--input-shape`` values: ``N,C,H,W`` (the only/first input) or ``name=N,C,H,W``.

    Returns a dict keyed by blob name (None = the first input).
    """
    out: dict[str | None, Shape] = {}
    for spec in specs or ():
        if "=" in spec:
            name, _, shape = spec.partition("=")
            out[name.strip()] = parse_shape(shape)
        else:
            out[None] = parse_shape(spec)
    return out


def input_shapes(net: Net, overrides: Mapping[str | None, Shape] | None = None) -> dict[str, Shape]:
    """Shapes of the net's input blobs: declared by the input layers, or overridden.

    ``overrides`` is keyed by Caffe blob name; the key None means the first input blob.

    Raises:
        InputError: an override names no input blob.
        ShapeError: an input shape is unknown (say which ``--input-shape`` to give).
    """
    overrides = dict(overrides or {})
    names = [net.blob_name[b] for b in net.inputs]
    if None in overrides:
        if not names:
            raise InputError("the net has no input layer to give a shape to")
        overrides.setdefault(names[0], overrides.pop(None))
    prepared = getattr(net, "prepared", None)
    for k in (prepared.dropped_tops if prepared is not None else ()):
        if k not in names:  # --deploy removed this input (a label): its shape is not needed
            overrides.pop(k, None)
    unknown = [k for k in overrides if k not in names]
    if unknown:
        raise InputError(f"--input-shape names {', '.join(map(repr, unknown))}, but the net's "
                         f"inputs are: {', '.join(names) or 'none'}")
    shapes: dict[str, Shape] = {}
    for node in net.input_layers():
        declared = node.layer.declared_shapes()
        # All tops of one data layer share the batch size (Caffe's batch_size): a new N
        # given for one top (data) applies to the declared others (label) too.
        batch = next((overrides[t][0] for t in node.param.top if t in overrides), None)
        for bid, tname, dshape in zip(node.tops, node.param.top, declared):
            if tname not in overrides and dshape is not None and batch is not None and len(dshape):
                dshape = (batch, *tuple(dshape)[1:])
            shape = overrides.get(tname, dshape)
            if shape is None:
                readers = net.consumers.get(bid, [])
                hint = ""
                if readers and all(r.role in ("loss", "metric") for r in readers):
                    hint = " (or --deploy: remove the loss/metric layers and the inputs only they read)"
                source = getattr(node.layer, "shape_source", None)
                raise node.layer.error(
                    f"the shape of top '{tname}' is not declared in the prototxt"
                    f"{f' ({source})' if source else ''}; give it with "
                    f"--input-shape {tname}=N,C,H,W{hint}", ShapeError)
            shapes[bid] = tuple(int(d) for d in shape)
    return shapes


def _output_shapes(node, bottoms: list[Shape]) -> list[Shape]:
    """``node.layer.output_shapes(bottoms)``, after the layer's rank rule; a layer rule that
    fails on shapes it did not expect (an IndexError on a rank-0 bottom) is a ShapeError
    that names the layer and the shapes, not a traceback."""
    need = node.layer.min_bottom_rank
    if any(len(s) < need for s in bottoms):
        raise node.layer.error(f"needs bottoms with at least {need} axes, got shapes "
                              f"{', '.join(map(str, bottoms))}", ShapeError)
    try:
        return node.layer.output_shapes(bottoms)
    except (IndexError, ValueError, TypeError, ZeroDivisionError, OverflowError) as e:
        raise node.layer.error(f"cannot take bottoms of shapes {', '.join(map(str, bottoms))} "
                              f"({type(e).__name__}: {e})", ShapeError) from None


def infer_shapes(net: Net, overrides: Mapping[str | None, Shape] | None = None) -> dict[str, Shape]:
    """Shape of every blob version of ``net`` (blob id -> shape, Caffe axis order).

    Raises:
        ShapeError: a layer cannot take its bottoms' shapes, a dimension is not positive,
            or a blob is absurdly large (more than 2**40 elements); the layer is named.
        InputError: see :func:`input_shapes`.
    """
    shapes: dict[str, Shape] = dict(input_shapes(net, overrides))
    for node in net.layers:
        if node.role == "input":
            tops = [shapes[t] for t in node.tops]
        else:
            tops = _output_shapes(node, [shapes[b] for b in node.bottoms])
        if len(tops) != len(node.tops):
            raise node.layer.error(f"computed {len(tops)} top shapes for {len(node.tops)} tops", ShapeError)
        for bid, shape in zip(node.tops, tops):
            shape = tuple(int(d) for d in shape)
            if any(d <= 0 for d in shape):
                raise node.layer.error(f"top '{net.blob_name[bid]}' would have shape {shape}; every "
                                      "dimension must be positive", ShapeError)
            if prod(shape) > MAX_BLOB_ELEMENTS:
                raise node.layer.error(f"top '{net.blob_name[bid]}' would have shape {shape} "
                                      f"({prod(shape):.3g} elements), which is absurdly large; "
                                      "check the declared input shape", ShapeError)
            shapes[bid] = shape
    return shapes
