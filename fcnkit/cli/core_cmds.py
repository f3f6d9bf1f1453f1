"""Core commands: compile, offsets, run, verify, layers."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from fcnkit.cli.common import (InputShapeOpt, LevelOpt, PhaseOpt, StageOpt, console,
                               default_prototxt, input_shapes_cli, load_net_cli, print_table)
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
):
    """Compile a Caffe net to a torch.fx module; print the layer table (shapes, params,
    FLOPs, scale factors, offsets); write it with -o DIR (code, safetensors, prototxt)."""
    from fcnkit import caffe
    from fcnkit.analysis import analyse, crop_table
    from fcnkit.atomic import check_writable
    from fcnkit.compile import compile_net
    from fcnkit.compile.report import compile_report

    _check_outputs(out, onnx, force)
    if net_path is None:
        net_path = default_prototxt()
        console.print(f"[dim]no prototxt given: compiling the bundled FCN-8s deploy net ({net_path.name})[/dim]",
                      soft_wrap=True)
    net = load_net_cli(net_path, phase, stage, level)
    analysis = analyse(net, input_shapes_cli(input_shape))
    if out is not None:  # free space for the weights (float32) and the small files, before compiling
        check_writable(out, need_bytes=analysis.total_params * 4 + (1 << 20))
    model = caffe.read_caffemodel(weights) if weights else None
    compiled = compile_net(net, model, deploy=deploy, analysis=analysis)
    crops = crop_table(net)
    if fmt == "json":
        console.print_json(json.dumps(compile_report(compiled, crops)))
    elif fmt == "table":
        print_table(f"{net.name or net_path.name} ({net.state.phase_name})", *analysis.layer_cells())
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
    fmt: str = typer.Option("markdown", "--format", help="markdown, csv, html or json"),
    check: bool = typer.Option(False, "--check", help="exit 1 if a Crop layer's declared offset differs from the computed one"),
    strict: bool = typer.Option(False, "--strict", help="with --check: half-pixel crops (no pixel-exact integer offset) fail too"),
    fix: bool = typer.Option(False, "--fix", help="write the computed offsets into every Crop layer (needs -o)"),
    out: Optional[Path] = typer.Option(None, "-o", "--output", help="with --fix: the prototxt to write; else: the report file"),
    phase: str = PhaseOpt, stage: Optional[List[str]] = StageOpt, level: int = LevelOpt,
):
    """Print the per-layer scale factor / offset table (DIGITS Table 2 layout) and the Crop
    layers' declared vs computed offsets; --check, --fix."""
    from fcnkit import caffe
    from fcnkit.analysis import (FORMATS, analyse_coord_maps, crop_table, fix_crop_offsets,
                                 offset_table, render_offsets)
    from fcnkit.atomic import write_text
    from fcnkit.graph import NetState, load_net

    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if fix and out is None:
        raise InputError("--fix needs -o OUT.prototxt (the input file is never overwritten in place)")
    source = caffe.read_prototxt(net_path)
    net = load_net(source, NetState.make(phase, level, stage or ()), allow_unsupported=True)
    coords = analyse_coord_maps(net)
    rows = offset_table(net, coords)
    crops = crop_table(net)
    text = render_offsets(rows, crops, fmt, title=f"{net.name or net_path.name}: scale factors and offsets",
                          strict=strict, misaligned=coords.inconsistencies)
    if fix:
        fixed = fix_crop_offsets(net, source.param)
        caffe.write_prototxt(out, fixed, header=f"crop offsets computed by fcnkit offsets --fix from {net_path.name}")
        for c in crops:
            console.print(f"crop {c.layer}: offset {c.declared} -> {c.computed}", markup=False)
        console.print(f"wrote {out}")
        return
    if out is not None:
        write_text(out, text)
        console.print(f"wrote {out}")
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
    inputs: List[str] = typer.Option(..., "--input", "-i", help="x.npy, or name=x.npy once per input"),
    out: Path = typer.Option(..., "-o", "--output", help="output .npz"),
    all_blobs: bool = typer.Option(False, "--all-blobs", help="save every blob, not only the net outputs; "
                                   "a blob rewritten in place is saved once per version, as "
                                   "'blob' (first) and 'blob@layer' (written by that layer)"),
    phase: str = PhaseOpt, stage: Optional[List[str]] = StageOpt, level: int = LevelOpt,
):
    """Run a forward pass on .npy inputs and save the net outputs (keyed by Caffe blob name)."""
    import torch

    from fcnkit.atomic import atomic_open
    from fcnkit.compile import to_numpy
    from fcnkit.compile.inputs import compile_for_inputs, load_npy_inputs

    net = load_net_cli(net_path, phase, stage, level)
    arrays = load_npy_inputs(inputs, [net.blob_name[b] for b in net.inputs])
    compiled = compile_for_inputs(net, weights, arrays, deploy=True)
    tensors = [torch.from_numpy(arrays[n]) for n in compiled.inputs]
    if all_blobs:
        values = compiled.run_all(*tensors)
        result = {bid: v for bid, v in values.items()}
    else:
        with torch.no_grad():
            result = compiled.module(*tensors)
    result = to_numpy(result)
    with atomic_open(out, "wb") as f:
        np.savez(f, **result)
    for k, v in result.items():
        if all_blobs and k not in compiled.outputs:
            continue
        console.print(f"{k}: shape {v.shape}, min {v.min():.6g}, max {v.max():.6g}", markup=False)
    console.print(f"wrote {out} ({len(result)} arrays)")


def verify_cmd(
    net_path: Path = typer.Argument(..., help="prototxt"),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w"),
    reference: Path = typer.Option(..., "--reference", help="npz of per-layer outputs keyed by layer name"),
    inputs: List[str] = typer.Option(..., "--input", "-i", help="x.npy, or name=x.npy once per input"),
    tolerance: float = typer.Option(1e-4, "--tolerance", help="max |diff| / max |reference| per layer"),
    phase: str = PhaseOpt, stage: Optional[List[str]] = StageOpt, level: int = LevelOpt,
):
    """Compare every layer's output against a reference dump; exit 1 beyond tolerance."""
    import torch

    from fcnkit.compile.inputs import compile_for_inputs, load_npy_inputs, read_reference
    from fcnkit.compile.verify import compare_layers

    net = load_net_cli(net_path, phase, stage, level)
    arrays = load_npy_inputs(inputs, [net.blob_name[b] for b in net.inputs])
    compiled = compile_for_inputs(net, weights, arrays, deploy=True)
    ref = read_reference(reference)
    rows = compare_layers(compiled, [torch.from_numpy(arrays[n]) for n in compiled.inputs], ref)
    table = [[r.layer, r.type, "x".join(map(str, r.shape)), f"{r.max_abs:.3g}", f"{r.relative:.3g}",
              "ok" if r.relative <= tolerance else "FAIL"] for r in rows]
    print_table(f"{net_path.name} vs {reference.name}",
                ["layer", "type", "shape", "max |diff|", "relative", "status"], table)
    skipped = [k for k in ref if k not in {r.layer for r in rows}]
    if skipped:
        console.print(f"not in the compiled net: {', '.join(skipped)}", markup=False)
    worst = max((r.relative for r in rows), default=0.0)
    if not rows:
        raise InputError(f"{reference}: no key matches a layer of the net")
    if worst > tolerance:
        console.print(f"[red]FAIL[/red]: worst relative error {worst:.3g} > {tolerance:g}")
        raise typer.Exit(1)
    console.print(f"ok: {len(rows)} layers within {tolerance:g} (worst {worst:.3g})")


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
