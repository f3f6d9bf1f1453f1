"""The weights load report on the terminal, shared by ``compile``, ``run``, ``verify``,
``export`` and ``surgery`` (issue 13 item 1): the option that accepts a partial load and
the stderr lines that say what loaded."""

from __future__ import annotations

import typer
from rich.markup import escape

from fcnkit.cli.common import err_console

AllowMissingWeightsOpt = typer.Option(
    False, "--allow-missing-weights",
    help="with -w: run even when no layer loads from the caffemodel, or a layer without a "
         "weight filler (all zeros) is missing from it")


def print_weights_report(report) -> None:
    """The one-line summary of a :class:`fcnkit.compile.load_report.WeightsLoadReport`
    (lists abbreviated), then a warning per renamed layer, on stderr; nothing for None."""
    if report is None:
        return
    err_console.print(report.summary(), markup=False, soft_wrap=True)
    for line in report.warnings():
        err_console.print(f"[bold yellow]warning:[/bold yellow] {escape(line)}", soft_wrap=True)
