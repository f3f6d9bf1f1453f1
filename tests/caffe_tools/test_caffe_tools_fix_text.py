"""`offsets --fix` edits the user's text: only the offset tokens change (comments, spacing,
number spelling kept), and the result carries the computed offsets."""

from __future__ import annotations

import difflib

import pytest

from fcnkit import caffe
from fcnkit.analysis import crop_table
from fcnkit.caffe.text_edit import parse_int, set_layer_field
from fcnkit.cli.main import main
from fcnkit.errors import CaffeFormatError
from fcnkit.graph import load_net
from tests.conftest import DATA

FCN8S = DATA / "fcn_berkeleyvision" / "voc-fcn8s" / "deploy.prototxt"
FCN16S_TRAIN = DATA / "fcn_berkeleyvision" / "voc-fcn16s" / "train.prototxt"


def _commented(text: str) -> str:
    """FCN-8s deploy with comments, odd spacing and number spellings around its crops:
    score_pool4c keeps 5 spelled 0x5 (right), score's 31 becomes 0x10 (wrong), and
    score_pool3c's 9 becomes a wrong list on one line."""
    text = text.replace('name: "score_pool4c"', 'name: "score_pool4c"  # offset: 1 in a comment')
    text = text.replace("offset: 5", "offset:0x5   # hex, and right")
    text = text.replace("offset: 31", "offset : 0x10 # wrong, { braces } in a comment")
    text = text.replace("offset: 9", "offset: [ 7, 7 ]")
    return "# FCN-8s with comments\n" + text


def _changed_lines(a: str, b: str) -> list[tuple[str, str]]:
    al, bl = a.splitlines(), b.splitlines()
    assert len(al) == len(bl)
    return [(x, y) for x, y in zip(al, bl) if x != y]


def test_fix_changes_exactly_the_wrong_offset_tokens(tmp_path, capsys):
    src, out = tmp_path / "net.prototxt", tmp_path / "fixed.prototxt"
    src.write_text(_commented(FCN8S.read_text()))
    assert main(["offsets", str(src), "--check"]) == 1
    assert main(["offsets", str(src), "--fix", "-o", str(out)]) == 0
    before, after = src.read_text(), out.read_text()
    assert _changed_lines(before, after) == [
        ("    offset: [ 7, 7 ]", "    offset: [ 9, 9 ]"),
        ("    offset : 0x10 # wrong, { braces } in a comment", "    offset : 31 # wrong, { braces } in a comment"),
    ]
    assert "offset:0x5   # hex, and right" in after  # a right value keeps its spelling
    assert main(["offsets", str(out), "--check"]) == 0
    assert {c.layer: c.declared for c in crop_table(load_net(out))} == {
        "score_pool4c": [5, 5], "score_pool3c": [9, 9], "score": [31, 31]}


def test_fix_adds_missing_offsets(tmp_path):
    text = FCN8S.read_text()
    text = text.replace("offset: 31", "")                       # no offset: default 0, wrong
    text = text.replace("offset: 9", "offset: 8\n    offset: 9")  # one per axis, first wrong
    text = text.replace("crop_param {\n    axis: 2\n    offset: 5\n  }", "")  # no crop_param at all
    net = load_net(caffe.parse_prototxt(text))
    from fcnkit.analysis import fix_crop_offsets_text

    fixed = fix_crop_offsets_text(net, text)
    assert {c.layer: c.declared for c in crop_table(load_net(caffe.parse_prototxt(fixed)))} == {
        "score_pool4c": [5, 5], "score_pool3c": [9, 9], "score": [31, 31]}
    diff = [d for d in difflib.ndiff(text.splitlines(), fixed.splitlines()) if d[:1] in "+-"]
    # one line in (score), one value changed (score_pool3c's first of two), one
    # crop_param block in (score_pool4c): nothing else
    assert sorted(diff) == sorted(["+     offset: 31", "-     offset: 8", "+     offset: 9",
                                   "+   crop_param {", "+     offset: 5", "+   }"])


def test_fix_edits_every_phase_of_a_train_val_net(tmp_path):
    """voc-fcn16s train.prototxt (Python data layer, TRAIN): its crops are right, so
    --fix returns the text unchanged, byte for byte."""
    out = tmp_path / "fixed.prototxt"
    assert main(["offsets", str(FCN16S_TRAIN), "--phase", "TRAIN", "--fix", "-o", str(out)]) == 0
    assert out.read_bytes() == FCN16S_TRAIN.read_bytes()


def test_set_layer_field_rules():
    text = 'layer { name: "c" type: "Crop" crop_param { offset: 010 offset: 2 } }  # c\n'
    crop = (lambda t: t == "Crop")
    assert set_layer_field(text, {"c": [8, 2]}, crop, "crop_param", "offset") == text  # 010 is octal 8
    assert set_layer_field(text, {"c": [3]}, crop, "crop_param", "offset") == \
        'layer { name: "c" type: "Crop" crop_param { offset: 3 } }  # c\n'
    assert set_layer_field(text, {"c": [8, 7]}, crop, "crop_param", "offset") == \
        'layer { name: "c" type: "Crop" crop_param { offset: 010 offset: 7 } }  # c\n'
    three = 'layer { name: "c" type: "Crop" crop_param { offset: 1 offset: 2 offset: 3 } }\n'
    assert set_layer_field(three, {"c": [4, 5]}, crop, "crop_param", "offset") == \
        'layer { name: "c" type: "Crop" crop_param { offset: 4 offset: 5 } }\n'
    with pytest.raises(CaffeFormatError, match="no top-level `layer"):
        set_layer_field(text, {"d": [1]}, crop, "crop_param", "offset")
    assert [parse_int(t) for t in ("0x1F", "017", "-3", "+4", "x")] == [31, 15, -3, 4, None]
