"""``fcnkit zoo``: list, write and show the model zoo's prototxts (fcnkit.zoo)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from fcnkit.cli.common import console, err_console
from fcnkit.errors import InputError

zoo_app = typer.Typer(name="zoo", no_args_is_help=True, add_completion=False,
                      help="The 8-band road-segmentation model zoo (FCN-AlexNet, FCN-32s/16s/8s, "
                           "FC-DenseNet56/67/103).")

PhaseArg = typer.Option("deploy", "--phase", help="deploy or train_val")


@zoo_app.command("list")
def list_cmd():
    """List the zoo's models: name, input, classes, what it is."""
    from rich.table import Table

    from fcnkit import zoo

    t = Table(title="fcnkit model zoo", header_style="bold")
    for h in ("name", "model", "input", "classes"):
        t.add_column(h, no_wrap=True)
    for name in zoo.names():
        inf = zoo.info(name)
        t.add_row(name, inf["title"] + (" f96" if name.endswith("_f96") else ""),
                  "x".join(map(str, inf["input_shape"])), str(inf["classes"]))
    console.print(t)
    first = zoo.info(zoo.names()[0])
    console.print(f"bands: {', '.join(first['band_names'])}; classes: "
                  f"{', '.join(first['class_names'])}; f96: 96 first-layer filters.", markup=False)
    console.print("`fcnkit zoo show NAME [--info]` prints a model's prototxt (or what it is); "
                  "`fcnkit zoo write [DIR]` writes them all.", markup=False)


@zoo_app.command("write")
def write_cmd(
    directory: Path = typer.Argument(Path("prototxt"), help="folder to write into (default ./prototxt)"),
    models: Optional[List[str]] = typer.Option(None, "--model", "-m", help="only this model (repeatable)"),
    check: bool = typer.Option(False, "--check", help="write nothing; exit 1 if DIR differs from a "
                               "fresh generation (missing, changed or extra .prototxt files)"),
):
    """Write <name>.deploy.prototxt and <name>.train_val.prototxt for every zoo model."""
    from fcnkit import zoo

    if check:
        if models:
            raise InputError("--check compares the whole zoo; leave out --model")
        problems = zoo.diff_dir(directory)
        for p in problems:
            console.print(p, markup=False, soft_wrap=True)
        if problems:
            err_console.print(f"{directory} differs from the zoo: run `fcnkit zoo write {directory}`",
                              markup=False, soft_wrap=True)
            raise typer.Exit(1)
        console.print(f"{directory}: all {2 * len(zoo.names())} zoo prototxts are up to date",
                      markup=False, soft_wrap=True)
        return
    paths = zoo.write_all(directory, models)
    for p in paths:
        console.print(f"wrote {p}", markup=False, soft_wrap=True)


@zoo_app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="zoo model name (see `fcnkit zoo list`)"),
    phase: str = PhaseArg,
    as_info: bool = typer.Option(False, "--info", help="print what the model is (JSON) instead"),
):
    """Print a zoo model's prototxt (as `fcnkit zoo write` writes it), or --info (what it
    is, and where its bundled weights come from)."""
    import json

    from fcnkit import zoo

    if as_info:
        from fcnkit.zoo.bundled import summary

        info = zoo.info(name)
        weights = summary(name)
        info["weights"] = weights or "none bundled: fillers (give -w CAFFEMODEL)"
        console.print_json(json.dumps(info))
        if weights is not None:
            console.print(f"Bundled weights: {weights['file']}\n  trained on SYNTHETIC data only: "
                          f"{weights['data']}\n  {weights['training']}\n  held-out: "
                          f"{weights['heldout']}\n  scores on real imagery are unknown.",
                          markup=False, soft_wrap=True, highlight=False)
        return
    console.print(zoo.render(name, phase), end="", markup=False, soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``zoo`` command group to the fcnkit CLI."""
    app.add_typer(zoo_app, name="zoo")
