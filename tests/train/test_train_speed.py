"""`fcnkit train --speed-bins`: CRESI multi-channel speed labels, its loss, a speed model trains."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from pyproj import Transformer
from rasterio.features import rasterize
from shapely.geometry import shape
from shapely.ops import transform as shapely_transform

from fcnkit.cli.main import main
from fcnkit.train.chips import Chips, ChipSource
from fcnkit.train.dataset import compute_stretch, find_pairs
from fcnkit.train.speed import SpeedLoss
from tests.train._scenes import TINY_FCN, make_dataset, write_solver

TABLE = Path(__file__).parents[2] / ".." / "shared" / "data" / "spacenet" / "cresi" / \
    "speed_conversion_binned7.csv"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("speed_scenes"), scenes=4, size=64)


def _table():
    """{speed mph: channel} from the CSV, read here with the csv module."""
    with open(TABLE, newline="") as f:
        return {int(float(r["speed"])): int(r["channel"]) for r in csv.DictReader(f)}


def test_chip_channels_are_the_speed_bins_of_the_roads_burnt_there(dataset):
    pairs = find_pairs(dataset / "images", dataset / "geojson")
    pre = compute_stretch([p.image for p in pairs], [1, 2, 3])
    chips = Chips(pairs, pre, 32, "4m", speed_table=TABLE)
    table = _table()
    bins = max(table.values()) + 1
    assert chips.label_channels == bins + 1 == 8
    channels_seen = set()
    for s, pair in enumerate(pairs):
        with rasterio.open(pair.image) as src:
            transform, grid = src.transform, src.shape
            to_grid = Transformer.from_crs("OGC:CRS84", src.crs, always_xy=True).transform
        features = json.loads(pair.label.read_text())["features"]
        expect = np.zeros((bins,) + grid, np.uint8)
        for feat in features:  # truth: lines (lon/lat) into the UTM grid, buffer 2 m, burn its bin
            mph = feat["properties"]["inferred_speed_mph"]
            channel = table[min(max(table), max(min(table), int(round(mph))))]
            line = shapely_transform(to_grid, shape(feat["geometry"]))
            burnt = rasterize([line.buffer(2.0)], out_shape=grid,
                              transform=transform)
            expect[channel] |= burnt.astype(np.uint8)
            channels_seen.add(channel)
        label = chips.scene_label(s)
        np.testing.assert_array_equal(label[:bins], expect)
        np.testing.assert_array_equal(label[bins], expect.max(0))
        for k, (scene, r, c) in enumerate(chips.index):
            if scene == s:
                chip_label = chips.read(k)[1]
                np.testing.assert_array_equal(chip_label, label[:, r:r + 32, c:c + 32])
    assert len(channels_seen) >= 2  # the scenes really exercise more than one bin
    assert ChipSource(chips, 2, augment=False).shapes["label"] == (2, 8, 32, 32)


def test_speed_loss_is_cresi_focal_plus_dice_per_channel():
    rng = np.random.default_rng(3)
    score = rng.normal(size=(2, 3, 4, 5))
    label = (rng.random((2, 3, 4, 5)) > 0.6).astype(np.float64)
    p = 1 / (1 + np.exp(-score))
    pt = np.where(label > 0, p, 1 - p)
    focal = np.mean(-(1 - pt) ** 2 * np.log(pt))
    dice = np.mean([1 - (2 * (p[:, c] * label[:, c]).sum() + 1)
                    / (p[:, c].sum() + label[:, c].sum() + 1) for c in range(3)])
    got = SpeedLoss()(torch.tensor(score), torch.tensor(label))
    assert float(got) == pytest.approx(0.75 * focal + 0.25 * dice, rel=1e-6)


def _speed_solver(folder: Path, channels: int) -> Path:
    solver = write_solver(folder)
    net = TINY_FCN.replace("num_output: 2 kernel_size: 1", f"num_output: {channels} kernel_size: 1")
    # a multi-label loss layer (Caffe's SigmoidCrossEntropyLoss: score and label of one shape),
    # which --speed-bins replaces with CRESI's focal + dice; no Accuracy layer (not 1-of-C)
    net = net.replace('type: "SoftmaxWithLoss"', 'type: "SigmoidCrossEntropyLoss"')
    (folder / "net.prototxt").write_text(net[:net.index('layer { name: "accuracy"')])
    return solver


def test_speed_model_trains_and_lowers_the_loss(dataset, tmp_path, capsys):
    solver = _speed_solver(tmp_path, 8)
    text = solver.read_text().replace("base_lr: 0.001", "base_lr: 0.01")
    solver.write_text(text.replace("display: 2", "display: 1 average_loss: 1"))
    csv_path = tmp_path / "log.csv"
    assert main(["train", str(solver), "--images", str(dataset / "images"), "--labels",
                 str(dataset / "geojson"), "--chip", "32", "--workers", "0", "--batch", "4",
                 "--speed-bins", str(TABLE), "--csv", str(csv_path), "--no-progress",
                 "--max-iter", "8"]) == 0
    losses = [float(r.split(",")[3]) for r in csv_path.read_text().splitlines()[1:]
              if r.split(",")[1:3] == ["train", "loss"]]
    assert len(losses) >= 6 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_speed_model_with_a_two_class_score_is_refused_clearly(dataset, tmp_path, capsys):
    solver = _speed_solver(tmp_path, 2)
    code = main(["train", str(solver), "--images", str(dataset / "images"), "--labels",
                 str(dataset / "geojson"), "--chip", "32", "--workers", "0",
                 "--speed-bins", str(TABLE), "--no-progress", "--max-iter", "1"])
    out = capsys.readouterr()
    assert code != 0 and "bottoms (4, 2, 32, 32) and (4, 8, 32, 32) must have the same count" in out.err
