"""Tiling: windows, blending, and exactness against one whole-scene forward."""

from __future__ import annotations

import numpy as np
import pytest

from fcnkit.errors import InputError
from fcnkit.geo.io import SceneInfo, read_window, reflect_index
from fcnkit.geo.scene import TilingPlan, run_tiles
from fcnkit.geo.stretch import Stretch
from fcnkit.geo.tiling import blend_window, tile_windows
from tests.geo.geo_helpers import random_scene

#: Documented bounds (docs/predict.md) on |blended - whole-scene| road probability for the
#: stride-2 tiny net at tile 32, halo 8 (measured 0.0038 and 0.0096; probabilities span 0.49..0.52).
BOUNDS = {"hann": 0.006, "linear": 0.015}
#: Scales the 11-bit test DN to 0..1 (moderate logits: a comparison of probabilities means something).
UNIT = Stretch("percentile", [0.0] * 3, [2047.0] * 3, None, (0.0, 1.0))


class ArraySink:
    """Stands in for a rasterio dataset opened for writing: keeps the written windows."""

    def __init__(self, count, rows, cols, dtype):
        self.data = np.full((count, rows, cols), 254 if dtype == np.uint8 else np.nan, dtype=dtype)

    def write(self, arr, window):
        r, c = int(window.row_off), int(window.col_off)
        self.data[:, r:r + arr.shape[-2], c:c + arr.shape[-1]] = arr


def _tiled(predictor, scene_path, plan, tta="none"):
    import rasterio

    with rasterio.open(scene_path) as src:
        info = SceneInfo(str(scene_path), src.height, src.width, src.count, src.dtypes[0], src.nodata,
                         src.crs, src.transform, [])
        sinks = {"labels": ArraySink(1, src.height, src.width, np.uint8),
                 "probabilities": ArraySink(1, src.height, src.width, np.float32)}
        stats = run_tiles(predictor, src, info, (1, 2, 3), UNIT, plan, sinks, batch=5,
                          tta=tta, probabilities="float")
    return sinks["probabilities"].data[0], sinks["labels"].data[0], stats


def _whole(predictor, pixels, pad):
    x = np.pad(UNIT.apply(pixels), ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    p = predictor.predict(x[None])[0, 1]
    return p[pad:-pad, pad:-pad]


def test_tile_windows_cover_the_scene_once_with_stride_aligned_origins():
    strips = tile_windows((70, 45), tile=32, halo=6, stride=4)
    cover = np.zeros((70, 45), int)
    for strip in strips:
        for t in strip:
            assert (t.window.row_off + 6) % 4 == 0 and (t.window.col_off + 6) % 4 == 0
            assert t.window.width == t.window.height == 32
            r, c = int(t.core.row_off), int(t.core.col_off)
            cover[r:r + int(t.core.height), c:c + int(t.core.width)] += 1
    assert (cover == 1).all()
    assert [len(s) for s in strips] == [3] * 4  # step (32 - 12) // 4 * 4 = 20
    with pytest.raises(InputError, match="leaves no core"):
        tile_windows((10, 10), tile=16, halo=8)


def test_blend_windows():
    none = blend_window(16, 4, "none")
    assert none[4:12, 4:12].min() == 1 and none.sum() == 64
    hann = blend_window(16, 4, "hann")
    ref = np.hanning(18)[1:-1]  # numpy's Hann: 0.5 - 0.5 cos(2 pi n / (M - 1))
    np.testing.assert_allclose(hann, np.outer(ref, ref), atol=1e-6)
    lin = blend_window(16, 4, "linear")
    ramp = np.array([0.0625, 0.1875, 0.3125, 0.4375, 0.5625])  # (d + 0.5) / (2 * halo)
    np.testing.assert_allclose(lin[8, :5], ramp * 0.9375, atol=1e-6)  # row 8: d = 7
    with pytest.raises(InputError, match="--blend"):
        blend_window(16, 4, "gauss")


def test_read_window_reflects_like_numpy_pad(tmp_path):
    data = random_scene(tmp_path / "s.tif", (2, 20, 17))
    import rasterio
    from rasterio.windows import Window

    padded = np.pad(data, ((0, 0), (6, 6), (6, 6)), mode="reflect")
    with rasterio.open(tmp_path / "s.tif") as src:
        for r0, c0 in [(-6, -6), (10, 5), (-3, 8), (14, 11)]:
            got = read_window(src, Window(c0, r0, 12, 12), (1, 2))
            np.testing.assert_array_equal(got, padded[:, r0 + 6:r0 + 18, c0 + 6:c0 + 18])
    assert list(reflect_index(np.arange(-3, 8), 4)) == [3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]


@pytest.mark.parametrize("pool,halo,tile", [(False, 4, 32), (False, 10, 32), (True, 6, 32), (True, 6, 96)])
def test_tiled_equals_whole_scene_forward(tmp_path, net_factory, pool, halo, tile):
    """blend none + halo >= half the receptive field: tiles == whole scene within 1e-5 (halo
    10 at tile 32: the core, 12 px, is shorter than the overlap, 20 px, carried over strips)."""
    _, predictor = net_factory(3, pool)
    info = predictor.info
    assert info.receptive_field == ((10, 10) if pool else (5, 5))
    assert info.output_stride == (2 if pool else 1)
    assert info.halo == (6 if pool else 2)  # ceil((rf - 1) / 2), rounded up to the stride
    assert halo >= (info.receptive_field[0] - 1) / 2
    pixels = random_scene(tmp_path / "s.tif", (3, 70, 58))
    probs, labels, stats = _tiled(predictor, tmp_path / "s.tif", TilingPlan(tile, halo, info.output_stride, "none"))
    ref = _whole(predictor, pixels, halo)
    assert np.abs(probs - ref).max() <= 1e-5
    step = tile - 2 * halo  # tile 96: one strip, finished in two row blocks (FLUSH_ROWS 64)
    assert stats.tiles == -(-70 // step) * -(-58 // step) and stats.skipped == 0
    decided = np.abs(ref - 0.5) > 1e-4  # argmax of 2 classes where it is not a tie
    np.testing.assert_array_equal(labels[decided], (ref[decided] > 0.5).astype(np.uint8))


def test_hann_and_linear_stay_within_the_documented_bound(tmp_path, net_factory):
    _, predictor = net_factory(3, True)
    pixels = random_scene(tmp_path / "s.tif", (3, 70, 58), seed=3)
    ref = _whole(predictor, pixels, 8)
    for blend in ("hann", "linear"):
        probs, _, _ = _tiled(predictor, tmp_path / "s.tif", TilingPlan(32, 8, 2, blend))
        err = np.abs(probs - ref).max()
        assert 0 < err < BOUNDS[blend], (blend, err)


def test_tta_flip_averages_the_four_flips_once(tmp_path, net_factory):
    _, predictor = net_factory(3, False)
    pixels = random_scene(tmp_path / "s.tif", (3, 40, 36), seed=5)
    probs, _, _ = _tiled(predictor, tmp_path / "s.tif", TilingPlan(32, 4, 1, "none"), tta="flip")
    x = np.pad(UNIT.apply(pixels), ((0, 0), (4, 4), (4, 4)), mode="reflect")[None]
    ref = np.zeros(x.shape[2:], np.float32)
    for axes in ((), (3,), (2,), (2, 3)):
        p = predictor.predict(np.ascontiguousarray(np.flip(x, axes)))[:, 1:2]
        ref += np.flip(p, axes)[0, 0] / 4
    assert np.abs(probs - ref[4:-4, 4:-4]).max() <= 1e-5
    plain, _, _ = _tiled(predictor, tmp_path / "s.tif", TilingPlan(32, 4, 1, "none"))
    assert np.abs(plain - probs).max() > 1e-4  # the flips change something on this net
