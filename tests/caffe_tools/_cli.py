"""Run the CLI with a console of a chosen width that says it is a terminal (as COLUMNS=80 on
a real terminal would), capturing what it prints."""

from __future__ import annotations

import io

from rich.console import Console

from fcnkit.cli import common, core_cmds
from fcnkit.cli.main import main


def run_on_terminal(monkeypatch, argv: list[str], width: int = 80) -> tuple[int, str]:
    buf = io.StringIO()
    term = Console(file=buf, width=width, force_terminal=True, color_system=None,
                   highlight=False, soft_wrap=True)
    monkeypatch.setattr(common, "console", term)
    monkeypatch.setattr(core_cmds, "console", term)
    code = main(argv)
    return code, buf.getvalue()
