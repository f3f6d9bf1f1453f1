"""``fcnkit surgery``: classifier (prototxt + caffemodel, or a compiled model directory) ->
FCN prototxt + caffemodel + safetensors + report, in one atomic output directory."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from fcnkit.cli.common import console
from fcnkit.cli.weights_report import AllowMissingWeightsOpt, print_weights_report
from fcnkit.errors import InputError


def surgery_cmd(
    classifier: Path = typer.Argument(..., help="classifier prototxt, or a compiled fcnkit model directory"),
    weights: Optional[Path] = typer.Argument(None, help="classifier caffemodel (omit: every layer from its filler)"),
    out: Path = typer.Option(..., "-o", "--output", help="output directory (written atomically)"),
    classes: Optional[int] = typer.Option(None, "--classes", help="number of classes (default: the classifier's)"),
    keep_classes: Optional[bool] = typer.Option(
        None, "--keep-classes/--no-keep-classes",
        help="start the score layer from the classifier's first classes (default: on without --classes)"),
    head: str = typer.Option("fcn32s", "--head", help="fcn32s, fcn16s, fcn8s or none"),
    pad: int = typer.Option(100, "--pad", help="padding of the first convolution (FCN: 100; -1 keeps it)"),
    pools: Optional[str] = typer.Option(None, "--pools", help="skip layers, coarse to fine (default pool4,pool3)"),
    group: str = typer.Option("classes", "--group", help="upsampling group: 'classes' (Caffe bilinear filler) or 1 (FCN interp)"),
    kernel: Optional[int] = typer.Option(None, "--kernel", help="kernel of the last upsampling (default: computed)"),
    bands: Optional[int] = typer.Option(
        None, "--bands", help="number of input bands (e.g. 8 for WorldView-3). The pretrained "
        "first convolution's filters are combined: a mapped band copies one R/G/B filter, "
        "the others start from their mean (Wang et al., Temporal Segment Networks, ECCV 2016); "
        "the bank is scaled by s = 3 / (total source weight), which keeps the response to a "
        "constant input (s = 3/8 for 8 bands, as timm's adapt_input_conv); bias kept. "
        "Without pretrained weights it is filled for the new bands instead"),
    band_map: Optional[str] = typer.Option(
        None, "--band-map", help="1-based band <- source: wv3-rgb (default for 8: 5=R,3=G,2=B), "
        "wv3-rnir (red edge, NIR1, NIR2 <- R, G, B: 6=R,7=G,8=B), or text like '5=R,3=G,2=B' "
        "(sources R, G, B or 0-based channels); the scale rule is that of --bands"),
    band_fill: str = typer.Option("mean", "--band-fill", help="unmapped bands: mean of the RGB filters, or zero"),
    source_order: str = typer.Option("BGR", "--source-order", help="channel order of the classifier (Caffe: BGR)"),
    suffix: str = typer.Option("", "--suffix", help="suffix for converted layers, e.g. -conv (BVLC)"),
    input_shape: Optional[str] = typer.Option(
        None, "--input-shape", help="declared input of the FCN: H,W or N,C,H,W; for a classifier "
        "whose input declares no shape (Data layers, e.g. a train_val.prototxt): its input "
        "shape N,C,H,W, used from the start"),
    reinit: Optional[List[str]] = typer.Option(
        None, "--reinit", help="classifier layer to initialise by its filler instead of from "
        "the caffemodel (e.g. a blob with another element count); repeatable or comma-separated"),
    seed: int = typer.Option(0, "--seed", help="seed of random fillers"),
    classifier_layer: Optional[str] = typer.Option(
        None, "--classifier", help="the classifier's scoring layer (e.g. fc8), as named in the "
        "classifier; default: found by walking back from the net's outputs"),
    force: bool = typer.Option(False, "--force", help="replace OUTDIR even if it is not an earlier fcnkit output"),
    allow_missing_weights: bool = AllowMissingWeightsOpt,
):
    """Classifier -> FCN: fc layers become convolutions, an FCN head (score, bilinear upscore,
    skips, computed crops) is added, optionally new classes and input bands; writes
    OUTDIR/net.prototxt, net.caffemodel, weights.safetensors, report.md, report.json."""
    from fcnkit.atomic import check_output_directory
    from fcnkit.surgery import fcn_surgery, load_classifier, write_outdir

    check_output_directory(out, force=force)  # refuse before the work, not after

    if group not in ("classes", "1"):
        raise InputError(f"--group must be 'classes' or 1, got '{group}'")
    if band_map is not None and bands is None:
        raise InputError("--band-map needs --bands (the number of input bands, e.g. 8)")
    param, blobs, desc = load_classifier(classifier, weights)
    shape = _input_shape(param, input_shape) if input_shape else None
    reinit_names = [n.strip() for r in reinit or () for n in r.split(",") if n.strip()]
    result = fcn_surgery(
        param, blobs, classes=classes, keep_classes=keep_classes, head=head,
        pad=None if pad < 0 else pad,
        pools=[p.strip() for p in pools.split(",") if p.strip()] if pools else None,
        group="classes" if group == "classes" else 1, kernel=kernel, bands=bands,
        band_map=band_map, band_fill=band_fill, source_order=source_order, suffix=suffix,
        input_shape=shape, reinit=reinit_names, seed=seed, classifier=classifier_layer,
        allow_missing_weights=allow_missing_weights)
    write_outdir(result, out, source=desc, force=force)
    _print_result(result, out)


def _print_result(result, out: Path) -> None:
    """What the surgery did: the weights load report (stderr), the steps, the layer counts,
    the crops, the band adaptation, the notes."""
    print_weights_report(result.weights_report)
    rep = result.report
    for s in rep.steps:
        console.print(f"- {s}", markup=False)
    counts = ", ".join(f"{v} {k}" for k, v in rep.counts().items() if v)
    console.print(f"layers: {counts}", markup=False)
    for layer, (oy, ox) in rep.crop_offsets.items():
        console.print(f"crop {layer}: offset {oy if oy == ox else (oy, ox)} (computed)", markup=False)
    if rep.bands:
        b = rep.bands
        how = (f"scale {b['scale']:.6g}" if b["adapted"] else
               f"'{b['layer']}' initialised by its filler (no pretrained weights to adapt)")
        console.print(f"bands: {b['source_channels']} -> {b['bands']} ({b['preset']}), {how}",
                      markup=False)
    for n in rep.notes:
        console.print(f"note: {n}", markup=False)
    console.print(f"wrote {out}/ (net.prototxt, net.caffemodel, weights.safetensors, report.md, "
                  "report.json, fcnkit.json)", markup=False)


def _input_shape(param, text: str):
    """``--input-shape`` as H,W, N,C,H,W or name=N,C,H,W (the form of ``compile``; the
    name must be the classifier's first input blob)."""
    from fcnkit.analysis import parse_input_shapes
    from fcnkit.surgery import first_input_name

    (name, shape), = parse_input_shapes([text]).items()
    if len(shape) not in (2, 4):
        raise InputError(f"--input-shape must be H,W or N,C,H,W, got '{text}'")
    if name is not None:
        first = first_input_name(param)
        if name != first:
            raise InputError(f"--input-shape names '{name}', but the classifier's input is '{first}'")
    return shape


def register(app: typer.Typer) -> None:
    """Add the ``surgery`` command to the fcnkit typer app."""
    app.command("surgery")(surgery_cmd)
