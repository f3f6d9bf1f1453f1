"""Deployment commands: ``fcnkit export`` (ONNX, parity-checked) and ``fcnkit engine``
(TensorRT). Thin: parse options, call :mod:`fcnkit.deploy`, print."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from fcnkit.cli.common import (ClassesOpt, InputShapeOpt, StageOpt, console, err_console,
                               input_shapes_cli)
from fcnkit.cli.weights_report import AllowMissingWeightsOpt


def export_cmd(
    model: str = typer.Argument(..., help="prototxt (+ --weights), compiled model directory, or zoo model name"),
    out: Path = typer.Option(..., "-o", "--output", help="ONNX file to write"),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w",
                                           help="caffemodel for a prototxt or a zoo model"),
    opset: int = typer.Option(18, "--opset", help="ONNX opset of the file (>= 13; the file's opset is checked)"),
    tile: Optional[str] = typer.Option(None, "--tile", help="H,W of the input tile in pixels (default: as declared)"),
    input_shape: Optional[List[str]] = InputShapeOpt,
    batch: str = typer.Option("dynamic", "--batch", help="batch size N, or 'dynamic' (a dynamic batch axis)"),
    dtype: str = typer.Option("fp32", "--dtype", help="fp32 or fp16 (weights, activations and I/O)"),
    dynamic_hw: bool = typer.Option(False, "--dynamic-hw",
                                    help="dynamic H and W (exit 2, naming the layer, when the net fixes them)"),
    tolerance: Optional[float] = typer.Option(None, "--tolerance",
                                              help="relative parity tolerance (default 1e-4 fp32, 1e-2 fp16)"),
    fill_untrained: bool = typer.Option(False, "--fill-untrained",
                                        help="give all-zero (untrained) weights seeded random values first, so "
                                             "that parity means something; the file is then for benchmarks only"),
    no_check: bool = typer.Option(False, "--no-check", help="skip the checker and the parity run (not advised)"),
    allow_missing_weights: bool = AllowMissingWeightsOpt,
    stage: Optional[List[str]] = StageOpt, classes: Optional[int] = ClassesOpt,
    exporter: str = typer.Option("auto", "--exporter",
                                 help="auto: torch's TorchScript exporter where it applies (fp32, static H and W, "
                                      "no custom ops; much faster), else dynamo; dynamo: always torch.export"),
):
    """Export MODEL to ONNX, check it (onnx.checker, shape inference) and compare it with torch in
    ONNX Runtime; fail (and write nothing) beyond the tolerance. A warning says when the comparison
    was not meaningful (an untrained net whose output does not change with the input)."""
    from fcnkit.deploy.onnx import export_model

    result = export_model(model, out, weights=weights, tile=tile, batch=batch, opset=opset, dtype=dtype,
                          input_shapes=input_shapes_cli(input_shape), fill_untrained=fill_untrained,
                          dynamic_hw=dynamic_hw, tolerance=tolerance, check=not no_check,
                          allow_missing_weights=allow_missing_weights,
                          stages=stage or (), classes=classes,
                          exporter=exporter)
    for line in result.lines():
        if line.startswith("warning:"):
            # prominent: a parity run that cannot fail is easy to mistake for a passed one
            err_console.print(f"[bold yellow]warning:[/bold yellow] {escape(line[len('warning: '):])}",
                              soft_wrap=True)
        else:
            (err_console if line.startswith("note:") else console).print(line, markup=False, soft_wrap=True)
    console.print(f"wrote {out} ({result.summary()}; {result.size_bytes / 2**20:.1f} MiB)", markup=False,
                  soft_wrap=True)


def engine_cmd(
    onnx_path: Path = typer.Argument(..., help="ONNX file (from `fcnkit export`)"),
    out: Path = typer.Option(..., "-o", "--output", help="engine file to write"),
    batch: Optional[str] = typer.Option(None, "--batch", help="profile batch sizes min,opt,max (N = 1,N,N); "
                                        "default 1,8,16 for a dynamic batch axis"),
    tile: Optional[str] = typer.Option(None, "--tile", help="H,W to build for when the ONNX file has dynamic H and W"),
    workspace: int = typer.Option(4096, "--workspace", help="workspace memory pool limit, MiB"),
    timing_cache: Optional[Path] = typer.Option(None, "--timing-cache", help="timing cache file (read, then updated)"),
    opt_level: Optional[int] = typer.Option(None, "--opt-level", help="builder optimisation level 0..5 (TensorRT default 3)"),
    fp16: bool = typer.Option(False, "--fp16", help="TensorRT 10 only: allow fp16 kernels (11 follows the ONNX precision)"),
    no_check: bool = typer.Option(False, "--no-check", help="skip the engine-vs-ONNX Runtime parity run"),
    verbose: bool = typer.Option(False, "--verbose", help="print TensorRT's verbose log"),
):
    """Build a TensorRT engine from an ONNX file (one optimisation profile over the batch axis,
    persistent timing cache) and write it atomically, with a JSON description beside it."""
    from fcnkit.deploy.tensorrt import build_engine

    result = build_engine(onnx_path, out, batch=batch, tile=tile, workspace_mib=workspace,
                          timing_cache=timing_cache, opt_level=opt_level, fp16=fp16, check=not no_check,
                          verbose=verbose)
    console.print(f"wrote {out} and {result.sidecar.name} ({result.summary()})", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``export`` and ``engine`` to the fcnkit command line."""
    app.command("export")(export_cmd)
    app.command("engine")(engine_cmd)
