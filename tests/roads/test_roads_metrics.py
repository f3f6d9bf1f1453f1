"""Pixel metrics computed by hand on tiny masks."""

from __future__ import annotations

import numpy as np
import pytest

from fcnkit.errors import InputError
from fcnkit.roads.metrics import pixel_scores


def test_iou_precision_recall_by_hand():
    truth = np.zeros((10, 10), np.uint8)
    pred = np.zeros((10, 10), np.uint8)
    truth[2, 0:10] = 1       # 10 road pixels
    pred[2, 0:6] = 1         # 6 of them found
    pred[5, 0:4] = 1         # 4 false pixels, 3 rows away
    s = pixel_scores(truth, pred, rho_px=3)
    assert s.iou[1] == pytest.approx(6 / 14)
    # background: both 90 px; intersection 100 - 14 (road union), union 100 - 6
    assert s.iou[0] == pytest.approx(86 / 94)
    assert s.mean_iou == pytest.approx((6 / 14 + 86 / 94) / 2)
    assert (s.precision, s.recall) == pytest.approx((0.6, 0.6))
    assert s.f1 == pytest.approx(0.6)
    # relaxed: the 4 false pixels lie exactly 3 px below truth -> correct within rho 3;
    # missed truth columns 6, 7, 8 are 1, 2, 3 px from pred (2, 5); column 9 is 4 px away
    assert s.relaxed_precision == pytest.approx(1.0)
    assert s.relaxed_recall == pytest.approx(9 / 10)


def test_wrong_grid_is_an_input_error():
    with pytest.raises(InputError, match="different grids"):
        pixel_scores(np.zeros((3, 3)), np.zeros((3, 4)))
