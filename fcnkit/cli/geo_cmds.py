"""``fcnkit predict``: road models over GeoTIFF scenes (thin: parse options, call
:mod:`fcnkit.geo`, print progress and a summary with rich)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from fcnkit.cli.common import console, err_console


def predict_cmd(
    model: str = typer.Argument(..., help="prototxt (+ -w), compiled model dir, zoo name, .onnx or .engine"),
    scenes: List[str] = typer.Argument(..., help="GeoTIFF files, directories or globs"),
    outdir: Path = typer.Option(..., "-o", "--outdir", help="output folder"),
    weights: Optional[Path] = typer.Option(None, "-w", "--weights", help="caffemodel for a prototxt or zoo name"),
    backend: str = typer.Option("auto", "--backend", help="auto, torch, onnxruntime or tensorrt"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda[:N] (default: CUDA when available)"),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="fp32, fp16 or bf16 (torch backend)"),
    bands: Optional[str] = typer.Option(None, "--bands", help="preset (wv3-8band, wv3-rgb, wv3-rnir) or a "
                                        "1-based list such as 5,3,2"),
    stretch: str = typer.Option("2,98", "--stretch", help="P1,P2 percentiles, none, or model (stored with it)"),
    tile: Optional[int] = typer.Option(None, "--tile", help="tile size in pixels (default: the model's, else 512)"),
    halo: Optional[int] = typer.Option(None, "--halo", help="overlap per side in pixels (default: from the "
                                       "receptive field, at most tile/4)"),
    blend: str = typer.Option("hann", "--blend", help="hann, linear or none"),
    batch: Optional[int] = typer.Option(None, "--batch", help="tiles per batch"),
    tta: str = typer.Option("none", "--tta", help="none or flip (mean over the identity and 3 flips)"),
    probabilities: Optional[str] = typer.Option(None, "--probabilities", help="also write road probability: "
                                                "uint8 or float (16-bit floats)", show_default=False),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="road probability threshold "
                                              "(default: argmax)"),
    cog: bool = typer.Option(False, "--cog", help="write Cloud-Optimized GeoTIFFs"),
    overlay: Optional[str] = typer.Option(None, "--overlay", help="quicklook picture: png or jpg"),
    overlay_width: int = typer.Option(1024, "--overlay-width", help="quicklook width in pixels"),
    resume: bool = typer.Option(False, "--resume", help="skip scenes whose outputs are complete"),
    ray: Optional[str] = typer.Option(None, "--ray", help="run on Ray: 'local' starts a local instance, or "
                                      "a cluster address (auto, ray://host:10001)"),
):
    """Predict road masks for SCENES with MODEL; write georeferenced label GeoTIFFs (and
    optionally probabilities and quicklooks) with a JSON sidecar per scene into OUTDIR."""
    from fcnkit.errors import InputError
    from fcnkit.geo.batch import expand_scenes
    from fcnkit.geo.predict import SceneOptions
    from fcnkit.geo.tiling import BLENDS

    if probabilities not in (None, "uint8", "float"):
        raise InputError(f"--probabilities must be uint8 or float, got '{probabilities}'")
    if tta not in ("none", "flip"):
        raise InputError(f"--tta must be none or flip, got '{tta}'")
    if blend not in BLENDS:
        raise InputError(f"--blend must be one of {', '.join(BLENDS)}, got '{blend}'")
    if overlay not in (None, "png", "jpg"):
        raise InputError(f"--overlay must be png or jpg, got '{overlay}'")
    from fcnkit.geo.stretch import parse_stretch_option

    parse_stretch_option(stretch)
    _check_outdir(outdir)
    paths = expand_scenes(scenes)
    opts = SceneOptions(bands=bands, stretch=stretch, tile=tile, halo=halo, blend=blend, batch=batch, tta=tta,
                        threshold=threshold, probabilities=probabilities, cog=cog, overlay=overlay,
                        overlay_width=overlay_width)
    popts = {"backend": backend, "device": device, "dtype": dtype, "weights": weights, "model_name": model,
             "batch_size": batch}
    run = _run(model, paths, outdir, opts, popts, resume, ray)
    _summary(run)
    if run.failures:
        err_console.print(f"[bold red]error:[/bold red] {len(run.failures)} scene(s) failed: "
                          f"{escape(', '.join(run.failures))}", soft_wrap=True)
        raise typer.Exit(1)


def _check_outdir(outdir: Path) -> None:
    import os

    from fcnkit.errors import OutputError

    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"{outdir} exists and is a file; -o names a folder")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{outdir}: cannot create the output folder ({e.strerror or e})") from None
    if not os.access(outdir, os.W_OK | os.X_OK):
        raise OutputError(f"{outdir}: the output folder is not writable")


def _run(model, paths, outdir, opts, popts, resume, ray):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fcnkit.geo.batch import predict_scenes

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        overall = bar.add_task("scenes", total=len(paths))
        tasks: dict[str, int] = {}

        def on_tiles(scene, done, total):
            if scene not in tasks:
                tasks[scene] = bar.add_task(Path(scene).name, total=total)
            bar.update(tasks[scene], completed=done)

        def on_scene(scene, kind, value):
            if kind in ("done", "skipped", "failed"):
                bar.advance(overall)
            if scene in tasks and kind != "retry":
                bar.remove_task(tasks.pop(scene))
            if kind == "failed":
                err_console.print(f"[bold red]failed:[/bold red] {escape(value)}", soft_wrap=True)
            elif kind == "retry":
                err_console.print(f"[yellow]retrying[/yellow] {escape(scene)}: {escape(value)}", soft_wrap=True)
            elif kind == "done":
                for w in value.warnings:
                    err_console.print(f"[bold yellow]warning:[/bold yellow] {escape(w)}", soft_wrap=True)

        return predict_scenes(model, paths, outdir, opts, resume=resume, predictor_options=popts, ray=ray,
                              on_scene=on_scene, progress=on_tiles)


def _summary(run) -> None:
    mpx = sum(r.megapixels for r in run.results)
    secs = sum(r.seconds for r in run.results)
    skipped_tiles = sum(r.skipped_tiles for r in run.results)
    rate = mpx / secs if secs > 0 else 0.0
    console.print(f"scenes: {len(run.results)} done, {len(run.skipped)} skipped (complete), "
                  f"{len(run.failures)} failed; {mpx:.2f} Mpx in {secs:.1f} s ({rate:.2f} Mpx/s); "
                  f"skipped nodata tiles: {skipped_tiles}", markup=False, soft_wrap=True)
    for backend in sorted({r.backend for r in run.results if r.backend}):
        console.print(f"backend: {backend}", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``predict`` to the fcnkit command line."""
    app.command("predict")(predict_cmd)
