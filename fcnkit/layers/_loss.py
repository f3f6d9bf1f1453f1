"""What Caffe's loss layers share (src/caffe/layers/loss_layer.cpp, LossParameter).

A loss layer's first top is a scalar (shape ``()``); the data and label bottoms must have
the same first dimension; the first top has loss weight 1 unless ``loss_weight`` says
otherwise (:meth:`fcnkit.layers.Layer.loss_weights`). Loss layers have no coordinate map.

Normalisation (``loss_param.normalization``; legacy ``normalize``): the summed loss is
divided by ``max(1, n)`` with n = FULL: every output position; VALID: the positions whose
label is not ``ignore_label`` (FULL when there is no ignore label); BATCH_SIZE: the
"outer" count (items before the loss axis); NONE: 1.
"""

from __future__ import annotations

from fcnkit.errors import ShapeError
from fcnkit.layers import Layer, NoCoordMap

FULL, VALID, BATCH_SIZE, NONE = 0, 1, 2, 3
NORMALIZATION_NAMES = {FULL: "FULL", VALID: "VALID", BATCH_SIZE: "BATCH_SIZE", NONE: "NONE"}


class LossLayer(Layer):
    """Base of the loss layers: role ``"loss"``, two bottoms (data, label), scalar top."""

    role = "loss"
    bottoms = (2, 2)
    #: normalisation when neither ``normalization`` nor ``normalize`` is set
    default_normalization = VALID

    def setup(self) -> None:
        lp = self.param.loss_param
        self.ignore_label = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        if lp.HasField("normalization"):
            self.normalization = int(lp.normalization)
        elif lp.HasField("normalize"):
            self.normalization = VALID if lp.normalize else BATCH_SIZE
        else:
            self.normalization = self.default_normalization
        if self.normalization not in NORMALIZATION_NAMES:
            raise self.error(f"unknown loss normalization {self.normalization}")
        self.loss_weights()  # checks the count

    def check_batch(self, bottom_shapes) -> None:
        """LossLayer::Reshape: data and label have the same first dimension."""
        (b0, b1) = bottom_shapes[:2]
        n0 = b0[0] if len(b0) else 1
        n1 = b1[0] if len(b1) else 1
        if n0 != n1:
            names = list(self.param.bottom)
            raise self.error(f"bottoms '{names[0]}' {tuple(b0)} and '{names[1]}' {tuple(b1)} "
                             "must have the same first dimension (data and label)", ShapeError)

    def coord_map(self):
        raise NoCoordMap(f"{self.type} is a loss")


def normalizer(mode: int, outer: int, inner: int, valid):
    """Caffe's LossLayer::GetNormalizer as a tensor expression: ``valid`` is the count of
    non-ignored positions (a tensor), used by VALID; the result is at least 1."""
    import torch

    if mode == FULL:
        return float(max(1, outer * inner))
    if mode == VALID:
        return torch.clamp_min(valid.to(torch.float32), 1.0)
    if mode == BATCH_SIZE:
        return float(max(1, outer))
    return 1.0


def label_index(label, outer: int, inner: int, ignore_label):
    """(index, valid) for Caffe's per-position labels (SoftmaxWithLoss, Accuracy):
    ``label`` reshaped to (outer, 1, inner) as int64; ``valid`` False where it equals
    ``ignore_label``; ``index`` the label where valid, else 0 (a class that exists, for
    ``torch.gather``; the position is masked out by ``valid``)."""
    import torch

    lab = label.reshape(outer, 1, inner).long()
    if ignore_label is None:
        return lab, torch.ones_like(lab, dtype=torch.bool)
    valid = lab != ignore_label
    return torch.where(valid, lab, torch.zeros_like(lab)), valid
