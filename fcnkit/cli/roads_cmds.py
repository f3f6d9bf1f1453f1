"""``fcnkit roads``: the road commands (labels, graphs and scores; connectivity, routes,
policies and CRF). Each family of subcommands registers itself on ``roads_app``."""

from __future__ import annotations

import importlib

import typer

roads_app = typer.Typer(name="roads", no_args_is_help=True, add_completion=False,
                        help="Road labels, road graphs, SpaceNet metrics (APLS, IoU), "
                             "connectivity, routes, navigation policies and CRF.")

for _mod in ("fcnkit.cli.roads_network_cmds", "fcnkit.cli.roads_decide_cmds"):
    try:
        importlib.import_module(_mod).register(roads_app)
    except ModuleNotFoundError as e:  # pragma: no cover - optional during development
        if e.name != _mod:
            raise


def register(app: typer.Typer) -> None:
    """Add the ``roads`` command group to the top-level app."""
    app.add_typer(roads_app)
