"""Contrast stretch (SpaceNet roads article) on the real Shanghai 11-bit chip, band presets,
and the preprocess JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcnkit.errors import InputError
from fcnkit.geo.bands import PRESETS, WV3_BANDS, parse_bands
from fcnkit.geo.stretch import from_preprocess, parse_stretch_option, percentile_stretch, stretch

SHANGHAI = "ternausnetv2/RGB-PanSharpen_AOI_4_Shanghai_img6917.tif"


def _article(band: np.ndarray, p_lo, p_hi):
    """The article's formula, transcribed: percentiles of the valid (non-zero) pixels, clip,
    rescale to 0..255."""
    valid = band[band != 0].astype(np.float64)
    lo, hi = np.percentile(valid, [p_lo, p_hi])
    return np.clip((band.astype(np.float64) - lo) / (hi - lo) * 255.0, 0, 255)


def test_stretch_matches_the_article_on_the_shanghai_chip(spacenet):
    import rasterio

    with rasterio.open(spacenet / SHANGHAI) as src:
        pixels = src.read()
        s = percentile_stretch(src, (1, 2, 3), (2, 90))
    assert s.sample_shape == (650, 650)  # small enough to be read whole
    got = s.apply(pixels)
    for b in range(3):
        ref = _article(pixels[b], 2, 90)
        assert np.abs(got[b] - ref).max() <= 1.0
    assert got.dtype == np.float32 and got.min() == 0 and got.max() == 255


def test_decimated_percentiles_stay_close(spacenet):
    """A 162 x 162 decimated read (one pixel in 16) moves the stretched values by <= 1 DN
    on this chip (docs/predict.md gives the table)."""
    import rasterio

    with rasterio.open(spacenet / SHANGHAI) as src:
        pixels = src.read()
        full = percentile_stretch(src, (1, 2, 3), (2, 98))
        dec = percentile_stretch(src, (1, 2, 3), (2, 98), sample_pixels=162 * 162)
    assert dec.sample_shape == (162, 162)
    assert dec.lo != full.lo or dec.hi != full.hi  # really another sample
    assert np.abs(full.apply(pixels) - dec.apply(pixels)).max() <= 1.0


def test_nodata_stays_nodata_through_predict(spacenet, tmp_path, net_factory):
    import rasterio

    from fcnkit.geo.predict import SceneOptions, predict_scene

    with rasterio.open(spacenet / SHANGHAI) as src:
        data, profile = src.read(), src.profile
    data[:, 100:260, 40:500] = 0  # a fill region: nodata 0, as in SpaceNet scenes
    data[:, 600:, :] = 0
    profile.update(nodata=0)
    scene = tmp_path / "shanghai_nodata.tif"
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(data)
    _, predictor = net_factory(3)
    res = predict_scene(predictor, scene, tmp_path / "out", SceneOptions(stretch="2,90", tile=64, halo=4))
    with rasterio.open(tmp_path / "out" / "shanghai_nodata_labels.tif") as out:
        labels = out.read(1)
        assert out.nodata == 255
    invalid = np.all(data == 0, axis=0)
    np.testing.assert_array_equal(labels == 255, invalid)
    assert res.skipped_tiles > 0  # tiles whose core is all nodata were not predicted
    side = json.loads((tmp_path / "out" / "shanghai_nodata.json").read_text())
    np.testing.assert_allclose(side["preprocess"]["stretch"]["lo"],
                               [np.percentile(b[b != 0], 2) for b in data], rtol=0, atol=1e-9)


def test_stretch_formula_and_errors():
    x = np.array([[[0, 100, 200, 300]]], np.uint16)
    np.testing.assert_allclose(stretch(x, [100], [300])[0, 0], [0, 0, 127.5, 255])
    np.testing.assert_allclose(stretch(x, [5], [5])[0, 0], [0, 0, 0, 0])  # a flat band
    with pytest.raises(InputError, match="2 band"):
        stretch(x, [1, 2], [3, 4])
    assert parse_stretch_option("2,98") == ("percentile", (2.0, 98.0))
    assert parse_stretch_option("model") == ("model", None)
    for bad in ("98,2", "2", "x,y", "2,101"):
        with pytest.raises(InputError, match="--stretch"):
            parse_stretch_option(bad)


def test_preprocess_json_round_trip_and_errors():
    doc = {"fcnkit_preprocess": 1, "bands": [6, 7, 8], "band_names": ["red_edge", "nir1", "nir2"],
           "stretch": {"method": "percentile", "percentiles": [2, 98], "lo": [10, 20, 30],
                       "hi": [400, 500, 600], "out_range": [0, 255]}, "nodata": None}
    s, bands = from_preprocess(doc)
    assert bands == [6, 7, 8] and s.lo == [10, 20, 30] and s.percentiles == (2, 98)
    assert s.to_json(bands, doc["band_names"])["stretch"] == {**doc["stretch"], "percentiles": [2, 98],
                                                              "out_range": [0.0, 255.0]}
    for broken in ({}, {**doc, "fcnkit_preprocess": 2}, {**doc, "bands": ["a"]},
                   {**doc, "stretch": {"method": "percentile", "lo": [1], "hi": [2, 3]}},
                   {**doc, "stretch": {"method": "gamma"}}):
        with pytest.raises(InputError, match="preprocess"):
            from_preprocess(broken)


def test_band_presets():
    assert PRESETS["wv3-rgb"].bands == (5, 3, 2) and PRESETS["wv3-rgb"].wavelengths_nm == (659, 546, 478)
    assert PRESETS["wv3-rnir"].band_names == ("red_edge", "nir1", "nir2")
    assert PRESETS["wv3-8band"].wavelengths_nm == (427, 478, 546, 608, 659, 724, 833, 949)
    assert parse_bands("wv3-rnir", scene_bands=8, model_bands=3) == (6, 7, 8)
    assert parse_bands("3,2,1", scene_bands=3, model_bands=3) == (3, 2, 1)
    assert parse_bands(None, scene_bands=4, model_bands=4) == (1, 2, 3, 4)
    with pytest.raises(InputError, match="preset wv3-rgb is for 8-band"):
        parse_bands("wv3-rgb", scene_bands=3, model_bands=3)
    with pytest.raises(InputError, match=r"band count mismatch: the model takes 8 bands \(coastal.*has 3 band"):
        parse_bands(None, scene_bands=3, model_bands=8, model_band_names=[n for n, _ in WV3_BANDS])
    with pytest.raises(InputError, match="outside 1..3"):
        parse_bands("1,4,2", scene_bands=3, model_bands=3)
