"""Acceptance 3: crop offsets computed from the coordinate maps.

Copies of the official FCN nets with their Crop offsets removed get them back from
`fcnkit offsets --fix`; the per-layer factors and offsets of convolutionalised AlexNet
agree with Table 2 of the NVIDIA DIGITS 5 article."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from fcnkit import caffe
from fcnkit.analysis import crop_offset, crop_table, offset_table
from fcnkit.cli.main import main
from fcnkit.errors import OffsetError
from fcnkit.graph import load_net
from tests.conftest import DATA

FCN = {
    "fcn_berkeleyvision/voc-fcn32s/val.prototxt": {"score": [19, 19]},
    "fcn_berkeleyvision/voc-fcn16s/val.prototxt": {"score_pool4c": [5, 5], "score": [27, 27]},
    "fcn_berkeleyvision/voc-fcn8s/val.prototxt": {"score_pool4c": [5, 5], "score_pool3c": [9, 9],
                                                  "score": [31, 31]},
    "fcn_berkeleyvision/voc-fcn8s/deploy.prototxt": {"score_pool4c": [5, 5], "score_pool3c": [9, 9],
                                                     "score": [31, 31]},
    "fcn_berkeleyvision/voc-fcn-alexnet/val.prototxt": {"score": [18, 18]},
    "digits_nvidia/examples/semantic-segmentation/fcn_alexnet.prototxt": {"score": [18, 18]},
    "digits_nvidia/examples/semantic-segmentation/fcn_alexnet.deploy.prototxt": {"score": [18, 18]},
}


def _strip_offsets(src: str, dst):
    param = caffe.read_prototxt(DATA / src).param
    n = 0
    for lp in param.layer:
        if lp.type == "Crop":
            del lp.crop_param.offset[:]
            n += 1
    assert n
    caffe.write_prototxt(dst, param)


@pytest.mark.parametrize("rel", sorted(FCN))
def test_fix_restores_official_offsets(rel, tmp_path, capsys):
    stripped = tmp_path / "stripped.prototxt"
    fixed = tmp_path / "fixed.prototxt"
    _strip_offsets(rel, stripped)
    # the stripped copy fails the check ...
    assert main(["offsets", str(stripped), "--check"]) == 1
    # ... --fix writes the offsets back ...
    assert main(["offsets", str(stripped), "--fix", "-o", str(fixed)]) == 0
    net = load_net(fixed, allow_unsupported=True)
    got = {lp.name: list(lp.crop_param.offset) for lp in caffe.read_prototxt(fixed).param.layer
           if lp.type == "Crop"}
    assert {k: v[:1] * 2 if len(v) == 1 else v for k, v in got.items()} == FCN[rel]
    # ... and the original and fixed nets pass the check
    assert main(["offsets", str(fixed), "--check"]) == 0
    assert main(["offsets", str(DATA / rel), "--check"]) == 0
    assert all(c.ok for c in crop_table(net))


# Table 2 of the DIGITS article: layer, stride, pad, kernel, factor, offset (per layer).
TABLE2 = [
    ("conv1", 4, 100, 11, Fraction(1, 4), Fraction("23.75")),
    ("pool1", 2, 0, 3, Fraction(1, 2), Fraction("-0.5")),
    ("conv2", 1, 2, 5, 1, 0),
    ("pool2", 2, 0, 3, Fraction(1, 2), Fraction("-0.5")),
    ("conv3", 1, 1, 3, 1, 0),
    ("conv4", 1, 1, 3, 1, 0),
    ("conv5", 1, 1, 3, 1, 0),
    ("pool5", 2, 0, 3, Fraction(1, 2), Fraction("-0.5")),
    ("fc6", 1, 0, 6, 1, Fraction("-2.5")),
    ("fc7", 1, 0, 1, 1, 0),
    ("upscore_21classes", 32, 0, 63, 32, 31),
]


def test_table2_per_layer_columns():
    net = load_net(DATA / "digits_nvidia/examples/semantic-segmentation/fcn_alexnet.deploy.prototxt")
    rows = {r.name: r for r in offset_table(net)}
    for name, stride, pad, kernel, factor, offset in TABLE2:
        r = rows[name]
        assert r.stride == (stride, stride) and r.pad == (pad, pad) and r.kernel == (kernel, kernel), name
        assert r.factor == (factor, factor), name
        assert r.offset == (offset, offset), name
    # the article's cumulative scaling factor column (its cumulative offset column is the
    # one it gets wrong; only the final 18 is right)
    cumulative = {"conv1": Fraction(1, 4), "pool1": Fraction(1, 8), "conv2": Fraction(1, 8),
                  "pool2": Fraction(1, 16), "conv3": Fraction(1, 16), "conv4": Fraction(1, 16),
                  "conv5": Fraction(1, 16), "pool5": Fraction(1, 32), "fc6": Fraction(1, 32),
                  "fc7": Fraction(1, 32), "upscore_21classes": 1}
    for name, f in cumulative.items():
        assert rows[name].cumulative_factor == (f, f), name
    # the cumulative map at the upscore output is the identity shifted by 18 (the crop)
    assert rows["upscore_21classes"].cumulative_factor == (1, 1)
    assert rows["upscore_21classes"].cumulative_offset == (18, 18)
    assert rows["score"].cumulative_offset == (0, 0)


def test_json_report(tmp_path, capsys):
    rel = "fcn_berkeleyvision/voc-fcn8s/deploy.prototxt"
    assert main(["offsets", str(DATA / rel), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    conv1 = next(l for l in doc["layers"] if l["name"] == "conv1_1")
    assert conv1["factor"] == [1, 1] and conv1["offset"] == [99, 99]
    pool1 = next(l for l in doc["layers"] if l["name"] == "pool1")
    assert pool1["factor"] == [0.5, 0.5] and pool1["offset"] == [-0.25, -0.25]
    assert {c["layer"]: c["computed"] for c in doc["crops"]} == {
        "score_pool4c": [5, 5], "score_pool3c": [9, 9], "score": [31, 31]}


@pytest.mark.parametrize("fmt,marker", [("markdown", "| conv1_1 |"), ("csv", "conv1_1,Convolution"),
                                        ("html", "<td>conv1_1</td>")])
def test_table_formats(fmt, marker, capsys):
    assert main(["offsets", str(DATA / "fcn_berkeleyvision/voc-fcn8s/deploy.prototxt"),
                 "--format", fmt]) == 0
    assert marker in capsys.readouterr().out


def test_crop_offset_errors():
    net = load_net(DATA / "fcn_berkeleyvision/voc-fcn8s/deploy.prototxt")
    with pytest.raises(OffsetError, match="scale factors"):
        crop_offset(net, "pool4", "data")          # factor 1/16 vs 1
    with pytest.raises(OffsetError, match="< 0"):
        crop_offset(net, "data", "upscore8")       # data starts inside upscore8
    assert crop_offset(net, "upscore8", "data") == (31, 31)


def test_fractional_offset_is_refused():
    text = """
    layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 32 dim: 32 } } }
    layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
            convolution_param { num_output: 1 kernel_size: 2 pad: 1 } }
    layer { name: "crop" type: "Crop" bottom: "conv" bottom: "data" top: "crop" }
    """
    net = load_net(caffe.parse_prototxt(text))
    with pytest.raises(OffsetError, match="not an integer"):
        crop_offset(net, "conv", "data")


HALF = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 32 dim: 32 } } }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "up" type: "Deconvolution" bottom: "pool" top: "up"
        convolution_param { num_output: 1 kernel_size: 3 stride: 2 bias_term: false } }
layer { name: "crop" type: "Crop" bottom: "up" bottom: "data" top: "crop" crop_param { offset: %s } }
layer { name: "cat" type: "Concat" bottom: "crop" bottom: "data" top: "cat" }
layer { name: "pool2" type: "Pooling" bottom: "cat" top: "pool2"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "up2" type: "Deconvolution" bottom: "pool2" top: "up2"
        convolution_param { num_output: 2 kernel_size: 3 stride: 2 bias_term: false } }
layer { name: "crop2" type: "Crop" bottom: "up2" bottom: "data" top: "crop2" crop_param { offset: %s } }
"""


def test_half_pixel_crops_accept_the_two_nearest_integers(tmp_path, capsys):
    """pool 2x2/2 (x/2 - 1/4) then deconv 3x3/2 (2x + 1): the upsampled map sits at
    x + 1/2 of the input, exactly half-way between crops 0 and 1 (the FC-DenseNet
    transition up). Both are accepted by --check and refused by --check --strict; a
    declared 2 is a mismatch that --fix turns into 0. The second crop is reached through
    a Concat of the first crop with its reference: the half-pixel crop is taken as aligned
    with its reference, so the second is half-pixel too, whatever the first declared."""
    for first, second in (("0", "1"), ("1", "0")):
        path = tmp_path / f"half{first}{second}.prototxt"
        path.write_text(HALF % (first, second))
        rows = crop_table(load_net(path))
        assert [(r.layer, r.exact, r.half_pixel, r.computed) for r in rows] == [
            ("crop", (Fraction(1, 2),) * 2, True, [int(first)] * 2),
            ("crop2", (Fraction(1, 2),) * 2, True, [int(second)] * 2)]
        assert main(["offsets", str(path), "--check"]) == 0
        assert main(["offsets", str(path), "--check", "--strict"]) == 1
        doc_out = capsys.readouterr()
        assert "HALF-PIXEL (exact 0.5,0.5" in doc_out.out
    bad = tmp_path / "bad.prototxt"
    bad.write_text(HALF % ("2", "0"))
    assert main(["offsets", str(bad), "--check"]) == 1
    assert "crop crop: declared [2, 2], computed [0, 0]: MISMATCH" in capsys.readouterr().out
    assert main(["offsets", str(bad), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["crops"][0] == {"layer": "crop", "axis": 2, "declared": [2, 2], "computed": [0, 0],
                               "exact": [0.5, 0.5], "alignment": "half-pixel"}
    fixed = tmp_path / "fixed.prototxt"
    assert main(["offsets", str(bad), "--fix", "-o", str(fixed)]) == 0
    assert [list(lp.crop_param.offset) for lp in caffe.read_prototxt(fixed).param.layer
            if lp.type == "Crop"] == [[0], [0]]
    # the strict, pixel-exact API refuses it and names the two nearest crops
    with pytest.raises(OffsetError, match=r"0\.5, not an integer.*nearest, 0 and 1"):
        crop_offset(load_net(fixed), "up", "data")


def test_quarter_pixel_crop_is_refused():
    """Subsampling (1x1/2 pooling, x/2) against 2x2/2 pooling (x/2 - 1/4): 1/4 apart,
    neither pixel-exact nor half-pixel."""
    text = """
    layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 32 dim: 32 } } }
    layer { name: "sub" type: "Pooling" bottom: "data" top: "sub"
            pooling_param { pool: MAX kernel_size: 1 stride: 2 } }
    layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
            pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
    layer { name: "crop" type: "Crop" bottom: "sub" bottom: "pool" top: "crop" }
    """
    net = load_net(caffe.parse_prototxt(text))
    (row,) = crop_table(net)
    assert row.computed is None and "0.25, not an integer (nor half-way" in row.error
    assert row.status() == row.error


MISALIGNED = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 32 dim: 32 } } }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "up" type: "Deconvolution" bottom: "pool" top: "up"
        convolution_param { num_output: 1 kernel_size: 2 stride: 2 bias_term: false } }
layer { name: "sum" type: "Eltwise" bottom: "up" bottom: "data" top: "sum" }
"""


def test_misaligned_branches_are_reported_and_fail_the_check(tmp_path, capsys):
    """pool 3x3/2 (x/2 - 1/2) then deconv 2x2/2 (2x + 1/2) puts 'up' at x - 1/2 of 'data':
    the shapes agree (32x32) but the Eltwise adds maps half a pixel apart, with no Crop to
    report it. --check fails and names the layer and both maps; compile warns."""
    path = tmp_path / "mis.prototxt"
    path.write_text(MISALIGNED)
    assert main(["offsets", str(path), "--check"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert (f"misaligned: {path}: layer 'sum' (Eltwise, line 7): bottom 'data' is at factor "
            "(1, 1), offset (0, 0) but bottom 'up' is at factor (1, 1), offset (-0.5, -0.5)") in out
    assert main(["offsets", str(path), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["misaligned"]) == 1 and "layer 'sum'" in doc["misaligned"][0]
    assert main(["compile", str(path)]) == 0
    assert f"warning: misaligned branches: {path}: layer 'sum'" in " ".join(capsys.readouterr().out.split())
    # the aligned net (deconv 2x2/2 after pool 2x2/2: 2(x/2 - 1/4) + 1/2 = x) is clean
    path.write_text(MISALIGNED.replace("kernel_size: 3 stride: 2", "kernel_size: 2 stride: 2"))
    assert main(["offsets", str(path), "--check"]) == 0
    doc_ok = capsys.readouterr().out
    assert "Misaligned branches" not in doc_ok
