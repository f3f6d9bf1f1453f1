"""Road segmentation losses of the SpaceNet winners, selectable instead of the net's
SoftmaxWithLoss (``fcnkit train --loss``):

- ``bce-dice``: 0.8 BCE + 0.2 (1 - Dice), the SpaceNet 3 roads winner's loss (albu,
  SpaceNetChallenge/RoadDetector, albu-solution).
- ``dice-focal``: 0.25 (1 - Dice) + 0.75 focal, the SpaceNet 5 baseline's loss (CRESI,
  avanetten/cresi configs ``"loss": {"soft_dice": 0.25, "focal": 0.75}``); focal loss of
  Lin et al. 2017 (arXiv:1708.02002) with gamma = 2, no alpha.
- ``softmax`` (default): the net's own loss layer, Caffe's SoftmaxWithLoss with its
  ``ignore_label`` and ``normalization``.

The chosen loss replaces the module of the net's first two-bottom loss layer (score
(N, C, H, W), label (N, 1, H, W) class indices), in the train and the test nets, and keeps
its ``ignore_label``. Road probability p: sigmoid(score) when C = 1; softmax over C
otherwise, with the label one-hot. Ignored positions are left out of every sum. Dice
(soft, smoothed by 1): ``1 - (2 sum p t + 1) / (sum p + sum t + 1)`` per channel (the road
channel only when C = 2), averaged over channels. BCE and focal: means over the counted
elements. The caffemodel is unaffected (losses have no weights).
"""

from __future__ import annotations

import torch

from fcnkit.errors import InputError, NetDefinitionError

#: name -> (weight of the BCE or focal term, weight of the (1 - Dice) term, focal gamma)
LOSSES = {"bce-dice": (0.8, 0.2, None), "dice-focal": (0.75, 0.25, 2.0)}


class RoadLoss(torch.nn.Module):
    """w_pixel x (BCE, or focal with ``gamma``) + w_dice x (1 - soft Dice); see the module
    docstring. forward(score (N, C, H, W), label with N*H*W class indices) -> scalar."""

    def __init__(self, w_pixel: float, w_dice: float, gamma: float | None, ignore_label: int | None):
        super().__init__()
        self.w_pixel, self.w_dice, self.gamma, self.ignore_label = w_pixel, w_dice, gamma, ignore_label

    def forward(self, score, label):
        lab = label.reshape(score.shape[0], 1, *score.shape[2:]).long()
        valid = (torch.ones_like(lab, dtype=torch.bool) if self.ignore_label is None
                 else lab != self.ignore_label)
        lab = torch.where(valid, lab, torch.zeros_like(lab))
        score = score.float()
        if score.shape[1] == 1:
            p, t = torch.sigmoid(score), lab.float()
            logp = torch.nn.functional.logsigmoid(score)
            log1mp = torch.nn.functional.logsigmoid(-score)
        else:
            logp = torch.log_softmax(score, dim=1)
            p = logp.exp()
            t = torch.zeros_like(p).scatter_(1, lab, 1.0)
            log1mp = torch.log1p(-p.clamp(max=1 - 1e-7))
        mask = valid.float().expand_as(p)
        if self.gamma is None:
            pixel = -(t * logp + (1 - t) * log1mp)
        else:  # focal term on the probability of the true value
            pt = torch.where(t > 0, p, 1 - p)
            pixel = -((1 - pt) ** self.gamma) * torch.where(t > 0, logp, log1mp)
        pixel = (pixel * mask).sum() / mask.sum().clamp_min(1.0)
        channels = [1] if p.shape[1] == 2 else range(p.shape[1])
        dice = torch.stack([1 - (2 * (p[:, c] * t[:, c] * mask[:, c]).sum() + 1)
                            / ((p[:, c] * mask[:, c]).sum() + (t[:, c] * mask[:, c]).sum() + 1)
                            for c in channels]).mean()
        return self.w_pixel * pixel + self.w_dice * dice


def replace_loss(compiled, name: str) -> None:
    """Swap the module of the net's first two-bottom loss layer for the loss ``name``.

    Raises:
        InputError: unknown loss name.
        NetDefinitionError: the net has no two-bottom loss layer over (N, C, H, W) scores.
    """
    if name == "softmax":
        return
    if name not in LOSSES:
        raise InputError(f"unknown loss '{name}'; use softmax, {', '.join(LOSSES)}")
    from fcnkit.compile.naming import module_name

    for node in compiled.net.layers:
        if node.role == "loss" and len(node.bottoms) == 2 and \
                len(compiled.analysis.shapes[node.bottoms[0]]) == 4:
            ignore = getattr(node.layer, "ignore_label", None)
            setattr(compiled.module, module_name(node.name), RoadLoss(*LOSSES[name], ignore))
            return
    raise NetDefinitionError(f"--loss {name}: the net has no loss layer over (N, C, H, W) scores "
                             "and a label to replace")
