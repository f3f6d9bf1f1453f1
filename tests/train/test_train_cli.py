"""`fcnkit train` end to end on tiny synthetic scenes; dataset rules; clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch

from fcnkit.cli.main import main
from fcnkit.errors import InputError
from fcnkit.train.chips import Chips, ChipSource
from fcnkit.train.dataset import apply_stretch, compute_stretch, find_pairs, split_scenes
from tests.train._scenes import make_dataset, write_solver


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("scenes"), scenes=4)


def test_train_cli_writes_snapshots_logs_and_preprocess(dataset, tmp_path, capsys):
    solver = write_solver(tmp_path)
    csv = tmp_path / "log.csv"
    assert main(["train", str(solver), "--images", str(dataset / "images"), "--labels",
                 str(dataset / "labels"), "--chip", "32", "--workers", "0", "--csv", str(csv),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Testing net (#0)" in out and "Optimization done at iteration 6" in out
    for it in (3, 6):
        for ext in ("caffemodel", "solverstate", "preprocess.json"):
            assert (tmp_path / f"snap_iter_{it}.{ext}").is_file()
    pre = json.loads((tmp_path / "snap_iter_6.preprocess.json").read_text())
    assert pre["fcnkit_preprocess"] == 1 and pre["bands"] == list(range(1, 9))
    assert pre["band_names"][5:] == ["red_edge", "nir1", "nir2"]
    assert pre["stretch"]["method"] == "percentile" and pre["stretch"]["percentiles"] == [2.0, 90.0]
    assert all(lo < hi for lo, hi in zip(pre["stretch"]["lo"], pre["stretch"]["hi"]))
    split = json.loads((tmp_path / "snap.split.json").read_text())
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (2, 1, 1)
    rows = csv.read_text().splitlines()
    assert rows[0] == "iter,phase,name,value"
    names = {r.split(",")[2] for r in rows[1:] if r.split(",")[1] == "test0"}
    assert {"loss", "accuracy", "pixel_accuracy", "iou_0", "iou_1"} <= names
    # the test accuracy layer and fcnkit's pixel accuracy count the same pixels
    last = {r.split(",")[2]: float(r.split(",")[3]) for r in rows[1:] if r.startswith("6,test0")}
    assert last["accuracy"] == pytest.approx(last["pixel_accuracy"], abs=1e-6)


def test_stretch_is_the_percentile_clip_of_valid_pixels(dataset):
    image = sorted((dataset / "images").iterdir())[0]
    pre = compute_stretch([image], [6, 7, 8], (2.0, 90.0))
    with rasterio.open(image) as src:
        dn = src.read([6, 7, 8]).astype(np.float64)
    for k in range(3):
        v = dn[k][dn[k] != 0]
        assert pre["stretch"]["lo"][k] == pytest.approx(np.percentile(v, 2))
        assert pre["stretch"]["hi"][k] == pytest.approx(np.percentile(v, 90))
    out = apply_stretch(dn, pre)
    lo, hi = pre["stretch"]["lo"][0], pre["stretch"]["hi"][0]
    want = (np.clip(dn[0], lo, hi) - lo) / (hi - lo) * 255
    assert np.allclose(out[0], want, atol=1e-3) and out.dtype == np.float32


def test_asphalt_is_dark_in_nir_and_vegetation_bright(dataset):
    from fcnkit.geo.synth import SPECTRA

    assert SPECTRA["asphalt"][6] < 0.5 * SPECTRA["vegetation"][6]
    image = sorted((dataset / "images").iterdir())[0]
    label = sorted((dataset / "labels").iterdir())[0]
    with rasterio.open(image) as src, rasterio.open(label) as lab:
        dn, road = src.read(), lab.read(1) > 0
        assert src.crs.to_epsg() == 32611 and src.count == 8 and dn.max() <= 2047
    assert dn[6][road].mean() < dn[6][~road].mean()


def test_split_is_70_15_15_and_recorded(tmp_path):
    from fcnkit.train.dataset import Pair

    pairs = [Pair(f"img{k}", tmp_path / f"{k}.tif", tmp_path / f"{k}.geojson") for k in range(20)]
    parts = split_scenes(pairs, tmp_path / "split.json", seed=3)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [14, 3, 3]
    assert {p.id for v in parts.values() for p in v} == {p.id for p in pairs}
    again = split_scenes(list(reversed(pairs)), tmp_path / "split.json", seed=99)
    assert again == parts


def test_batches_are_the_same_with_workers_and_after_resume(dataset):
    pairs = find_pairs(dataset / "images", dataset / "labels")
    pre = compute_stretch([p.image for p in pairs], [1, 2, 3, 4, 5, 6, 7, 8])
    chips = Chips(pairs, pre, 32)
    one = ChipSource(chips, 2, seed=5, augment=True, workers=0).batches(0)
    two = ChipSource(chips, 2, seed=5, augment=True, workers=2).batches(3)
    first = [next(one) for _ in range(6)]
    for want in first[3:]:
        got = next(two)
        assert torch.equal(got["data"], want["data"]) and torch.equal(got["label"], want["label"])
    assert set(torch.unique(first[0]["label"]).tolist()) <= {0.0, 1.0}


def test_unmatched_scenes_are_a_clear_error(dataset, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for p in (dataset / "images").iterdir():
        (images / p.name).write_bytes(p.read_bytes())
    (images / "SYN_PS-MS_img77.tif").write_bytes(b"")
    with pytest.raises(InputError, match="images without a label: SYN_PS-MS_img77.tif"):
        find_pairs(images, dataset / "labels")
    solver = write_solver(tmp_path)
    assert main(["train", str(solver), "--images", str(images), "--labels",
                 str(dataset / "labels"), "--workers", "0"]) == 2
    assert "unmatched scenes" in capsys.readouterr().err


def test_solver_errors_are_clear(dataset, tmp_path, capsys):
    args = ["--images", str(dataset / "images"), "--labels", str(dataset / "labels"),
            "--chip", "32", "--workers", "0"]
    missing = write_solver(tmp_path, net="nowhere.prototxt")
    assert main(["train", str(missing), *args]) == 2
    assert "net 'nowhere.prototxt' does not exist" in capsys.readouterr().err
    unknown = write_solver(tmp_path, extra='regularization_type: "L3"')
    assert main(["train", str(unknown), *args]) == 2
    assert "unknown regularization_type 'L3'" in capsys.readouterr().err
    assert not list(tmp_path.glob("snap_iter_*"))


def test_geojson_labels_match_label_rasters(dataset):
    pytest.importorskip("fcnkit.roads.labels", reason="fcnkit.roads.labels (the roads engineer's "
                        "road_mask) is not in this tree yet")
    pairs = find_pairs(dataset / "images", dataset / "geojson")
    pre = compute_stretch([pairs[0].image], [1, 2, 3])
    with rasterio.open(sorted((dataset / "labels").iterdir())[0]) as lab:
        truth = lab.read(1) > 0
    # the synthetic roads are 6, 8 or 12 m wide and road_mask burns one width for all: the
    # narrowest width must fall inside the true surface, the widest must cover it
    narrow = Chips(pairs[:1], pre, 32, width="6m").scene_label(0) > 0
    wide = Chips(pairs[:1], pre, 32, width="12m").scene_label(0) > 0
    assert narrow.any() and truth.any()
    assert (narrow & truth).sum() / narrow.sum() > 0.97
    assert (wide & truth).sum() / truth.sum() > 0.97


def test_geojson_in_another_crs_is_a_clear_error(dataset, tmp_path, monkeypatch):
    """Lines that land outside their image (a GeoJSON in another CRS than it declares) are
    refused. fcnkit.roads.labels.road_mask is replaced by a stand-in that rasterises
    nothing, as the real one does for lines outside the image."""
    import sys
    import types

    fake = types.ModuleType("fcnkit.roads.labels")
    fake.road_mask = lambda lines, *, shape, transform, crs, width, **kw: np.zeros(shape, np.uint8)
    monkeypatch.setitem(sys.modules, "fcnkit.roads.labels", fake)
    pairs = find_pairs(dataset / "images", dataset / "geojson")
    chips = Chips(pairs[:1], compute_stretch([pairs[0].image], [1]), 32)
    with pytest.raises(InputError, match="none of its road lines falls inside SYN_PS-MS_img1.tif"):
        chips.scene_label(0)


def test_cli_loss_option_replaces_the_loss(dataset, tmp_path, capsys):
    solver = write_solver(tmp_path)
    args = ["train", str(solver), "--images", str(dataset / "images"), "--labels",
            str(dataset / "labels"), "--chip", "32", "--workers", "0", "--max-iter", "1",
            "--no-progress", "--split", str(tmp_path / "split.json")]
    assert main(args) == 0
    softmax = capsys.readouterr().out
    assert main(args + ["--loss", "bce-dice"]) == 0
    bce = capsys.readouterr().out

    def first_loss(out):
        return float(out.split("Iteration 0, loss = ")[1].split(",")[0])

    assert first_loss(softmax) != pytest.approx(first_loss(bce), rel=1e-3)
    assert main(args + ["--loss", "hinge"]) == 2
    assert "unknown loss 'hinge'" in capsys.readouterr().err
