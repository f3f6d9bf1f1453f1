"""Weight transplant between two nets, by layer name.

The rules are those of fcn.berkeleyvision.org's ``surgery.transplant`` (also used by the
DIGITS net_surgery.py that builds FCN-AlexNet), made strict where that script is silent:

- blobs are matched by layer name (optionally ``source name + suffix``, or an explicit
  rename map), blob by blob in Caffe order;
- the same shape: copied ("transplanted"); Caffe's legacy 4-D shapes compare
  right-aligned (an old InnerProduct weight 1x1xNxK is the same as NxK, Caffe's
  ``Blob::ShapeEquals``);
- the same element count in another shape: reshaped in row-major (C) order, reported as
  "coerced" (FCN's "coercing"): an InnerProduct weight (N, C*H*W) becomes the Convolution
  weight (N, C, H, W) of the same layer, which is exactly Caffe's flattening order;
- a different element count: an error naming both shapes, unless the destination layer is
  listed in ``reinit`` (then its filler initialises it, as Caffe does for a renamed layer);
- source layers (or extra source blobs) without a destination: reported as dropped;
- destination layers without a source: initialised by their fillers
  (:func:`fcnkit.fillers.fill`, Caffe's filler semantics) and reported with the filler.

An InnerProduct stored with ``transpose: true`` holds its weight as (K, N); when the other
side is not a transposed InnerProduct the weight is transposed before coercion (FCN's
script copies ``.flat`` and would scramble it).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from fcnkit.caffe import caffe_pb2
from fcnkit.errors import SurgeryError
from fcnkit.fillers import fill
from fcnkit.surgery._net import Blobs, Shape, as_blobs, as_param, build, fmt_shape, layer_kind
from fcnkit.surgery.report import SurgeryReport, SurgeryResult

#: How a layer's note about its initialisation starts (steps that refill a layer drop it).
INITIALISED_BY = "initialised by "

#: An initialiser overriding a layer's prototxt filler for one blob: a FillerParameter, a
#: filler type name ("bilinear_interp", "msra", ...) or a function (shape, rng) -> array.
Initialiser = Any


def filler_name(f: Any) -> str:
    """Short description of a filler for reports: ``"constant 0"``, ``"gaussian(std=0.01)"``..."""
    if f is None:
        return "constant 0 (no filler)"
    if isinstance(f, str):
        return f
    if callable(f) and not isinstance(f, caffe_pb2.FillerParameter):
        return getattr(f, "__name__", "custom")
    kind = f.type or "constant"
    if kind == "constant":
        return f"constant {f.value:g}"
    if kind == "gaussian":
        return f"gaussian(mean={f.mean:g}, std={f.std:g})"
    if kind == "uniform":
        return f"uniform({f.min:g}, {f.max:g})"
    return kind


def initialise_blob(init: Initialiser, shape: Shape, rng: np.random.Generator, where: str) -> np.ndarray:
    """One blob from an initialiser (see :data:`Initialiser`); float32, C-contiguous."""
    if isinstance(init, str):
        f = caffe_pb2.FillerParameter()
        f.type = init
        init = f
    if init is None or isinstance(init, caffe_pb2.FillerParameter):
        return fill(init, shape, rng, where)
    arr = np.asarray(init(tuple(shape), rng), dtype=np.float32)
    if arr.shape != tuple(shape):
        raise SurgeryError(f"{where}: the initialiser returned shape {arr.shape}, expected {shape}")
    return arr


def _strip_leading_ones(shape: Iterable[int]) -> tuple[int, ...]:
    s = tuple(int(d) for d in shape)
    while len(s) > 1 and s[0] == 1:
        s = s[1:]
    return s


def _is_transposed_ip(lp: caffe_pb2.LayerParameter | None) -> bool:
    return lp is not None and layer_kind(lp).stores_transposed(lp)


def transplant(src_net: Any, src_weights: Any, dst_net: Any, *, reinit: Iterable[str] = (),
               rename: Mapping[str, str] | None = None, suffix: str = "",
               init: Mapping[str, list[Initialiser]] | None = None,
               input_shapes: Mapping[str | None, Shape] | None = None, seed: int = 0,
               fill_missing: bool = True, step: str = "transplant") -> SurgeryResult:
    """Copy the weights of ``src_net`` into ``dst_net`` by layer name.

    Args:
        src_net: the source net (NetParameter, NetSource, Net or prototxt path), used for
            layer types (InnerProduct ``transpose``); None when unknown.
        src_weights: its weights (``{layer: [arrays]}``, CaffeModel or caffemodel path).
        dst_net: the destination net.
        reinit: destination layers to initialise from their fillers even when the source
            has weights for them (e.g. a classifier with another number of classes).
        rename: source layer name -> destination layer name, for layers renamed by surgery.
        suffix: otherwise, source layer ``p`` goes to destination layer ``p + suffix``
            (FCN's ``transplant(new_net, net, suffix)``).
        init: destination layer -> one initialiser per blob, overriding the prototxt
            fillers (e.g. ``["bilinear_interp"]`` for an FCN-convention upsampling layer,
            whose filler cannot be written in a Caffe prototxt).
        input_shapes: input shape overrides for the destination ({blob: (N, C, H, W)}).
        seed: seed of the random fillers (numpy Generator; Caffe's distributions, not its
            random stream).
        fill_missing: initialise destination layers without a source (and ``reinit``
            layers) by their fillers; False leaves them out of the blobs and the report (a
            later step fills them, e.g. once their shapes are final).
        step: the name of the step in the report, and the start of error messages (empty:
            neither).

    Returns:
        SurgeryResult: the destination net (a copy), its blobs in Caffe shapes and the
        report (transplanted / coerced / initialised / dropped per layer).

    Raises:
        SurgeryError: element counts differ for a layer not in ``reinit`` (both shapes
            named); ``reinit``/``rename``/``init`` name layers the nets lack; the destination
            shapes cannot be inferred.
    """
    src_param = as_param(src_net) if src_net is not None else None
    blobs = as_blobs(src_weights) or {}
    dst = as_param(dst_net)
    built = build(dst, input_shapes, what=step or "transplant")
    prefix, rng = (f"{step}: " if step else ""), np.random.default_rng(seed)
    rename, init, reinit = dict(rename or {}), dict(init or {}), set(reinit)
    # the first layer of each name (a name may repeat across phases)
    src_layers = {lp.name: lp for lp in reversed(src_param.layer)} if src_param is not None else {}
    dst_names = {n.name for n in built.net.layers}
    _check_names(dst_names, blobs, src_layers, rename, init, reinit, prefix)

    def dst_name(src: str) -> str:
        return rename.get(src, src + suffix)

    source_of = {dst_name(s): s for s in blobs}
    report = SurgeryReport(steps=[step] if step else [])
    out: Blobs = {}
    used_sources: set[str] = set()
    for node in built.net.layers:
        if not node.layer.param_names():
            continue
        name = node.name
        shapes = built.param_shapes(name)
        fillers = list(init.get(name) or node.layer.fillers())
        fillers += [None] * (len(shapes) - len(fillers))
        src = source_of.get(name)
        if src is not None and name in reinit:
            used_sources.add(src)
            report.drop(src, f"source weights of '{src}' not used: '{name}' is re-initialised")
            src = None
        if src is None:
            if fill_missing:
                out[name] = _initialised(node, shapes, fillers, rng, report)
            continue
        used_sources.add(src)
        transposed = src_param is not None and \
            _is_transposed_ip(src_layers.get(src)) != _is_transposed_ip(node.param)
        out[name] = _copied(node, src, list(blobs[src]), transposed, shapes, fillers, rng, report, prefix)
    _report_unused(blobs, used_sources, dst_name, dst_names, report)
    return SurgeryResult(dst, out, report)


def _check_names(dst_names, blobs, src_layers, rename, init, reinit, prefix: str) -> None:
    """Raise SurgeryError when ``reinit``/``init`` name layers the destination lacks, or
    ``rename`` names source layers that do not exist."""
    for what, names in (("reinit", reinit), ("init", set(init))):
        unknown = sorted(n for n in names if n not in dst_names)
        if unknown:
            raise SurgeryError(f"{prefix}{what} names layer(s) the destination net lacks: "
                               f"{', '.join(unknown)}")
    unknown = sorted(k for k in rename if k not in blobs and k not in src_layers)
    if unknown:
        raise SurgeryError(f"{prefix}rename names source layer(s) that do not exist: {', '.join(unknown)}")


def _initialised(node, shapes, fillers, rng, report: SurgeryReport) -> list[np.ndarray]:
    """A destination layer's blobs from its fillers (no source weights), reported."""
    names = node.layer.param_names()
    where = node.layer.where()
    arrays = [initialise_blob(f, s, rng, where) for f, s in zip(fillers, shapes)]
    report.record(node.name, "initialised", INITIALISED_BY + ", ".join(
        f"{n}: {filler_name(f)}" for n, f in zip(names, fillers)),
        shapes=shapes, fillers=[filler_name(f) for f in fillers])
    return arrays


def _copied(node, src: str, arrays: list, transposed: bool, shapes, fillers, rng,
            report: SurgeryReport, prefix: str) -> list[np.ndarray]:
    """A destination layer's blobs from source layer ``src``'s ``arrays``: reshaped to the
    destination shapes (equal element counts), an InnerProduct weight transposed when the
    two layers' ``transpose`` differ, missing blobs filled, extra ones dropped; reported.

    Raises:
        SurgeryError: a blob's element count differs (both shapes named).
    """
    name, names, where = node.name, node.layer.param_names(), node.layer.where()
    notes, coerced, filled = [], False, []
    if transposed and arrays:
        w = arrays[0]
        if w.ndim >= 2 and w.size == int(np.prod(_strip_leading_ones(w.shape)[-2:])):
            w2 = _strip_leading_ones(w.shape)[-2:]
            arrays[0] = np.ascontiguousarray(w.reshape(w2).T)
            notes.append(f"weight transposed from {fmt_shape(w2)} (InnerProduct transpose: true)")
            coerced = True
    result = []
    for i, (bname, shape) in enumerate(zip(names, shapes)):
        if i >= len(arrays):
            result.append(initialise_blob(fillers[i], shape, rng, where))
            filled.append(i)
            notes.append(f"{bname} not in the source; initialised by {filler_name(fillers[i])}")
            continue
        a = arrays[i]
        count = int(np.prod(shape)) if len(shape) else 1
        if a.size != count:
            raise SurgeryError(
                f"{prefix}{where}: blob {i} ({bname}) of source layer '{src}' has shape "
                f"{fmt_shape(a.shape)} ({a.size} values) but the destination needs "
                f"{fmt_shape(shape)} ({count} values); the element counts differ, so it cannot "
                f"be coerced. Re-initialise the layer from its filler (fcnkit surgery "
                f"--reinit {name}; reinit=['{name}']) or rename it")
        if _strip_leading_ones(a.shape) != _strip_leading_ones(shape):
            coerced = True
            notes.append(f"{bname} coerced from {fmt_shape(a.shape)} to {fmt_shape(shape)}")
        result.append(np.asarray(a, dtype=np.float32).reshape(shape))
    for j in range(len(shapes), len(arrays)):
        report.drop(f"{src}[{j}]", f"blob {j} of source layer '{src}' "
                    f"({fmt_shape(arrays[j].shape)}): the destination layer '{name}' has "
                    f"only {len(shapes)} blob(s)")
    lead = f"from '{src}'" if src != name else ""
    report.record(name, "coerced" if coerced else "transplanted",
                  "; ".join(x for x in [lead] + notes if x), source=src, shapes=shapes,
                  fillers=[filler_name(fillers[i]) if i in filled else None for i in range(len(shapes))])
    return result


def _report_unused(blobs, used_sources, dst_name, dst_names, report: SurgeryReport) -> None:
    """A dropped entry for each source layer whose weights went nowhere, and why."""
    for src in blobs:
        if src in used_sources:
            continue
        target = dst_name(src)
        why = ("the destination net has no layer of that name" if target not in dst_names
               else f"the destination layer '{target}' has no weights")
        report.drop(src, f"source layer '{src}' dropped: {why}")


def prune_blobs(param: caffe_pb2.NetParameter, blobs: Blobs, report: SurgeryReport) -> Blobs:
    """``blobs`` without the layers ``param`` lacks (each reported as dropped, as Caffe
    ignores caffemodel layers that the net does not have)."""
    names = {lp.name for lp in param.layer}
    out = {}
    for name, arrays in blobs.items():
        if name in names:
            out[name] = arrays
        else:
            report.drop(name, f"source layer '{name}' dropped: the net has no layer of that name")
    return out
