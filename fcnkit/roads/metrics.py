"""Pixel metrics of road masks: IoU per class and mean IoU, precision / recall / F1, and
their relaxed variant within rho pixels (Mnih & Hinton, "Learning to Detect Roads in
High-Resolution Aerial Images", ECCV 2010: a predicted road pixel counts as correct if a true
one lies within rho pixels, and vice versa for recall).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fcnkit.errors import InputError


@dataclass
class PixelScores:
    """Pixel scores of one tile. ``iou`` maps class value -> IoU (NaN if the class is in
    neither mask); precision/recall/F1 are for road (any nonzero class) vs background."""

    iou: dict = field(default_factory=dict)
    mean_iou: float = float("nan")
    precision: float = float("nan")
    recall: float = float("nan")
    f1: float = float("nan")
    relaxed_precision: float = float("nan")
    relaxed_recall: float = float("nan")
    relaxed_f1: float = float("nan")
    rho_px: float = 0.0


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else (0.0 if p == p and r == r else float("nan"))


def pixel_scores(truth: np.ndarray, pred: np.ndarray, classes=None,
                 rho_px: float = 3.0) -> PixelScores:
    """Compare two label rasters of the same (rows, cols) grid.

    Args:
        truth, pred: integer class rasters (0 = background); binary masks 0/255 work as is.
        classes: class values to report IoU for (default: every value in either, incl. 0).
        rho_px: slack of the relaxed precision/recall, in pixels (road papers use 3).

    Raises:
        InputError: the shapes differ (a mask of the wrong grid).
    """
    if truth.shape != pred.shape:
        raise InputError(f"masks of different grids: truth {truth.shape}, prediction "
                         f"{pred.shape}; rasterise both on the same image grid")
    values = sorted(set(np.unique(truth).tolist()) | set(np.unique(pred).tolist())) \
        if classes is None else list(classes)
    scores = PixelScores(rho_px=rho_px)
    for c in values:
        t, p = truth == c, pred == c
        scores.iou[c] = _ratio(np.logical_and(t, p).sum(), np.logical_or(t, p).sum())
    ious = [v for v in scores.iou.values() if v == v]
    scores.mean_iou = float(np.mean(ious)) if ious else float("nan")
    t, p = truth > 0, pred > 0
    tp = np.logical_and(t, p).sum()
    scores.precision, scores.recall = _ratio(tp, p.sum()), _ratio(tp, t.sum())
    scores.f1 = _f1(scores.precision, scores.recall)
    if rho_px > 0:
        from scipy.ndimage import distance_transform_edt

        near_t = distance_transform_edt(~t) <= rho_px if t.any() else np.zeros_like(t)
        near_p = distance_transform_edt(~p) <= rho_px if p.any() else np.zeros_like(p)
        scores.relaxed_precision = _ratio(np.logical_and(p, near_t).sum(), p.sum())
        scores.relaxed_recall = _ratio(np.logical_and(t, near_p).sum(), t.sum())
        scores.relaxed_f1 = _f1(scores.relaxed_precision, scores.relaxed_recall)
    return scores
