"""`fcnkit --version` and shell completion (the script, and the completion it drives)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fcnkit
from fcnkit.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"fcnkit {fcnkit.__version__}\n"


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o"), ("zsh", "compdef"),
                                           ("fish", "complete --command fcnkit")])
def test_completion_script(shell, marker, capsys):
    assert main(["completion", shell]) == 0
    out = capsys.readouterr().out
    assert "_FCNKIT_COMPLETE" in out and marker in out


def test_completion_script_refuses_unknown_shell(capsys):
    assert main(["completion", "tcsh"]) == 2
    assert "bash, zsh, fish" in capsys.readouterr().err


def _complete(words: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "_FCNKIT_COMPLETE": "complete_bash",
           "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    done = subprocess.run([sys.executable, "-m", "fcnkit"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_bash_completion_completes_commands_and_options():
    assert _complete("fcnkit dr").split() == ["draw"]
    assert "--rankdir" in _complete("fcnkit draw --r").split()
