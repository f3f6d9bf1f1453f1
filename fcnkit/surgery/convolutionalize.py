"""fc -> conv: turn every InnerProduct of a classifier into the equivalent Convolution.

An InnerProduct on an (N, C, H, W) bottom computes, per output n,
``sum_{c,y,x} W[n, c*H*W + y*W + x] * bottom[c, y, x] + b[n]`` (Caffe flattens the bottom
in row-major order, inner_product_layer.cpp). A Convolution with ``num_output`` N and a
kernel covering the whole H x W bottom computes the same sum with the weight
``W.reshape(N, C, H, W)``; on a larger bottom it slides, giving one classification per
window (Long et al., "Fully convolutional networks", Sec. 3.1; BVLC Caffe
examples/net_surgery.ipynb, where CaffeNet's fc6/fc7/fc8 become fc6-conv (6x6),
fc7-conv and fc8-conv (1x1); NVIDIA DIGITS 5 article, Table 1: AlexNet fc6 -> a 6x6 conv).

The kernel is found from the bottom's spatial extent at the net's declared input size
(AlexNet/CaffeNet fc6 -> 6x6, VGG16 fc6 -> 7x7; the following InnerProducts then see 1x1
bottoms). Non-square bottoms give ``kernel_h``/``kernel_w``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from fcnkit.caffe import caffe_pb2
from fcnkit.errors import SurgeryError
from fcnkit.surgery._net import (Blobs, Shape, as_blobs, as_param, build, fmt_shape, layer_indices,
                                 remove_layers, rename_blob, set_kernel)
from fcnkit.surgery.report import SurgeryReport, SurgeryResult
from fcnkit.surgery.transplant import prune_blobs

#: Fields of a LayerParameter carried from the InnerProduct to its Convolution.
_CARRIED = ("param", "include", "exclude", "loss_weight", "propagate_down", "phase")


def _conv_from_ip(ip: caffe_pb2.LayerParameter, kernel: tuple[int, int], name: str,
                  top: str, bottom: str) -> caffe_pb2.LayerParameter:
    lp = caffe_pb2.LayerParameter()
    lp.name, lp.type = name, "Convolution"
    lp.bottom.append(bottom)
    lp.top.append(top)
    for f in _CARRIED:
        if f in ("param", "include", "exclude", "loss_weight", "propagate_down"):
            getattr(lp, f).extend(getattr(ip, f))
        elif ip.HasField(f):
            setattr(lp, f, getattr(ip, f))
    ipp, cp = ip.inner_product_param, lp.convolution_param
    cp.num_output = ipp.num_output
    if ipp.HasField("bias_term"):
        cp.bias_term = ipp.bias_term
    set_kernel(cp, kernel)
    if ipp.HasField("weight_filler"):
        cp.weight_filler.CopyFrom(ipp.weight_filler)
    if ipp.HasField("bias_filler"):
        cp.bias_filler.CopyFrom(ipp.bias_filler)
    return lp


def _weight_as_conv(arrays: list[np.ndarray], transpose: bool, n: int, chw: Shape,
                    where: str) -> list[np.ndarray]:
    """IP blobs -> conv blobs: weight (N, K) [(K, N) if transpose] -> (N, C, H, W) row-major,
    bias (N,) (legacy 1x1x1xN accepted)."""
    k = int(np.prod(chw))
    w = np.asarray(arrays[0], dtype=np.float32)
    if w.size != n * k:
        raise SurgeryError(f"convolutionalize: {where}: the weight blob has shape "
                           f"{fmt_shape(w.shape)} ({w.size} values), the layer needs {n}x{k} "
                           f"({n * k} values) for a bottom of C x H x W = {fmt_shape(chw)}; "
                           f"re-initialise the layer from its filler instead (fcn_surgery "
                           f"reinit=[...]; fcnkit surgery --reinit LAYER)")
    w = w.reshape(k, n).T if transpose else w.reshape(n, k)
    out = [np.ascontiguousarray(w).reshape(n, *chw)]
    for b in arrays[1:]:
        out.append(np.asarray(b, dtype=np.float32).reshape(-1))
    return out


def _why_no_shapes(param, input_shapes, err: Exception) -> str:
    """The input layers that declare no shape, or the core's reason."""
    try:
        net = build(param, shapes=False).net
    except SurgeryError:
        return str(err)
    given = set(input_shapes or {})
    missing = [f"'{net.blob_name[t]}' ({node.type} layer '{node.name}')"
               for node in net.input_layers()
               for t, shape in zip(node.tops, node.layer.declared_shapes())
               if shape is None and net.blob_name[t] not in given and None not in given]
    if missing:
        return "the net input " + ", ".join(missing) + " declares no shape"
    return str(err).split("shapes cannot be inferred: ", 1)[-1]


def convolutionalize(net: Any, weights: Any = None, *, layers: Iterable[str] | None = None,
                     suffix: str = "", input_shapes: Mapping[str | None, Shape] | None = None
                     ) -> SurgeryResult:
    """Replace InnerProduct layers by equivalent Convolutions.

    Args:
        net: the classifier (NetParameter, NetSource, Net or prototxt path). Analysed in
            the TEST phase at its declared input size (or ``input_shapes``).
        weights: its weights (``{layer: [arrays]}``, CaffeModel or path), or None for the
            structure only.
        layers: the InnerProduct layers to convert (default: all, in net order).
        suffix: appended to each converted layer's name and top blob (BVLC's
            ``"-conv"``: fc6 -> fc6-conv) so that Caffe, which copies weights by layer
            name, re-initialises them from a classifier caffemodel instead of failing on
            the shape. Empty (default): names kept, so outputs keep their names.
        input_shapes: input shape overrides ({blob name or None: (N, C, H, W)}), for a net
            whose input size is not declared (Data layers).

    Returns:
        SurgeryResult: the new net; the weights with each converted layer's weight
        reshaped (N, C*H*W) -> (N, C, H, W) in Caffe's row-major order (a view when
        possible; bias unchanged); the report (converted layers "coerced", others
        "transplanted").

    Shapes: the kernel of a converted layer is (H, W) of its bottom (N, C, H, W); a 2-D
    bottom is refused (see Raises) unless it comes from a Flatten(axis 1) of an (N, C, H, W)
    blob, which is bypassed and removed (an InnerProduct flattens by itself).

    Raises:
        SurgeryError: the input size (hence an InnerProduct's bottom size) cannot be inferred;
            an InnerProduct flattens from an axis other than 1 (``axis`` != 1 after Caffe's
            canonicalisation), or reads a blob that is not (N, C, H, W); ``layers`` names a
            layer that is not an InnerProduct; the weights do not fit.
    """
    param = as_param(net)
    blobs = as_blobs(weights)
    report = SurgeryReport(steps=[])
    built = build(param, input_shapes, shapes=False, what="convolutionalize")
    targets = _targets(built, layers)
    renamed: dict[str, str] = {}
    out_blobs: Blobs | None = dict(blobs) if blobs is not None else None
    summary = []

    for name in targets:
        built = _analysed(param, input_shapes, name)
        node = built.net.layer(name)
        ip = caffe_pb2.LayerParameter()
        ip.CopyFrom(node.param)  # node.param is param's own message, replaced below
        shape, bottom_name, bypass = _convolution_input(built, node, ip)
        new_name = _replace_by_convolution(param, name, suffix, ip, shape, bottom_name)
        if bypass is not None:
            remove_layers(param, [bypass.name])
            report.record(bypass.name, "structure", "Flatten removed (the Convolution reads the "
                          f"(N, C, H, W) blob '{bottom_name}' directly)")
            report.dropped.append(report.layers.pop(bypass.name))
        renamed[name] = new_name
        summary.append(f"{name} -> {new_name} ({shape[2]}x{shape[3]})")
        _record_converted(report, out_blobs, name, new_name, ip, shape, bottom_name, node.layer.where())

    report.steps.append("convolutionalize: " + (", ".join(summary) if summary
                                                 else "no InnerProduct layer to convert"))
    if out_blobs is not None:
        for lname, arrays in out_blobs.items():
            if lname not in report.layers:
                report.record(lname, "transplanted", shapes=[a.shape for a in arrays])
    if out_blobs is not None:
        out_blobs = prune_blobs(param, out_blobs, report)
    report.reorder(param)
    return SurgeryResult(param, out_blobs, report, renamed)


def _targets(built, layers: Iterable[str] | None) -> list[str]:
    """The InnerProduct layers to convert: all, or the named ones.

    Raises:
        SurgeryError: a named layer is not an InnerProduct of the net.
    """
    ip_names = [n.name for n in built.net.layers if n.layer.fully_connected]
    if layers is None:
        return ip_names
    targets = list(layers)
    bad = [n for n in targets if n not in ip_names]
    if bad:
        raise SurgeryError(f"convolutionalize: not InnerProduct layers of the net: {', '.join(bad)} "
                           f"(InnerProducts: {', '.join(ip_names) or 'none'})")
    return targets


def _analysed(param, input_shapes, name: str):
    """The net analysed with shapes (the earlier conversions applied).

    Raises:
        SurgeryError: the shapes cannot be inferred (so the kernel size is unknown).
    """
    try:
        return build(param, input_shapes, what="convolutionalize")
    except SurgeryError as e:
        raise SurgeryError(
            f"convolutionalize: the input size of InnerProduct '{name}' cannot be inferred, "
            f"so its kernel size is unknown: {_why_no_shapes(param, input_shapes, e)}. Use a "
            "net that declares its input shape (an Input layer with a shape, as in a deploy "
            "prototxt), or give its shape: input_shapes={blob: (N, C, H, W)}, or on the "
            "command line fcnkit surgery --input-shape N,C,H,W") from None


def _convolution_input(built, node, ip) -> tuple[tuple[int, ...], str, Any]:
    """(N, C, H, W) shape and name of the blob the Convolution reads, and the Flatten layer
    to bypass (None): a 2-D bottom made by a Flatten(axis 1) of an (N, C, H, W) blob that
    only this layer reads is read before the Flatten.

    Raises:
        SurgeryError: the layer flattens from an axis other than 1, or its bottom is not
            (N, C, H, W).
    """
    where = node.layer.where()
    bottom_id = node.bottoms[0]
    shape = built.shapes[bottom_id]
    axis = ip.inner_product_param.axis
    axis = axis + len(shape) if axis < 0 else axis
    if axis != 1:
        raise SurgeryError(
            f"convolutionalize: {where} flattens its {len(shape)}-D bottom "
            f"{fmt_shape(shape)} from axis {ip.inner_product_param.axis}, not from the channel "
            "axis 1; such a layer is not a fully-connected classifier layer and has no "
            "equivalent Convolution. Leave it out (layers=...) or change the net")
    bottom_name = built.net.blob_name[bottom_id]
    producer = built.net.producer.get(bottom_id)
    bypass = None
    if len(shape) == 2 and producer is not None and producer.layer.flattens:
        fp = producer.param.flatten_param
        src_shape = built.shapes[producer.bottoms[0]]
        end = fp.end_axis + len(src_shape) if fp.end_axis < 0 else fp.end_axis
        only_user = len(built.net.consumers.get(bottom_id, [])) == 1
        if fp.axis in (1, 1 - len(src_shape)) and end == len(src_shape) - 1 and only_user \
                and len(src_shape) == 4:
            bypass = producer
            shape = src_shape
            bottom_name = built.net.blob_name[producer.bottoms[0]]
    if len(shape) != 4:
        made = f" (made by {producer.type} layer '{producer.name}')" if producer else ""
        raise SurgeryError(
            f"convolutionalize: {where} reads blob '{bottom_name}' of shape {fmt_shape(shape)}"
            f"{made}; a Convolution needs an (N, C, H, W) bottom. Convert the layer that "
            "flattens the spatial axes first, or leave this layer out")
    return shape, bottom_name, bypass


def _replace_by_convolution(param, name: str, suffix: str, ip, shape, bottom_name: str) -> str:
    """Replace every occurrence of InnerProduct ``name`` (all phases) by its Convolution
    (kernel H x W of ``shape``); with ``suffix``, rename the layer and its top; return the
    new layer name."""
    new_name = name + suffix
    old_top = ip.top[0]
    new_top = old_top + suffix
    idx = layer_indices(param, name)
    for i in idx:
        lp = _conv_from_ip(param.layer[i], tuple(shape[2:]), new_name,
                           new_top if suffix else old_top, bottom_name)
        param.layer[i].CopyFrom(lp)
    if suffix and new_top != old_top:
        rename_blob(param, old_top, new_top, idx[0] + 1)
    return new_name


def _record_converted(report, out_blobs, name: str, new_name: str, ip, shape, bottom_name: str,
                      where: str) -> None:
    """Report the conversion; reshape the layer's weights in ``out_blobs`` (when given)."""
    _, c, h, w = shape
    n = ip.inner_product_param.num_output
    note = ("InnerProduct -> Convolution" + (f" '{new_name}'" if new_name != name else "")
            + f", kernel {h}x{w} over bottom '{bottom_name}' "
            f"{fmt_shape(shape)}, num_output {n}")
    if out_blobs is not None and name in out_blobs:
        arrays = _weight_as_conv(out_blobs.pop(name), ip.inner_product_param.transpose, n,
                                 (c, h, w), where)
        out_blobs[new_name] = arrays
        note += (f"; weight coerced {n}x{c * h * w} -> {fmt_shape(arrays[0].shape)}"
                 + (" (transposed: transpose: true)" if ip.inner_product_param.transpose else ""))
        report.record(new_name, "coerced", note, source=name, shapes=[a.shape for a in arrays])
    else:
        report.record(new_name, "structure", note, source=name)
