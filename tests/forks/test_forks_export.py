"""ONNX export of the fork fixtures: the written file, run in ONNX Runtime, matches torch."""

from __future__ import annotations

import numpy as np
import pytest

from fcnkit.errors import FcnkitError
from tests.forks._nets import DATA

pytest.importorskip("onnxruntime")


def _export(name, tmp_path):
    from fcnkit.compile import compile_net
    from fcnkit.deploy.onnx import export_onnx
    from fcnkit.graph import load_net

    compiled = compile_net(load_net(DATA / name), deploy=True, seed=3)
    path = tmp_path / "m.onnx"
    # the comparison below is this test's own (the exporter's parity run would repeat it)
    export_onnx(compiled, path, batch=1, check=False)
    return compiled, path


# (Interp, PSPNet's BN and SpatialDropout are exported, each as one module, by
# tests/layers/test_registry.py::test_onnx_export_of_all_modules.)
@pytest.mark.parametrize("name", ["ssd_like.prototxt", "segnet_like.prototxt"])
def test_export_matches_torch_in_onnxruntime(name, tmp_path):
    import onnxruntime as ort
    import torch

    compiled, path = _export(name, tmp_path)
    rng = np.random.default_rng(11)
    feeds = {n: rng.standard_normal(s).astype(np.float32)
             for n, s in compiled.input_shapes.items()}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    with torch.no_grad():
        ref = compiled(*[torch.from_numpy(feeds[n]) for n in compiled.inputs])
    assert set(ref) <= set(got)
    for key, value in ref.items():
        np.testing.assert_allclose(got[key], value.numpy(), rtol=1e-4, atol=1e-4)
    if name == "ssd_like.prototxt":  # the file ends at DetectionOutput's bottoms
        assert sorted(ref) == ["mbox_conf_flatten", "mbox_loc", "mbox_priorbox"]


def test_roi_pooling_export_is_refused_with_a_reason(tmp_path):
    with pytest.raises(FcnkitError, match="ROIPooling.*not exported to ONNX"):
        _export("faster_rcnn_like.prototxt", tmp_path)
    assert not (tmp_path / "m.onnx").exists()
