"""`fcnkit verify` with references keyed by layer name (OpenCV's layer_outputs.npz) and by
blob name (pycaffe's net.blobs: a blob after its in-place layers), issue 13 item 10.

The blob-keyed references are built here from the real layer-keyed oracles, from the
prototxt's own top lists: a blob's value is the output of the last layer that writes it
(for an in-place chain conv1 -> relu1, blob conv1 holds relu1's output), the input blob is
the input itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fcnkit import caffe
from fcnkit.cli.main import main
from fcnkit.compile import compile_net
from fcnkit.compile.verify import verify_reference
from fcnkit.graph import load_net
from tests.conftest import DATA

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared Caffe data folder {DATA} missing")

ORACLES = sorted(p.parent.relative_to(DATA).as_posix() for p in DATA.rglob("opencv_oracle_*/meta.json"))
# the small ones (the ResNet stem's dump is 13.6 MB: used once, in the CLI test)
SMALL = [f for f in ORACLES if "resnet" not in f]
TOL = 1e-4


def _oracle(folder):
    meta = json.loads((DATA / folder / "meta.json").read_text())
    x = np.load(DATA / folder / "input.npy")
    net = load_net(DATA / meta["prototxt"])
    compiled = compile_net(net, caffe.read_caffemodel(DATA / meta["caffemodel"]), {None: x.shape}, deploy=True)
    return meta, compiled, x, dict(np.load(DATA / folder / "layer_outputs.npz"))


def _blob_keyed(compiled, x, by_layer):
    """pycaffe's net.blobs from a layer-keyed dump: walk the layers in prototxt order; each
    layer's (first) top takes that layer's output, so the last writer of a blob wins."""
    blobs = {}
    for node in compiled.net.layers:
        tops = list(node.layer.param.top)
        if not tops:
            continue
        if node.role == "input":
            blobs[tops[0]] = x
        elif node.name in by_layer:
            blobs[tops[0]] = by_layer[node.name]
    return blobs


@pytest.mark.parametrize("folder", SMALL)
def test_both_conventions_on_the_real_oracles(folder):
    _, compiled, x, by_layer = _oracle(folder)
    inputs = [torch.from_numpy(x)]
    layer_v = verify_reference(compiled, inputs, by_layer)
    assert layer_v.convention == "layer"
    assert layer_v.compared == layer_v.total == len(by_layer) and not layer_v.missing
    assert layer_v.status(TOL) == "ok", layer_v.worst

    by_blob = _blob_keyed(compiled, x, by_layer)
    blob_v = verify_reference(compiled, inputs, by_blob)
    assert blob_v.convention == "blob", blob_v.reason
    assert {r.layer for r in blob_v.rows} == set(by_blob) and not blob_v.missing
    assert blob_v.compared == blob_v.total  # every blob of the deploy net, the input included
    assert blob_v.status(TOL) == "ok", blob_v.worst


def test_in_place_blobs_hold_the_last_layers_output():
    """LeNet's relu1 works in place on ip1: blob ip1 is relu1's output. Read with the wrong
    convention the reference does not match; auto-detection reads it right even when the
    keys alone cannot tell (every kept key names both a layer and a blob)."""
    _, compiled, x, by_layer = _oracle("lenet_ahmdtaha/opencv_oracle_lenet_ahmdtaha")
    by_blob = _blob_keyed(compiled, x, by_layer)
    assert np.array_equal(by_blob["ip1"], by_layer["relu1"])
    assert (by_layer["ip1"] < 0).any()  # so the two values differ
    inputs = [torch.from_numpy(x)]
    wrong = verify_reference(compiled, inputs, by_blob, convention="layer")
    assert next(r for r in wrong.rows if r.layer == "ip1").relative > 0.1
    assert wrong.missing == ["data"]  # the input is a blob, not a layer that computes
    ambiguous = {k: by_blob[k] for k in ("conv1", "ip1", "ip2")}
    v = verify_reference(compiled, inputs, ambiguous)
    assert v.convention == "blob" and "in-place" in v.reason
    assert v.status(TOL) == "partial" and (v.compared, v.total) == (3, 8)


def test_bad_convention_is_an_input_error():
    from fcnkit.errors import InputError

    _, compiled, x, by_layer = _oracle("lenet_ahmdtaha/opencv_oracle_lenet_ahmdtaha")
    with pytest.raises(InputError, match="--keys must be auto, layer or blob"):
        verify_reference(compiled, [torch.from_numpy(x)], by_layer, convention="top")


def _verify(tmp_path, folder, ref, *extra):
    meta = json.loads((DATA / folder / "meta.json").read_text())
    path = tmp_path / "ref.npz"
    np.savez(path, **ref)
    return main(["verify", str(DATA / meta["prototxt"]), "--weights", str(DATA / meta["caffemodel"]),
                 "--input", str(DATA / folder / "input.npy"), "--reference", str(path), *extra])


def test_cli_says_the_convention_and_the_count(tmp_path, capsys):
    folder = "resnet50_stem_htshinichi/opencv_oracle_resnet50_stem"
    _, compiled, x, by_layer = _oracle(folder)
    assert _verify(tmp_path, folder, _blob_keyed(compiled, x, by_layer)) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "reference keyed by blob names" in out
    assert "ok: compared 3 of 3 blobs" in out  # data, conv1 (after BN, Scale, ReLU), pool1
    assert _verify(tmp_path, folder, by_layer) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "reference keyed by layer names" in out and "ok: compared 5 of 5 layers" in out


def test_cli_missing_keys_fail_and_few_keys_are_not_ok(tmp_path, capsys):
    folder = "lenet_ahmdtaha/opencv_oracle_lenet_ahmdtaha"
    _, _, _, by_layer = _oracle(folder)
    # a key the net does not compute: exit 1, named
    assert _verify(tmp_path, folder, {**by_layer, "fc9": by_layer["ip2"]}) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "missing" in out and "fc9" in out and "compared 8 of 8 layers" in out
    assert "ok:" not in out
    # two of eight layers, both right: exit 0 but never "ok"
    assert _verify(tmp_path, folder, {k: by_layer[k] for k in ("conv1", "relu1")}) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "partial: compared 2 of 8 layers" in out and "ok:" not in out
