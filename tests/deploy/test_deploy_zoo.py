"""Acceptance 1, zoo half: every zoo model exports to ONNX at a small tile, passes the
checker and matches torch in ONNX Runtime to 1e-4 (relative, fp32); its graph is named
data -> prob and carries the zoo's band and class names.

The comparison has to be able to fail: filled untrained weights give saturated
probabilities (FCN-8s at 32 x 32: the same class at >= 0.999 on 99% of the pixels), which
would hide a wrong Crop or upsampling. So the scores are calibrated to O(1) and centred
(:func:`calibrate_scores`), the test asserts that the reference is not saturated, and the
pre-Softmax ``score`` blob is exported as an extra output and compared as well."""

from __future__ import annotations

import json

import pytest

from fcnkit.deploy.onnx import FP32_TOLERANCE
from tests.deploy.deploy_helpers import calibrate_scores, independent_parity, load_zoo_untrained

#: The smallest tile every zoo model takes: FCNs pad conv1 by 100; FC-DenseNets pool five
#: times and concatenate skips, so H and W must be multiples of 32.
ZOO_TILE = (32, 32)


def _zoo_export(exports, name):
    def loader():
        # seeded He-normal weights; untrained BatchNorm statistics are 0: variance 1
        src = load_zoo_untrained(name, ZOO_TILE)
        src.calibration = calibrate_scores(src.compiled)
        return src

    return exports.get(f"zoo_{name}", loader, extra_outputs=("score",))


def _all_zoo_names():
    from fcnkit.deploy.model import zoo_names

    return zoo_names() or ["<zoo not available>"]


@pytest.mark.parametrize("name", _all_zoo_names())
def test_zoo_model_exports_and_matches_torch(exports, zoo_names, name):
    src, result, path = _zoo_export(exports, name)
    # the reference is not saturated: both classes occur, probabilities spread
    cal = src.calibration
    total = sum(cal["labels"])
    assert min(cal["labels"]) >= 0.1 * total, cal
    assert cal["prob_std"] > 0.1 and cal["saturated"] < 0.05, cal
    assert cal["spatial"] > 0.3, cal  # the scores vary over the tile: a shifted Crop would show
    # the library ran the full checker on these bytes (test_deploy_onnx proves that it
    # does, and that a rejection fails the export); the file is the checked graph
    assert path.stat().st_size == result.size_bytes
    assert result.opset == 18
    assert result.inputs == {"data": ["batch", 8, *ZOO_TILE]}
    assert result.outputs == {"prob": ["batch", 2, *ZOO_TILE], "score": ["batch", 2, *ZOO_TILE]}
    assert result.node_types.get("Softmax") == 1
    # parity of the probabilities and of the scores before the Softmax, both varying
    rows = {r.output: r for r in result.parity}
    assert set(rows) == {"prob", "score"}
    assert all(r.varies for r in rows.values()) and result.meaningful and not result.warnings
    assert result.ok and result.relative <= FP32_TOLERANCE, result.lines()
    lo, hi = rows["score"].value_range
    assert hi - lo > 1.0  # O(1) scores that change over the tile and between samples
    # and independently of that report: ONNX Runtime vs torch on prob and score, measured here
    measured = independent_parity(path, src.compiled, result.inputs)
    assert measured.keys() == {"prob", "score"} and max(measured.values()) <= FP32_TOLERANCE, measured
    meta = result.metadata
    from fcnkit import zoo

    info = zoo.info(name)
    assert json.loads(meta["fcnkit.bands"]) == info["band_names"]
    assert json.loads(meta["fcnkit.classes"]) == info["class_names"] == ["background", "road"]
    assert meta["fcnkit.source"] == f"zoo:{name}" and meta["fcnkit.tile"] == "32,32"
    assert json.loads(meta["fcnkit.output_kinds"]) == {"prob": "probabilities", "score": "scores"}
