"""The whole classifier -> FCN surgery in one call, and writing its result.

:func:`fcn_surgery` chains the steps (each usable on its own):

1. :func:`~fcnkit.surgery.convolutionalize` at the classifier's declared input size;
2. :func:`~fcnkit.surgery.add_fcn_head` (or, with no head,
   :func:`~fcnkit.surgery.set_num_classes` when a class count is given), analysed at the
   classifier's input size;
3. optionally a new declared input size (checked: every layer must fit);
4. optionally :func:`~fcnkit.surgery.adapt_input_bands`;
5. every layer still without weights is initialised by its filler.

:func:`write_outdir` writes the result atomically (the directory appears whole or not at
all): ``net.prototxt``, ``net.caffemodel`` (V2 binary, ``shape`` blobs: readable by Caffe
and by fcnkit), ``weights.safetensors`` (the compiled module's parameter names,
``conv1.weight``; torch layouts), ``report.md``, ``report.json`` and ``fcnkit.json`` (so
that :func:`fcnkit.compile.load` can load the directory directly).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from fcnkit.errors import SurgeryError
from fcnkit.surgery._net import Blobs, as_blobs, as_param, build
from fcnkit.surgery.bands import adapt_input_bands
from fcnkit.surgery.classes import set_num_classes
from fcnkit.surgery.convolutionalize import convolutionalize
from fcnkit.surgery.heads import add_fcn_head
from fcnkit.surgery.report import SurgeryReport, SurgeryResult
from fcnkit.surgery.transplant import prune_blobs, transplant

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
        if lp.type == "Input" and len(lp.input_param.shape):
            dims = lp.input_param.shape[0].dim
            if len(dims) != 4:
                break
            new = list(dims[:2]) + list(shape) if len(shape) == 2 else list(shape)
            if len(new) != 4:
                raise SurgeryError(f"input shape must be H,W or N,C,H,W, got {list(shape)}")
            del dims[:]
            dims.extend(int(d) for d in new)
            return param
        if lp.type == "Input":
            break
    raise SurgeryError("a new input shape needs the net's first input to be an Input layer with "
                       "a 4-D shape")


def _chain(report: SurgeryReport, step: SurgeryResult) -> SurgeryReport:
    return report.merge(step.report, step.renamed)


def fcn_surgery(net: Any, weights: Any = None, *, classes: int | None = None,
                keep_classes: bool | None = None, head: str = "fcn32s", pad: int | None = 100,
                pools: Sequence[str] | None = None, group: str | int = "classes",
                kernel: int | Mapping[str, int] | None = None, bands: int | None = None,
                band_map: Any = None, band_fill: str = "mean", source_order: str = "BGR",
                suffix: str = "", input_shape: Sequence[int] | None = None,
                names: Mapping[str, str] | None = None, score_filler: Any = None,
                fill_missing: bool = True, seed: int = 0) -> SurgeryResult:
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
            (``bands`` None: no adaptation).
        suffix: see :func:`convolutionalize`.
        input_shape: new declared input (H, W) or (N, C, H, W) of the FCN.
        fill_missing: initialise layers that have no weights by their fillers.
        seed: seed of random fillers.

    Raises:
        SurgeryError: from any step (the message names the step and the layer).
    """
    if head not in HEADS:
        raise SurgeryError(f"unknown head {head!r}; use one of {', '.join(HEADS)}")
    param = as_param(net)
    blobs = as_blobs(weights)
    if blobs is None and fill_missing:
        blobs = {}
    report = SurgeryReport()
    if blobs:
        blobs = prune_blobs(param, blobs, report)
        for lp in param.layer:
            if lp.name in blobs:
                report.record(lp.name, "transplanted", shapes=[a.shape for a in blobs[lp.name]])

    step = convolutionalize(param, blobs, suffix=suffix)
    report = _chain(report, step)
    param, blobs = step.param, step.blobs
    if head != "none":
        built = build(param, shapes=False, what="surgery")
        from fcnkit.surgery._net import classifier_layer

        cls = classifier_layer(built, f"add_fcn_head({head})")
        k_old = built.net.layer(cls).impl.num_output
        k = int(classes) if classes is not None else k_old
        keep = (classes is None) if keep_classes is None else bool(keep_classes)
        step = add_fcn_head(param, k, head, pad, weights=blobs, pools=pools, classifier=cls,
                            group=group, kernel=kernel, keep_classes=keep and blobs is not None
                            and cls in blobs, names=names, score_filler=score_filler, seed=seed)
        report = _chain(report, step)
        param, blobs = step.param, step.blobs
    elif classes is not None:
        step = set_num_classes(param, classes, weights=blobs, keep=bool(keep_classes), seed=seed)
        report = _chain(report, step)
        param, blobs = step.param, step.blobs

    if input_shape is not None:
        param = set_input_shape(param, input_shape)
        report.steps.append(f"declared input shape set to {list(input_shape)}")
        build(param, what="surgery (new input shape)")

    if bands is not None:
        step = adapt_input_bands(param, blobs, bands, band_map, source_order=source_order,
                                 fill=band_fill)
        report = _chain(report, step)
        param, blobs = step.param, step.blobs

    if blobs is not None:
        built = build(param, what="surgery")
        missing = [n.name for n in built.net.layers if n.impl.blob_names() and n.name not in blobs]
        if missing:
            step = transplant(param, blobs, param, seed=seed + 1, step="")
            report = _chain(report, step)
            blobs = step.blobs
    for lp in param.layer:
        if lp.name not in report.layers:
            report.record(lp.name, "kept")
    report.reorder(param)
    return SurgeryResult(param, blobs, report)


def torch_state(param: Any, blobs: Blobs) -> dict[str, Any]:
    """``{module.param: array}`` in the compiled module's names and torch layouts (what
    :func:`fcnkit.compile.compile_net` would hold after loading ``blobs``)."""
    import numpy as np

    from fcnkit.compile import module_name

    built = build(param, what="write")
    out = {}
    for node in built.net.layers:
        if not node.impl.blob_names() or node.name not in blobs:
            continue
        arrays = node.impl.blobs_to_torch(list(blobs[node.name]), built.bottom_shapes(node.name))
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
    from safetensors.numpy import save_file

    from fcnkit import __version__, caffe
    from fcnkit.atomic import atomic_directory

    if result.blobs is None:
        raise SurgeryError("the surgery result has no weights; run it with weights (or "
                           "fill_missing=True) to write a caffemodel")
    outdir = Path(outdir)
    built = build(result.param, what="write")
    header = f"written by fcnkit {__version__} surgery" + (f" from {source}" if source else "")
    state = torch_state(result.param, result.blobs)
    with atomic_directory(outdir, force=force) as tmp:
        caffe.write_prototxt(tmp / "net.prototxt", result.param, header=header)
        caffe.write_caffemodel(tmp / "net.caffemodel", result.param, result.blobs)
        save_file(state, str(tmp / "weights.safetensors"), metadata={"source": source or "",
                                                                     "fcnkit": __version__})
        title = f"fcnkit surgery report: {result.param.name or 'net'}"
        (tmp / "report.md").write_text(
            result.report.to_markdown(title) + (f"\nSource: {source}\n" if source else ""),
            encoding="utf-8")
        doc = result.report.to_dict()
        doc["source"] = source
        (tmp / "report.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        meta = {
            "fcnkit_version": __version__, "name": result.param.name, "source": source,
            "phase": "TEST", "level": 0, "stages": [], "deploy": False,
            "input_shapes": {built.net.blob_name[b]: list(built.shapes[b]) for b in built.net.inputs},
            "inputs": [built.net.blob_name[b] for b in built.net.inputs],
            "outputs": [built.net.blob_name[b] for b in built.net.outputs],
            "written_by": "fcnkit surgery",
        }
        (tmp / "fcnkit.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return outdir
