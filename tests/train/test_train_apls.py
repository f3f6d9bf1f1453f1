"""`fcnkit train --apls`: whole validation scenes -> road mask -> graph -> APLS."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcnkit.cli.main import main
from fcnkit.train.apls_eval import SceneApls, road_from_scores
from fcnkit.train.chips import Chips
from fcnkit.train.dataset import compute_stretch, find_pairs
from tests.train._scenes import make_dataset, write_solver


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Tiny scenes for the CLI run (96 px at 1 m)."""
    return make_dataset(tmp_path_factory.mktemp("apls_scenes"), scenes=4, size=96)


@pytest.fixture(scope="module")
def val_chips(tmp_path_factory):
    """Two 256 px scenes at 0.6 m (WorldView-3 MUL-like): large enough that the true mask's
    graph has APLS > 0.9 against the centrelines (at 96 px, 1 m the road ends and 4 px wide
    buffers cost too much length: 0.3-0.6)."""
    root = make_dataset(tmp_path_factory.mktemp("apls_val"), scenes=2, size=256, gsd=0.6)
    pairs = find_pairs(root / "images", root / "geojson")
    pre = compute_stretch([p.image for p in pairs], list(range(1, 9)))
    return Chips(pairs, pre, 64, "4m")


class _Oracle:
    """A 'net' that returns the true label of each chip as 2-class scores (by chip order)."""

    def __init__(self, chips: Chips, empty: bool = False):
        self.chips, self.empty, self.calls = chips, empty, 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for j in range(images.shape[0]):
            k = min(self.calls * images.shape[0] + j, len(self.chips) - 1)
            label = torch.from_numpy(self.chips.read(k)[1]).float()
            road = torch.zeros_like(label) if self.empty else label
            out.append(torch.stack([1 - road, road]))
        self.calls += 1
        return torch.stack(out)


def test_true_label_as_prediction_scores_high_and_empty_scores_zero(val_chips):
    chips = val_chips
    scorer = SceneApls(chips, batch=3)  # 32 chips: the last batch is padded
    masks = scorer.scene_masks(_Oracle(chips))
    for s, mask in enumerate(masks):  # the stitched masks are the scene labels exactly
        np.testing.assert_array_equal(mask > 0, chips.scene_label(s) > 0)
    assert scorer(_Oracle(chips)) > 0.9
    assert scorer(_Oracle(chips, empty=True)) == 0.0


def test_road_threshold_per_score_layout():
    scores = torch.tensor([[[[0.2]], [[0.1]]], [[[-1.0]], [[2.0]]]])  # (2, 2, 1, 1)
    assert road_from_scores(scores).flatten().tolist() == [False, True]
    assert road_from_scores(torch.tensor([[[[0.3]]], [[[-0.3]]]])).flatten().tolist() == [True, False]
    speed = torch.tensor([[[[5.0]], [[1.0]], [[-0.5]]]])  # bins..., all-roads channel last
    assert road_from_scores(speed).flatten().tolist() == [False]


def test_train_cli_logs_apls_at_each_test(dataset, tmp_path, capsys):
    solver = write_solver(tmp_path)
    csv = tmp_path / "log.csv"
    assert main(["train", str(solver), "--images", str(dataset / "images"), "--labels",
                 str(dataset / "geojson"), "--chip", "32", "--workers", "0", "--csv", str(csv),
                 "--no-progress", "--apls", "--max-iter", "3"]) == 0
    assert "apls = " in capsys.readouterr().out
    values = [float(r.split(",")[3]) for r in csv.read_text().splitlines()[1:]
              if r.split(",")[1:3] == ["test0", "apls"]]
    assert len(values) == 2 and all(0.0 <= v <= 1.0 for v in values)  # iter 3 and the last test
