"""FCN heads: score layer, bilinear upsampling, skip branches and computed crops.

The head of Long, Shelhamer & Darrell's FCN (fcn.berkeleyvision.org voc-fcn32s/16s/8s,
and the DIGITS 5 article's FCN-AlexNet) on a convolutionalised classifier:

- the first convolution gets a large padding (``pad: 100``) so that the offsets of later
  layers do not eat into the image and the borders reach the centre of the receptive field
  (DIGITS article; FCN's prototxts);
- the classifier's last scoring layer (and everything after it: Softmax, ...) is replaced
  by ``score_fr``, a 1x1 Convolution with ``num_classes`` outputs on the same features
  (FCN and DIGITS leave it without a filler: Caffe's default, zero);
- a Deconvolution upsamples by the stride f between its input and its target (both found
  from the scale factors, never typed in): kernel ``2f - f mod 2`` (Caffe's BilinearFiller
  rule, as in the zoo: 64, 4, 16 for f = 32, 2, 8), or ``2f - 1`` when that would leave a
  half-pixel crop offset (FCN-AlexNet's 63: the offset with 64 is 18.5); bias_term false,
  ``lr_mult: 0`` (fixed bilinear interpolation). The head's layers are made by the NetSpec
  blocks of :mod:`fcnkit.netspec.blocks` (``score``, ``upscore``, ``crop_to``, ``fuse``);
- FCN-16s/8s add skip branches: a zero-initialised 1x1 score layer on pool4 (pool3), cropped
  to the upsampled scores and summed (Eltwise SUM) before the next upsampling;
- Crop layers align each pair; their offsets are computed from the coordinate maps
  (:func:`fcnkit.analysis.crop_offset`, Caffe's coord_map.py rules): FCN-AlexNet 18,
  FCN-32s 19, FCN-16s 5 and 27, FCN-8s 5, 9 and 31.

Two conventions for the upsampling weights (both from :mod:`fcnkit.fillers`):
``group="classes"`` is Caffe's (and DIGITS'): a Deconvolution with ``group = num_output =
num_classes`` whose weight (C, 1, K, K) holds the bilinear kernel in every slice, written
as ``weight_filler { type: "bilinear" }``. ``group=1`` is FCN's: a full C x C
Deconvolution with the kernel on the diagonal and zeros elsewhere (surgery.interp); Caffe
has no filler for it, so the prototxt carries none and the weights live in the caffemodel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Mapping, Sequence

import networkx as nx
import numpy as np
from google.protobuf import json_format

from fcnkit.errors import OffsetError, SurgeryError
from fcnkit.netspec.blocks import bilinear_kernel_size, crop_to, fuse, layers_on, score, upscore
from fcnkit.surgery._net import (AnalysedNet, Shape, as_blobs, as_filler, as_param, build,
                                 classifier_layer, first_input_blob, remove_layers, set_pad)
from fcnkit.surgery.report import SurgeryReport, SurgeryResult
from fcnkit.surgery.transplant import transplant

KINDS, DEFAULT_POOLS = {"fcn32s": 0, "fcn16s": 1, "fcn8s": 2}, ("pool4", "pool3")
_ZERO = dict(type="constant")  # Caffe's constant filler, value 0: zero-initialised scores


def upsampling_kernels(f: int) -> list[int]:
    """Candidate kernel sizes for a stride-``f`` bilinear upsampling, preferred first: the
    zoo's and Caffe's ``2f - f mod 2`` (:func:`~fcnkit.netspec.blocks.bilinear_kernel_size`),
    then the odd ``2f - 1`` (which shifts the layer's offset by half a pixel)."""
    first = bilinear_kernel_size(f)
    return [first] if first == 2 * f - 1 else [first, 2 * f - 1]


def _factor(built: AnalysedNet, blob: str, what: str) -> Fraction:
    fac = built.factor(blob)
    if fac is None:
        raise SurgeryError(f"{what}: blob '{blob}' has no scale factor relative to the input "
                           "(a layer on its path has no coordinate map: an InnerProduct left "
                           "unconverted, global pooling, ...); convolutionalize the net first")
    if fac[0] != fac[1]:
        raise SurgeryError(f"{what}: blob '{blob}' is scaled differently along y and x "
                           f"({fac[0]}, {fac[1]}); a square upsampling cannot undo that")
    return fac[0]


def _stride(built: AnalysedNet, src: str, dst: str, what: str) -> int:
    ratio = _factor(built, dst, what) / _factor(built, src, what)
    if ratio.denominator != 1 or ratio < 2:
        raise SurgeryError(f"{what}: blob '{dst}' is at {ratio} times the resolution of '{src}'; "
                           "an upsampling stage needs an integer factor >= 2 (choose other "
                           "skip layers)")
    return int(ratio)


def _resolve_blob(built: AnalysedNet, name: str) -> str | None:
    """A layer name -> its first top's Caffe name; a blob name -> itself; else None."""
    net = built.net
    if net.has_layer(name):
        return net.blob_name[net.layer(name).tops[0]]
    if name in net.final:
        return name
    return None


def _pool_listing(built: AnalysedNet) -> str:
    rows = []
    for node in built.net.layers:
        if not node.layer.pools:
            continue
        fac = built.factor(node.tops[0])
        stride = "?" if fac is None else str(1 / fac[0]) if fac[0] == fac[1] else f"{1/fac[0]}x{1/fac[1]}"
        rows.append(f"{node.name} (stride {stride})")
    return ", ".join(rows) or "none"


def add_fcn_head(net: Any, num_classes: int, kind: str = "fcn32s", pad: int | None = 100, *,
                 weights: Any = None, pools: Sequence[str] | None = None,
                 classifier: str | None = None, first_conv: str | None = None,
                 group: str | int = "classes", kernel: int | Mapping[str, int] | None = None,
                 score_filler: Any = None, keep_classes: bool = False,
                 names: Mapping[str, str] | None = None, reference: str | None = None,
                 input_shapes: Mapping[str | None, Shape] | None = None,
                 seed: int = 0) -> SurgeryResult:
    """Turn a convolutionalised classifier into an FCN-32s, -16s or -8s.

    Args:
        net: the convolutionalised classifier (see :func:`convolutionalize`).
        num_classes: outputs of the score layers and of the upsampling (>= 1).
        kind: "fcn32s" (one stride-32 upsampling), "fcn16s" (skip from ``pools[0]``) or
            "fcn8s" (skips from ``pools[0]`` and ``pools[1]``). The strides are computed;
            "32s" names the head, not a number fcnkit assumes.
        pad: padding set on the first convolution (FCN/DIGITS: 100); None keeps it.
        weights: the net's weights (``{layer: [arrays]}`` / CaffeModel / path) or None
            for the structure only.
        pools: skip layers (or blobs), coarse to fine; default ("pool4", "pool3").
        classifier: the scoring layer to replace (default: found by walking back from
            the net outputs to the first layer with weights, e.g. fc8).
        first_conv: the layer to pad (default: the first Convolution).
        group: "classes" (Caffe/DIGITS convention: group = num_classes, bilinear filler)
            or 1 (FCN convention: full C x C deconvolution, kernel on the diagonal).
        kernel: the upsampling kernel: None (computed, see module docstring), an int for
            the last upsampling layer, or {deconvolution layer name: kernel}.
        score_filler: filler of ``score_fr`` (None: no filler, i.e. Caffe's constant 0,
            as FCN and DIGITS do; or a type name / FillerParameter).
        keep_classes: start ``score_fr`` from the replaced classifier's first
            min(num_classes, K) class filters (it must be a 1x1 Convolution on the same
            features), like fcn's ``expand_score``.
        names: overrides of the new layers' names, e.g. ``{"score_fr":
            "score_fr_21classes", "upscore": "upscore_21classes", "score": "score"}``.
        reference: the blob the final output is cropped to (default: the first input).
        input_shapes: input shape overrides ({blob: (N, C, H, W)}).
        seed: seed of random fillers.

    Returns:
        SurgeryResult with ``report.crop_offsets`` {crop layer: (oy, ox)} and
        ``report.upsampling`` {deconvolution: stride, kernel, group, convention}.
        The final top ``score`` has shape (N, num_classes, H, W) of the reference blob.

    Raises:
        SurgeryError: unknown kind; named pooling layers missing (the message lists the
            net's pooling layers and their strides); no classifier layer found, or still an
            InnerProduct; scale factors that are not integer ratios; a crop offset that is
            negative or fractional for every candidate kernel; the declared input too small.
    """
    what = f"add_fcn_head({kind})"
    k, per_class = _checked_options(kind, num_classes, group, what)
    blobs = as_blobs(weights)
    src = as_param(net)
    h = _Head(as_param(src), input_shapes, what, k, per_class, dict(names or {}))
    h.built = build(h.param, input_shapes, what=what)
    pool_names, skip_blobs = _skip_layers(h, kind, pools)
    cls = _classifier(h, classifier, skip_blobs, reference)
    score_fr = _remove_classifier(h, cls, blobs)
    fc_name = _pad_first_conv(h, first_conv, pad)
    _add_score_fr(h, score_fr, cls.feature, score_filler)
    cur = score_fr
    stages = [*skip_blobs, cls.reference]
    for si, target in enumerate(stages):
        cur = _add_stage(h, cur, target, si, len(stages), pool_names, kernel, cls.reference)
    _check_fits(h)
    h.report.steps.append(
        f"add_fcn_head: {kind}, {k} classes on '{cls.feature}' (replacing '{cls.name}')"
        + (f", {fc_name} pad {pad}" if pad is not None else "") + "; " + "; ".join(h.summary))
    out_blobs = _head_weights(h, src, blobs, cls, score_fr, keep_classes, seed)
    _record_new_layers(h, src)
    h.report.reorder(h.param)
    return SurgeryResult(h.param, out_blobs, h.report)


@dataclass
class _Head:
    """The state of one :func:`add_fcn_head` run, shared by its steps."""

    param: Any                      # the NetParameter being built (a copy of the input)
    input_shapes: Any
    what: str                       # message prefix: add_fcn_head(kind)
    k: int                          # number of classes
    per_class: bool                 # group = classes (Caffe bilinear) or 1 (FCN interp)
    names: dict[str, str]           # overrides of the new layers' names
    built: Any = None               # the input net, analysed
    report: SurgeryReport = field(default_factory=SurgeryReport)
    notes: dict[str, list[str]] = field(default_factory=dict)
    init: dict[str, list] = field(default_factory=dict)   # transplant fillers by layer
    summary: list[str] = field(default_factory=list)      # one entry per stage


@dataclass(frozen=True)
class _Classifier:
    """The scoring layer the head replaces, and what the head needs from it."""

    name: str
    feature: str                    # the blob it scores
    classes: int                    # its num_output
    kernel: tuple[int, int]
    downstream: frozenset[str]      # the layers after it (removed)
    reference: str                  # the blob the final scores are cropped to


def _checked_options(kind: str, num_classes: int, group, what: str) -> tuple[int, bool]:
    """(K, per_class) from the options.

    Raises:
        SurgeryError: unknown kind, K < 1, or a group other than "classes" / 1.
    """
    if kind not in KINDS:
        raise SurgeryError(f"add_fcn_head: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    if int(num_classes) < 1:
        raise SurgeryError(f"{what}: num_classes must be >= 1, got {num_classes}")
    if group not in ("classes", 1, "1"):
        raise SurgeryError(f"{what}: group must be 'classes' (group = num_classes, Caffe's "
                           f"bilinear filler) or 1 (FCN's full deconvolution), got {group!r}")
    return int(num_classes), group == "classes"


def _skip_layers(h: _Head, kind: str, pools) -> tuple[list[str], list[str]]:
    """(skip layer names, their blobs), coarse to fine, as many as the kind needs.

    Raises:
        SurgeryError: too few given, or one the net does not have (the message lists the
            net's pooling layers and their strides).
    """
    n_skips = KINDS[kind]
    pool_names = list(pools) if pools is not None else list(DEFAULT_POOLS[:n_skips])
    if len(pool_names) < n_skips:
        raise SurgeryError(f"{h.what}: needs {n_skips} skip layer(s), got {len(pool_names)} "
                           f"({', '.join(pool_names) or 'none'})")
    if n_skips == 0 and pools:
        h.report.notes.append(f"fcn32s has no skip branches; pools {', '.join(pools)} ignored")
    pool_names = pool_names[:n_skips]
    missing = [p for p in pool_names if _resolve_blob(h.built, p) is None]
    if missing:
        raise SurgeryError(
            f"{h.what}: the net has no layer or blob named {', '.join(repr(m) for m in missing)} "
            f"for the skip branch(es). Pooling layers of the net: {_pool_listing(h.built)}. "
            "Name the skip layers, coarse to fine, with pools=[...] (CLI: --pools a,b)")
    return pool_names, [_resolve_blob(h.built, p) for p in pool_names]


def _classifier(h: _Head, classifier: str | None, skip_blobs, reference: str | None) -> _Classifier:
    """The classifier layer to replace (named, or found) and the reference blob.

    Raises:
        SurgeryError: no such layer, still an InnerProduct, not a Convolution, a skip blob
            after it, or no such reference blob.
    """
    what, net = h.what, h.built.net
    cls_name = classifier or classifier_layer(h.built, what)
    if not net.has_layer(cls_name):
        raise SurgeryError(f"{what}: the net has no layer named '{cls_name}'")
    cls_node = net.layer(cls_name)
    if cls_node.layer.fully_connected:
        raise SurgeryError(f"{what}: the classifier layer '{cls_name}' is still an InnerProduct; "
                           "convolutionalize the net first")
    if not cls_node.layer.spatial_filter:
        raise SurgeryError(f"{what}: the classifier layer '{cls_name}' is a {cls_node.type}, not a "
                           "Convolution; name the scoring layer with classifier=...")
    downstream = {n[1] for n in nx.descendants(net.graph, ("layer", cls_name)) if n[0] == "layer"}
    for p in skip_blobs:
        if any(net.producer.get(net.blob(p)) is not None and
               net.producer[net.blob(p)].name == d for d in downstream | {cls_name}):
            raise SurgeryError(f"{what}: skip blob '{p}' comes after the classifier layer '{cls_name}'")
    ref_blob = reference or first_input_blob(h.built)
    if _resolve_blob(h.built, ref_blob) is None:
        raise SurgeryError(f"{what}: the reference blob '{ref_blob}' does not exist")
    return _Classifier(cls_name, net.blob_name[cls_node.bottoms[0]], cls_node.layer.num_output,
                       tuple(cls_node.layer.kernel), frozenset(downstream), ref_blob)


def _remove_classifier(h: _Head, cls: _Classifier, blobs) -> str:
    """Remove the classifier and the layers after it; return the new score layer's name."""
    removed = remove_layers(h.param, [cls.name, *sorted(cls.downstream)])
    score_fr = h.names.get("score_fr", "score_fr")
    for r in removed:
        if r == cls.name and blobs is None:
            h.report.drop(r, f"layer '{r}' replaced by '{score_fr}'")
        elif r != cls.name and (blobs is None or r not in blobs):
            h.report.drop(r, f"layer '{r}' removed: it came after the classifier layer '{cls.name}'")
    return score_fr


def _pad_first_conv(h: _Head, first_conv: str | None, pad: int | None) -> str | None:
    """Set ``pad`` on the first Convolution (or the named one); return its name.

    Raises:
        SurgeryError: no such Convolution.
    """
    net = h.built.net
    conv_nodes = [n for n in net.layers if n.layer.spatial_filter]
    fc_name = first_conv or (conv_nodes[0].name if conv_nodes else None)
    if pad is not None:
        if fc_name is None or not net.has_layer(fc_name) or not net.layer(fc_name).layer.spatial_filter:
            raise SurgeryError(f"{h.what}: no Convolution layer named '{fc_name}' to pad")
        old = tuple(net.layer(fc_name).layer.pad)
        for lp in h.param.layer:
            if lp.name == fc_name:
                set_pad(lp.convolution_param, pad)
        h.notes.setdefault(fc_name, []).append(f"pad {old[0] if old[0] == old[1] else old} -> {pad}")
    return fc_name


def _add_score_fr(h: _Head, score_fr: str, feature: str, score_filler) -> None:
    """The 1x1 score layer on the classifier's features (no filler: Caffe's zero)."""
    sf = as_filler(score_filler)
    wf = None if sf is None else json_format.MessageToDict(sf, preserving_proto_field_name=True)
    h.param.layer.extend(layers_on([feature], lambda n, t: score(
        n, t[feature], score_fr, h.k, pad=None, weight_filler=wf,
        bias_filler=None if sf is None else _ZERO)))


def _upsampling_name(h: _Head, f: int, si: int, final: bool, n_skips: int, pool_names) -> str:
    """FCN's name for the stage's upsampling layer (``upscore``, ``upscore2``,
    ``upscore_pool4``), made unique, after ``names`` overrides."""
    if final:
        default_up = "upscore" if n_skips == 0 else f"upscore{f}"
    else:
        default_up = f"upscore{f}" if si == 0 else f"upscore_{pool_names[si - 1]}"
    taken = {lp.name for lp in h.param.layer}
    if default_up in taken:  # e.g. a x2 skip and a final x2: FCN's names would clash
        default_up = next(n for n in ("upscore", *(f"upscore_{i}" for i in range(1, 99)))
                          if n not in taken)
    return h.names.get(default_up, default_up)


def _kernel_candidates(kernel, up: str, f: int, final: bool) -> list[int]:
    if isinstance(kernel, Mapping):
        return [int(kernel[up])] if up in kernel else upsampling_kernels(f)
    if kernel is not None and final:
        return [int(kernel)]
    return upsampling_kernels(f)


def _aligned_kernel(h: _Head, cur: str, target: str, up: str, score_pool: str | None, f: int,
                    candidates: list[int], ref_blob: str, final: bool):
    """(kernel, (oy, ox), NetParameter with the stage's upsampling and skip score): the
    first candidate kernel whose crop offset is pixel-exact.

    Raises:
        SurgeryError: no candidate aligns the pair (each one's reason is listed).
    """
    from fcnkit.analysis import crop_offset

    errors = []
    for K in candidates:
        trial = as_param(h.param)
        trial.layer.extend(layers_on([cur, target], lambda n, t: _upsample_and_score(
            n, t[cur], t[target], up, score_pool, h, K, f)))
        tb = build(trial, h.input_shapes, shapes=False, what=h.what)
        cropped, refb = (score_pool, up) if not final else (up, ref_blob)
        try:
            return K, crop_offset(tb.net, cropped, refb), trial
        except OffsetError as e:
            errors.append(f"kernel {K}: {e}")
    pair = (f"the upsampled '{up}' with the reference '{ref_blob}'" if final else
            f"the skip scores '{score_pool}' with the upsampled '{up}'")
    raise SurgeryError(f"{h.what}: no crop aligns {pair} (stride {f}, kernels tried "
                       f"{candidates}): " + "; ".join(errors))


def _add_stage(h: _Head, cur: str, target: str, si: int, n_stages: int, pool_names, kernel,
               ref_blob: str) -> str:
    """One upsampling stage: upsample ``cur`` to ``target``'s resolution, crop, and (skip
    stages) add the skip's scores; returns the stage's output blob."""
    final = si == n_stages - 1
    stage_built = build(h.param, h.input_shapes, shapes=False, what=h.what)
    f = _stride(stage_built, cur, target, h.what)
    up = _upsampling_name(h, f, si, final, n_stages - 1, pool_names)
    pool = None if final else pool_names[si]
    score_pool = None if final else h.names.get(f"score_{pool}", f"score_{pool}")
    candidates = _kernel_candidates(kernel, up, f, final)
    K, (oy, ox), h.param = _aligned_kernel(h, cur, target, up, score_pool, f, candidates, ref_blob, final)
    crop_name = "score" if final else f"{score_pool}c"
    crop_name = h.names.get(crop_name, crop_name)
    offs = [oy] if oy == ox else [oy, ox]
    if final:
        h.param.layer.extend(layers_on([up, ref_blob], lambda n, t: crop_to(
            n, t[up], t[ref_blob], crop_name, offset=offs)))
    else:
        fuse_name = h.names.get(f"fuse_{pool}", f"fuse_{pool}")
        h.param.layer.extend(layers_on([score_pool, up], lambda n, t: fuse(
            n, t[up], crop_to(n, t[score_pool], t[up], crop_name, offset=offs), fuse_name)))
        cur = fuse_name
    _record_stage(h, up, f, K, crop_name, (oy, ox), score_pool, target, ref_blob, final)
    return cur


def _record_stage(h: _Head, up: str, f: int, K: int, crop_name: str, offset, score_pool,
                  target: str, ref_blob: str, final: bool) -> None:
    """The stage's report entries: crop offset, upsampling, per-layer notes, summary."""
    oy, ox = offset
    h.report.crop_offsets[crop_name] = (oy, ox)
    convention = ("bilinear (Caffe filler: same kernel in every slice, group = classes)"
                  if h.per_class else "bilinear_interp (FCN surgery.interp: kernel on the diagonal)")
    h.report.upsampling[up] = {"stride": f, "kernel": K, "group": h.k if h.per_class else 1,
                               "convention": "bilinear" if h.per_class else "bilinear_interp"}
    if not h.per_class:
        h.init[up] = ["bilinear_interp"]
    h.notes.setdefault(up, []).append(
        f"upsampling x{f}, kernel {K} (candidates {upsampling_kernels(f)}), {convention}, lr_mult 0")
    h.notes.setdefault(crop_name, []).append(
        f"crop offset ({oy}, {ox}) computed: '{up if final else score_pool}' to "
        f"'{ref_blob if final else up}'")
    if score_pool:
        h.notes.setdefault(score_pool, []).append(f"skip scores on '{target}', zero-initialised")
    h.summary.append(f"{up} x{f} k{K}, {crop_name} offset {oy if oy == ox else (oy, ox)}")


def _check_fits(h: _Head) -> None:
    """Raise SurgeryError when the head does not fit the declared input size."""
    try:
        build(h.param, h.input_shapes, what=h.what)
    except SurgeryError as e:
        raise SurgeryError(f"{e}. The head does not fit the declared input size: declare a larger "
                           "input, or keep a large pad on the first convolution (pad=100)") from None


def _head_weights(h: _Head, src, blobs, cls: _Classifier, score_fr: str, keep_classes: bool,
                  seed: int):
    """The new net's weights (transplanted; ``keep_classes`` copies the classifier's first
    classes into ``score_fr``), or None without weights."""
    if blobs is None:
        if keep_classes:
            h.report.notes.append("keep_classes ignored: no weights given")
        return None
    tr = transplant(src, blobs, h.param, init=h.init, input_shapes=h.input_shapes, seed=seed,
                    step=h.what)  # errors start with the step; the head's own line replaces it
    out_blobs = tr.blobs
    h.report = _merge_step(h.report, tr.report)
    for d in h.report.dropped:
        if d.layer == cls.name:
            d.notes = [f"layer '{cls.name}' replaced by '{score_fr}'"]
    order = {lp.name: i for i, lp in enumerate(src.layer)}
    h.report.dropped.sort(key=lambda d: order.get(d.layer.split("[")[0], len(order)))
    if keep_classes:
        _keep_classes(out_blobs, blobs, cls.name, score_fr, cls.classes, cls.kernel, h.k,
                      h.report, h.what)
    return out_blobs


def _record_new_layers(h: _Head, src) -> None:
    """Report entries for the layers the head added, with the notes collected on the way."""
    src_names = {lp.name for lp in src.layer}
    for lp in h.param.layer:
        if lp.name not in src_names and lp.name not in h.report.layers:
            h.report.record(lp.name, "structure", "added by the FCN head")
    for layer, ns in h.notes.items():
        entry = h.report.layers.get(layer) or h.report.record(layer, "structure")
        entry.notes.extend(ns)


def _upsample_and_score(n, bottom, target, up: str, score_pool: str | None, h: _Head,
                        kernel: int, f: int) -> None:
    """The stage's blocks before its crop: the upsampling ``up`` (group-wise bilinear, or
    FCN's full C x C) and, on a skip stage, the skip's zero-filled scores ``score_pool``."""
    upscore(n, bottom, up, h.k, f, kernel, group=None if h.per_class else 1)
    if score_pool is not None:
        score(n, target, score_pool, h.k, pad=None, weight_filler=_ZERO, bias_filler=_ZERO)


def _merge_step(head_report: SurgeryReport, tr_report: SurgeryReport) -> SurgeryReport:
    """The head's own notes plus the transplant's per-layer results."""
    out = tr_report
    out.steps = head_report.steps
    out.crop_offsets = head_report.crop_offsets
    out.upsampling = head_report.upsampling
    out.notes = head_report.notes + tr_report.notes
    out.dropped = head_report.dropped + tr_report.dropped
    for name, e in head_report.layers.items():
        if name in out.layers:
            out.layers[name].notes.extend(e.notes)
        else:
            out.layers[name] = e
    return out


def _keep_classes(out_blobs, blobs, cls_name, score_fr, old_classes, cls_kernel, k, report, what):
    if cls_name not in blobs:
        raise SurgeryError(f"{what}: keep_classes needs the weights of '{cls_name}', which the "
                           "weights lack")
    if cls_kernel != (1, 1):
        raise SurgeryError(f"{what}: keep_classes needs a 1x1 classifier layer; '{cls_name}' has "
                           f"kernel {cls_kernel[0]}x{cls_kernel[1]}")
    old = blobs[cls_name]
    new = [np.array(a, dtype=np.float32, copy=True) for a in out_blobs[score_fr]]
    m = min(k, old_classes)
    new[0][:m] = np.asarray(old[0], dtype=np.float32).reshape(old_classes, -1)[:m].reshape(new[0][:m].shape)
    if len(new) > 1 and len(old) > 1:
        new[1][:m] = np.asarray(old[1], dtype=np.float32).reshape(-1)[:m]
    out_blobs[score_fr] = new
    report.record_kept_classes(score_fr, cls_name, m, old_classes, k)
    report.dropped = [d for d in report.dropped if d.layer != cls_name]
    if m < old_classes:
        report.drop(cls_name, f"classes {m}..{old_classes - 1} of '{cls_name}' dropped "
                    f"(kept the first {m} in '{score_fr}')")
