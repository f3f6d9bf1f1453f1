"""`fcnkit draw`: valid DOT with every layer and blob of a real net drawn the way Caffe's
python/caffe/draw.py draws them, plus fcnkit's factors/offsets and the Crop highlighting."""

from __future__ import annotations

import re
import shutil

import pytest

from fcnkit import caffe
from fcnkit.analysis import offset_table
from fcnkit.analysis.draw import net_to_dot
from fcnkit.analysis.report import pair
from fcnkit.cli.main import main
from fcnkit.graph import load_net
from tests.conftest import DATA

FCN8S = DATA / "fcn_berkeleyvision" / "voc-fcn8s" / "deploy.prototxt"
ALEXNET_TV = DATA / "bvlc_caffe" / "v2" / "models" / "bvlc_alexnet" / "train_val.prototxt"

_STR = r'"((?:[^"\\]|\\.)*)"'
_NODE = re.compile(rf"^\s*{_STR}\s*\[(.*)\];$")
_EDGE = re.compile(rf"^\s*{_STR}\s*->\s*{_STR};$")
_ATTR = re.compile(rf"(\w+)={_STR}")


def parse_dot(text: str) -> tuple[dict[str, dict[str, str]], list[tuple[str, str]]]:
    """A strict reader of the DOT subset fcnkit writes: every statement line must be a
    node with attributes or an edge; anything else fails the test."""
    lines = text.strip().splitlines()
    assert re.match(rf"^digraph {_STR} {{$", lines[0]) and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if line.strip() in ('rankdir="LR";', 'rankdir="TB";', 'node [fontname="Helvetica"];'):
            continue
        if m := _EDGE.match(line):
            edges.append((m.group(1), m.group(2)))
        elif m := _NODE.match(line):
            attrs = dict(_ATTR.findall(m.group(2)))
            assert ", ".join(f'{k}="{v}"' for k, v in attrs.items()) == m.group(2), line
            nodes[m.group(1)] = attrs
        else:
            raise AssertionError(f"not DOT fcnkit writes: {line!r}")
    for a, b in edges:
        assert a in nodes and b in nodes, (a, b)
    return nodes, edges


def test_draw_fcn8s_dot_has_every_layer_blob_and_edge(tmp_path, capsys):
    out = tmp_path / "net.dot"
    assert main(["draw", str(FCN8S), "-o", str(out)]) == 0
    text = out.read_text()
    nodes, edges = parse_dot(text)
    param = caffe.read_prototxt(FCN8S).param
    want_edges = set()
    for lp in param.layer:
        assert nodes[f"layer:{lp.name}"]["shape"] == "record"
        for b in lp.bottom:
            want_edges.add((f"blob:{b}", f"layer:{lp.name}"))
        for t in lp.top:
            want_edges.add((f"layer:{lp.name}", f"blob:{t}"))
    assert set(edges) == want_edges
    blobs = {b for lp in param.layer for b in (*lp.bottom, *lp.top)}
    assert {n for n in nodes if n.startswith("blob:")} == {f"blob:{b}" for b in blobs}
    assert all(nodes[f"blob:{b}"]["shape"] == "octagon" for b in blobs)
    # Caffe's colours: in-place ReLU light green (a loop on its blob), conv red, pool orange
    assert nodes["layer:relu1_1"]["fillcolor"] == "#90EE90"
    assert ("blob:conv1_1", "layer:relu1_1") in edges and ("layer:relu1_1", "blob:conv1_1") in edges
    assert nodes["layer:conv1_1"]["fillcolor"] == "#FF5050"
    assert nodes["layer:pool1"]["fillcolor"] == "#FF9900"
    # fcnkit's own: factor and offset of every layer as the offset table computes them
    for row in offset_table(load_net(FCN8S)):
        label = nodes[f"layer:{row.name}"]["label"]
        if row.factor is not None:
            assert f"factor {pair(row.factor)}, offset {pair(row.offset)}" in label
    assert "kernel 3, stride 1, pad 100" in nodes["layer:conv1_1"]["label"]
    # the three Crop layers of the official net are right: gold
    for crop in ("score_pool4c", "score_pool3c", "score"):
        assert nodes[f"layer:{crop}"]["fillcolor"] == "#FFD700"


def test_draw_marks_a_wrong_crop_red(tmp_path):
    bad = tmp_path / "bad.prototxt"
    bad.write_text(FCN8S.read_text().replace("offset: 31", "offset: 30"))
    nodes, _ = parse_dot(net_to_dot(load_net(bad), "TB"))
    assert nodes["layer:score"]["fillcolor"] == "#FF0000"
    assert nodes["layer:score"]["penwidth"] == "3"
    assert "crop offset 30,30 (computed 31,31): WRONG" in nodes["layer:score"]["label"]
    assert nodes["layer:score_pool4c"]["fillcolor"] == "#FFD700"


def test_draw_phase_filters_and_escapes(tmp_path):
    """TRAIN and TEST draws differ by the phase-only layers (AlexNet train_val: the
    accuracy layer is TEST only); names with record and DOT specials are escaped."""
    train = parse_dot(net_to_dot(load_net(ALEXNET_TV, phase="TRAIN", allow_unsupported=True)))[0]
    test = parse_dot(net_to_dot(load_net(ALEXNET_TV, phase="TEST", allow_unsupported=True)))[0]
    assert "layer:accuracy" in test and "layer:accuracy" not in train
    odd = tmp_path / "odd.prototxt"
    odd.write_text('input: "a\\"b" input_shape { dim: 1 dim: 1 dim: 4 dim: 4 }\n'
                   'layer { name: "r{|}" type: "ReLU" bottom: "a\\"b" top: "a\\"b" }\n')
    nodes, _ = parse_dot(net_to_dot(load_net(odd)))
    # record specials escaped with a backslash, lines joined by Graphviz's \n escape
    assert nodes["layer:r{|}"]["label"].startswith(r"r\{\|\}\n(ReLU)\n")
    assert nodes[r'blob:a\"b']["label"] == r'a\"b'  # the quote escaped for DOT


def test_draw_errors(tmp_path, capsys):
    assert main(["draw", str(FCN8S), "-o", str(tmp_path / "x.dot"), "--rankdir", "XY"]) == 2
    assert "--rankdir must be one of LR, TB, BT, RL" in capsys.readouterr().err
    assert main(["draw", str(FCN8S), "-o", str(tmp_path / "x.jpeg")]) == 2
    assert not list(tmp_path.iterdir())
    svg = tmp_path / "net.svg"
    code = main(["draw", str(FCN8S), "-o", str(svg)])
    if shutil.which("dot") is None:
        assert code == 2 and not svg.exists()
        assert "apt install graphviz" in " ".join(capsys.readouterr().err.split())
    else:
        assert code == 0 and b"<svg" in svg.read_bytes()


def test_draw_dot_parses_with_pydot_when_installed(tmp_path):
    pydot = pytest.importorskip("pydot", reason="pydot is optional; the strict reader above checks the DOT")
    text = net_to_dot(load_net(FCN8S))
    graphs = pydot.graph_from_dot_data(text)
    assert graphs and len(graphs[0].get_edges()) == len(parse_dot(text)[1])
