"""Global pooling before the classifier, made fully convolutional.

ResNet (KaimingHe/deep-residual-networks), DenseNet-Caffe and NIN-style classifiers end in
a *global* pooling (``global_pooling: true``: the kernel is the whole feature map) followed
by the classifier. Such a pooling has no coordinate map and always outputs 1 x 1, so the
net cannot score a larger image densely. The FCN form (as DenseNet/ResNet FCNs do) pools
with the kernel the global pooling had at the classifier's input size: at that size the
output is identical (a kernel of H x W, stride 1 and pad 0 over an H x W map covers it
once: MAX takes the same maximum; Caffe's AVE divides by the same H * W, pooling_layer.cpp
``pool_size``), and on a larger image it slides with stride 1, like the fc layers turned
into convolutions (Long et al. 2015, section 3.1).

Only the global poolings on the classifier's path are changed: walking back from every
InnerProduct and from the classifier layer through layers without weights that have one
bottom (ReLU, Dropout, Flatten, ...). A global pooling elsewhere (a squeeze-and-excitation
block, whose pooled vector scales the whole map) is left alone; it keeps the net from
being fully convolutional, which :func:`fcnkit.surgery.add_fcn_head` then explains.
"""

from __future__ import annotations

from typing import Any, Mapping

from fcnkit.errors import SurgeryError
from fcnkit.surgery._net import (Shape, as_blobs, as_param, build, classifier_layer, fmt_shape,
                                 layer_indices)
from fcnkit.surgery.report import SurgeryReport, SurgeryResult

WHAT = "localise_global_pooling"


def localise_global_pooling(net: Any, weights: Any = None, *, classifier: str | None = None,
                            input_shapes: Mapping[str | None, Shape] | None = None) -> SurgeryResult:
    """Replace the global poolings before the classifier by poolings with a fixed kernel
    (see the module docstring).

    Args:
        net: the classifier (NetParameter, NetSource, Net or prototxt path), analysed in
            the TEST phase at its declared input size (or ``input_shapes``).
        weights: its weights (passed through unchanged: pooling has none).
        classifier: the scoring layer (default: found from the outputs when possible).
        input_shapes: input shape overrides ({blob name or None: (N, C, H, W)}).

    Returns:
        SurgeryResult: the new net (a copy) and the report (a "structure" entry per changed
        pooling; no step when nothing changed).

    Raises:
        SurgeryError: a global pooling on the classifier's path whose input size cannot be
            inferred (give the input shape).
    """
    param = as_param(net)
    blobs = as_blobs(weights)
    report = SurgeryReport(steps=[])
    built = build(param, input_shapes, shapes=False, what=WHAT)
    targets = _global_pools_before_classifier(built, classifier)
    if not targets:
        return SurgeryResult(param, blobs, report)
    try:
        built = build(param, input_shapes, what=WHAT)
    except SurgeryError as e:
        raise SurgeryError(
            f"{WHAT}: the global pooling {', '.join(map(repr, targets))} before the classifier "
            "becomes a pooling with the kernel it has at the classifier's input size, which "
            f"is unknown ({e}); give the input shape (--input-shape N,C,H,W)") from None
    summary = []
    for name in targets:
        node = built.net.layer(name)
        shape = built.shapes[node.bottoms[0]]
        h, w = (int(d) for d in shape[2:])
        for i in layer_indices(param, name):
            _set_kernel(param.layer[i].pooling_param, h, w)
        summary.append(f"{name} -> {h}x{w} stride 1")
        report.record(name, "structure",
                      f"global pooling -> kernel {h}x{w}, stride 1, pad 0 (its bottom at the "
                      f"classifier's input is {fmt_shape(shape)}): the same output at that size, "
                      "a sliding window on larger inputs")
    report.steps.append("localise global pooling: " + ", ".join(summary))
    return SurgeryResult(param, blobs, report)


def _set_kernel(pp, h: int, w: int) -> None:
    pp.global_pooling = False
    for f in ("kernel_size", "kernel_h", "kernel_w", "stride", "stride_h", "stride_w",
              "pad", "pad_h", "pad_w"):
        pp.ClearField(f)
    if h == w:
        pp.kernel_size = h
    else:
        pp.kernel_h, pp.kernel_w = h, w


def _global_pools_before_classifier(built, classifier: str | None) -> list[str]:
    """Names of the global poolings reached from the InnerProducts and the classifier by
    walking back through single-bottom layers without weights, in net order."""
    net = built.net
    starts = [n for n in net.layers if n.layer.fully_connected]
    if classifier is None:
        try:
            classifier = classifier_layer(built, WHAT)
        except SurgeryError:
            classifier = None  # several or none: the InnerProducts are the starts
    if classifier is not None and net.has_layer(classifier):
        starts.append(net.layer(classifier))
    found: set[str] = set()
    for start in starts:
        node = net.producer.get(start.bottoms[0]) if start.bottoms else None
        while node is not None and node.role != "input":
            if node.layer.pools and getattr(node.layer, "global_pooling", False):
                found.add(node.name)
                break
            if node.layer.param_names() or len(node.bottoms) != 1:
                break
            node = net.producer.get(node.bottoms[0])
    return [n.name for n in net.layers if n.name in found]
