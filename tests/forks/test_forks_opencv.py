"""The SSD-like fixture against OpenCV 4.10's Caffe importer (an independent implementation
of SSD's Normalize, Permute, PriorBox and Flatten). The oracle blobs were made by
tools/gen_fork_oracles.py (see data/README.md) from data/ssd_like.caffemodel."""

from __future__ import annotations

import numpy as np

from tests.forks._nets import DATA


def test_ssd_like_matches_opencv_410():
    import torch

    from fcnkit.compile import compile_net
    from fcnkit.graph import load_net

    oracle = np.load(DATA / "ssd_like_opencv410.npz")
    assert str(oracle["opencv_version"]).startswith("4.10")
    net = load_net(DATA / "ssd_like.prototxt")
    compiled = compile_net(net, DATA / "ssd_like.caffemodel", deploy=True)
    assert not compiled.weights.initialised and len(compiled.weights.loaded) == 8
    values = compiled.run_all(torch.from_numpy(oracle["data"]))
    names = [n for n in oracle.files if n not in ("data", "opencv_version")]
    assert len(names) == 6
    for name in names:
        got = values[net.final[name]].numpy()
        want = oracle[name].reshape(got.shape)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)
    assert np.ptp(oracle["mbox_priorbox"]) > 0.5 and np.ptp(oracle["conv1_norm"]) > 1
