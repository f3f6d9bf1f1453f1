"""`fcnkit upgrade`: the V0 and V1 files of BVLC Caffe and a V1 caffemodel round-trip to V2
files that load to the same net, blobs and outputs (OpenCV oracle)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcnkit import caffe
from fcnkit.cli.main import main
from fcnkit.compile import compile_net
from fcnkit.graph import load_net
from tests.conftest import DATA

BVLC = DATA / "bvlc_caffe"
CIFAR = DATA / "cifar10quick_ikkichung"
ORACLE = CIFAR / "opencv_oracle_cifar10_quick_ikkichung_v2proto"


@pytest.mark.parametrize("rel, fmt", [("v0_legacy/examples/lenet/lenet.prototxt", "V0"),
                                      ("v1_layers_enum/models/bvlc_alexnet/deploy.prototxt", "V1")])
def test_upgrade_prototxt_round_trips(rel, fmt, tmp_path, capsys):
    src, out = BVLC / rel, tmp_path / "v2.prototxt"
    assert main(["upgrade", str(src), str(out)]) == 0
    assert f"{fmt} -> V2" in capsys.readouterr().out
    original, upgraded = caffe.read_prototxt(src), caffe.read_prototxt(out)
    assert original.source_format == fmt and upgraded.source_format == "V2"
    assert not upgraded.upgrades  # nothing left to upgrade
    assert "layers {" not in out.read_text() and "layer {" in out.read_text()
    assert upgraded.param == original.param  # the same net, message for message


def test_upgrade_v1_alexnet_matches_bvlc_v2_deploy(tmp_path):
    """The V1 AlexNet deploy upgrades to what BVLC's own V2 deploy declares (layer names,
    types, tops and the shapes fcnkit infers from them)."""
    out = tmp_path / "alexnet.prototxt"
    assert main(["upgrade", str(BVLC / "v1_layers_enum/models/bvlc_alexnet/deploy.prototxt"), str(out)]) == 0
    ours, bvlc = load_net(out), load_net(BVLC / "v2/models/bvlc_alexnet/deploy.prototxt")
    assert [(n.name, n.type) for n in ours.layers][1:] == [(n.name, n.type) for n in bvlc.layers][1:]


def test_upgrade_v1_caffemodel_same_blobs_and_outputs(tmp_path, capsys):
    out = tmp_path / "cifar_v2.caffemodel"
    assert main(["upgrade", str(CIFAR / "cifar10_quick_iter_5000.caffemodel"), str(out)]) == 0
    assert "caffemodel, V1 -> V2" in capsys.readouterr().out
    old, new = caffe.read_caffemodel(CIFAR / "cifar10_quick_iter_5000.caffemodel"), caffe.read_caffemodel(out)
    assert old.source_format == "V1" and new.source_format == "V2" and not new.upgrades
    assert new.net == old.net
    assert set(new.blobs) == set(old.blobs) == {"conv1", "conv2", "conv3", "ip1", "ip2"}
    for name, arrays in old.blobs.items():
        assert [a.shape for a in new.blobs[name]] == [a.shape for a in arrays]
        for a, b in zip(arrays, new.blobs[name]):
            np.testing.assert_array_equal(a, b)
    # the upgraded weights give OpenCV's outputs with BVLC's V2 cifar10_quick deploy net
    compiled = compile_net(load_net(BVLC / "v2/examples/cifar10/cifar10_quick.prototxt"), out,
                           {None: (1, 3, 32, 32)}, deploy=True)
    with torch.no_grad():
        got = compiled.module(torch.from_numpy(np.load(ORACLE / "input.npy")))["prob"].numpy()
    np.testing.assert_allclose(got, np.load(ORACLE / "output_prob.npy"), atol=1e-5)


def test_upgrade_refuses_in_place_and_bad_input(tmp_path, capsys):
    src = tmp_path / "net.prototxt"
    src.write_bytes((BVLC / "v0_legacy/examples/lenet/lenet.prototxt").read_bytes())
    assert main(["upgrade", str(src), str(src)]) == 2
    assert "must not be the input" in capsys.readouterr().err
    junk = tmp_path / "junk.caffemodel"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    assert main(["upgrade", str(junk), str(tmp_path / "out.caffemodel")]) == 2
    assert not (tmp_path / "out.caffemodel").exists()
