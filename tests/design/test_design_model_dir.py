"""One writer for model directories (issue 14): ``compile -o DIR`` (save_compiled) and
``surgery -o OUTDIR`` (write_outdir) both go through compile.store.write_model_dir; each
directory loads back with fcnkit.load, and a failed write leaves nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fcnkit import caffe
from fcnkit.compile import compile_net, load, save_compiled
from fcnkit.compile import store
from fcnkit.errors import OutputError
from fcnkit.graph import load_net
from fcnkit.surgery import fcn_surgery, write_outdir
from tests.conftest import DATA

LENET = DATA / "lenet_ahmdtaha"
needs_data = pytest.mark.skipif(not LENET.is_dir(), reason=f"shared Caffe data folder {LENET} missing")


@needs_data
def test_both_writers_share_the_layout_and_load_back(tmp_path, monkeypatch):
    calls = []
    real = store.write_model_dir
    monkeypatch.setattr(store, "write_model_dir", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    model = LENET / "lenet_iter_10000.caffemodel"
    compiled = compile_net(load_net(LENET / "mnist_deploy.prototxt"), model)
    save_compiled(compiled, tmp_path / "c")
    write_outdir(fcn_surgery(LENET / "mnist_deploy.prototxt", caffe.read_caffemodel(model), head="none"),
                 tmp_path / "s")
    assert [str(p) for p in calls] == [str(tmp_path / "c"), str(tmp_path / "s")]
    common = {"net.prototxt", "weights.safetensors", "fcnkit.json"}
    assert common <= {p.name for p in (tmp_path / "c").iterdir()}
    assert common | {"net.caffemodel", "report.md", "report.json"} <= {p.name for p in (tmp_path / "s").iterdir()}
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32))
    ref = compiled.module(x)
    for d in ("c", "s"):  # convolutionalised, LeNet computes the same: (1, 10, 1, 1) = (1, 10)
        got = load(tmp_path / d).module(x)
        assert set(got) == set(ref)
        for k in ref:
            np.testing.assert_allclose(got[k].detach().numpy().reshape(ref[k].shape), ref[k].detach().numpy(),
                                       rtol=1e-5, atol=1e-6)
    meta = [json.loads((tmp_path / d / "fcnkit.json").read_text()) for d in ("c", "s")]
    assert meta[1]["written_by"] == "fcnkit surgery"
    assert meta[0]["input_shapes"] == meta[1]["input_shapes"] == {"data": [1, 1, 28, 28]}  # mnist_deploy


def test_a_failed_own_file_is_an_output_error_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    from fcnkit.caffe import caffe_pb2

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(caffe, "write_prototxt", full)
    with pytest.raises(OutputError, match=r"out: cannot write it \(No space left on device\)"):
        store.write_model_dir(tmp_path / "out", caffe_pb2.NetParameter(name="n"), {}, {"phase": "TEST"},
                              header="h")
    assert list(tmp_path.iterdir()) == []
