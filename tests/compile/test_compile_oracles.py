"""Acceptance 2: compiled models reproduce an independent implementation (OpenCV 4.10's
Caffe importer) on the real caffemodels: every stored layer output and the net output, to
<= 1e-4 relative (max abs diff / max abs of the reference)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fcnkit import caffe
from fcnkit.compile import compile_net
from fcnkit.compile.verify import compare_layers, relative_error
from fcnkit.graph import load_net
from tests.conftest import DATA

ORACLES = sorted(p.parent.relative_to(DATA).as_posix() for p in DATA.rglob("opencv_oracle_*/meta.json"))
TOL = 1e-4


def test_all_oracle_folders_found():
    assert len(ORACLES) == 5


@pytest.mark.parametrize("folder", ORACLES)
def test_oracle(folder):
    meta = json.loads((DATA / folder / "meta.json").read_text())
    net = load_net(DATA / meta["prototxt"])
    model = caffe.read_caffemodel(DATA / meta["caffemodel"])
    x = np.load(DATA / folder / "input.npy")
    assert list(x.shape) == meta["input_shape"]
    # the input generator the oracle documents
    assert np.array_equal(x, np.random.default_rng(0).random(tuple(x.shape), dtype=np.float32))
    compiled = compile_net(net, model, {None: x.shape}, deploy=True)
    assert not compiled.weights.initialised, compiled.weights.summary()
    ref = dict(np.load(DATA / folder / "layer_outputs.npz"))
    rows = compare_layers(compiled, [torch.from_numpy(x)], ref)
    assert {r.layer for r in rows} == set(ref), "every stored layer output is compared"
    worst = max(rows, key=lambda r: r.relative)
    assert worst.relative <= TOL, f"{worst.layer}: relative error {worst.relative:.3g}"
    with torch.no_grad():
        out = compiled.module(torch.from_numpy(x))
    for name, spec in meta["outputs"].items():
        expected = np.load(DATA / folder / spec["file"])
        got = out[name].numpy()
        assert got.shape == expected.shape
        _, rel = relative_error(got, expected)
        assert rel <= TOL, f"output {name}: relative error {rel:.3g}"
