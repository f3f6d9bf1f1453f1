"""Acceptance 3: `fcnkit offsets --check` on the zoo prototxts; the FCN crop offsets are
the published ones (DIGITS article Table 2: 18; fcn.berkeleyvision.org: 19; 5, 27;
5, 9, 31), computed at build time, not typed."""

from __future__ import annotations

from fractions import Fraction

import pytest

from fcnkit import caffe, zoo
from fcnkit.analysis import crop_table, maps_to_ancestors
from fcnkit.cli.main import main
from fcnkit.graph import load_net
from tests.zoo.zoo_helpers import FCN, PROTOTXT, TIRAMISU

PUBLISHED = {
    "fcn_alexnet_8band": {"score": 18},
    "fcn32s_8band": {"score": 19},
    "fcn16s_8band": {"score_pool4c": 5, "score": 27},
    "fcn8s_8band": {"score_pool4c": 5, "score_pool3c": 9, "score": 31},
}


def _crops(path):
    return {lp.name: list(lp.crop_param.offset) for lp in caffe.read_prototxt(path).param.layer
            if lp.type == "Crop"}


@pytest.mark.parametrize("phase", zoo.PHASES)
@pytest.mark.parametrize("name", FCN)
def test_offsets_check_is_clean_on_fcn_prototxts(name, phase, capsys):
    path = PROTOTXT / zoo.filename(name, phase)
    for state in (["--phase", "TEST"], ["--phase", "TRAIN"]):
        assert main(["offsets", str(path), "--check", *state]) == 0
    assert _crops(path) == {k: [v] for k, v in PUBLISHED[name].items()}
    out = capsys.readouterr().out
    for layer, off in PUBLISHED[name].items():
        assert f"| {layer} | 2 | {off},{off} | {off},{off} | ok |" in out


def _exact_offset(net, layer):
    """The real-valued shift between a transition up's upsampled map and its skip
    connection, along the direct path skip -> pool -> ... -> deconvolution."""
    node = net.layer(layer)
    up, skip = node.bottoms
    m = maps_to_ancestors(net, up)[skip]
    return m.factor, m.offset


@pytest.mark.parametrize("name", TIRAMISU)
def test_tiramisu_crops_are_centre_crops_half_a_pixel_off(name):
    """FC-DenseNet (paper and bfortuner alike) is not pixel-aligned: a 2x2/2 max pooling
    (map x/2 - 1/4) then a 3x3/2 transposed convolution (2x + 1) put the upsampled map at
    x + 1/2 of the skip connection. The first transition up has a single path, so its
    exact shift is +1/2 straight from the two layer maps; later ones are reached through
    concatenations of a half-pixel crop with its skip, which stay on the skip's grid, so
    they are +1/2 too. The centre crop takes the lower integer, 0, like bfortuner's
    ``center_crop`` at even sizes: a half-pixel alignment, accepted, never pixel-exact."""
    path = PROTOTXT / zoo.filename(name, "deploy")
    net = load_net(path)
    assert _exact_offset(net, "tu1_crop") == ((1, 1), (Fraction(1, 2), Fraction(1, 2)))
    rows = crop_table(net)
    assert [r.layer for r in rows] == [f"tu{i}_crop" for i in range(1, 6)]
    for r in rows:
        assert r.declared == r.computed == [0, 0]
        assert r.exact == (Fraction(1, 2), Fraction(1, 2)) and r.half_pixel
        assert r.ok and not r.passes(strict=True)


@pytest.mark.parametrize("phase", zoo.PHASES)
@pytest.mark.parametrize("name", TIRAMISU)
def test_offsets_check_is_clean_on_tiramisu_prototxts(name, phase, capsys):
    """`offsets --check` accepts the half-pixel centre crops (exit 0, each reported as
    half-pixel with its exact offset); `--check --strict` refuses them (exit 1)."""
    path = str(PROTOTXT / zoo.filename(name, phase))
    for state in (["--phase", "TEST"], ["--phase", "TRAIN"]):
        assert main(["offsets", path, "--check", *state]) == 0
    out = capsys.readouterr().out
    assert out.count("| 0,0 | 0,0 | ok (half-pixel: exact 0.5,0.5;") == 2 * 5
    assert main(["offsets", path, "--check", "--strict"]) == 1
    assert "HALF-PIXEL (exact 0.5,0.5" in capsys.readouterr().out


def test_offsets_are_computed_not_typed():
    """Changing conv1's padding moves every FCN crop by the amount the coordinate maps
    predict: the offsets come from the net, not from a table."""
    from fcnkit.netspec import L, NetSpec
    from fcnkit.netspec.blocks import crop_to, upscore, vgg_block

    def net(pad):
        n = NetSpec()
        n.data = L.Input(shape=dict(dim=[1, 8, 64, 64]))
        x = vgg_block(n, n.data, 1, 2, 8, first_pad=pad)
        crop_to(n, upscore(n, x, "up", 2, 2), n.data, "score")
        return {lp.name: list(lp.crop_param.offset) for lp in n.to_proto().layer if lp.type == "Crop"}

    # conv pad p, k 3: O = p - 1; 3x3 pad 1: 0; pool 2/2: (O - 1/2) / 2; up (k 4, s 2): 2 x + 3/2
    for pad in (100, 50, 7):
        assert net(pad) == {"score": [2 * ((pad - 1) - Fraction(1, 2)) / 2 + Fraction(3, 2)]}
