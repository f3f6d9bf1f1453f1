"""Acceptance 1: FC-DenseNet learnable parameter counts within 1% of the widely used
PyTorch implementation (bfortuner/pytorch_tiramisu), whose published counts are the
independent truth here (the paper rounds them to 1.5 M, 3.5 M and 9.4 M)."""

from __future__ import annotations

import pytest

from fcnkit import zoo
from fcnkit.analysis import analyse
from fcnkit.graph import load_net

#: (zoo model, bands, classes) -> bfortuner/pytorch_tiramisu's count
PUBLISHED = {
    ("tiramisu56_8band", 3, 12): 1_376_988,
    ("tiramisu67_8band", 3, 12): 3_463_532,
    ("tiramisu103_8band", 3, 12): 9_322_348,
    ("tiramisu56_8band", 8, 2): 1_377_218,
    ("tiramisu67_8band", 8, 2): 3_462_802,
    ("tiramisu103_8band", 8, 2): 9_321_938,
    ("tiramisu103_8band_f96", 8, 2): 10_141_394,
}
#: the paper's rounded figures (Jégou et al. Table 2 / section 4), 3 bands, 12 classes
PAPER_MILLIONS = {"tiramisu56_8band": 1.5, "tiramisu67_8band": 3.5, "tiramisu103_8band": 9.4}


def _params(name, bands, classes, phase="deploy"):
    return analyse(load_net(zoo.build(name, phase=phase, bands=bands, classes=classes))).total_params


def test_tiramisu_parameter_counts_match_pytorch_tiramisu(capsys):
    rows = []
    for (name, bands, classes), published in PUBLISHED.items():
        got = _params(name, bands, classes)
        rows.append((name, bands, classes, got, published, (got - published) / published))
    with capsys.disabled():
        print("\nFC-DenseNet learnable parameters: fcnkit vs bfortuner/pytorch_tiramisu")
        for name, b, c, got, pub, rel in rows:
            print(f"  {name:24s} {b} bands {c:2d} classes: {got:>11,} vs {pub:>11,} ({rel:+.4%})")
    for name, b, c, got, pub, rel in rows:
        assert abs(rel) < 0.01, f"{name} {b} bands {c} classes: {got:,} vs {pub:,}"
    for name, millions in PAPER_MILLIONS.items():
        got = next(r[3] for r in rows if r[0] == name and r[1] == 3)
        assert abs(got / 1e6 - millions) <= 0.15, (name, got)


def test_train_val_has_the_same_parameters():
    """Dropout, the loss and the accuracy have no parameters; BatchNorm statistics are
    not learnable in either phase."""
    assert _params("tiramisu56_8band", 8, 2, "train_val") == PUBLISHED[("tiramisu56_8band", 8, 2)]


def test_bands_and_classes_change_only_first_and_last_layers():
    """Exact arithmetic: the first 3x3 conv has 9 * bands * filters weights, the 1x1
    classifier (C_last + 1) * classes."""
    base = _params("tiramisu56_8band", 8, 2)
    assert _params("tiramisu56_8band", 3, 2) == base - 5 * 9 * 48
    # the last dense block outputs C_last maps: skip db1 (48 + 4k), the upsampled new
    # maps of ub4 (4k) and its own 4k new maps (k = 12); classes 2 -> 5 adds 3 (C_last + 1)
    c_last = (48 + 4 * 12) + 4 * 12 + 4 * 12
    assert _params("tiramisu56_8band", 8, 5) == base + 3 * (c_last + 1)
    names = ["coastal", "blue", "green"]
    assert _params("tiramisu56_8band", names, ["a", "b"]) == _params("tiramisu56_8band", 3, 2)


@pytest.mark.parametrize("name, expected", [
    # Caffe shapes: AlexNet convs (grouped conv2/4/5), fc6 4096x256x6x6, fc7, score_fr,
    # group-wise upscore 2x1x63x63
    ("fcn_alexnet_8band",
     96 * 8 * 121 + 96 + 256 * 48 * 25 + 256 + 384 * 256 * 9 + 384 + 384 * 192 * 9 + 384
     + 256 * 192 * 9 + 256 + 4096 * 256 * 36 + 4096 + 4096 * 4096 + 4096 + 2 * 4096 + 2
     + 2 * 63 * 63),
])
def test_fcn_alexnet_parameter_count(name, expected):
    assert _params(name, None, None) == expected
