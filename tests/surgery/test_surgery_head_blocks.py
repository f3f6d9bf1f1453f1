"""The FCN head is built once: surgery's add_fcn_head and the zoo make the same upsampling,
crop and fuse layers with the same kernel rule (Caffe's BilinearFiller documentation,
include/caffe/filler.hpp: kernel_size = 2 * factor - factor % 2)."""

from __future__ import annotations

import pytest
from google.protobuf import text_format

from fcnkit import caffe
from fcnkit.errors import NetDefinitionError
from fcnkit.netspec import blocks
from fcnkit.surgery import add_fcn_head, upsampling_kernels
from tests.zoo.zoo_helpers import PROTOTXT

_HEAD_TYPES = ("Deconvolution", "Crop", "Eltwise")


@pytest.mark.parametrize("factor", range(1, 40))
def test_one_kernel_rule(factor):
    rule = 2 * factor - factor % 2            # filler.hpp's documented rule, written out
    assert blocks.bilinear_kernel_size(factor) == rule
    assert upsampling_kernels(factor)[0] == rule
    if factor % 2 == 0:
        assert rule == 2 * factor             # FCN's 2f: the zoo's factors 2, 8, 16, 32


@pytest.mark.parametrize("bad", [0, -2, 2.5])
def test_kernel_rule_refuses_bad_factors(bad):
    with pytest.raises(NetDefinitionError, match="factor"):
        blocks.bilinear_kernel_size(bad)


def _head_layers(param):
    return {lp.name: text_format.MessageToString(lp) for lp in param.layer if lp.type in _HEAD_TYPES}


@pytest.mark.parametrize("kind", ["fcn32s", "fcn16s", "fcn8s"])
def test_surgery_rebuilds_the_zoo_head(kind):
    """Cut the zoo net after score_fr, let surgery add the head back: every
    upsampling, crop and fuse layer comes out identical to the zoo's (kernel, stride,
    group, filler, lr_mult, crop offsets 19 / 5, 27 / 5, 9, 31)."""
    zoo_param = caffe.read_prototxt(PROTOTXT / f"{kind}_8band.deploy.prototxt").param
    names = [lp.name for lp in zoo_param.layer]
    trunk = type(zoo_param)()
    trunk.CopyFrom(zoo_param)
    del trunk.layer[:]
    trunk.layer.extend(zoo_param.layer[:names.index("score_fr") + 1])  # VGG + fc6/7 + score_fr
    classes = next(lp for lp in zoo_param.layer if lp.name == "score_fr").convolution_param.num_output
    r = add_fcn_head(trunk, classes, kind, pad=None, classifier="score_fr")
    expected = _head_layers(zoo_param)
    assert len(expected) == {"fcn32s": 2, "fcn16s": 5, "fcn8s": 8}[kind]
    assert _head_layers(r.param) == expected
