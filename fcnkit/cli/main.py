"""The ``fcnkit`` command line: thin commands over the library.

Every FcnkitError becomes ``error: <message>`` on stderr and exit status 2, never a
traceback. Any other exception is a bug in fcnkit: it is reported in one line with a request
for a bug report and exit status 70 (``EX_SOFTWARE`` of sysexits.h), so that it is never
mistaken for 1 ("a check failed") or 2 ("bad input"); ``FCNKIT_DEBUG=1`` shows its traceback. Modules named in the environment variable ``FCNKIT_PLUGINS`` (comma-separated)
are imported first, so custom layer types registered there are known to every command.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from fcnkit.cli import core_cmds
from fcnkit.cli.common import err_console
from fcnkit.errors import FcnkitError

app = typer.Typer(name="fcnkit", no_args_is_help=True, add_completion=True,
                  help="Caffe-style network compiler with FCN surgery tooling.",
                  pretty_exceptions_enable=False)

def _print_version(value: bool) -> None:
    if value:
        from fcnkit import __version__

        typer.echo(f"fcnkit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global_options(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="print fcnkit's version and exit"),
    memory_limit: Optional[str] = typer.Option(
        None, "--memory-limit", metavar="SIZE",
        help="refuse nets and arrays that need more memory than SIZE (bytes, or 512M, 8G; 0: "
             "no limit); default FCNKIT_MEMORY_LIMIT, else half the machine's memory"),
):
    """Caffe-style network compiler with FCN surgery tooling."""
    from fcnkit.limits import parse_bytes, set_memory_limit

    set_memory_limit(None if memory_limit is None else parse_bytes(memory_limit))


app.command("compile")(core_cmds.compile_cmd)
app.command("offsets")(core_cmds.offsets_cmd)
app.command("run")(core_cmds.run_cmd)
app.command("verify")(core_cmds.verify_cmd)
app.command("layers")(core_cmds.layers_cmd)

# Command groups of the higher layers register themselves here when present.
for _mod in ("fcnkit.cli.surgery_cmds", "fcnkit.cli.zoo_cmds", "fcnkit.cli.deploy_cmds",
             "fcnkit.cli.geo_cmds", "fcnkit.cli.roads_cmds", "fcnkit.cli.train_cmds",
             "fcnkit.cli.caffe_tools_cmds"):
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
    usage (``error: ...`` on stderr, never a traceback for these); 70: an internal error (a
    bug in fcnkit; the message asks for a report); 130: interrupted (Ctrl-C).
    """
    from fcnkit.runtime import tune_for_inference

    tune_for_inference()  # glibc heap thresholds, intra-op threads (docs/performance.md)
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
    except KeyboardInterrupt:
        err_console.print("interrupted", soft_wrap=True)
        return 130
    except RecursionError:  # a net nested too deep for Python's stack (a file, not a bug)
        err_console.print("[bold red]error:[/bold red] the input is nested too deeply to be read "
                          "(Python's recursion limit); it is not a net fcnkit can use", soft_wrap=True)
        return 2
    except MemoryError as e:
        return _out_of_memory(e)
    except Exception as e:  # noqa: BLE001 - the one place that turns a bug into a message
        return _internal_error(e)
    return 0


#: sysexits.h EX_SOFTWARE: "an internal software error has been detected".
EX_SOFTWARE = 70


def _out_of_memory(e: MemoryError) -> int:
    err_console.print("[bold red]error:[/bold red] out of memory; the net or its inputs are too "
                      "large for this machine (--memory-limit / FCNKIT_MEMORY_LIMIT: docs/security.md)",
                      soft_wrap=True)
    return 2


def _innermost_fcnkit_frame(e: BaseException) -> str:
    """`` at fcnkit/x.py:12`` for the deepest frame in fcnkit's own code (the one a bug
    report needs), else the deepest frame; empty without a traceback."""
    import traceback

    frames = traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if f"{os.sep}fcnkit{os.sep}" in f.filename]
    frame = (ours or frames or [None])[-1]
    if frame is None:
        return ""
    parts = Path(frame.filename).parts
    short = "/".join(parts[parts.index("fcnkit"):]) if "fcnkit" in parts else Path(frame.filename).name
    return f" at {short}:{frame.lineno}"


def _internal_error(e: Exception) -> int:
    if os.environ.get("FCNKIT_DEBUG"):
        import traceback

        traceback.print_exception(e)
    where = _innermost_fcnkit_frame(e)
    err_console.print(
        f"[bold red]internal error:[/bold red] {escape(type(e).__name__)}{escape(where)}: "
        f"{escape(str(e)[:500])}\nThis is a bug in fcnkit, not in your input: please report it "
        "with the command line and the input files (set FCNKIT_DEBUG=1 for the traceback).",
        soft_wrap=True)
    return EX_SOFTWARE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
