"""Acceptance 5 and 7: `fcnkit surgery` writes a directory whose caffemodel reads back
with identical blobs and whose net compiles to the in-memory result; errors are clear and
leave no partial OUTDIR."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fcnkit import caffe
from fcnkit.cli.main import main
from fcnkit.compile import compile_net, load
from fcnkit.graph import load_net
from fcnkit.errors import SurgeryError
from fcnkit.surgery import fcn_surgery, write_outdir
from tests.conftest import DATA
from tests.surgery._nets import LENET, alexnet_shaped, forward, random_blobs, rel_err

LENET_PROTO = LENET / "mnist_deploy.prototxt"
LENET_MODEL = LENET / "lenet_iter_10000.caffemodel"


def _run(capsys, args):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.out + cap.err
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    d = tmp_path_factory.mktemp("alexnet_shaped")
    param = alexnet_shaped()
    blobs = random_blobs(param, seed=31)
    caffe.write_prototxt(d / "deploy.prototxt", param)
    caffe.write_caffemodel(d / "weights.caffemodel", param, blobs)
    return d / "deploy.prototxt", d / "weights.caffemodel", param, blobs


ARGS = ["--classes", "5", "--keep-classes", "--head", "fcn8s", "--pools", "pool2,pool1",
        "--bands", "8", "--input-shape", "160,200"]


def test_written_files_round_trip(classifier, tmp_path, capsys):
    proto, model, param, blobs = classifier
    out = tmp_path / "fcn"
    code, stdout, err = _run(capsys, ["surgery", proto, model, *ARGS, "-o", out])
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"net.prototxt", "net.caffemodel", "weights.safetensors",
                                               "report.md", "report.json", "fcnkit.json"}
    assert "crop score: offset 18 (computed)" in stdout
    assert "crop score_pool2c: offset 5 (computed)" in stdout

    mem = fcn_surgery(param, blobs, classes=5, keep_classes=True, head="fcn8s",
                      pools=["pool2", "pool1"], bands=8, input_shape=(160, 200))
    # 1. the caffemodel reads back with identical blobs
    back = caffe.read_caffemodel(out / "net.caffemodel")
    assert set(back.blobs) == set(mem.blobs)
    for name, arrays in mem.blobs.items():
        assert len(back.blobs[name]) == len(arrays)
        for a, b in zip(arrays, back.blobs[name]):
            assert a.shape == b.shape and np.array_equal(a, b), name
    # 2. the written net compiles and gives the in-memory result's outputs
    x = np.random.default_rng(0).uniform(-1, 1, (1, 8, 160, 200)).astype(np.float32)
    expect = forward(mem.param, mem.blobs, x)["score"]
    written = compile_net(load_net(out / "net.prototxt"), out / "net.caffemodel")
    got = written(torch.from_numpy(x))["score"].detach().numpy()
    assert got.shape == (1, 5, 160, 200) and np.abs(expect).max() > 0
    assert rel_err(got, expect) <= 1e-6
    # 3. the directory also loads as a compiled fcnkit model (weights from safetensors)
    loaded = load(out)
    assert set(loaded.module.state_dict()) == set(written.module.state_dict())
    got2 = loaded(torch.from_numpy(x))["score"].detach().numpy()
    assert rel_err(got2, expect) <= 1e-6
    # 4. the report: every layer's fate, the computed crops, the band rule
    rep = json.loads((out / "report.json").read_text())
    status = {e["layer"]: e["status"] for e in rep["layers"]}
    assert status["conv1"] == "adapted" and status["conv2"] == "transplanted"
    assert status["fc6"] == "coerced" and status["fc7"] == "coerced"
    assert status["score_fr"] == "adapted"                # first 5 of fc8's 10 classes
    assert status["score_pool2"] == status["upscore8"] == "initialised"
    assert rep["crop_offsets"] == {"score_pool2c": [5, 5], "score_pool1c": [10, 10], "score": [18, 18]}
    assert rep["bands"]["scale"] == pytest.approx(0.375)
    assert {d["layer"] for d in rep["dropped"]} >= {"fc8", "prob"}
    md = (out / "report.md").read_text()
    assert "## Crop offsets (computed)" in md and "| score | 18 | 18 |" in md


def test_compiled_directory_as_input(tmp_path, capsys):
    cdir = tmp_path / "lenet_compiled"
    code, _, err = _run(capsys, ["compile", LENET_PROTO, "--weights", LENET_MODEL, "-o", cdir])
    assert code == 0, err
    out = tmp_path / "lenet_fcn"
    code, stdout, err = _run(capsys, ["surgery", cdir, "--head", "none", "-o", out])
    assert code == 0, err
    back = caffe.read_caffemodel(out / "net.caffemodel")
    assert back.blobs["ip1"][0].shape == (500, 50, 4, 4)
    x = np.random.default_rng(1).uniform(0, 1, (1, 1, 28, 28)).astype(np.float32)
    ref = forward(caffe.read_prototxt(LENET_PROTO).param, caffe.read_caffemodel(LENET_MODEL), x)
    got = compile_net(load_net(out / "net.prototxt"), back)(torch.from_numpy(x))["loss"]
    assert rel_err(got.detach().numpy().reshape(1, 10), ref["loss"]) <= 1e-5


def _assert_nothing_written(parent, out, before):
    assert not out.exists()
    assert sorted(p.name for p in parent.iterdir()) == before  # no temporary leftovers


def test_error_input_size_not_inferable(tmp_path, capsys):
    proto = tmp_path / "data_layer.prototxt"
    proto.write_text("""name: "nodims"
layer { name: "data" type: "Data" top: "data" top: "label" data_param { source: "x" batch_size: 4 } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 10 } }
""")
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "out"
    code, _, err = _run(capsys, ["surgery", proto, "-o", out])
    assert code == 2
    assert "input size of InnerProduct 'ip1' cannot be inferred" in err
    _assert_nothing_written(tmp_path, out, before)


def test_error_mismatched_counts(classifier, tmp_path, capsys):
    proto, _, param, blobs = classifier
    bad = dict(blobs)
    bad["conv3"] = [np.zeros((24, 8, 3, 3), np.float32), blobs["conv3"][1]]
    model = tmp_path / "bad.caffemodel"
    caffe.write_caffemodel(model, param, bad)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "out"
    code, _, err = _run(capsys, ["surgery", proto, model, "-o", out])
    assert code == 2
    msg = " ".join(err.split())
    assert "'conv3'" in msg and "24x8x3x3 (1728 values)" in msg and "24x16x3x3 (3456 values)" in msg
    _assert_nothing_written(tmp_path, out, before)


def test_error_head_without_named_pools_keeps_existing_outdir(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "fcnkit.json").write_text("{}")  # an earlier fcnkit output, which may be replaced
    (out / "keep.txt").write_text("previous result")
    code, _, err = _run(capsys, ["surgery", LENET_PROTO, LENET_MODEL, "--head", "fcn16s", "-o", out])
    assert code == 2
    msg = " ".join(err.split())
    assert "no layer or blob named 'pool4'" in msg
    assert "pool1 (stride 2), pool2 (stride 4)" in msg
    assert sorted(p.name for p in out.iterdir()) == ["fcnkit.json", "keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_outdir_that_is_not_an_fcnkit_output_is_refused(tmp_path, capsys):
    """A directory of something else, or a file, is never replaced (before any work is
    done); --force replaces a directory."""
    out = tmp_path / "results"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    code, _, err = _run(capsys, ["surgery", LENET_PROTO, LENET_MODEL, "--head", "none", "-o", out])
    assert code == 2 and "is not an fcnkit output directory (no fcnkit.json)" in " ".join(err.split())
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]
    afile = tmp_path / "afile.txt"
    afile.write_text("precious")
    code, _, err = _run(capsys, ["surgery", LENET_PROTO, LENET_MODEL, "--head", "none", "-o", afile])
    assert code == 2 and "exists and is a file" in " ".join(err.split())
    assert afile.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile.txt", "results"]
    code, _, _ = _run(capsys, ["surgery", LENET_PROTO, LENET_MODEL, "--head", "none", "-o", out,
                               "--force"])
    assert code == 0 and (out / "net.caffemodel").is_file() and not (out / "thesis.tex").exists()
    # an earlier output is replaced without --force
    code, _, _ = _run(capsys, ["surgery", LENET_PROTO, LENET_MODEL, "--head", "none", "-o", out])
    assert code == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["afile.txt", "results"]


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    r = fcn_surgery(LENET_PROTO, caffe.read_caffemodel(LENET_MODEL), head="none")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(caffe, "write_caffemodel", boom)
    with pytest.raises(OSError, match="disk full"):
        write_outdir(r, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


# ---- options of `fcnkit surgery`, each checked against the real files or closed forms

ORACLE = LENET / "opencv_oracle_lenet_ahmdtaha"
ALEXNET_TRAIN_VAL = DATA / "bvlc_caffe" / "v2" / "models" / "bvlc_alexnet" / "train_val.prototxt"


def _msg(err: str) -> str:
    return " ".join(err.split())


def _layer(path, name):
    return [lp for lp in caffe.read_prototxt(path).param.layer if lp.name == name][0]


def _closed_form_bilinear(k: int) -> np.ndarray:
    """CAFFE_FACTS.md: f = ceil(K/2), c = (K-1)/(2f), w(x, y) = (1 - |x/f - c|)(1 - |y/f - c|)."""
    f = -(-k // 2)
    c = (k - 1) / (2 * f)
    w = [1 - abs(x / f - c) for x in range(k)]
    return np.array([[wy * wx for wx in w] for wy in w])


@pytest.fixture(scope="module")
def lenet_bad_conv2(tmp_path_factory):
    """The real LeNet caffemodel with conv2's weight cut to 10 input channels (12500 values
    where the prototxt needs 50x20x5x5 = 25000)."""
    param = caffe.read_prototxt(LENET_PROTO).param
    blobs = dict(caffe.read_caffemodel(LENET_MODEL).blobs)
    blobs["conv2"] = [blobs["conv2"][0][:, :10].copy(), blobs["conv2"][1]]
    path = tmp_path_factory.mktemp("bad") / "lenet_conv2_10ch.caffemodel"
    caffe.write_caffemodel(path, param, blobs)
    return path


@pytest.mark.parametrize("head", ["fcn32s", "none"])
def test_mismatched_conv_without_reinit_names_the_option(lenet_bad_conv2, tmp_path, capsys, head):
    out = tmp_path / "out"
    code, _, err = _run(capsys, ["surgery", LENET_PROTO, lenet_bad_conv2, "--head", head, "-o", out])
    assert code == 2
    msg = _msg(err)
    # The message starts with the layer (no empty step name before it: "error: : layer").
    assert msg.startswith("error: layer 'conv2' (Convolution): blob 0 (weight)"), msg
    assert "50x10x5x5 (12500 values)" in msg and "50x20x5x5 (25000 values)" in msg
    assert "--reinit conv2" in msg
    assert not out.exists()


@pytest.mark.parametrize("reinit", [["--reinit", "conv2"], ["--reinit", "conv1,conv2"],
                                    ["--reinit", "conv1", "--reinit", "conv2"]])
def test_reinit_initialises_the_layer_by_its_filler(lenet_bad_conv2, tmp_path, capsys, reinit):
    out = tmp_path / "out"
    code, _, err = _run(capsys, ["surgery", LENET_PROTO, lenet_bad_conv2, "--head", "none",
                                 *reinit, "-o", out])
    assert code == 0, err
    names = {"conv2"} | ({"conv1"} if "conv1" in " ".join(reinit) else set())
    back = caffe.read_caffemodel(out / "net.caffemodel").blobs
    real = caffe.read_caffemodel(LENET_MODEL).blobs
    w, b = back["conv2"]
    # mnist_deploy.prototxt: conv2 weight_filler xavier, U(+-sqrt(3/fan_in)), fan_in = 20*5*5;
    # bias_filler constant (value 0).
    bound = np.sqrt(3 / (20 * 5 * 5))
    assert w.shape == (50, 20, 5, 5) and np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.95 * bound and abs(float(w.mean())) < 0.05 * bound
    np.testing.assert_array_equal(b, 0)
    if "conv1" in names:  # conv1 has no weight_filler: Caffe's constant 0
        np.testing.assert_array_equal(back["conv1"][0], 0)
    else:
        np.testing.assert_array_equal(back["conv1"][0], real["conv1"][0])
    np.testing.assert_array_equal(back["ip1"][0].reshape(500, 800), real["ip1"][0])
    rep = json.loads((out / "report.json").read_text())
    entries = {e["layer"]: e for e in rep["layers"]}
    assert entries["conv2"]["status"] == "initialised"
    assert entries["conv2"]["fillers"] == ["xavier", "constant 0"]
    assert names <= {d["layer"] for d in rep["dropped"]}


def test_data_layer_classifier_with_input_shape(tmp_path, capsys):
    """BVLC AlexNet train_val.prototxt: TRAIN/TEST Data layers declare no channel count, so
    --input-shape is the classifier's input, used from fc->conv on; no caffemodel, so
    every layer comes from the prototxt's fillers."""
    out = tmp_path / "alexnet_fc"
    code, _, err = _run(capsys, ["surgery", ALEXNET_TRAIN_VAL, "--head", "none", "-o", out])
    assert code == 2
    assert "--input-shape N,C,H,W" in _msg(err) and "'data' (Data layer 'data') declares no shape" in _msg(err)
    assert not out.exists()
    code, stdout, err = _run(capsys, ["surgery", ALEXNET_TRAIN_VAL, "--head", "none",
                                      "--input-shape", "1,3,227,227", "-o", out])
    assert code == 0, err
    fc6 = _layer(out / "net.prototxt", "fc6")
    assert fc6.type == "Convolution" and list(fc6.convolution_param.kernel_size) == [6]
    assert fc6.convolution_param.num_output == 4096
    assert [lp.type for lp in caffe.read_prototxt(out / "net.prototxt").param.layer].count("Data") == 2
    w, b = caffe.read_caffemodel(out / "net.caffemodel").blobs["fc6"]
    assert w.shape == (4096, 256, 6, 6) and b.shape == (4096,)
    # train_val.prototxt's fc6 fillers: gaussian std 0.005, constant 0.1
    assert float(w.std()) == pytest.approx(0.005, rel=0.01) and abs(float(w.mean())) < 1e-5
    np.testing.assert_array_equal(b, np.float32(0.1))
    meta = json.loads((out / "fcnkit.json").read_text())
    assert meta["input_shapes"]["data"] == [1, 3, 227, 227]


@pytest.fixture(scope="module")
def lenet_fcn32s(tmp_path_factory):
    out = tmp_path_factory.mktemp("lenet") / "fcn"
    assert main([str(a) for a in ["surgery", LENET_PROTO, LENET_MODEL, "-o", out]]) == 0
    return out


def test_score_fr_from_the_classifier_is_not_reported_as_filled(lenet_fcn32s):
    """All 10 classes of score_fr come from ip2 (the real weights): adapted from 'ip2', no
    filler in the report."""
    rep = json.loads((lenet_fcn32s / "report.json").read_text())
    e = {x["layer"]: x for x in rep["layers"]}["score_fr"]
    assert (e["status"], e["source"]) == ("adapted", "ip2")
    assert not any(e["fillers"]) and not any("initialised" in n for n in e["notes"])
    real = caffe.read_caffemodel(LENET_MODEL).blobs["ip2"]
    w, b = caffe.read_caffemodel(lenet_fcn32s / "net.caffemodel").blobs["score_fr"]
    np.testing.assert_array_equal(w.reshape(10, 500), real[0])
    np.testing.assert_array_equal(b, real[1])
    row = [ln for ln in (lenet_fcn32s / "report.md").read_text().splitlines()
           if ln.startswith("| score_fr |")][0]
    assert row.split(" | ")[4] == "-" and "constant" not in row


def test_suffix_conv_with_head_names_agree(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = _run(capsys, ["surgery", LENET_PROTO, LENET_MODEL, "--suffix", "-conv",
                                 "--classes", "4", "--keep-classes", "-o", out])
    assert code == 0, err
    net = caffe.read_prototxt(out / "net.prototxt").param
    ip1 = [lp for lp in net.layer if lp.name == "ip1-conv"][0]
    assert ip1.type == "Convolution" and list(ip1.top) == ["ip1-conv"]
    assert not {"ip1", "ip2", "ip2-conv"} & {lp.name for lp in net.layer}
    real = caffe.read_caffemodel(LENET_MODEL).blobs
    back = caffe.read_caffemodel(out / "net.caffemodel").blobs
    np.testing.assert_array_equal(back["ip1-conv"][0].reshape(500, 800), real["ip1"][0])
    np.testing.assert_array_equal(back["score_fr"][0].reshape(4, 500), real["ip2"][0][:4])
    rep = json.loads((out / "report.json").read_text())
    classifier = {lp.name for lp in caffe.read_prototxt(LENET_PROTO).param.layer}
    sources = {e["layer"]: e["source"] for e in rep["layers"] if e["source"]}
    dropped = [d["layer"] for d in rep["dropped"]]
    assert sources["score_fr"] == "ip2" and sources["ip1-conv"] == "ip1"
    assert "ip2" in dropped  # its classes 4..9
    # sources and dropped layers are named as in the classifier: no intermediate '-conv' name
    assert set(sources.values()) <= classifier and set(dropped) <= classifier


def test_group_1_is_a_diagonal_bilinear_deconvolution(tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, ["surgery", LENET_PROTO, LENET_MODEL, "--group", "1",
                                      "--classes", "3", "-o", out])
    assert code == 0, err
    up = _layer(out / "net.prototxt", "upscore")
    cp = up.convolution_param
    # LeNet's total stride is 4 (two 2x2 poolings): kernel 2f - f mod 2 = 8, stride 4
    assert (up.type, cp.num_output, cp.group, list(cp.kernel_size), list(cp.stride)) == \
        ("Deconvolution", 3, 1, [8], [4])
    assert not cp.HasField("weight_filler")  # Caffe has no filler for FCN's convention
    (w,) = caffe.read_caffemodel(out / "net.caffemodel").blobs["upscore"]
    assert w.shape == (3, 3, 8, 8)
    k = _closed_form_bilinear(8)
    for i in range(3):
        for j in range(3):
            np.testing.assert_allclose(w[i, j], k if i == j else 0, rtol=0, atol=1e-7)


def test_head_none_fewer_classes_keep_the_first_logits(tmp_path, capsys):
    """--head none --classes 4 --keep-classes on LeNet: the first 4 logits are OpenCV's ip2
    on its stored input (meta.json names prototxt, caffemodel and input)."""
    meta = json.loads((ORACLE / "meta.json").read_text())
    assert (DATA / meta["prototxt"], DATA / meta["caffemodel"]) == (LENET_PROTO, LENET_MODEL)
    out = tmp_path / "out"
    code, _, err = _run(capsys, ["surgery", LENET_PROTO, LENET_MODEL, "--head", "none",
                                 "--classes", "4", "--keep-classes", "-o", out])
    assert code == 0, err
    x = np.load(ORACLE / "input.npy")
    assert list(x.shape) == meta["input_shape"]
    got = forward(caffe.read_prototxt(out / "net.prototxt").param,
                  caffe.read_caffemodel(out / "net.caffemodel"), x)
    ref = np.load(ORACLE / "layer_outputs.npz")["ip2"][:, :4]
    assert got["ip2"].shape == (1, 4, 1, 1)
    assert rel_err(got["ip2"].reshape(1, 4), ref) <= 1e-4
    soft = np.exp(ref - ref.max()) / np.exp(ref - ref.max()).sum()
    assert rel_err(got["loss"].reshape(1, 4), soft) <= 1e-4


B, G, R = 0, 1, 2  # channels of a Caffe (BGR) classifier


def test_band_map_wv3_rnir_preset(classifier, tmp_path, capsys):
    """wv3-rnir on 8 bands: R, G, B filters go to WorldView-3 bands 6 (red edge), 7 (NIR1),
    8 (NIR2); the other 5 bands start from the mean of the three; the bank is scaled by the
    documented s = C_src / total source weight = 3 / (3 + 5 * 1) = 3/8."""
    proto, model, _, blobs = classifier
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, ["surgery", proto, model, "--head", "none", "--bands", "8",
                                      "--band-map", "wv3-rnir", "-o", out])
    assert code == 0, err
    s = 3 / 8
    w = blobs["conv1"][0].astype(np.float64)
    w8 = caffe.read_caffemodel(out / "net.caffemodel").blobs["conv1"][0]
    assert w8.shape == (w.shape[0], 8, 11, 11)
    for band, ch in ((6, R), (7, G), (8, B)):
        np.testing.assert_allclose(w8[:, band - 1], s * w[:, ch], rtol=1e-6, atol=1e-8)
    for band in (1, 2, 3, 4, 5):
        np.testing.assert_allclose(w8[:, band - 1], s * w.mean(axis=1), rtol=1e-5, atol=1e-8)
    assert "scale 0.375" in stdout
    md = (out / "report.md").read_text()
    assert "## Input bands" in md and "6 <- R (red edge)" in md
    assert "Temporal Segment Networks" in md and "constant input" in md  # the rule, its source


def test_band_map_text_and_zero_fill(classifier, tmp_path, capsys):
    proto, model, _, blobs = classifier
    out = tmp_path / "out"
    code, _, err = _run(capsys, ["surgery", proto, model, "--head", "none", "--bands", "4",
                                 "--band-map", "4=R,1=B", "--band-fill", "zero", "-o", out])
    assert code == 0, err
    w = blobs["conv1"][0]
    w4 = caffe.read_caffemodel(out / "net.caffemodel").blobs["conv1"][0]
    s = 3 / 2  # C_src / total source weight (two mapped bands, two zero bands)
    np.testing.assert_allclose(w4[:, 3], s * w[:, R], rtol=1e-6)
    np.testing.assert_allclose(w4[:, 0], s * w[:, B], rtol=1e-6)
    np.testing.assert_array_equal(w4[:, 1:3], 0)
    code, _, err = _run(capsys, ["surgery", proto, model, "--band-map", "wv3-rnir", "-o", out])
    assert code == 2 and "--band-map needs --bands" in _msg(err)


def test_help_documents_the_band_rule(capsys):
    code, stdout, _ = _run(capsys, ["surgery", "--help"])
    text = " ".join(stdout.replace("\u2502", " ").split())  # rich draws boxes with U+2502
    assert code == 0
    for words in ("--reinit", "Temporal Segment Networks", "constant input", "s = 3/8", "wv3-rnir"):
        assert words in text, words


def test_new_input_shape_may_name_the_new_band_count():
    """--input-shape N,C,H,W is declared after the band adaptation: C = bands is the FCN's
    input; another C is refused (it could only contradict --bands)."""
    net = alexnet_shaped()
    blobs = random_blobs(net, seed=0)
    r = fcn_surgery(net, blobs, classes=2, head="fcn32s", bands=8, input_shape=(1, 8, 96, 96))
    assert list(r.param.layer[0].input_param.shape[0].dim) == [1, 8, 96, 96]
    assert r.blobs["conv1"][0].shape == (8, 8, 11, 11)  # 8 filters of AlexNet-shaped conv1, 8 bands
    with pytest.raises(SurgeryError, match=r"has 3 channels but bands=8; give C = 8 or the input size as H,W"):
        fcn_surgery(net, blobs, classes=2, head="fcn32s", bands=8, input_shape=(1, 3, 96, 96))
