"""Options and helpers shared by the CLI commands (the CLI stays thin: each command parses
its options, calls the library, prints)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

# soft_wrap: long lines (paths, reports) are not broken at the terminal width, so that logs
# and pipes get whole lines; rich tables still fit themselves to the terminal
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

PhaseOpt = typer.Option("TEST", "--phase", help="Net phase: TRAIN or TEST (Caffe NetState).")
StageOpt = typer.Option(None, "--stage", help="NetState stage (repeatable).")
LevelOpt = typer.Option(0, "--level", help="NetState level.")
ClassesOpt = typer.Option(
    None, "--classes", min=1,
    help="num_output of the final classifier when the prototxt leaves it unset (DIGITS templates)")
InputShapeOpt = typer.Option(
    None, "--input-shape",
    help="Input shape N,C,H,W for the first input, or name=N,C,H,W (repeatable).")


def default_prototxt() -> Path:
    """The bundled FCN-8s deploy prototxt (fcn.berkeleyvision.org)."""
    return Path(str(resources.files("fcnkit") / "data" / "voc-fcn8s-deploy.prototxt"))


def load_net_cli(path: Path, phase: str, stage: Optional[List[str]], level: int, *,
                 deploy: bool = False, classes: Optional[int] = None, input_shapes=None):
    """The net of ``path`` for the CLI's NetState options; ``deploy``, ``classes`` and
    ``input_shapes`` prepare it (:mod:`fcnkit.graph.prepare`), and what they changed is
    printed (dim) so that the user sees the net that was built."""
    from fcnkit.graph import NetState, load_net

    state = NetState.make(phase, level, stage or ())
    net = load_net(path, state, deploy=deploy, classes=classes, input_shapes=input_shapes)
    if net.prepared is not None:
        for note in net.prepared.notes():
            err_console.print(f"[dim]{escape(note)}[/dim]", soft_wrap=True)
    return net


def input_shapes_cli(specs: Optional[List[str]]):
    from fcnkit.analysis import parse_input_shapes

    return parse_input_shapes(specs)


def print_table(title: str, header: list[str], rows: list[list[str]], keep=(), drop=()) -> None:
    """A rich table on a terminal, fitted to its width (columns in ``keep`` whole, those in
    ``drop`` left out in order until it fits: :func:`fcnkit.cli.tables.print_fitted`); a
    Markdown table when the output is a file or pipe (so that nothing is truncated)."""
    from fcnkit.cli.tables import print_fitted

    print_fitted(console, title, header, rows, keep=keep or header, drop=drop)
