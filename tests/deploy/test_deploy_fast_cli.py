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


TWO_CONV = """name: "two_conv"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 16 dim: 16 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param { num_output: 2 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
"""


def test_export_of_a_small_net_imports_only_its_stack(tmp_path):
    """`fcnkit export` of a plain fp32 net takes the TorchScript exporter: torch, onnx and
    onnxruntime (checker and parity run) are imported, but neither the dynamo exporter's
    onnxscript nor networkx (the net's DAG is built only when asked for), nor the road
    side's rasterio or ray."""
    (tmp_path / "n.prototxt").write_text(TWO_CONV)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = PROBE % json.dumps(HEAVY + ("networkx",))
    argv = ["export", str(tmp_path / "n.prototxt"), "-o", str(tmp_path / "n.onnx"), "--allow-missing-weights"]
    run = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["status"] in (0, None) and (tmp_path / "n.onnx").stat().st_size > 0
    assert got["heavy"] == ["onnx", "onnxruntime", "torch"], got["heavy"]
