"""A new number of classes: resize a classifier's or an FCN's score layers.

The score layers are found by walking back from the net outputs along blobs with K_old
channels (the old class count): Convolution/InnerProduct layers with ``num_output ==
K_old`` are the class scorers (the walk stops there); Deconvolutions with ``num_output ==
K_old`` are upsampling layers of an FCN head (the walk goes on below them); Crop follows
its first bottom; layers without weights (Softmax, Eltwise, Dropout, ...) are passed.

Weights: the score layers are re-initialised from their fillers, or, with ``keep=True``,
keep the first min(K, K_old) classes' filters and biases (fcn.berkeleyvision.org's
``surgery.expand_score``, which copies an old score layer's parameters into the first
classes of a larger one). Bilinear upsampling layers are refilled for the new count in
their convention: Caffe's ``bilinear`` (group = classes) or FCN's interp (group 1, kernel
on the diagonal), detected from the filler or, when there is none, from the old weights.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from fcnkit.errors import SurgeryError
from fcnkit.fillers import fill
from fcnkit.surgery._net import Shape, as_blobs, as_param, build, layer_kind
from fcnkit.surgery.report import SurgeryReport, SurgeryResult
from fcnkit.surgery.transplant import transplant



def find_score_layers(built, what: str = "set_num_classes") -> tuple[list[str], int]:
    """The score layers (scorers and upsampling deconvolutions) and the old class count.

    Raises:
        SurgeryError: nothing found, or a layer with weights other than a scorer or an
            upsampling deconvolution works on the class scores (name the layers instead).
    """
    net, shapes = built.net, built.shapes
    outs = [o for o in net.outputs if len(shapes[o]) >= 2]
    if not outs:
        raise SurgeryError(f"{what}: the net has no output with a channel axis")
    k_old = shapes[outs[0]][1]
    found: list[str] = []
    seen: set[str] = set()
    frontier = [o for o in outs if shapes[o][1] == k_old]
    while frontier:
        b = frontier.pop()
        node = net.producer.get(b)
        if node is None or node.role == "input" or node.name in seen:
            continue
        seen.add(node.name)
        if node.layer.scores_classes() and node.layer.num_output == k_old:
            found.append(node.name)
            continue
        if node.layer.upsampling_filter and node.layer.num_output == k_old:
            found.append(node.name)
            nxt = node.bottoms
        elif node.layer.crops_to_reference:  # only the cropped bottom carries the scores
            nxt = node.bottoms[:1]
        elif node.layer.param_names():
            raise SurgeryError(f"{what}: {node.layer.where()} has weights and works on the class "
                               "scores; fcnkit cannot resize it: name the score layers explicitly")
        else:
            nxt = node.bottoms
        frontier.extend(x for x in nxt if len(shapes[x]) >= 2 and shapes[x][1] == k_old)
    if not found:
        raise SurgeryError(f"{what}: no score layer with {k_old} outputs computes the net outputs")
    order = {n.name: n.index for n in net.layers}
    return sorted(found, key=order.get), k_old


def _convention(lp, old: np.ndarray | None) -> str | None:
    """"bilinear", "bilinear_interp" or None (learned weights) for an upsampling layer."""
    cp = lp.convolution_param
    if cp.HasField("weight_filler") and cp.weight_filler.type in ("bilinear", "bilinear_interp"):
        return cp.weight_filler.type
    if old is not None and old.ndim == 4 and old.shape[2] == old.shape[3]:
        for kind in ("bilinear", "bilinear_interp"):
            if np.allclose(old, fill(_ftype(kind), old.shape)):
                return kind
    return None


def _ftype(kind: str):
    from fcnkit.surgery._net import filler

    return filler(kind)


def set_num_classes(net: Any, num_classes: int, *, weights: Any = None,
                    layers: Iterable[str] | None = None, keep: bool = False,
                    input_shapes: Mapping[str | None, Shape] | None = None,
                    seed: int = 0) -> SurgeryResult:
    """Change the number of classes of a classifier or FCN.

    Args:
        net: the net.
        num_classes: the new class count K (>= 1).
        weights: the net's weights, or None for the structure only.
        layers: the score/upsampling layers to resize (default: found, see module docstring).
        keep: keep the first min(K, K_old) classes' weights (expand_score); the others come
            from the layers' fillers.
        input_shapes: input shape overrides.
        seed: seed of random fillers.

    Returns:
        SurgeryResult. Score layers: num_output K; grouped upsampling layers (group ==
        K_old) get group K.

    Raises:
        SurgeryError: see :func:`find_score_layers`; a named layer is not a Convolution,
            InnerProduct or Deconvolution; a Deconvolution grouped otherwise than 1 or K_old.
    """
    what = "set_num_classes"
    k = int(num_classes)
    if k < 1:
        raise SurgeryError(f"{what}: num_classes must be >= 1, got {num_classes}")
    src = as_param(net)
    param = as_param(src)
    blobs = as_blobs(weights)
    built = build(param, input_shapes, what=what)
    targets, k_old = _targets(built, layers, what)
    init, kinds = _resize(param, built, targets, blobs, k, k_old, what)
    step = (f"set_num_classes: {k_old} -> {k} classes in {', '.join(targets)}"
            + (" (keeping the first classes)" if keep else ""))
    if blobs is None:
        build(param, input_shapes, what=what)
        report = SurgeryReport(steps=[step])
        out = None
    else:
        tr = transplant(src, blobs, param, reinit=targets, init=init, input_shapes=input_shapes,
                        seed=seed, step=step)
        report, out = tr.report, tr.blobs
    for t in targets:
        if out is None:
            report.record(t, "structure", f"num_output {k_old} -> {k}")
        elif built.net.layer(t).layer.upsampling_filter and kinds.get(t):
            report.layers[t].notes.append(f"refilled {kinds[t]} for {k} classes")
        elif keep and blobs.get(t):
            _keep_first_classes(out, blobs[t], built.net.layer(t), k, k_old, report)
    report.reorder(param)
    return SurgeryResult(param, out, report)


def _targets(built, layers: Iterable[str] | None, what: str) -> tuple[list[str], int]:
    """(score/upsampling layers to resize, old class count): found, or the named ones.

    Raises:
        SurgeryError: see :func:`find_score_layers`; a named layer of another type.
    """
    if layers is None:
        return find_score_layers(built, what)
    targets = list(layers)
    for t in targets:
        if not built.net.has_layer(t) or not _resizable(built.net.layer(t).layer):
            raise SurgeryError(f"{what}: '{t}' is not a Convolution, InnerProduct or "
                               "Deconvolution layer of the net")
    return targets, built.net.layer(targets[0]).layer.num_output


def _resizable(layer) -> bool:
    """A layer whose num_output set_num_classes may change: a score layer or an upsampling."""
    return layer.scores_classes() or layer.upsampling_filter


def _resize(param, built, targets: list[str], blobs, k: int, k_old: int, what: str):
    """Set num_output K (and group K of class-grouped upsampling) in ``param``; return
    (fillers to apply {layer: [kind]}, upsampling convention {layer: kind or None}).

    Raises:
        SurgeryError: an upsampling layer grouped otherwise than 1 or K_old.
    """
    init: dict[str, list] = {}
    kinds: dict[str, str | None] = {}
    for t in targets:
        node = built.net.layer(t)
        old = blobs.get(t, [None])[0] if blobs else None
        for lp in param.layer:
            if lp.name != t:
                continue
            if layer_kind(lp).fully_connected:
                lp.inner_product_param.num_output = k
                continue
            cp = lp.convolution_param
            cp.num_output = k
            if layer_kind(lp).upsampling_filter:
                if node.layer.group == k_old and k_old != 1:
                    cp.group = k
                elif node.layer.group != 1:
                    raise SurgeryError(f"{what}: {node.layer.where()} has group {node.layer.group}, "
                                       f"neither 1 nor the class count {k_old}")
        if node.layer.upsampling_filter:
            kinds[t] = _convention(node.param, old)
            if kinds[t] == "bilinear_interp" or (kinds[t] and not node.param.convolution_param
                                                 .HasField("weight_filler")):
                init[t] = [kinds[t]]
    return init, kinds


def _keep_first_classes(out, old, node, k: int, k_old: int, report) -> None:
    """Copy the first min(K, K_old) classes' weights (and biases) of ``old`` into the
    layer's new arrays in ``out`` (fcn's ``expand_score``); a learned upsampling keeps its
    old class block."""
    t = node.name
    m = min(k, k_old)
    new = [np.array(a, copy=True) for a in out[t]]
    w_old = np.asarray(old[0], dtype=np.float32)
    if node.layer.upsampling_filter:  # learned upsampling: keep the old block
        if new[0].shape[1] == 1:
            new[0][:m] = w_old.reshape(k_old, *new[0].shape[1:])[:m]
        else:
            new[0][:m, :m] = w_old.reshape(k_old, k_old, *new[0].shape[2:])[:m, :m]
    else:
        new[0][:m] = w_old.reshape(k_old, *new[0].shape[1:])[:m]
    if len(new) > 1 and len(old) > 1:
        new[1][:m] = np.asarray(old[1], dtype=np.float32).reshape(-1)[:m]
    out[t] = new
    report.dropped = [d for d in report.dropped if d.layer != t]
    report.record_kept_classes(t, t, m, k_old, k)
