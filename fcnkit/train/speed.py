"""Road-speed training as the SpaceNet 5 baseline (CRESI) does it (``fcnkit train --speed-bins``).

Labels: each road line is burnt (fcnkit.roads.labels.speed_label_mask, multi-channel) into the
channel of its speed bin (CRESI's ``speed_conversion_binned7.csv``: speed mph -> burn value,
channel; speed from the line's ``inferred_speed_mph`` rounded and clipped to the table), and
one more channel holds all roads (CRESI's ``num_classes`` = bins + 1; the aggregate channel is
last). Label of a scene: (bins + 1, rows, cols) uint8 in {0, 1}.

Loss: CRESI's config ``"loss": {"soft_dice": 0.25, "focal": 0.75}`` over sigmoid outputs, per
channel (multi-label: a pixel may be on in a bin channel and the all-roads channel):
0.75 focal (Lin et al. 2017, arXiv:1708.02002, gamma 2, no alpha; mean over all elements)
+ 0.25 mean over channels of (1 - soft Dice) (smoothed by 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fcnkit.errors import InputError

#: the property of SpaceNet 5 road lines that holds the speed (mph)
SPEED_PROPERTY = "inferred_speed_mph"


def speed_channel_count(table_path: str | Path) -> int:
    """Channels of a speed model: speed bins of the table + the all-roads channel.

    Raises:
        InputError: see fcnkit.roads.labels.read_speed_table.
    """
    from fcnkit.roads.labels import read_speed_table

    return 2 + max(channel for _, channel in read_speed_table(table_path).values())


def speed_channels(label_path: str | Path, table_path: str | Path, *, shape, transform, crs,
                   width: str) -> np.ndarray:
    """Multi-channel speed label of one scene: (bins + 1, rows, cols) uint8 in {0, 1}; channel
    k < bins is on where a road of bin k is burnt, the last channel where any road is.

    Args:
        label_path: road GeoJSON whose lines carry ``inferred_speed_mph``.
        table_path: CRESI speed-bin CSV (burn_val, speed, channel).
        shape, transform, crs: the image grid (rows, cols), affine, CRS.
        width: full road width ("4m", "13px").

    Raises:
        InputError: a label GeoTIFF (speeds need lines), a line without a numeric speed, an
            unreadable table (fcnkit.roads.labels).
    """
    from fcnkit.roads.labels import speed_label_mask
    from fcnkit.roads.vector import read_road_lines

    if Path(label_path).suffix.lower() in (".tif", ".tiff"):
        raise InputError(f"{label_path}: --speed-bins needs road GeoJSON labels (lines with "
                         f"{SPEED_PROPERTY}), not a label GeoTIFF")
    road = read_road_lines(label_path)
    bins = np.zeros((speed_channel_count(table_path) - 1,) + tuple(shape), np.uint8)
    if road.geometries:
        bins = speed_label_mask(road, table_path, SPEED_PROPERTY, True, shape=shape,
                                transform=transform, crs=crs, width=width)
    bins = (bins > 0).astype(np.uint8)
    return np.concatenate([bins, bins.max(0, keepdims=True)])


class SpeedLoss(torch.nn.Module):
    """CRESI's 0.75 focal + 0.25 (1 - soft Dice), per channel over sigmoid(score) (module
    docstring). forward(score (N, K, H, W), label (N, K, H, W) in {0, 1}) -> scalar."""

    def __init__(self, w_focal: float = 0.75, w_dice: float = 0.25, gamma: float = 2.0):
        super().__init__()
        self.w_focal, self.w_dice, self.gamma = w_focal, w_dice, gamma

    def forward(self, score: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        score = score.float()
        t = label.reshape(score.shape).float()
        p = torch.sigmoid(score)
        log_p = torch.where(t > 0, torch.nn.functional.logsigmoid(score),
                            torch.nn.functional.logsigmoid(-score))
        p_true = torch.where(t > 0, p, 1 - p)
        focal = (-((1 - p_true) ** self.gamma) * log_p).mean()
        dims = (0, 2, 3)
        dice = 1 - (2 * (p * t).sum(dims) + 1) / (p.sum(dims) + t.sum(dims) + 1)
        return self.w_focal * focal + self.w_dice * dice.mean()


def use_speed_loss(compiled, channels: int) -> None:
    """Replace the first loss layer over (N, C, H, W) scores by :class:`SpeedLoss`.

    Raises:
        NetDefinitionError: no such loss layer, or its score has not ``channels`` channels
            (set the final score layer's num_output to bins + 1).
    """
    from fcnkit.compile.naming import module_name
    from fcnkit.errors import NetDefinitionError

    for node in compiled.net.layers:
        shape = compiled.analysis.shapes[node.bottoms[0]] if node.bottoms else ()
        if node.role == "loss" and len(node.bottoms) == 2 and len(shape) == 4:
            if shape[1] != channels:
                raise NetDefinitionError(
                    f"layer '{node.name}': its score '{node.bottoms[0]}' has {shape[1]} channels; "
                    f"--speed-bins needs {channels} (speed bins + all roads): set the final "
                    "score layer's num_output")
            setattr(compiled.module, module_name(node.name), SpeedLoss())
            return
    raise NetDefinitionError("--speed-bins: the net has no loss layer over (N, C, H, W) scores")
