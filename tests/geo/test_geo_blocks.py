"""Column blocks: a strip processed in narrow blocks gives the same outputs, bit for bit, as
one block over the whole width, and as a NumPy whole-scene accumulator written here."""

from __future__ import annotations

import numpy as np
import pytest

from fcnkit.geo.blend import column_blocks
from fcnkit.geo.io import SceneInfo
from fcnkit.geo.scene import TilingPlan, run_tiles
from fcnkit.geo.stretch import Stretch
from fcnkit.geo.tiling import blend_window, tile_windows
from tests.geo.geo_helpers import random_scene

UNIT = Stretch("percentile", [0.0] * 3, [2047.0] * 3, None, (0.0, 1.0))
SHAPE = (3, 70, 150)  # 150 px wide: 8 tiles of step 20 across


class ArraySink:
    """Stands in for a rasterio dataset opened for writing; counts the windows written."""

    def __init__(self, count, rows, cols, dtype):
        self.data = np.full((count, rows, cols), 254 if dtype == np.uint8 else np.nan, dtype=dtype)
        self.windows = []

    def write(self, arr, window):
        r, c = int(window.row_off), int(window.col_off)
        self.data[:, r:r + arr.shape[-2], c:c + arr.shape[-1]] = arr
        self.windows.append((r, c, arr.shape[-2], arr.shape[-1]))


def _run(predictor, path, plan, block_px):
    import rasterio

    with rasterio.open(path) as src:
        info = SceneInfo(str(path), src.height, src.width, src.count, src.dtypes[0], src.nodata, src.crs,
                         src.transform, [])
        sinks = {"labels": ArraySink(1, src.height, src.width, np.uint8),
                 "probabilities": ArraySink(1, src.height, src.width, np.float32)}
        stats = run_tiles(predictor, src, info, (1, 2, 3), UNIT, plan, sinks, batch=5, probabilities="float",
                          block_px=block_px)
    return sinks, stats


def test_column_blocks_cover_the_strip_once():
    assert column_blocks(8, 3) == [(0, 3), (3, 6), (6, 8)]
    assert column_blocks(8, 0) == [(j, j + 1) for j in range(8)]
    assert column_blocks(2, 100) == [(0, 2)]


@pytest.mark.parametrize("blend,halo", [("hann", 6), ("none", 6), ("linear", 10)])
def test_narrow_blocks_equal_one_block_bit_for_bit(tmp_path, net_factory, blend, halo):
    """Blocks of 1, 2 and 3 tiles (halo 10: the 12 px core is narrower than the 20 px
    overlap, so a column carry spans more than one block) against one block; a nodata
    rectangle makes some tiles skipped and some blocks all nodata."""
    _, predictor = net_factory(3, True)
    pixels = random_scene(tmp_path / "s.tif", SHAPE, nodata=0, seed=11)
    import rasterio

    with rasterio.open(tmp_path / "s.tif", "r+") as dst:
        pixels[:, 0:40, 20:110] = 0
        dst.write(pixels)
    plan = TilingPlan(32, halo, 2, blend)
    whole, whole_stats = _run(predictor, tmp_path / "s.tif", plan, 10_000)
    assert whole_stats.skipped > 0
    assert len(whole["labels"].windows) == len(tile_windows(SHAPE[1:], 32, halo, 2))  # one window per strip
    for tiles_per_block in (1, 2, 3):
        blocks, stats = _run(predictor, tmp_path / "s.tif", plan, tiles_per_block * plan.step)
        assert len(blocks["labels"].windows) > len(whole["labels"].windows)  # really cut into blocks
        assert max(w for _, _, _, w in blocks["labels"].windows) <= tiles_per_block * plan.step + 2 * halo
        np.testing.assert_array_equal(blocks["labels"].data, whole["labels"].data)
        np.testing.assert_array_equal(blocks["probabilities"].data, whole["probabilities"].data)
        assert (stats.tiles, stats.skipped) == (whole_stats.tiles, whole_stats.skipped)
    assert (whole["labels"].data[0, 5:35, 30:100] == 255).all()  # nodata stays nodata
    assert not np.isnan(whole["probabilities"].data[0, 45:, :]).any()  # every valid pixel written


def test_blocks_equal_a_whole_scene_accumulator(tmp_path, net_factory):
    """The blended probabilities equal sum(w * p) / sum(w) over all tiles of the reflection-
    padded scene, accumulated in raster order (the order the blender keeps), within 1e-6."""
    _, predictor = net_factory(3, True)
    pixels = random_scene(tmp_path / "s.tif", SHAPE, seed=12)
    tile, halo = 32, 6
    plan = TilingPlan(tile, halo, 2, "hann")
    got, _ = _run(predictor, tmp_path / "s.tif", plan, 2 * plan.step)
    pad = tile + halo
    x = np.pad(UNIT.apply(pixels), ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    acc = np.zeros((2,) + x.shape[1:], np.float32)
    wsum = np.zeros(x.shape[1:], np.float32)
    w = blend_window(tile, halo, "hann", plan.step)
    origins = [(int(t.window.row_off) + pad, int(t.window.col_off) + pad)
               for strip in tile_windows(SHAPE[1:], tile, halo, 2) for t in strip]
    for k in range(0, len(origins), 5):  # the same batches of 5 tiles as run_tiles
        batch = np.stack([x[:, r:r + tile, c:c + tile] for r, c in origins[k:k + 5]])
        for p, (r, c) in zip(predictor.predict(batch), origins[k:k + 5]):
            acc[:, r:r + tile, c:c + tile] += p * w
            wsum[r:r + tile, c:c + tile] += w
    ref = (acc / np.maximum(wsum, 1e-12))[:, pad:pad + SHAPE[1], pad:pad + SHAPE[2]]
    assert np.abs(got["probabilities"].data[0] - ref[1]).max() <= 1e-6
    np.testing.assert_array_equal(got["labels"].data[0], np.argmax(ref, axis=0).astype(np.uint8))
