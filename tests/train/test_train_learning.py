"""Acceptance 4: learning happens. A small FC-DenseNet (fcnkit.zoo's Tiramisu builder:
blocks 2-2 | 2 | 2-2, growth 8, 16 first filters) trained by `fcnkit train`'s library call
on 5 synthetic 8-band training scenes (96 x 96 px at 1 m, 48 px chips, batch 4, Adam 3e-3)
reaches a road IoU above 0.6 on a held-out validation scene after 100 iterations
(measured: 0.90; about 45 s on one loaded CPU core)."""

from __future__ import annotations

import pytest

from fcnkit.caffe.prototxt import format_prototxt
from fcnkit.train.loop import TrainOptions
from fcnkit.train.run import DataOptions, train_from_solver
from fcnkit.zoo.tiramisu import TiramisuConfig, tiramisu
from tests.train._scenes import make_dataset

ROAD_IOU = 0.6


@pytest.mark.slow
def test_small_tiramisu_learns_roads(tmp_path):
    make_dataset(tmp_path, scenes=7, size=96, gsd=1.0)
    net = tiramisu("tiny_tiramisu", TiramisuConfig((2, 2), 2, (2, 2), 8, 16), 8, 2, True)
    (tmp_path / "net.prototxt").write_text(format_prototxt(net.to_proto()))
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt" type: "Adam" base_lr: 0.003 lr_policy: "fixed" momentum: 0.9 '
        'max_iter: 100 test_iter: 4 test_interval: 100 test_initialization: false '
        f'random_seed: 1 snapshot_prefix: "{tmp_path / "snap"}"')
    result = train_from_solver(tmp_path / "solver.prototxt",
                               DataOptions(images=tmp_path / "images", labels=tmp_path / "labels",
                                           chip=48, batch=4, workers=0),
                               options=TrainOptions(log=lambda line: None))
    it, (metrics,) = result.tests[-1]
    assert it == 100
    assert metrics["iou_1"] > ROAD_IOU, metrics
    assert (tmp_path / "snap_iter_100.caffemodel").is_file()
