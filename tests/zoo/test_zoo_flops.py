"""Acceptance 4: the FLOPs `fcnkit compile` reports (fcnkit.analysis, per-layer formulas)
match an independent count, torch's FlopCounterMode on the compiled module (2 FLOPs per
multiply-add), within 1%, at 1x8x512x512. The module runs on the meta device: every
aten op is dispatched with its real shapes, no arithmetic is done."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fcnkit import zoo
from fcnkit.cli.main import main
from tests.zoo.zoo_helpers import PROTOTXT, compile_zoo

#: the issue's reference figures at 8 bands, 512x512 ("about"): GFLOP, tolerance
REFERENCE_GFLOP = {"fcn8s_8band": (384, 0.01), "fcn_alexnet_8band": (51, 0.03)}


@pytest.mark.parametrize("name", zoo.names())
def test_flops_match_flop_counter_mode(name, capsys):
    compiled = compile_zoo(name, meta=True)
    with FlopCounterMode(display=False) as counter:
        compiled.module(torch.empty(1, 8, 512, 512, device="meta"))
    independent = counter.get_total_flops()
    reported = compiled.analysis.total_flops
    with capsys.disabled():
        print(f"\n{name:24s} fcnkit {reported / 1e9:8.2f} GFLOP, FlopCounterMode "
              f"{independent / 1e9:8.2f} GFLOP", end="")
    assert abs(reported - independent) <= 0.01 * independent
    if name in REFERENCE_GFLOP:
        ref, tol = REFERENCE_GFLOP[name]
        assert abs(reported / 1e9 - ref) <= tol * ref, (name, reported / 1e9, ref)


def test_compile_cli_reports_the_same_flops(capsys):
    path = PROTOTXT / zoo.filename("tiramisu56_8band", "deploy")
    assert main(["compile", str(path), "--format", "json", "--input-shape", "1,8,64,96"]) == 0
    doc = json.loads(capsys.readouterr().out)
    compiled = compile_zoo("tiramisu56_8band", (1, 8, 64, 96), meta=True)
    with FlopCounterMode(display=False) as counter:
        compiled.module(torch.empty(1, 8, 64, 96, device="meta"))
    assert doc["total_flops"] == counter.get_total_flops()
    assert doc["total_params"] == 1_377_218
