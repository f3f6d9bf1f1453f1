"""FCN-AlexNet and the VGG-16 FCNs (FCN-32s, FCN-16s, FCN-8s) for 8-band input.

Architecture (layer names, kernels, strides, pads, group sizes, crop placement) as the
reference Caffe nets:

- FCN-AlexNet: NVIDIA DIGITS ``examples/semantic-segmentation/fcn_alexnet.prototxt``
  (and fcn.berkeleyvision.org ``voc-fcn-alexnet``): AlexNet (Krizhevsky et al. 2012) with
  conv1 padded by 100, fc6 / fc7 as 6x6 / 1x1 convolutions, ``score_fr``, a group-wise
  bilinear ``upscore`` (kernel 63, stride 32) and the Crop ``score`` to the input
  (offset 18, DIGITS article Table 2);
- FCN-32s / 16s / 8s: fcn.berkeleyvision.org ``voc-fcn32s``, ``voc-fcn16s``,
  ``voc-fcn8s`` (Long, Shelhamer and Darrell, CVPR 2015): VGG-16 with conv1_1 padded by
  100, fc6 / fc7 as 7x7 / 1x1 convolutions, skip scores from pool4 and pool3, crops 19;
  5, 27; 5, 9, 31.

Differences from those files, for 8-band road segmentation trained from scratch or after
band-adaptation surgery: 8 input bands and 2 classes by default; MSRA weight fillers on
the trunk (the DIGITS article's advice for training from random weights); the
upsampling Deconvolutions are group-wise (group = classes) with Caffe's "bilinear"
filler, so they start as bilinear interpolation without surgery; crop offsets are
computed when the net is built (``offset="auto"``), not typed; Input layers instead of
Python/LMDB data layers; Softmax ``prob`` in deploy nets.
"""

from __future__ import annotations

from fcnkit.netspec import L, NetSpec
from fcnkit.netspec.blocks import (conv_relu, crop_to, dropout, fuse, max_pool, score, upscore,
                                   vgg_block)
from fcnkit.zoo.common import inputs, outputs

#: VGG-16 stages: (stage, convolutions, channels) (Simonyan and Zisserman, Table 1, D).
VGG16_STAGES = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))


def fcn_alexnet(name: str, bands: int, classes: int, train: bool) -> NetSpec:
    """FCN-AlexNet (DIGITS 5 article; fcn_alexnet.prototxt).

    Input (1, bands, H, W) -> score (1, classes, H, W). Output stride 32 (one prediction
    per 32x32 block, bilinearly upsampled); crop offset 18.
    """
    n = NetSpec(name)
    x = inputs(n, bands, train)
    x = conv_relu(n, x, "conv1", 96, kernel_size=11, stride=4, pad=100)
    x = max_pool(n, x, "pool1", 3, 2)
    n.norm1 = L.LRN(x, local_size=5, alpha=1e-4, beta=0.75)
    x = conv_relu(n, n.norm1, "conv2", 256, kernel_size=5, pad=2, group=2)
    x = max_pool(n, x, "pool2", 3, 2)
    n.norm2 = L.LRN(x, local_size=5, alpha=1e-4, beta=0.75)
    x = conv_relu(n, n.norm2, "conv3", 384)
    x = conv_relu(n, x, "conv4", 384, group=2)
    x = conv_relu(n, x, "conv5", 256, group=2)
    x = max_pool(n, x, "pool5", 3, 2)
    x = conv_relu(n, x, "fc6", 4096, kernel_size=6, pad=0)
    x = dropout(n, x, "drop6", 0.5, train)
    x = conv_relu(n, x, "fc7", 4096, kernel_size=1, pad=0)
    x = dropout(n, x, "drop7", 0.5, train)
    s = score(n, x, "score_fr", classes)
    up = upscore(n, s, "upscore", classes, 32, kernel_size=63)
    outputs(n, crop_to(n, up, n.data, "score"), train)
    return n


def _vgg16_trunk(n: NetSpec, x, train: bool):
    for stage, convs, channels in VGG16_STAGES:
        x = vgg_block(n, x, stage, convs, channels, first_pad=100 if stage == 1 else 1)
    x = conv_relu(n, x, "fc6", 4096, kernel_size=7, pad=0)
    x = dropout(n, x, "drop6", 0.5, train)
    x = conv_relu(n, x, "fc7", 4096, kernel_size=1, pad=0)
    return dropout(n, x, "drop7", 0.5, train)


def fcn_vgg16(name: str, bands: int, classes: int, train: bool, stride: int) -> NetSpec:
    """FCN-32s, FCN-16s or FCN-8s (``stride`` 32, 16 or 8) on VGG-16 (voc-fcn{32,16,8}s).

    Input (1, bands, H, W) -> score (1, classes, H, W). Skip layers: 16s adds
    ``score_pool4`` (cropped to ``upscore2``, offset 5) and ``fuse_pool4``; 8s also
    ``score_pool3`` (offset 9) and ``fuse_pool3``. Final crops 19 (32s), 27 (16s),
    31 (8s).
    """
    if stride not in (32, 16, 8):
        raise ValueError(f"FCN stride must be 32, 16 or 8, got {stride}")
    n = NetSpec(name)
    x = inputs(n, bands, train)
    x = _vgg16_trunk(n, x, train)
    s = score(n, x, "score_fr", classes)
    if stride == 32:
        up = upscore(n, s, "upscore", classes, 32)
    else:
        up2 = upscore(n, s, "upscore2", classes, 2)
        p4 = crop_to(n, score(n, n.pool4, "score_pool4", classes), up2, "score_pool4c")
        f4 = fuse(n, up2, p4, "fuse_pool4")
        if stride == 16:
            up = upscore(n, f4, "upscore16", classes, 16)
        else:
            up4 = upscore(n, f4, "upscore_pool4", classes, 2)
            p3 = crop_to(n, score(n, n.pool3, "score_pool3", classes), up4, "score_pool3c")
            f3 = fuse(n, up4, p3, "fuse_pool3")
            up = upscore(n, f3, "upscore8", classes, 8)
    outputs(n, crop_to(n, up, n.data, "score"), train)
    return n
