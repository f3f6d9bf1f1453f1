"""Fast CLI (issue 16, item 4): commands that need no tensors start without the heavy stacks.
Checked in a fresh interpreter (this one has imported everything already): after
``main(['--help'])`` and ``main(['layers'])``, sys.modules holds none of torch, onnx,
onnxruntime, onnxscript, rasterio or ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "onnx", "onnxruntime", "onnxscript", "rasterio", "ray")

PROBE = """
import contextlib, io, json, sys
from fcnkit.cli.main import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        status = main(sys.argv[1:])
    except SystemExit as e:
        status = e.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(%r)))
print(json.dumps({"status": status, "heavy": heavy, "chars": len(out.getvalue())}))
"""


@pytest.mark.parametrize("argv", [["--help"], ["layers"], ["export", "--help"], ["zoo", "list"]])
def test_light_commands_import_no_heavy_stack(argv):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = PROBE % json.dumps(HEAVY)
    run = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["status"] in (0, None) and got["chars"] > 0
    assert got["heavy"] == [], f"`fcnkit {' '.join(argv)}` imported {got['heavy']}"
