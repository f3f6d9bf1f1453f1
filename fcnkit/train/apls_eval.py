"""APLS of the net being trained on whole validation scenes (``fcnkit train --apls``).

At each test, every validation scene is predicted chip by chip with the test net (chips of
the training chip size tiling the scene; the last row/column of chips is shifted inwards, so
the scene is covered exactly), the road class is thresholded into a mask (rows x cols),
the mask is graphed (fcnkit.roads: skeleton -> sknw-style graph -> WKT_Pix) through the
raster's transform and CRS, and scored with APLS (CosmiQ apls, as ``fcnkit roads score``)
against the scene's road label (its GeoJSON, or its label GeoTIFF graphed the same way).
The logged figure is the mean APLS over the validation scenes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from fcnkit.train.chips import Chips


def road_from_scores(scores: torch.Tensor) -> torch.Tensor:
    """Road mask (N, H, W) bool from scores (N, C, H, W): C == 1: logit > 0 (sigmoid > 0.5);
    C == 2: argmax is class 1 (softmax road probability > 0.5); C > 2 (speed bins + the
    all-roads channel, CRESI's layout): the last channel's logit > 0."""
    if scores.shape[1] == 2:
        return scores.argmax(1) == 1
    return scores[:, -1] > 0


def mask_apls(mask: np.ndarray, transform, crs, truth: str | Path, params=None) -> float:
    """APLS of a predicted road mask against a truth road file.

    Args:
        mask: (rows, cols) road mask, nonzero = road, on the grid (transform, CRS).
        transform, crs: the raster's affine transform and CRS (rasterio's).
        truth: road GeoJSON (lines) or a label GeoTIFF / GraphML / WKT_Pix CSV
            (``fcnkit.roads.score.load_graph``).
        params: :class:`fcnkit.roads.apls.AplsParams` (default apls' defaults).

    Returns:
        APLS in [0, 1] (0 when the mask has no road and the truth has).

    Raises:
        InputError: unreadable truth file.
    """
    from fcnkit.roads.apls import AplsParams, apls
    from fcnkit.roads.apls_graph import graph_from_wkt_pix
    from fcnkit.roads.score import gsd_metres, load_graph, mask_wkt_pix

    truth_graph = load_graph(truth, first_node_id=0)
    lines = mask_wkt_pix(np.where(mask > 0, 255, 0).astype(np.uint8), gsd_metres(transform, crs))
    prop = graph_from_wkt_pix(lines, transform, crs=crs, first_node_id=1000)
    return float(apls(truth_graph, prop, params or AplsParams()).apls)


class SceneApls:
    """Mean APLS of a forward function over the scenes of some validation chips.

    Args:
        chips: the validation :class:`fcnkit.train.chips.Chips` (any stride; the masks of
            overlapping chips are written in index order, later chips over earlier ones).
        batch: chips per forward call (the test net's batch size; a short last batch is
            padded by repeating its last chip).
    """

    def __init__(self, chips: Chips, batch: int):
        self.chips, self.batch = chips, batch

    def scene_masks(self, forward: Callable[[torch.Tensor], torch.Tensor]) -> list[np.ndarray]:
        """Road masks (rows x cols, uint8 0/255), one per scene, from ``forward``: images
        (B, C, chip, chip) float32 0..255 -> scores (B, K, chip, chip)."""
        chip = self.chips.chip
        masks = [np.zeros(g[:2], np.uint8) for g in self.chips.grids]
        index = self.chips.index
        for start in range(0, len(index), self.batch):
            picks = list(range(start, min(start + self.batch, len(index))))
            images = [self.chips.read(k)[0] for k in picks]
            images += [images[-1]] * (self.batch - len(images))
            with torch.no_grad():
                road = road_from_scores(forward(torch.from_numpy(np.stack(images)))).cpu().numpy()
            for j, k in enumerate(picks):
                s, r, c = index[k]
                masks[s][r:r + chip, c:c + chip] = road[j].astype(np.uint8) * 255
        return masks

    def __call__(self, forward: Callable[[torch.Tensor], torch.Tensor]) -> float:
        """Mean APLS over the scenes (see :func:`mask_apls`)."""
        scores = [mask_apls(mask, grid[2], grid[3], pair.label)
                  for mask, grid, pair in zip(self.scene_masks(forward), self.chips.grids,
                                              self.chips.pairs)]
        return float(np.mean(scores)) if scores else float("nan")
