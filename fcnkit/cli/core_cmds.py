"""Core commands: compile, offsets, run, verify, layers."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from fcnkit.cli.common import (ClassesOpt, InputShapeOpt, LevelOpt, PhaseOpt, StageOpt, console,
                               default_prototxt, err_console, input_shapes_cli, load_net_cli, print_table)
from fcnkit.cli.weights_report import AllowMissingWeightsOpt, print_weights_report
from fcnkit.errors import InputError


def compile_cmd(
    net_path: Optional[Path] = typer.Argument(None, help="prototxt (default: bundled FCN-8s deploy)"),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="caffemodel with trained weights"),
    input_shape: Optional[List[str]] = InputShapeOpt,
    out: Optional[Path] = typer.Option(None, "-o", "--output", help="write the compiled model directory"),
    onnx: Optional[Path] = typer.Option(None, "--onnx", help="also export ONNX to this file"),
    deploy: bool = typer.Option(False, "--deploy", help="drop loss/metric layers and label inputs"),
    force: bool = typer.Option(False, "--force", help="with -o: replace DIR even if it is not an earlier fcnkit output"),
    fmt: str = typer.Option("table", "--format", help="table (terminal), markdown, csv, html or json"),
    phase: str = PhaseOpt, stage: Optional[List[str]] = StageOpt, level: int = LevelOpt,
    allow_missing_weights: bool = AllowMissingWeightsOpt,
    classes: Optional[int] = ClassesOpt,
):
    """Compile a Caffe net to a torch.fx module; print the layer table (shapes, params,
    FLOPs, scale factors, offsets); write it with -o DIR (code, safetensors, prototxt)."""
    from fcnkit.analysis import analyse, crop_table
    from fcnkit.atomic import check_writable
    from fcnkit.compile import compile_net
    from fcnkit.compile.report import compile_report

    _check_format(fmt, ("table", "markdown", "csv", "html", "json"))
    _check_outputs(out, onnx, force)
    if net_path is None:
        net_path = default_prototxt()
        console.print(f"[dim]no prototxt given: compiling the bundled FCN-8s deploy net ({net_path.name})[/dim]",
                      soft_wrap=True)
    shapes = input_shapes_cli(input_shape)
    net = load_net_cli(net_path, phase, stage, level, deploy=deploy, classes=classes,
                       input_shapes=shapes)
    analysis = analyse(net, shapes)
    if out is not None:  # free space for the weights (float32) and the small files, before compiling
        check_writable(out, need_bytes=analysis.total_params * 4 + (1 << 20))
    # the path, not a CaffeModel: compile_net then holds the weights once (no copy)
    compiled = compile_net(net, weights or None, deploy=deploy, analysis=analysis,
                           allow_missing_weights=allow_missing_weights)
    print_weights_report(compiled.load_report)
    crops = crop_table(net)
    if fmt == "json":
        console.print_json(json.dumps(compile_report(compiled, crops)))
    elif fmt == "table":
        from fcnkit.cli.tables import COMPILE_DROP, COMPILE_KEEP

        print_table(f"{net.name or net_path.name} ({net.state.phase_name})", *analysis.layer_cells(),
                    keep=COMPILE_KEEP, drop=COMPILE_DROP)
    else:
        console.print(analysis.layer_table(fmt), end="", markup=False)
    if fmt in ("table", "markdown"):
        console.print(f"total: {analysis.total_params:,} learnable parameters, "
                      f"{analysis.total_flops / 1e9:,.2f} GFLOP per forward pass")
        console.print(f"inputs: {', '.join(f'{k} {v}' for k, v in compiled.input_shapes.items())}; "
                      f"outputs: {', '.join(compiled.outputs)}")
        for m in analysis.coords.inconsistencies:
            console.print(f"warning: misaligned branches: {m}", markup=False, soft_wrap=True)
        for c in crops:
            status = c.status()
            if status == "MISMATCH":
                status += ": run `fcnkit offsets --fix`"
            console.print(f"crop {c.layer}: declared {c.declared}, computed {c.computed} -> {status}",
                          markup=False)
        console.print(f"weights: {compiled.weights.summary()}", markup=False, soft_wrap=True)
    _write_outputs(compiled, out, onnx, force)


def _check_format(fmt: str, formats) -> None:
    """A --format value that is not one of ``formats`` is refused before any work."""
    if fmt not in formats:
        raise InputError(f"--format must be one of {', '.join(formats)}, got '{fmt}'")


def _check_outputs(out: Optional[Path], onnx: Optional[Path], force: bool) -> None:
    """Every output location of ``compile`` is checked before the work, not after."""
    from fcnkit.atomic import check_output_directory, check_writable
    from fcnkit.errors import OutputExistsError

    if out is not None:
        check_output_directory(out, force=force)
        check_writable(out)
    if onnx is not None:
        if onnx.is_dir():
            raise OutputExistsError(f"--onnx {onnx} is a directory; give a file name")
        check_writable(onnx)


def _write_outputs(compiled, out: Optional[Path], onnx: Optional[Path], force: bool) -> None:
    """``compile``'s outputs, all or none: the ONNX file is exported (and checked) to a
    temporary sibling first, then committed together with the directory."""
    from fcnkit.compile import save_compiled

    if onnx is None:
        if out is not None:
            save_compiled(compiled, out, force=force)
            console.print(f"wrote {out}/ (model.py, weights.safetensors, net.prototxt, fcnkit.json)")
        return
    import tempfile

    from fcnkit.deploy.onnx import export_onnx

    onnx.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{onnx.name}.{os.getpid()}.", suffix=".tmp",
                                     dir=onnx.parent) as tmpdir:
        staged = Path(tmpdir) / onnx.name
        result = export_onnx(compiled, staged)
        if out is not None:
            save_compiled(compiled, out, force=force, companions={staged: onnx})
            console.print(f"wrote {out}/ (model.py, weights.safetensors, net.prototxt, fcnkit.json)")
        else:
            from fcnkit.atomic import atomic_open

            with atomic_open(onnx, "wb") as f, open(staged, "rb") as src:
                shutil.copyfileobj(src, f)
    console.print(f"wrote {onnx} ({result.summary()})")


def offsets_cmd(
    net_path: Path = typer.Argument(..., help="prototxt"),
    fmt: str = typer.Option("table", "--format", help="table (terminal; markdown when piped), "
                            "markdown, csv, html (a complete page) or json"),
    check: bool = typer.Option(False, "--check", help="exit 1 if a Crop layer's declared offset differs from the computed one"),
    strict: bool = typer.Option(False, "--strict", help="with --check: half-pixel crops (no pixel-exact integer offset) fail too"),
    fix: bool = typer.Option(False, "--fix", help="write the computed offsets into every Crop layer (needs -o)"),
    out: Optional[Path] = typer.Option(None, "-o", "--output", help="with --fix: the prototxt to write; else: the report file"),
    phase: str = PhaseOpt, stage: Optional[List[str]] = StageOpt, level: int = LevelOpt,
    classes: Optional[int] = ClassesOpt, input_shape: Optional[List[str]] = InputShapeOpt,
):
    """Print the per-layer scale factor / offset table (DIGITS Table 2 layout) and the Crop
    layers' declared vs computed offsets; --check, --fix."""
    from fcnkit import caffe
    from fcnkit.analysis import (FORMATS, analyse_coord_maps, crop_table, fix_crop_offsets_text,
                                 offset_table, render_offsets)
    from fcnkit.atomic import write_text
    from fcnkit.graph import NetState, load_net

    _check_format(fmt, ("table", *FORMATS))
    if fix and out is None:
        raise InputError("--fix needs -o OUT.prototxt (the input file is never overwritten in place)")
    source = caffe.read_prototxt(net_path)
    net = load_net(source, NetState.make(phase, level, stage or ()), allow_unsupported=True,
                   classes=classes, input_shapes=input_shapes_cli(input_shape))
    coords = analyse_coord_maps(net)
    rows = offset_table(net, coords)
    crops = crop_table(net)
    title = f"{net.name or net_path.name}: scale factors and offsets"
    text = render_offsets(rows, crops, "markdown" if fmt == "table" else fmt, title=title,
                          strict=strict, misaligned=coords.inconsistencies)
    if fix:
        from fcnkit.caffe.textformat import read_text_file

        write_text(out, fix_crop_offsets_text(net, read_text_file(net_path), str(net_path)))
        for c in crops:
            console.print(f"crop {c.layer}: offset {c.declared} -> {c.computed}", markup=False)
        console.print(f"wrote {out}")
        return
    if out is not None:
        write_text(out, text)
        console.print(f"wrote {out}")
    elif fmt == "table" and console.is_terminal:
        from fcnkit.cli.tables import print_offsets

        print_offsets(console, rows, crops, title, strict, coords.inconsistencies)
    else:
        console.print(text, end="", markup=False, soft_wrap=True)
    if check:
        bad = [c for c in crops if not c.passes(strict)]
        for c in bad:
            console.print(f"crop {c.layer}: declared {c.declared}, computed {c.computed}: "
                          f"{c.status(strict)}", markup=False, soft_wrap=True)
        for m in coords.inconsistencies:
            console.print(f"misaligned: {m}", markup=False, soft_wrap=True)
        if bad or coords.inconsistencies:
            raise typer.Exit(1)


def run_cmd(
    net_path: Path = typer.Argument(..., help="prototxt"),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w"),
    inputs: List[str] = typer.Option(..., "--input", "-i", help="x.npy or an image (PNG, JPEG, TIFF), "
                                     "or name=FILE once per input"),
    out: Path = typer.Option(..., "-o", "--output", help="output .npz (or .npy when the net has one output)"),
    all_blobs: bool = typer.Option(False, "--all-blobs", help="save every blob, not only the net outputs; "
                                   "a blob rewritten in place is saved once per version, as "
                                   "'blob' (first) and 'blob@layer' (written by that layer)"),
    phase: str = PhaseOpt, stage: Optional[List[str]] = StageOpt, level: int = LevelOpt,
    allow_missing_weights: bool = AllowMissingWeightsOpt,
    mean: Optional[str] = typer.Option(None, "--mean", help="images: mean to subtract, a .npy (C or C,H,W) "
                                       "or comma values per channel (as classify.py --mean_file)"),
    raw_scale: Optional[float] = typer.Option(None, "--raw-scale", help="images: multiply the [0,1] "
                                              "pixels by this before the mean (classify.py: 255)"),
    channel_swap: Optional[str] = typer.Option(None, "--channel-swap", help="images: channel order, "
                                               "e.g. 2,1,0 for RGB -> BGR (classify.py's default)"),
    input_scale: Optional[float] = typer.Option(None, "--input-scale", help="images: multiply by this "
                                                "after the mean"),
    classes: Optional[int] = ClassesOpt,
):
    """Run a forward pass on .npy or image inputs and save the net outputs (keyed by Caffe
    blob name). Images are preprocessed as pycaffe's caffe.io.Transformer does."""
    import torch

    from fcnkit.atomic import atomic_open
    from fcnkit.compile import to_numpy
    from fcnkit.compile.image_input import Preprocess, image_kind
    from fcnkit.compile.inputs import compile_for_inputs

    pre = Preprocess.from_options(mean, raw_scale, channel_swap, input_scale)
    net, arrays = _net_for_arrays(net_path, inputs, phase, stage, level, classes, pre)
    for spec in inputs:
        path = spec if Path(spec).exists() else spec.partition("=")[2]
        if image_kind(path):
            err_console.print(f"{path}: {pre.describe()}", markup=False, soft_wrap=True)
    compiled = compile_for_inputs(net, weights, arrays, deploy=True,
                                  allow_missing_weights=allow_missing_weights)
    print_weights_report(compiled.load_report)
    if out.suffix.lower() == ".npy" and (all_blobs or len(compiled.outputs) != 1):
        raise InputError(f"-o {out}: a .npy file holds one array, but the run saves "
                         f"{'every blob' if all_blobs else ', '.join(compiled.outputs)}; "
                         "give an .npz file name")
    tensors = [torch.from_numpy(arrays[n]) for n in compiled.inputs]
    if all_blobs:
        values = compiled.run_all(*tensors)
        result = {bid: v for bid, v in values.items()}
    else:
        with torch.no_grad():  # eval mode: fused, channels-last (docs/performance.md)
            result = compiled(*tensors)
    result = to_numpy(result)
    with atomic_open(out, "wb") as f:
        if out.suffix.lower() == ".npy":
            np.save(f, next(iter(result.values())))
        else:
            np.savez(f, **result)
    for k, v in result.items():
        if all_blobs and k not in compiled.outputs:
            continue
        console.print(f"{k}: shape {v.shape}, min {v.min():.6g}, max {v.max():.6g}", markup=False)
    console.print(f"wrote {out} ({len(result)} array{'s' if len(result) != 1 else ''})")


def verify_cmd(
    net_path: Path = typer.Argument(..., help="prototxt"),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w"),
    reference: Path = typer.Option(..., "--reference",
                                   help="npz of outputs keyed by layer name or by blob name (detected)"),
    inputs: List[str] = typer.Option(..., "--input", "-i", help="x.npy, or name=x.npy once per input"),
    tolerance: float = typer.Option(1e-4, "--tolerance", help="max |diff| / max |reference| per layer"),
    keys: str = typer.Option("auto", "--keys", help="what the reference keys name: auto, layer "
                             "(each layer's own output, OpenCV) or blob (after in-place layers, pycaffe)"),
    phase: str = PhaseOpt, stage: Optional[List[str]] = StageOpt, level: int = LevelOpt,
    allow_missing_weights: bool = AllowMissingWeightsOpt,
    classes: Optional[int] = ClassesOpt,
):
    """Compare every layer's output against a reference dump; say which key convention it
    found and how many layers were compared; exit 1 beyond tolerance or when a reference key
    is not computed by the net."""
    import torch

    from fcnkit.compile.inputs import compile_for_inputs, read_reference
    from fcnkit.compile.verify import CONVENTIONS, verify_reference

    net, arrays = _net_for_arrays(net_path, inputs, phase, stage, level, classes)
    compiled = compile_for_inputs(net, weights, arrays, deploy=True,
                                  allow_missing_weights=allow_missing_weights)
    print_weights_report(compiled.load_report)
    ref = read_reference(reference)
    v = verify_reference(compiled, [torch.from_numpy(arrays[n]) for n in compiled.inputs], ref, keys)
    console.print(f"reference keyed by {CONVENTIONS[v.convention]}: {v.reason}", markup=False, soft_wrap=True)
    table = [[r.layer, r.type, "x".join(map(str, r.shape)), f"{r.max_abs:.3g}", f"{r.relative:.3g}",
              "ok" if r.relative <= tolerance else "FAIL"] for r in v.rows]
    print_table(f"{net_path.name} vs {reference.name}",
                [v.convention, "type", "shape", "max |diff|", "relative", "status"], table)
    if not v.rows:
        raise InputError(f"{reference}: no key matches a {v.convention} of the net "
                         f"(keys: {', '.join(list(ref)[:10])})")
    counted = f"compared {v.compared} of {v.total} {v.unit}"
    status = v.status(tolerance)
    if v.missing:
        console.print(f"[red]missing[/red]: reference keys the net does not compute as {v.convention}s: "
                      f"{', '.join(v.missing)}", soft_wrap=True)
    if status == "FAIL":
        console.print(f"[red]FAIL[/red]: {counted}; worst relative error {v.worst:.3g} > {tolerance:g}")
    elif status == "missing":
        console.print(f"[red]FAIL[/red]: {counted} (within {tolerance:g}, worst {v.worst:.3g}), "
                      f"{len(v.missing)} requested comparison(s) missing")
    elif status == "partial":
        console.print(f"partial: {counted} (within {tolerance:g}, worst {v.worst:.3g}); "
                      f"{v.total - v.compared} {v.unit} were not compared")
    else:
        console.print(f"ok: {counted} within {tolerance:g} (worst {v.worst:.3g})")
    if status in ("FAIL", "missing"):
        raise typer.Exit(1)


def _net_for_arrays(net_path: Path, inputs: List[str], phase: str, stage, level: int,
                    classes: Optional[int], preprocess=None):
    """The deploy net of ``run``/``verify`` and its {input blob: array}. The .npy headers are
    read first, so that their shapes can create an input the net leaves to the tool (DIGITS
    templates' deploy stage; a declared input keeps its declared shape); then every array is
    read and checked against the net's inputs (:func:`fcnkit.compile.input_files.load_inputs`)."""
    from fcnkit.compile.input_files import load_inputs, npy_input_shapes

    net = load_net_cli(net_path, phase, stage, level, deploy=True, classes=classes,
                       input_shapes=npy_input_shapes(inputs))
    return net, load_inputs(inputs, net, preprocess)



def layers_cmd():
    """List the supported Caffe layer types (and how to register a custom one)."""
    from fcnkit import layers
    from fcnkit.layers.forks import fork_layers

    console.print(", ".join(layers.registered_types()))
    console.print("Caffe-fork layer types (schemas/caffe_forks.proto): " + "; ".join(
        f"{name} ({fork})" for name, fork in fork_layers().items()), markup=False)
    console.print("Custom types: subclass fcnkit.layers.Layer and decorate it with "
                  "@fcnkit.layers.register (see `help(fcnkit.layers)`), then import the module "
                  "before loading the net, or name it in FCNKIT_PLUGINS=module1,module2.")
