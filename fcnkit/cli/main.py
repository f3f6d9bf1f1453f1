"""The ``fcnkit`` command line: thin commands over the library.

Every FcnkitError becomes ``error: <message>`` on stderr and exit status 2, never a
traceback. Modules named in the environment variable ``FCNKIT_PLUGINS`` (comma-separated)
are imported first, so custom layer types registered there are known to every command.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.markup import escape

from fcnkit.cli import core_cmds
from fcnkit.cli.common import err_console
from fcnkit.errors import FcnkitError

app = typer.Typer(name="fcnkit", no_args_is_help=True, add_completion=False,
                  help="Caffe-style network compiler with FCN surgery tooling.",
                  pretty_exceptions_enable=False)

app.command("compile")(core_cmds.compile_cmd)
app.command("offsets")(core_cmds.offsets_cmd)
app.command("run")(core_cmds.run_cmd)
app.command("verify")(core_cmds.verify_cmd)
app.command("layers")(core_cmds.layers_cmd)

# Command groups of the higher layers register themselves here when present.
for _mod in ("fcnkit.cli.surgery_cmds", "fcnkit.cli.zoo_cmds", "fcnkit.cli.deploy_cmds",
             "fcnkit.cli.geo_cmds", "fcnkit.cli.roads_cmds", "fcnkit.cli.train_cmds"):
    try:
        importlib.import_module(_mod).register(app)
    except ModuleNotFoundError as e:  # pragma: no cover - optional during development
        if e.name != _mod:
            raise


def _load_plugins() -> None:
    for name in filter(None, (p.strip() for p in os.environ.get("FCNKIT_PLUGINS", "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise FcnkitError(f"FCNKIT_PLUGINS names module '{name}', which cannot be imported: {e}") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fcnkit`` console script; returns the exit status.

    0: success; 1: a check failed (``offsets --check``, ``verify``, ...); 2: bad input or
    usage (``error: ...`` on stderr, never a traceback for these).
    """
    try:
        _load_plugins()
        rv = app(args=argv, standalone_mode=False, prog_name="fcnkit")
        if isinstance(rv, int):  # click returns typer.Exit's code when not standalone
            return rv
    except FcnkitError as e:
        err_console.print(f"[bold red]error:[/bold red] {escape(str(e))}", soft_wrap=True)
        return e.exit_code
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        err_console.print(f"[bold red]error:[/bold red] {escape(where + (e.strerror or str(e)))}",
                          soft_wrap=True)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        return 1
    except typer.TyperException as e:
        # usage errors (unknown option, missing argument, bad value); typer vendors click,
        # whose exceptions derive from TyperException and know how to show themselves
        show = getattr(e, "show", None)
        if show is not None:
            show()
        else:  # pragma: no cover - every click exception has show()
            err_console.print(f"error: {escape(e.format_message())}", soft_wrap=True)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
