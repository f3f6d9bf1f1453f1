"""Building blocks shared by the model zoo, written with the NetSpec DSL.

Every block takes the :class:`~fcnkit.netspec.NetSpec` to add to, its bottom top(s) and a
name (prefix), names its layers and blobs after Caffe's conventions, and returns the
top(s) the next block needs. Shapes are (N, C, H, W); "same size" means the block keeps
H and W.

Sources:

- conv-ReLU, VGG blocks, FCN score / upscore / crop / fuse heads: Long, Shelhamer and
  Darrell, "Fully Convolutional Networks for Semantic Segmentation" (CVPR 2015) and their
  Caffe nets (fcn.berkeleyvision.org voc-fcn{32,16,8}s/, voc-fcn-alexnet/): parameter
  specs ``lr_mult 1 / decay_mult 1`` for weights and ``2 / 0`` for biases, class scores
  by 1x1 convolutions, fixed bilinear upsampling (``lr_mult 0``), Crop to align;
- dense layer, dense block, transition down and up: Jégou et al., "The One Hundred
  Layers Tiramisu: Fully Convolutional DenseNets for Semantic Segmentation"
  (arXiv:1611.09326, Table 1 and Fig. 1), as implemented in bfortuner/pytorch_tiramisu
  (``DenseLayer``, ``DenseBlock(upsample=...)``, ``TransitionDown``, ``TransitionUp``).
  Caffe's BatchNorm has no affine part, so BatchNorm + Scale(bias_term) stand for
  PyTorch's BatchNorm2d (gamma and beta are Scale's blobs).
"""

from __future__ import annotations

from fcnkit.errors import NetDefinitionError
from fcnkit.netspec.spec import L, NetSpec, Top

#: FCN's parameter specs for a layer with weights and bias (fcn.berkeleyvision.org nets).
FCN_PARAM = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]
#: He et al. (2015) initialisation, Caffe's "msra" filler: N(0, sqrt(2 / fan_in)).
MSRA = dict(type="msra")


def conv_relu(n: NetSpec, bottom: Top, name: str, num_output: int, *, kernel_size: int = 3,
              pad: int = 1, stride: int = 1, group: int = 1, relu: str | None = None,
              param=FCN_PARAM, weight_filler=MSRA) -> Top:
    """Convolution + in-place ReLU: ``n[name]`` and ``n[relu]`` (default ``relu`` +
    the name's suffix: ``conv1_2`` -> ``relu1_2``, ``fc6`` -> ``relu6``).

    Output: (N, num_output, floor((H + 2 pad - kernel) / stride) + 1, same for W).
    Returns the ReLU's top (the blob ``name``, rectified).
    """
    n[name] = L.Convolution(bottom, num_output=num_output, pad=pad, kernel_size=kernel_size,
                            group=group, stride=stride, param=param, weight_filler=weight_filler)
    relu = relu or "relu" + name.lstrip("abcdefghijklmnopqrstuvwxyz")
    n[relu] = L.ReLU(n[name], in_place=True)
    return n[relu]


def max_pool(n: NetSpec, bottom: Top, name: str, kernel_size: int = 2, stride: int = 2) -> Top:
    """Caffe MAX pooling (ceil rounding): (N, C, ceil((H - k) / s) + 1, ...)."""
    n[name] = L.Pooling(bottom, pool="MAX", kernel_size=kernel_size, stride=stride)
    return n[name]


def dropout(n: NetSpec, bottom: Top, name: str, ratio: float, train: bool) -> Top:
    """In-place Dropout (Caffe: identity in TEST, kept units scaled by 1/(1-ratio) in
    TRAIN); left out of deploy nets (``train`` false), where it is the identity."""
    if not train or ratio <= 0:
        return bottom
    n[name] = L.Dropout(bottom, dropout_ratio=ratio, in_place=True)
    return n[name]


def vgg_block(n: NetSpec, bottom: Top, stage: int, convs: int, num_output: int, *,
              first_pad: int = 1) -> Top:
    """One VGG-16 stage (Simonyan and Zisserman 2014, configuration D): ``convs`` 3x3
    convolutions ``conv{stage}_{j}`` + ``relu{stage}_{j}`` and ``pool{stage}`` (2x2 MAX,
    stride 2). FCN pads the very first convolution by 100 (``first_pad``) so that the
    coarse score map still covers small inputs.

    Output: (N, num_output, ceil(H' / 2), ceil(W' / 2)) where H' is the size after the
    first convolution (H + 2 first_pad - 2).
    """
    x = bottom
    for j in range(1, convs + 1):
        x = conv_relu(n, x, f"conv{stage}_{j}", num_output, pad=first_pad if j == 1 else 1)
    return max_pool(n, x, f"pool{stage}")


def score(n: NetSpec, bottom: Top, name: str, classes: int, *, pad: int | None = 0,
          weight_filler: dict | None = None, bias_filler: dict | None = None) -> Top:
    """FCN class scores: 1x1 Convolution to ``classes`` channels, same size. No weight
    filler by default, so zero-initialised, as Long et al. do ("zero-initialize the class
    scoring layer", FCN section 4.3). ``pad`` 0 is written out as FCN's prototxts do;
    None leaves the field unset (the same value, Caffe's default). ``weight_filler`` /
    ``bias_filler``: FillerParameter fields as a dict (e.g. ``dict(type="constant")``).

    Output: (N, classes, H, W).
    """
    fillers = {k: v for k, v in (("weight_filler", weight_filler), ("bias_filler", bias_filler))
               if v is not None}
    pad_field = {} if pad is None else dict(pad=pad)
    n[name] = L.Convolution(bottom, num_output=classes, kernel_size=1, param=FCN_PARAM,
                            **pad_field, **fillers)
    return n[name]


def bilinear_kernel_size(factor: int) -> int:
    """Kernel size of a bilinear upsampling by ``factor`` (pixels): ``2 * factor - factor
    % 2``, the rule documented with Caffe's BilinearFiller (include/caffe/filler.hpp:
    kernel_size = 2 * factor - factor % 2, stride = factor, pad = ceil((factor - 1) / 2)).
    Even factors give FCN's ``2 f`` (4, 16, 32, 64 for 2, 8, 16, 32).

    FCN's nets (and fcnkit's) take the kernel and stride of that rule but not its pad:
    they leave the Deconvolution unpadded and align with a Crop layer instead.

    Raises:
        NetDefinitionError: ``factor`` < 1.
    """
    if int(factor) != factor or factor < 1:
        raise NetDefinitionError(f"an upsampling factor must be an integer >= 1, got {factor!r}")
    return 2 * int(factor) - int(factor) % 2


def upscore(n: NetSpec, bottom: Top, name: str, classes: int, factor: int,
            kernel_size: int | None = None, *, group: int | None = None) -> Top:
    """Fixed bilinear upsampling by ``factor``: a Deconvolution (no bias, ``lr_mult 0``,
    stride ``factor``, no pad). ``kernel_size`` defaults to :func:`bilinear_kernel_size`
    (Caffe's rule; FCN's ``2 * factor`` for even factors); FCN-AlexNet uses 63 for 32.

    ``group`` None: group-wise (``group`` = ``num_output`` = ``classes``) with Caffe's
    "bilinear" filler (include/caffe/filler.hpp BilinearFiller: one interpolation kernel
    per channel). ``group`` 1: FCN's full ``classes`` x ``classes`` Deconvolution (kernel
    on the diagonal, fcn.berkeleyvision.org surgery.interp); Caffe has no filler for it,
    so none is written and the weights come from the caffemodel.

    Output: (N, classes, factor (H - 1) + kernel_size, ...).

    Raises:
        NetDefinitionError: ``factor`` < 1, or ``group`` other than None / 1.
    """
    k = kernel_size or bilinear_kernel_size(factor)
    if group not in (None, 1):
        raise NetDefinitionError(f"upscore '{name}': group must be None (= classes) or 1, got {group!r}")
    grouping = (dict(group=classes, bias_term=False, weight_filler=dict(type="bilinear"))
                if group is None else dict(bias_term=False))
    n[name] = L.Deconvolution(bottom, num_output=classes, **grouping, kernel_size=k,
                              stride=factor, param=dict(lr_mult=0))
    return n[name]


def crop_to(n: NetSpec, bottom: Top, reference: Top, name: str, offset="auto") -> Top:
    """Crop ``bottom`` to ``reference``'s H and W (axis 2). ``offset="auto"`` computes the
    pixel-exact offset from the coordinate maps when the net is built (FCN's
    ``coord_map.crop``); ``"center"`` is the centre crop (see fcnkit.netspec.crops); an int or a list of
    ints is written as given (Caffe's ``crop_param.offset``).

    Output: (N, C, H_ref, W_ref).
    """
    n[name] = L.Crop(bottom, reference, axis=2, offset=offset)
    return n[name]


def fuse(n: NetSpec, a: Top, b: Top, name: str) -> Top:
    """Element-wise sum (Eltwise SUM) of two equally shaped score maps (FCN skip fusion)."""
    n[name] = L.Eltwise(a, b, operation="SUM")
    return n[name]


def layers_on(blobs, build) -> list:
    """Layers made by blocks on an existing net's blobs, as ``LayerParameter`` messages to
    append to that net (how surgery adds an FCN head with these same blocks).

    Args:
        blobs: names of the existing blobs the blocks read.
        build: ``build(n, tops)`` calls blocks on ``n``, a fresh NetSpec, where ``tops`` maps
            each name in ``blobs`` to a top of that name.

    Returns:
        the new layers in creation order (the stand-ins for ``blobs`` left out); Crop
        offsets must be given as numbers (nothing is resolved here).

    Raises:
        NetDefinitionError: what the blocks or NetSpec raise (e.g. a name used twice).
    """
    n = NetSpec()
    for name in blobs:
        n[name] = L.Input()  # a stand-in producing the existing blob; dropped below
    build(n, {name: n[name] for name in blobs})
    return list(n.to_proto(resolve=False).layer)[len(blobs):]


# ---------------------------------------------------------------------------------------
# FC-DenseNet (Tiramisu)
# ---------------------------------------------------------------------------------------

def bn_relu_conv(n: NetSpec, bottom: Top, prefix: str, num_output: int, kernel_size: int, *,
                 dropout_ratio: float, train: bool) -> Top:
    """BN-ReLU-Conv-Dropout, the FC-DenseNet "layer" (Jégou et al. Table 1): Caffe
    BatchNorm ``{prefix}_bn`` (a new blob: the bottom is a concatenation that other layers
    read too), Scale ``{prefix}_scale`` (gamma, beta; in place), ReLU ``{prefix}_relu``,
    Convolution ``{prefix}_conv`` (``kernel_size``, same padding, with bias, MSRA
    filler), Dropout ``{prefix}_drop`` (TRAIN only).

    BatchNorm uses the batch statistics in TRAIN and the stored ones in TEST (its
    ``use_global_stats`` unset); deploy nets (``train`` false) set it true.

    Output: (N, num_output, H, W). Parameters: 2 C (Scale) + num_output (C k^2 + 1).
    """
    bn = dict(batch_norm_param=dict(use_global_stats=True)) if not train else {}
    n[f"{prefix}_bn"] = L.BatchNorm(bottom, **bn)
    n[f"{prefix}_scale"] = L.Scale(n[f"{prefix}_bn"], bias_term=True, in_place=True)
    n[f"{prefix}_relu"] = L.ReLU(n[f"{prefix}_scale"], in_place=True)
    n[f"{prefix}_conv"] = L.Convolution(n[f"{prefix}_relu"], num_output=num_output,
                                        kernel_size=kernel_size, pad=(kernel_size - 1) // 2,
                                        weight_filler=MSRA)
    return dropout(n, n[f"{prefix}_conv"], f"{prefix}_drop", dropout_ratio, train)


def dense_block(n: NetSpec, bottom: Top, prefix: str, layers: int, growth: int, *,
                new_only: bool, dropout_ratio: float, train: bool) -> Top:
    """A dense block of ``layers`` dense layers ``{prefix}_l{j}``, each reading the
    concatenation of the block input and all earlier layers' outputs
    (``{prefix}_cat{j}``, Concat along channels).

    Returns (C = the input's channels):

    - ``new_only`` false: the block input and every new feature map,
      ``n[prefix]`` of (N, C + layers * growth, H, W) (the down path and the last up block);
    - ``new_only`` true: only the new feature maps, ``n[prefix]`` of (N, layers * growth,
      H, W) (the bottleneck and the up path: bfortuner's ``DenseBlock(upsample=True)``,
      Jégou et al. section 3.2, to keep the up path's feature maps few).
    """
    x, new = bottom, []
    for j in range(layers):
        f = bn_relu_conv(n, x, f"{prefix}_l{j}", growth, 3, dropout_ratio=dropout_ratio, train=train)
        new.append(f)
        last = j == layers - 1
        if last and new_only:
            break
        name = prefix if last else f"{prefix}_cat{j}"
        n[name] = L.Concat(x, f, axis=1)
        x = n[name]
    if new_only:
        if len(new) == 1:
            return new[0]
        n[prefix] = L.Concat(*new, axis=1)
    return n[prefix]


def transition_down(n: NetSpec, bottom: Top, prefix: str, channels: int, *,
                    dropout_ratio: float, train: bool) -> Top:
    """FC-DenseNet transition down (Jégou et al. Table 1): BN, ReLU, 1x1 convolution to
    ``channels`` (the input's channel count), dropout, then ``{prefix}_pool``: 2x2 MAX
    pooling, stride 2 (Caffe ceil rounding: odd sizes round up).

    Output: (N, channels, ceil(H / 2), ceil(W / 2)).
    """
    x = bn_relu_conv(n, bottom, prefix, channels, 1, dropout_ratio=dropout_ratio, train=train)
    return max_pool(n, x, f"{prefix}_pool")


def transition_up(n: NetSpec, bottom: Top, skip: Top, prefix: str, channels: int) -> Top:
    """FC-DenseNet transition up (Jégou et al. Table 1; bfortuner ``TransitionUp``): a
    3x3 transposed convolution, stride 2, no padding, with bias ``{prefix}_deconv``
    (H -> 2H + 1), centre-cropped to the skip connection ``{prefix}_crop`` (offset
    computed from the shapes when the net is built: ``(2h + 1 - H_skip) // 2``, 0 for even
    sizes), and ``{prefix}`` = Concat(cropped, skip) along channels.

    The alignment is not pixel-exact: with a 2x2 pooling before and a 3x3 kernel here the
    upsampled map sits half a pixel off the skip connection (coordinate maps: pool
    ``x/2 - 1/4``, deconvolution ``2x + 1``, together ``x + 1/2``), in the paper's nets as
    here; the centre crop takes the lower of the two nearest integer offsets.

    Output: (N, channels + C_skip, H_skip, W_skip).
    """
    n[f"{prefix}_deconv"] = L.Deconvolution(bottom, num_output=channels, kernel_size=3, stride=2,
                                            pad=0, weight_filler=MSRA)
    crop_to(n, n[f"{prefix}_deconv"], skip, f"{prefix}_crop", offset="center")
    n[prefix] = L.Concat(n[f"{prefix}_crop"], skip, axis=1)
    return n[prefix]
