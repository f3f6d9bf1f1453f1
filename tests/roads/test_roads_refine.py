"""floodFill refinement on a synthetic scene with a known road surface."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from shapely.geometry import LineString

from fcnkit.errors import InputError
from fcnkit.roads.labels import burn_road_lines
from fcnkit.roads.refine import FloodFillParams, floodfill_refine, stretch_to_uint8

CRS = "EPSG:32611"
TRANSFORM = Affine(1.0, 0, 500000.0, 0, -1.0, 4000200.0)  # 1 m pixels, 200 x 200


def _scene(seed=0):
    """DN image with a 20 m wide asphalt road (rows 90..109) and a parking lot of the same
    asphalt touching it (rows 110..169, cols 120..179); the centreline is row 100."""
    rng = np.random.default_rng(seed)
    img = rng.normal(300, 8, (1, 200, 200))
    surface = np.zeros((200, 200), bool)
    surface[90:110, :] = True
    lot = np.zeros_like(surface)
    lot[110:170, 120:180] = True
    img[0][surface | lot] = rng.normal(900, 8, int((surface | lot).sum()))
    line = LineString([(500000.0, 4000100.0), (500200.0, 4000100.0)])  # row 100 boundary
    return np.clip(img, 1, None).astype(np.uint16), surface, line


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_floodfill_raises_label_iou_and_stays_in_corridor():
    img, surface, line = _scene()
    grid = dict(shape=(200, 200), transform=TRANSFORM, crs=CRS, lines_crs=CRS)
    label = burn_road_lines([line], width="8m", **grid).mask
    corridor = burn_road_lines([line], width=2 * 12.0, **grid).mask > 0
    result = floodfill_refine(stretch_to_uint8(img), label, corridor,
                              FloodFillParams(lo_diff=(40,), up_diff=(40,), max_distance_m=12))
    refined = result.mask > 0
    assert _iou(refined, surface) > _iou(label > 0, surface) + 0.4
    assert _iou(refined, surface) > 0.9
    assert not np.any(result.fill & ~corridor)  # never leaves the corridor
    assert not np.any(refined[150:, 130:170])  # the far parking lot stays out
    assert result.added == int((refined & ~(label > 0)).sum()) and result.removed == 0
    assert np.all(refined[label > 0])  # union: nothing of the buffer is lost


def test_floating_range_and_4_connectivity_also_fill():
    img, surface, line = _scene(1)
    grid = dict(shape=(200, 200), transform=TRANSFORM, crs=CRS, lines_crs=CRS)
    label = burn_road_lines([line], width="8m", **grid).mask
    corridor = burn_road_lines([line], width=24.0, **grid).mask > 0
    params = FloodFillParams((15,), (15,), connectivity=4, fixed_range=False)
    result = floodfill_refine(stretch_to_uint8(img), label, corridor, params)
    assert _iou(result.mask > 0, surface) > _iou(label > 0, surface)


def test_bad_inputs_are_input_errors():
    img, _, _ = _scene()
    label = np.zeros((200, 200), np.uint8)
    with pytest.raises(InputError, match="1 or 3"):
        floodfill_refine(np.zeros((200, 200, 2), np.uint8), label, label > 0)
    with pytest.raises(InputError, match="connectivity"):
        floodfill_refine(stretch_to_uint8(img), label, label > 0, FloodFillParams(connectivity=6))
    with pytest.raises(InputError, match="one grid"):
        floodfill_refine(stretch_to_uint8(img), label[:10], label > 0)
