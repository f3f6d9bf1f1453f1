"""Outputs keep the scene's grid: CRS, transform, size (and nodata) on every real raster of
../shared/data/spacenet; COGs validate; the sidecar and --resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcnkit.geo.predict import SceneOptions, is_complete, predict_scene

REAL = ["solaris/road_mask_input.tif", "solaris/sample_road_raster_mask.tif", "solaris/sample_geotiff.tif",
        "solaris/preproc_tutorial/ms1.tif", "solaris/preproc_tutorial/pan1.tif",
        "ternausnetv2/RGB-PanSharpen_AOI_4_Shanghai_img6917.tif"]


@pytest.mark.parametrize("name", REAL)
def test_outputs_keep_the_grid_of_each_real_raster(spacenet, tmp_path, net_factory, name):
    import rasterio

    with rasterio.open(spacenet / name) as src:
        count, crs, transform, shape, nodata = src.count, src.crs, src.transform, src.shape, src.nodata
    _, predictor = net_factory(count)
    bands = ",".join(str(b) for b in range(count, 0, -1))  # an explicit list (presets are for 8 bands)
    opts = SceneOptions(bands=bands, tile=256, halo=8, probabilities="uint8")
    res = predict_scene(predictor, spacenet / name, tmp_path, opts, model_name="tiny")
    stem = (spacenet / name).stem
    for suffix, dtype, out_nodata in (("labels", "uint8", 255), ("probabilities", "uint8", 255)):
        with rasterio.open(tmp_path / f"{stem}_{suffix}.tif") as out:
            assert out.crs == crs and out.transform == transform and out.shape == shape
            assert out.dtypes[0] == dtype and out.nodata == out_nodata
            assert out.profile["tiled"] and out.compression.name.lower() == "deflate"
            assert out.overviews(1) == [f for f in (2, 4, 8) if min(shape) / f >= 128]
            data = out.read(1)
        if suffix == "labels":
            assert set(np.unique(data)) <= {0, 1}  # no input nodata in these chips
            with rasterio.open(tmp_path / f"{stem}_labels.tif") as out:
                assert out.colormap(1)[1][:3] == (255, 200, 0) and out.descriptions == ("class index",)
    side = json.loads((tmp_path / f"{stem}.json").read_text())
    assert side["bands"] == list(range(count, 0, -1)) and side["tiling"]["halo"] == 8
    assert side["tiles"] == res.tiles and side["outputs"] == [f"{stem}_labels.tif", f"{stem}_probabilities.tif"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_cog_output_validates(spacenet, tmp_path, net_factory):
    from rio_cogeo.cogeo import cog_validate

    _, predictor = net_factory(1)
    opts = SceneOptions(tile=128, halo=8, cog=True, probabilities="float")
    predict_scene(predictor, spacenet / "solaris/road_mask_input.tif", tmp_path, opts)
    for f in ("road_mask_input_labels.tif", "road_mask_input_probabilities.tif"):
        valid, errors, _ = cog_validate(str(tmp_path / f))
        assert valid, errors
    import rasterio

    with rasterio.open(tmp_path / "road_mask_input_probabilities.tif") as out:
        assert out.dtypes[0] == "float32" and out.tags(1, "IMAGE_STRUCTURE").get("NBITS") == "16"
        p = out.read(1)
    assert np.isfinite(p).all() and 0 <= p.min() and p.max() <= 1


def test_resume_skips_complete_scenes_and_redoes_incomplete(tmp_path, net_factory):
    from fcnkit.geo.batch import predict_scenes
    from tests.geo.geo_helpers import random_scene

    _, predictor = net_factory(3)
    scenes = []
    for i in range(2):
        random_scene(tmp_path / f"s{i}.tif", (3, 40, 40), seed=i)
        scenes.append(tmp_path / f"s{i}.tif")
    out = tmp_path / "out"
    opts = SceneOptions(tile=32, halo=4, overlay="png", overlay_width=20)
    first = predict_scenes(predictor, scenes, out, opts)
    assert len(first.results) == 2 and all(is_complete(s, out, opts) for s in scenes)
    (out / "s1_overlay.png").unlink()  # an incomplete scene
    again = predict_scenes(predictor, scenes, out, opts, resume=True)
    assert again.skipped == [str(scenes[0])] and [r.scene for r in again.results] == [str(scenes[1])]
    import cv2

    img = cv2.imread(str(out / "s1_overlay.png"))
    assert img.shape == (20, 20, 3)


PRE = {"fcnkit_preprocess": 1, "bands": [3, 2, 1], "band_names": [], "nodata": None,
       "stretch": {"method": "percentile", "percentiles": [2, 98], "lo": [1, 2, 3], "hi": [9, 9, 9],
                   "out_range": [0, 255]}}


def _tiny_onnx(path, meta: dict):
    """A 3-band 1x1 Conv + Softmax ONNX graph carrying ``meta`` (built by hand: fast)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["data", "w"], ["score"]), helper.make_node("Softmax", ["score"], ["prob"], axis=1)],
        "tiny", [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 2, 16, 16])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, path)


def test_model_info_travels_in_onnx_metadata(tmp_path, net_factory):
    from fcnkit.compile import save_compiled
    from fcnkit.deploy.model import load_model
    from fcnkit.deploy.onnx.metadata import onnx_metadata
    from fcnkit.deploy.predictor import Predictor
    from fcnkit.deploy.tiling_info import PREPROCESS_META

    path, torch_pred = net_factory(3, True)
    compiled = load_model(path, tile=(32, 32)).compiled
    meta = onnx_metadata(compiled, source=None, bands=None, classes=None, tile=None, dtype="fp32", opset=18,
                         dynamic_batch=True, dynamic_hw=False, extra={PREPROCESS_META: json.dumps(PRE)})
    assert (meta["fcnkit.receptive_field"], meta["fcnkit.output_stride"], meta["fcnkit.halo"]) == ("[10, 10]", "2", "6")
    _tiny_onnx(tmp_path / "m.onnx", meta)
    ort = Predictor.from_path(tmp_path / "m.onnx", device="cpu")
    assert ort.info.receptive_field == torch_pred.info.receptive_field == (10, 10)
    assert ort.info.output_stride == 2 and ort.info.halo == 6
    assert ort.info.preprocess == PRE
    _tiny_onnx(tmp_path / "old.onnx", {})  # a file from before these keys: Nones, no error
    old = Predictor.from_path(tmp_path / "old.onnx", device="cpu").info
    assert (old.receptive_field, old.output_stride, old.halo, old.preprocess) == (None, None, None, None)
    save_compiled(compiled, tmp_path / "compiled")
    (tmp_path / "compiled" / "preprocess.json").write_text(json.dumps(PRE))
    assert Predictor.from_path(tmp_path / "compiled", device="cpu").info.preprocess == PRE


@pytest.mark.slow
def test_export_writes_the_preprocess_json_into_onnx(tmp_path, net_factory):
    """A real export (about 20 s: torch.onnx imports): the stored stretch travels along."""
    from fcnkit.compile import save_compiled
    from fcnkit.deploy.model import load_model
    from fcnkit.deploy.onnx import export_model
    from fcnkit.deploy.predictor import Predictor

    path, _ = net_factory(3, True)
    save_compiled(load_model(path, tile=(32, 32)).compiled, tmp_path / "c")
    (tmp_path / "c" / "preprocess.json").write_text(json.dumps(PRE))
    export_model(tmp_path / "c", tmp_path / "m.onnx", tile=(32, 32), check=False)
    info = Predictor.from_path(tmp_path / "m.onnx", device="cpu").info
    assert info.preprocess == PRE and info.halo == 6
