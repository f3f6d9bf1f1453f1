"""The CLI as the security tests drive it: exit status and the whole output in one line,
with no traceback allowed anywhere in it."""

from __future__ import annotations

from fcnkit.cli.main import main


def run_cli(capsys, args):
    """(exit status, stderr + stdout with whitespace collapsed); asserts no traceback."""
    code = main(args)
    cap = capsys.readouterr()
    out = " ".join((cap.err + cap.out).split())
    assert "Traceback" not in out
    return code, out
