"""The whole classifier -> FCN surgery in one call, and writing its result.

:func:`fcn_surgery` chains the steps (each usable on its own):

1. :func:`~fcnkit.surgery.convolutionalize` at the classifier's declared input size;
2. :func:`~fcnkit.surgery.add_fcn_head` (or, with no head,
   :func:`~fcnkit.surgery.set_num_classes` when a class count is given), analysed at the
   classifier's input size;
3. optionally :func:`~fcnkit.surgery.adapt_input_bands` (of pretrained weights only);
4. optionally a new declared input size (checked: every layer must fit; N,C,H,W may give
   the new band count); for a classifier whose input declares no shape (Data layers), the
   given shape is instead its input shape for every step;
5. every layer still without weights is initialised by its filler.

:func:`write_outdir` writes the result atomically (the directory appears whole or not at
all): ``net.prototxt``, ``net.caffemodel`` (V2 binary, ``shape`` blobs: readable by Caffe
and by fcnkit), ``weights.safetensors`` (the compiled module's parameter names,
``conv1.weight``; torch layouts), ``report.md``, ``report.json`` and ``fcnkit.json`` (so
that :func:`fcnkit.compile.load` can load the directory directly).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from fcnkit.errors import SurgeryError
from fcnkit.surgery._net import Blobs, as_blobs, as_param, build, layer_kind
from fcnkit.surgery.bands import adapt_input_bands, input_conv
from fcnkit.surgery.classes import set_num_classes
from fcnkit.surgery.convolutionalize import convolutionalize
from fcnkit.surgery.heads import add_fcn_head
from fcnkit.surgery.report import SurgeryReport, SurgeryResult
from fcnkit.surgery.global_pool import localise_global_pooling
from fcnkit.surgery.transplant import INITIALISED_BY, prune_blobs, transplant
from fcnkit.surgery.untrained import fill_untrained_weights

HEADS = ("fcn32s", "fcn16s", "fcn8s", "none")


def load_classifier(source: str | Path, weights: str | Path | None = None):
    """Read a classifier: a prototxt (+ optional caffemodel) or a compiled fcnkit model
    directory (``fcnkit compile -o DIR``, whose weights come with it).

    Returns:
        (NetParameter, blobs {layer: [arrays]} or None, description).

    Raises:
        SurgeryError: a compiled directory given together with a caffemodel.
        CaffeFormatError, InputError, WeightsError: unreadable inputs.
    """
    from fcnkit import caffe
    from fcnkit.compile import is_compiled_dir

    source = Path(source)
    if source.is_dir() and is_compiled_dir(source):
        if weights is not None:
            raise SurgeryError(f"{source} is a compiled fcnkit model directory, which holds its own "
                               "weights; do not give a caffemodel with it")
        from fcnkit.compile import export_blobs, load

        compiled = load(source)
        return as_param(compiled.net.param), export_blobs(compiled), f"compiled model {source}"
    param = caffe.read_prototxt(source).param
    blobs = as_blobs(caffe.read_caffemodel(weights)) if weights is not None else None
    desc = f"{source}" + (f" + {weights}" if weights is not None else "")
    return param, blobs, desc


def set_input_shape(net: Any, shape: Sequence[int]) -> Any:
    """A copy of the net whose first Input layer declares ``shape`` ((H, W) or (N, C, H, W)).

    Raises:
        SurgeryError: the first input is not an Input layer with a 4-D shape.
    """
    param = as_param(net)
    for lp in param.layer:
        declares = layer_kind(lp).declares_input_shape
        if declares and len(lp.input_param.shape):
            dims = lp.input_param.shape[0].dim
            if len(dims) != 4:
                break
            new = list(dims[:2]) + list(shape) if len(shape) == 2 else list(shape)
            if len(new) != 4:
                raise SurgeryError(f"input shape must be H,W or N,C,H,W, got {list(shape)}")
            del dims[:]
            dims.extend(int(d) for d in new)
            return param
        if declares:
            break
    raise SurgeryError("a new input shape needs the net's first input to be an Input layer with "
                       "a 4-D shape")


def first_input_name(net: Any) -> str:
    """The Caffe name of the first input blob of ``net`` (NetParameter, NetSource, Net or
    path), for ``--input-shape name=N,C,H,W``.

    Raises:
        SurgeryError: the net is invalid or has no input layer.
    """
    from fcnkit.surgery._net import first_input_blob

    return first_input_blob(build(as_param(net), shapes=False, what="fcn_surgery"))


def _chain(report: SurgeryReport, step: SurgeryResult) -> SurgeryReport:
    return report.merge(step.report, step.renamed)


def _undeclared_input(param) -> tuple[str, str] | None:
    """(blob, layer) of the net's first input when its layer is a data source other than a
    shaped Input layer (a Data layer, whose channels come from the database; MemoryData,
    ImageData, whose shapes surgery cannot rewrite; an Input without a shape), else None."""
    net = build(param, shapes=False, what="fcn_surgery").net
    if not net.inputs:
        return None
    blob = net.inputs[0]
    node = net.producer[blob]
    if node.layer.declares_input_shape and \
            node.layer.declared_shapes()[list(node.tops).index(blob)] is not None:
        return None
    return net.blob_name[blob], node.layer.where()


def _reinit_names(param, reinit: Sequence[str], suffix: str) -> list[str]:
    """``reinit`` as classifier layer names (``fc8-conv`` with suffix "-conv" is ``fc8``).

    Raises:
        SurgeryError: a name that is no layer with weights of the classifier.
    """
    if not reinit:
        return []
    net = build(param, shapes=False, what="fcn_surgery").net
    with_weights = [n.name for n in net.layers if n.layer.param_names()]
    out, bad = [], []
    for given in reinit:
        name = given
        if name not in with_weights and suffix and name.endswith(suffix):
            name = name[: -len(suffix)]
        if name in with_weights:
            out.append(name)
        else:
            bad.append(given)
    if bad:
        raise SurgeryError(f"fcn_surgery: reinit (--reinit) names {', '.join(map(repr, bad))}, which "
                           "is no layer with weights of the classifier; its layers with weights: "
                           f"{', '.join(with_weights) or 'none'}")
    return out


def fcn_surgery(net: Any, weights: Any = None, *, classes: int | None = None,
                keep_classes: bool | None = None, head: str = "fcn32s", pad: int | None = 100,
                pools: Sequence[str] | None = None, group: str | int = "classes",
                kernel: int | Mapping[str, int] | None = None, bands: int | None = None,
                band_map: Any = None, band_fill: str = "mean", source_order: str = "BGR",
                suffix: str = "", input_shape: Sequence[int] | None = None,
                reinit: Sequence[str] = (), names: Mapping[str, str] | None = None,
                classifier: str | None = None,
                score_filler: Any = None, fill_missing: bool = True, seed: int = 0,
                allow_missing_weights: bool = False) -> SurgeryResult:
    """Classifier -> FCN (see the module docstring for the order of the steps).

    Args:
        net, weights: the classifier and its weights (None: every layer from its filler
            when ``fill_missing``, else structure only).
        classes: number of classes of the result (default: the classifier's).
        keep_classes: start the score layer from the classifier's first classes (default:
            True when ``classes`` is None, False otherwise).
        head: "fcn32s", "fcn16s", "fcn8s" or "none".
        pad, pools, group, kernel, names, score_filler: see :func:`add_fcn_head`.
        bands, band_map, band_fill, source_order: see :func:`adapt_input_bands`
            (``bands`` None: no adaptation). A first convolution without pretrained weights
            (no ``weights``, or listed in ``reinit``) is not adapted: it is initialised by
            its filler for ``bands`` bands.
        suffix: see :func:`convolutionalize`.
        input_shape: (H, W) or (N, C, H, W). For a classifier whose input layer declares
            its shape (Input): the new declared input of the FCN, set after the head and
            the band adaptation (the fc kernels are found at the classifier's own size; C
            must equal ``bands`` when both are given). For one whose input layer
            declares none (Data layers: the channels come from the database): the input
            shape (N, C, H, W) of the classifier, used by every step and kept in
            ``result.input_shapes`` (the written prototxt keeps its Data layers).
        reinit: classifier layers (names before ``suffix``, or after) whose weights are
            not used: they are initialised by their fillers (e.g. a caffemodel whose
            layer has another element count).
        classifier: the scoring layer, as named in the classifier (default: found).
        fill_missing: initialise layers that have no weights by their fillers; without
            ``weights``, filterless weights get ``msra``, not zeros (:mod:`.untrained`).
        seed: seed of random fillers.
        allow_missing_weights: else WeightsError when no classifier layer loads from ``weights``
            or one without a weight filler is missing (report: ``result.weights_report``).

    Raises:
        SurgeryError: from any step (the message names the step and the layer); a weight
            blob whose element count differs from the classifier's layer (unless the layer
            is in ``reinit``); ``reinit`` names no layer with weights; an input shape other
            than N,C,H,W for an input that declares no shape.
    """
    if head not in HEADS:
        raise SurgeryError(f"unknown head {head!r}; use one of {', '.join(HEADS)}")
    st = _Surgery(as_param(net), as_blobs(weights), SurgeryReport())
    untrained = st.blobs is None and fill_missing
    if untrained:
        st.blobs = {}
    input_shape = _undeclared_input_shape(st, input_shape)
    weights_report = None if weights is None else _classifier_weights_report(
        st, getattr(weights, "path", None), allow_missing_weights)
    _start_from_weights(st, _reinit_names(st.param, reinit, suffix))
    renamed = _convolutional(st, classifier, suffix)
    if classifier is not None:
        classifier = renamed.get(classifier, classifier)
    if head != "none":
        _add_head(st, head, classes, keep_classes, dict(pad=pad, pools=pools, group=group,
                  kernel=kernel, names=names, score_filler=score_filler, seed=seed), classifier)
    elif classes is not None:
        st.apply(set_num_classes(st.param, classes, weights=st.blobs, keep=bool(keep_classes),
                                 input_shapes=st.shapes, seed=seed,
                                 layers=[classifier] if classifier else None))
    if bands is not None:
        _adapt_bands(st, bands, band_map, source_order, band_fill)
    if input_shape is not None:
        _declare_input_shape(st, input_shape, bands)
    _fill_new_layers(st, untrained, seed)
    _finish_report(st.report, st.param, renamed)
    return SurgeryResult(st.param, st.blobs, st.report, input_shapes=st.shapes,
                         weights_report=weights_report)


def _fill_new_layers(st: "_Surgery", untrained: bool, seed: int) -> None:
    """Layers the steps added without weights get their fillers; without a caffemodel,
    filler-less weights get msra instead of zeros (:mod:`.untrained`)."""
    if st.blobs is not None:
        built = build(st.param, st.shapes, what="surgery")
        if any(n.layer.param_names() and n.name not in st.blobs for n in built.net.layers):
            st.apply(transplant(st.param, st.blobs, st.param, input_shapes=st.shapes, seed=seed + 1,
                                step=""))
    if untrained:
        fill_untrained_weights(st.param, st.blobs, st.report, seed=seed + 2)

def _classifier_weights_report(st: "_Surgery", source, allow_missing_weights: bool):
    """The classifier's weights load report (:mod:`fcnkit.compile.load_report`), checked.

    Raises:
        WeightsError: see :func:`fcnkit.compile.load_report.check_weights_report`.
    """
    from fcnkit.analysis import infer_shapes
    from fcnkit.compile.load_report import check_weights_report, weights_load_report
    from fcnkit.errors import FcnkitError

    built = build(st.param, st.shapes, shapes=False)
    try:
        shapes = infer_shapes(built.net, dict(st.shapes or {}))
    except FcnkitError:  # no shapes (Data inputs): renamed layers are then not looked for
        shapes = None
    report = weights_load_report(built.net.layers, st.blobs or {}, shapes, source)
    check_weights_report(report, allow_missing_weights)
    return report


@dataclass
class _Surgery:
    """The net, weights, report and input shapes as :func:`fcn_surgery`'s steps go."""

    param: Any
    blobs: Blobs | None
    report: SurgeryReport
    shapes: dict | None = None

    def apply(self, step: SurgeryResult) -> dict:
        """Take a step's net, weights and report; return its renamed layers."""
        self.report = _chain(self.report, step)
        self.param, self.blobs = step.param, step.blobs
        return step.renamed


def _convolutional(st: _Surgery, classifier: str | None, suffix: str) -> dict:
    """Global pooling before the classifier localised, fc -> conv, every weight checked;
    returns the layers convolutionalize renamed."""
    st.apply(localise_global_pooling(st.param, st.blobs, classifier=classifier,
                                     input_shapes=st.shapes))
    renamed = st.apply(convolutionalize(st.param, st.blobs, suffix=suffix, input_shapes=st.shapes))
    if st.blobs:
        # Every blob against its layer, before any step builds on it: Caffe refuses another
        # element count; the same count in another shape (legacy 4-D) is coerced.
        st.apply(transplant(st.param, st.blobs, st.param, input_shapes=st.shapes,
                            fill_missing=False, step=""))
    return renamed


def _undeclared_input_shape(st: _Surgery, input_shape):
    """For a classifier whose input declares no shape (Data layers): ``input_shape`` is
    the shape every step uses (``st.shapes``) and nothing is re-declared after the head
    (None returned); otherwise ``input_shape`` is returned for the end.

    Raises:
        SurgeryError: it is not N,C,H,W.
    """
    if input_shape is None or (und := _undeclared_input(st.param)) is None:
        return input_shape
    blob, where = und
    if len(input_shape) != 4:
        raise SurgeryError(f"fcn_surgery: {where} declares no shape for its top '{blob}'; give "
                           f"the whole input shape N,C,H,W (--input-shape 1,3,H,W), not "
                           f"{list(input_shape)}")
    st.shapes = {blob: tuple(int(d) for d in input_shape)}
    st.report.steps.append(f"input shape {list(input_shape)} given for '{blob}' ({where}, a data "
                           "layer without an Input shape), used by every step")
    return None


def _start_from_weights(st: _Surgery, reinit: Sequence[str]) -> None:
    """Keep the weights of the net's layers, drop those of ``reinit`` layers; report both."""
    if not st.blobs:
        return
    st.blobs = prune_blobs(st.param, st.blobs, st.report)
    for name in reinit:
        if st.blobs.pop(name, None) is not None:
            st.report.drop(name, f"source weights of '{name}' not used: '{name}' is re-initialised "
                           "(reinit)")
    for lp in st.param.layer:
        if lp.name in st.blobs:
            st.report.record(lp.name, "transplanted", shapes=[a.shape for a in st.blobs[lp.name]])


def _add_head(st: _Surgery, head: str, classes, keep_classes, options: dict,
              classifier: str | None = None) -> None:
    """The FCN head on the classifier layer (``classifier``, or found), for ``classes``
    (default: the classifier's)."""
    from fcnkit.surgery._net import classifier_layer

    built = build(st.param, shapes=False, what="surgery")
    cls = classifier or classifier_layer(built, f"add_fcn_head({head})")
    if not built.net.has_layer(cls):
        raise SurgeryError(f"add_fcn_head({head}): --classifier names '{cls}', which is no layer "
                           f"of the net; its layers with weights: "
                           f"{', '.join(n.name for n in built.net.layers if n.layer.param_names())}")
    k_old = built.net.layer(cls).layer.num_output
    k = int(classes) if classes is not None else k_old
    keep = (classes is None) if keep_classes is None else bool(keep_classes)
    pad = options.pop("pad")
    st.apply(add_fcn_head(st.param, k, head, pad, weights=st.blobs, classifier=cls,
                          keep_classes=keep and st.blobs is not None and cls in st.blobs,
                          input_shapes=st.shapes, **options))


def _adapt_bands(st: _Surgery, bands: int, band_map, source_order: str, band_fill: str) -> None:
    """Adapt the first convolution to ``bands`` bands: its pretrained filters combined, or
    (no pretrained weights) filled by its filler for the new band count."""
    layer = input_conv(build(st.param, st.shapes, what="adapt_input_bands"), None).name
    entry = st.report.layers.get(layer)
    pretrained = st.blobs is not None and layer in st.blobs and entry is not None \
        and entry.status != "initialised"
    if not pretrained and st.blobs is not None:
        # Filler values drawn for 3 bands are no pretrained filters: rather than adapt
        # them, fill the layer for the new band count below.
        st.blobs = {k: v for k, v in st.blobs.items() if k != layer}
        if entry is not None:
            entry.notes = [n for n in entry.notes if not n.startswith(INITIALISED_BY)]
            entry.fillers = []
    step = adapt_input_bands(st.param, st.blobs if pretrained else None, bands, band_map,
                             source_order=source_order, fill=band_fill, input_shapes=st.shapes)
    st.report = _chain(st.report, step)
    st.param, st.shapes = step.param, step.input_shapes or st.shapes
    if pretrained:
        st.blobs = step.blobs


def _declare_input_shape(st: _Surgery, input_shape, bands) -> None:
    """Declare the FCN's input shape; after the band adaptation, so that N,C,H,W may name
    the new band count.

    Raises:
        SurgeryError: C differs from ``bands``; the net does not fit the shape.
    """
    if len(input_shape) == 4 and bands is not None and int(input_shape[1]) != int(bands):
        raise SurgeryError(f"fcn_surgery: the input shape {list(input_shape)} has "
                           f"{input_shape[1]} channels but bands={bands}; give C = {bands} "
                           "or the input size as H,W")
    st.param = set_input_shape(st.param, input_shape)
    st.report.steps.append(f"declared input shape set to {list(input_shape)}")
    build(st.param, what="surgery (new input shape)")


def _finish_report(report: SurgeryReport, param, renamed: Mapping[str, str]) -> None:
    """Every layer reported (``kept`` when no step touched it), in net order; dropped
    layers named as in the classifier (fc8, not the fc8-conv it became before the head
    replaced it)."""
    for lp in param.layer:
        if lp.name not in report.layers:
            report.record(lp.name, "kept")
    report.reorder(param)
    original = {new: old for old, new in renamed.items() if new != old}
    for d in report.dropped:
        base, sep, rest = d.layer.partition("[")
        if base in original:
            d.notes.append(f"'{original[base]}' became '{base}' in convolutionalize")
            d.layer = d.source = original[base] + sep + rest


def torch_state(param: Any, blobs: Blobs,
                input_shapes: Mapping[str | None, Sequence[int]] | None = None) -> dict[str, Any]:
    """``{module.param: array}`` in the compiled module's names and torch layouts (what
    :func:`fcnkit.compile.compile_net` would hold after loading ``blobs``); ``input_shapes``
    for a net whose input layers declare no shape."""
    import numpy as np

    from fcnkit.compile import module_name

    built = build(param, input_shapes, what="write")
    out = {}
    for node in built.net.layers:
        if not node.layer.param_names() or node.name not in blobs:
            continue
        arrays = node.layer.params_to_torch(list(blobs[node.name]), built.bottom_shapes(node.name))
        for k, v in arrays.items():
            out[f"{module_name(node.name)}.{k}"] = np.ascontiguousarray(v, dtype=np.float32)
    return out


def write_outdir(result: SurgeryResult, outdir: str | Path, *, source: str | None = None,
                 force: bool = False) -> Path:
    """Write a surgery result to ``outdir`` atomically (see the module docstring).

    An existing ``outdir`` is replaced only when it is empty or an earlier fcnkit output
    (it holds ``fcnkit.json``), or when ``force`` is true.

    Raises:
        SurgeryError: the result has no weights to write a caffemodel from.
        OutputExistsError: ``outdir`` is a file, or a directory of something else.
        OutputError: the files cannot be written (nothing is left behind).
    """
    from fcnkit import __version__, caffe
    from fcnkit.compile.store import write_model_dir

    if result.blobs is None:
        raise SurgeryError("the surgery result has no weights; run it with weights (or "
                           "fill_missing=True) to write a caffemodel")
    built = build(result.param, result.input_shapes, what="write")
    header = f"written by fcnkit {__version__} surgery" + (f" from {source}" if source else "")
    title = f"fcnkit surgery report: {result.param.name or 'net'}"
    doc = result.report.to_dict()
    doc["source"] = source
    meta = {
        "fcnkit_version": __version__, "name": result.param.name, "source": source,
        "phase": "TEST", "level": 0, "stages": [], "deploy": False,
        "input_shapes": {built.net.blob_name[b]: list(built.shapes[b]) for b in built.net.inputs},
        "inputs": [built.net.blob_name[b] for b in built.net.inputs],
        "outputs": [built.net.blob_name[b] for b in built.net.outputs],
        "written_by": "fcnkit surgery",
    }
    files = {
        "net.caffemodel": lambda path: caffe.write_caffemodel(path, result.param, result.blobs),
        "report.md": result.report.to_markdown(title) + (f"\nSource: {source}\n" if source else ""),
        "report.json": json.dumps(doc, indent=2) + "\n",
    }
    return write_model_dir(outdir, result.param, torch_state(result.param, result.blobs, result.input_shapes),
                           meta, header=header, files=files, force=force,
                           weights_metadata={"source": source or "", "fcnkit": __version__})
