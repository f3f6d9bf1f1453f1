"""``fcnkit train``: Caffe's solver semantics in PyTorch on a road dataset (fcnkit.train)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fcnkit.cli.common import console


def train_cmd(
    solver: Path = typer.Argument(..., help="solver.prototxt (net, lr policy, snapshots, ...)"),
    images: Optional[Path] = typer.Option(None, "--images", help="folder of image GeoTIFFs"),
    labels: Optional[Path] = typer.Option(None, "--labels", help="folder of road GeoJSON or label GeoTIFFs (matched by image id)"),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="CSV with columns image,label (instead of --images/--labels)"),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="caffemodel to initialise from (layers matched by name)"),
    snapshot: Optional[Path] = typer.Option(None, "--snapshot", help=".solverstate to resume from"),
    bands: str = typer.Option("wv3-8band", "--bands", help="preset (wv3-8band, wv3-rgb, wv3-rnir) or 1-based indices 6,7,8"),
    chip: int = typer.Option(256, "--chip", help="chip side in pixels"),
    batch: Optional[int] = typer.Option(None, "--batch", help="chips per batch (default: the data layer's batch_size, else 4)"),
    width: str = typer.Option("4m", "--width", help="full road width for GeoJSON labels (4m, 13px)"),
    split: Optional[Path] = typer.Option(None, "--split", help="split file (default PREFIX.split.json; reused if present)"),
    workers: int = typer.Option(2, "--workers", help="DataLoader worker processes"),
    max_iter: Optional[int] = typer.Option(None, "--max-iter", help="override the solver's max_iter"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N"),
    amp: Optional[str] = typer.Option(None, "--amp", help="bf16 or fp16 mixed precision (CUDA only)"),
    channels_last: bool = typer.Option(False, "--channels-last", help="NHWC memory format"),
    compile_: bool = typer.Option(False, "--torch-compile", help="wrap the net with torch.compile"),
    loss: str = typer.Option("softmax", "--loss", help="softmax (the net's loss layer), bce-dice (0.8 BCE + 0.2 Dice) or dice-focal (0.25 Dice + 0.75 focal)"),
    patience: int = typer.Option(0, "--patience", help="stop after N tests without a better test loss"),
    apls: bool = typer.Option(False, "--apls", help="at each test, mean APLS of the whole validation scenes (mask -> graph -> APLS)"),
    speed_bins: Optional[Path] = typer.Option(None, "--speed-bins", help="CRESI speed-bin CSV: train a road-speed model (one channel per bin + all roads; per-channel focal + dice)"),
    tensorboard: Optional[Path] = typer.Option(None, "--tensorboard", help="also log the figures as TensorBoard scalars into this folder (needs the tensorboard package)"),
    csv: Optional[Path] = typer.Option(None, "--csv", help="write a CSV log (iter, phase, name, value)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
):
    """Train the net of a solver.prototxt with Caffe's exact update rules; write
    PREFIX_iter_N.caffemodel + .solverstate snapshots (Ctrl-C snapshots and stops)."""
    from fcnkit.errors import InputError
    from fcnkit.train.loop import TrainOptions
    from fcnkit.train.run import DataOptions, parse_bands, train_from_solver

    if amp not in (None, "bf16", "fp16"):
        raise InputError(f"--amp '{amp}': use bf16 or fp16")
    data = DataOptions(images, labels, pairs, parse_bands(bands), chip, batch, width, split,
                       workers=workers, speed_bins=speed_bins)
    with _progress(progress) as on_iter:
        options = TrainOptions(device=device, amp=amp, channels_last=channels_last,
                               compile=compile_, patience=patience, csv_path=csv, tensorboard=tensorboard,
                               log=lambda line: console.print(line, markup=False),
                               on_iter=on_iter)
        result = train_from_solver(solver, data, weights=weights, resume=snapshot,
                                   options=options, max_iter=max_iter, loss=loss,
                                   apls=apls)
    console.print(f"Optimization done at iteration {result.iter} ({result.stopped}); "
                  f"last snapshot: {result.snapshots[-1][0] if result.snapshots else 'none'}",
                  markup=False)


class _progress:
    """A rich progress bar fed by the loop's on_iter callback (or nothing)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and console.is_terminal

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import Progress

        self.bar = Progress(console=console, transient=True)
        self.bar.start()
        self.task = self.bar.add_task("training", total=None)
        return lambda it: self.bar.update(self.task, completed=it, description=f"iter {it}")

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()
        return False


def register(app: typer.Typer) -> None:
    """Add ``fcnkit train`` to the top-level app."""
    app.command("train")(train_cmd)
