"""Numbers about the zoo's models, measured on the built nets (for the README table).

Everything here comes from :func:`fcnkit.zoo.build` and :func:`fcnkit.analysis.analyse`
on the deploy nets at their declared input (1, 8, 512, 512); nothing is typed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from fcnkit.analysis import analyse, crop_table
from fcnkit.graph import load_net
from fcnkit.zoo import build, info, names


@dataclass(frozen=True)
class CropInfo:
    """One Crop layer: its offset in the prototxt and whether it is pixel-exact (the
    coordinate maps give exactly that offset) or a half-pixel centre crop (the exact
    offset is k + 1/2 and the prototxt has one of the two nearest integers)."""

    layer: str
    offset: tuple[int, ...]
    exact: bool


@dataclass(frozen=True)
class ZooStats:
    """Measured properties of one zoo model (deploy net, 1x8x512x512 input).

    Attributes:
        params: learnable parameters (convolution weights and biases, Scale gamma/beta;
            not BatchNorm statistics), including the fixed bilinear upsampling kernels.
        flops: FLOPs of one forward pass, 2 per multiply-add (convolutions and
            deconvolutions only, FlopCounterMode's convention).
        receptive_field: receptive field of an output pixel in input pixels
            (:func:`fcnkit.analysis.receptive_fields`).
        output_stride: input pixels per pixel of the map on which the last learned layer
            before the output computes (FCN-8s: 8, then fixed bilinear upsampling;
            FC-DenseNet: 1, its classifier runs at full resolution).
        crops: the Crop layers in net order.
    """

    name: str
    title: str
    input_shape: tuple[int, ...]
    classes: int
    params: int
    flops: int
    receptive_field: int
    output_stride: int
    crops: tuple[CropInfo, ...]


def _learned(node) -> bool:
    """Whether a layer has a learnable blob with a positive lr_mult (default 1)."""
    if not node.layer.param_names() or not any(node.layer.learnable()):
        return False
    specs = list(node.param.param)
    n = len(node.layer.param_names())
    mults = [specs[i].lr_mult if i < len(specs) else 1.0 for i in range(n)]
    return any(m > 0 for m, l in zip(mults, node.layer.learnable()) if l)


def stats(name: str) -> ZooStats:
    """Measure one zoo model (see :class:`ZooStats`).

    Raises:
        InputError: unknown model.
    """
    net = load_net(build(name, phase="deploy"))
    a = analyse(net)
    out = net.blob("prob")
    upstream = net.ancestors(out) | {out}
    last = next(n for n in reversed(net.layers) if set(n.tops) & upstream and _learned(n))
    factor = a.coords.blob_maps[last.tops[0]].map.factor[0]
    stride = Fraction(1) / factor
    rows = {r.layer: r for r in crop_table(net)}
    crops = tuple(CropInfo(n.name, tuple(int(o) for o in n.param.crop_param.offset),
                           rows[n.name].passes(strict=True))
                  for n in net.layers if n.layer.crops_to_reference)
    inf = info(name)
    rf = a.receptive_field[out]
    return ZooStats(name, inf["title"], tuple(a.shapes[net.inputs[0]]), a.shapes[out][1],
                    a.total_params, a.total_flops, int(max(rf)), int(stride), crops)


def crop_text(crops: tuple[CropInfo, ...]) -> str:
    """``5, 9, 31``; half-pixel centre crops are marked ``(half-pixel)``."""
    if not crops:
        return "-"
    text = ", ".join(",".join(map(str, c.offset)) for c in crops)
    return text if all(c.exact for c in crops) else text + " (half-pixel)"


def markdown_table(models=None) -> str:
    """The README zoo table (Markdown), one row per model, with footnotes."""
    rows = [stats(n) for n in (models or names())]
    out = ["| name | model | input | classes | params | GFLOP at 512² | receptive field (px) "
           "| output stride | crop offsets |",
           "|---|---|---|---|---:|---:|---:|---:|---|"]
    for s in rows:
        out.append(f"| `{s.name}` | {s.title}{' (96 first filters)' if s.name.endswith('_f96') else ''} "
                   f"| {'×'.join(map(str, s.input_shape))} | {s.classes} | {s.params:,} "
                   f"| {s.flops / 1e9:,.1f} | {s.receptive_field:,} | {s.output_stride} "
                   f"| {crop_text(s.crops)} |")
    return "\n".join(out) + "\n"
