"""Segmentation metrics of the test phase: pixel accuracy and IoU per class from a
confusion matrix (Long et al., FCN, section 5: pixel accuracy sum_i n_ii / sum_i t_i,
IoU_i = n_ii / (t_i + sum_j n_ji - n_ii)).
"""

from __future__ import annotations

import numpy as np
import torch


def confusion(score: torch.Tensor, label: torch.Tensor, classes: int,
              ignore_label: int | None = None) -> np.ndarray:
    """Confusion matrix (classes x classes, int64; rows = true class, cols = predicted).

    Args:
        score: (N, C, H, W) class scores (argmax over C is the prediction), or (N, C).
        label: N*H*W (or N) class indices, any shape with that many elements.
        classes: C.
        ignore_label: positions with this label are not counted.
    """
    pred = score.argmax(dim=1).reshape(-1).long()
    true = label.reshape(-1).long()
    keep = (true >= 0) & (true < classes)
    if ignore_label is not None:
        keep &= true != ignore_label
    index = true[keep] * classes + pred[keep]
    counts = torch.bincount(index, minlength=classes * classes)
    return counts.reshape(classes, classes).cpu().numpy().astype(np.int64)


def pixel_accuracy(matrix: np.ndarray) -> float:
    """Correct pixels / counted pixels (nan when nothing was counted)."""
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else float("nan")


def iou_per_class(matrix: np.ndarray) -> list[float]:
    """IoU of each class (nan for a class absent from both truth and prediction)."""
    tp = np.diag(matrix).astype(np.float64)
    union = matrix.sum(0) + matrix.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return [float(v) for v in np.where(union > 0, tp / np.maximum(union, 1), np.nan)]
