"""Graph semantics: Caffe's NetState rules, in-place blob versions, net outputs."""

from __future__ import annotations

import pytest

from fcnkit import caffe
from fcnkit.errors import NetDefinitionError
from fcnkit.graph import NetState, load_net, rule_matches

HEAD = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } } }\n'


def net_of(text, **state):
    return load_net(caffe.parse_prototxt(HEAD + text), NetState.make(**state) if state else None)


def _rule(text):
    from google.protobuf import text_format

    return text_format.Parse(text, caffe.caffe_pb2.NetStateRule())


@pytest.mark.parametrize("rule,state,expected", [
    ("phase: TRAIN", NetState.make("TRAIN"), True),
    ("phase: TRAIN", NetState.make("TEST"), False),
    ("min_level: 1", NetState.make("TEST", 0), False),
    ("min_level: 1", NetState.make("TEST", 2), True),
    ("max_level: 1", NetState.make("TEST", 2), False),
    ('stage: "deploy"', NetState.make("TEST", 0, ["deploy"]), True),
    ('stage: "deploy" stage: "x"', NetState.make("TEST", 0, ["deploy"]), False),
    ('not_stage: "deploy"', NetState.make("TEST", 0, ["deploy"]), False),
    ('not_stage: "deploy"', NetState.make("TEST"), True),
])
def test_state_meets_rule(rule, state, expected):
    assert rule_matches(state, _rule(rule)) is expected


def test_include_and_exclude_filtering():
    text = """
layer { name: "a" type: "ReLU" bottom: "data" top: "a" include { phase: TRAIN } }
layer { name: "b" type: "ReLU" bottom: "data" top: "b" exclude { stage: "deploy" } }
layer { name: "c" type: "ReLU" bottom: "data" top: "c" include { stage: "deploy" } include { phase: TRAIN } }
"""
    assert [n.name for n in net_of(text).layers] == ["data", "b"]
    assert [n.name for n in net_of(text, phase="TRAIN").layers] == ["data", "a", "b", "c"]
    assert [n.name for n in net_of(text, phase="TEST", stages=["deploy"]).layers] == ["data", "c"]


def test_include_and_exclude_together_is_refused():
    with pytest.raises(NetDefinitionError, match="both include and exclude"):
        net_of('layer { name: "a" type: "ReLU" bottom: "data" top: "a" include { phase: TEST } '
               'exclude { phase: TRAIN } }')


def test_in_place_versions_and_outputs():
    net = net_of("""
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "drop" type: "Dropout" bottom: "conv" top: "conv" }
layer { name: "side" type: "ReLU" bottom: "data" top: "side" }
""")
    assert net.layer("relu").bottoms == ["conv"] and net.layer("relu").tops == ["conv@relu"]
    assert net.layer("drop").tops == ["conv@drop"]
    assert net.final["conv"] == "conv@drop"
    assert net.outputs == ["conv@drop", "side"]
    assert net.blob("conv") == "conv@drop"
