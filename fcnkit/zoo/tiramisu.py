"""FC-DenseNet ("The One Hundred Layers Tiramisu") 56, 67 and 103 as Caffe nets.

Jégou, Drozdzal, Vazquez, Romero and Bengio, "The One Hundred Layers Tiramisu: Fully
Convolutional DenseNets for Semantic Segmentation", arXiv:1611.09326 (CVPRW 2017),
Table 1 and Table 2, with the wiring of the widely used PyTorch implementation
bfortuner/pytorch_tiramisu (``FCDenseNet57/67/103``):

- a first 3x3 convolution ``firstconv`` with 48 filters (96 in the SpaceNet roads
  article's 8-band variant, ``first_filters``);
- down path: dense blocks ``db1``..``db5`` (each output, the block input plus its new
  feature maps, is a skip connection), each followed by a transition down ``td{i}``
  (BN-ReLU-1x1 conv-dropout 0.2-2x2 max pooling);
- ``bottleneck``: a dense block whose new feature maps only go on;
- up path: transition up ``tu{i}`` (3x3 stride-2 transposed convolution of the previous
  block's new feature maps only, centre-cropped to the skip connection, concatenated
  with it) and dense block ``ub{i}`` (new feature maps only, except the last, which
  passes its input on too);
- ``score``: 1x1 convolution to the classes; Softmax ``prob`` (deploy) or
  SoftmaxWithLoss + Accuracy (train_val).

Dense layers are BN-ReLU-3x3 conv-dropout 0.2 with growth rate k new feature maps.
FC-DenseNet56: k = 12, 4 layers per block; FC-DenseNet67: k = 16, 5 layers per block;
FC-DenseNet103: k = 16, blocks 4, 5, 7, 10, 12 | 15 | 12, 10, 7, 5, 4.

Parameter counts (learnable: convolution weights and biases, Scale gamma and beta) equal
bfortuner's: 1,376,988 / 3,463,532 / 9,322,348 with 3 bands and 12 classes (the paper
rounds to 1.5 M, 3.5 M, 9.4 M).
"""

from __future__ import annotations

from dataclasses import dataclass

from fcnkit.netspec import L, NetSpec
from fcnkit.netspec.blocks import MSRA, dense_block, transition_down, transition_up
from fcnkit.zoo.common import inputs, outputs

#: Dropout ratio of every dense layer and transition down (Jégou et al. section 4).
DROPOUT = 0.2


@dataclass(frozen=True)
class TiramisuConfig:
    """One FC-DenseNet variant: layers per dense block on the way down, in the
    bottleneck and on the way up; growth rate; filters of the first convolution."""

    down: tuple[int, ...]
    bottleneck: int
    up: tuple[int, ...]
    growth: int
    first_filters: int = 48

    @property
    def depth(self) -> int:
        """The paper's layer count: dense layers + transitions down + first conv +
        transitions up + classifier (56, 67, 103)."""
        return (sum(self.down) + self.bottleneck + sum(self.up) + len(self.down)
                + 1 + len(self.up) + 1)


#: Jégou et al. Table 2 and section 4 (FC-DenseNet56, 67, 103).
CONFIGS = {
    56: TiramisuConfig((4,) * 5, 4, (4,) * 5, 12),
    67: TiramisuConfig((5,) * 5, 5, (5,) * 5, 16),
    103: TiramisuConfig((4, 5, 7, 10, 12), 15, (12, 10, 7, 5, 4), 16),
}


def tiramisu(name: str, cfg: TiramisuConfig, bands: int, classes: int, train: bool) -> NetSpec:
    """Build an FC-DenseNet.

    Input (1, bands, H, W) -> score (1, classes, H, W) for any H, W at which the
    shapes stay positive (Caffe's ceil pooling and the crops give back the input size;
    multiples of 32 give the same sizes as the paper's floor pooling).

    Channel bookkeeping as bfortuner's ``FCDenseNet.__init__``: C = first_filters;
    after down block i, C += growth * down[i] (the skip's channels); the bottleneck adds
    growth * bottleneck new maps; each up block takes the upsampled new maps plus the
    skip.
    """
    n = NetSpec(name)
    x = inputs(n, bands, train)
    n.firstconv = L.Convolution(x, num_output=cfg.first_filters, kernel_size=3, pad=1,
                                weight_filler=MSRA)
    x, channels, skips = n.firstconv, cfg.first_filters, []
    kw = dict(dropout_ratio=DROPOUT, train=train)
    for i, layers in enumerate(cfg.down, start=1):
        x = dense_block(n, x, f"db{i}", layers, cfg.growth, new_only=False, **kw)
        channels += cfg.growth * layers
        skips.append(x)
        x = transition_down(n, x, f"td{i}", channels, **kw)
    x = dense_block(n, x, "bottleneck", cfg.bottleneck, cfg.growth, new_only=True, **kw)
    new_channels = cfg.growth * cfg.bottleneck
    for i, layers in enumerate(cfg.up, start=1):
        x = transition_up(n, x, skips[-i], f"tu{i}", new_channels)
        last = i == len(cfg.up)
        x = dense_block(n, x, f"ub{i}", layers, cfg.growth, new_only=not last, **kw)
        new_channels = cfg.growth * layers
    n.score = L.Convolution(x, num_output=classes, kernel_size=1, weight_filler=MSRA)
    outputs(n, n.score, train)
    return n
