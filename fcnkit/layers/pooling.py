"""Pooling: Caffe src/caffe/layers/pooling_layer.cpp.

Top size per axis: ``ceil((i + 2p - k) / s) + 1`` (``floor`` with ``round_mode: FLOOR``),
then, only when some pad is non-zero, ``if (o - 1) * s >= i + p: o -= 1`` (the last window
must start inside the image or its left padding). ``global_pooling`` uses the whole map.

MAX ignores padding. AVE divides by the window's overlap with ``[-p, i + p)``: real
padding counts, the ceil overhang does not. STOCHASTIC is computed with Caffe's TEST-phase
rule (``sum(x^2) / sum(x)`` over the window) in both phases.

Coordinate map: ``F = 1/s``, ``O = (p - (k - 1)/2) / s``; global pooling has none.

MAX pooling may have a second top, the mask: the flat index ``h * W + w`` of each maximum in
its input plane, stored as float (PoolingLayer::Forward_cpu ``top_mask``). SegNet and ENet
feed it to their Upsample layer (fcnkit.layers.forks.upsample).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from fcnkit.errors import ShapeError
from fcnkit.layers import CoordMap, Layer, NoCoordMap, Window, register
from fcnkit.layers._common import lazy

MAX, AVE, STOCHASTIC = 0, 1, 2
CEIL, FLOOR = 0, 1
#: Caffe starts a MAX window at -FLT_MAX; an empty window (possible only for stride >
#: kernel without padding) keeps that value.
FLT_MAX = float(np.finfo(np.float32).max)


def _opt(msg, field):
    return getattr(msg, field) if msg.HasField(field) else None


def caffe_pooled_size(i: int, k: int, s: int, p: int, ceil: bool, any_pad: bool) -> int:
    """Caffe's pooled output size along one axis (pixels), clip rule included."""
    o = (-(-(i + 2 * p - k) // s) if ceil else (i + 2 * p - k) // s) + 1
    if any_pad and (o - 1) * s >= i + p:
        o -= 1
    return o


def torch_pooled_size(i: int, k: int, s: int, p: int, ceil: bool) -> int:
    """PyTorch's pooled size (aten pooling_output_shape): the clip rule always applies."""
    o = (i + 2 * p - k + (s - 1 if ceil else 0)) // s + 1
    if ceil and (o - 1) * s >= i + p:
        o -= 1
    return o


@register
class Pooling(Layer):
    """Caffe ``Pooling``: MAX, AVE, STOCHASTIC; global; CEIL or FLOOR rounding."""

    type = "Pooling"
    pools = True
    min_bottom_rank = 4  # pooling_layer.cpp: "Input must have 4 axes"
    tops = (1, 2)  # MAX may output its argmax mask as a second top

    def setup(self) -> None:
        p = self.param.pooling_param
        self.pool = int(p.pool)
        self.global_pooling = bool(p.global_pooling)
        self.ceil = p.round_mode == CEIL
        if p.HasField("ceil_mode"):  # fork spelling; the loader normally maps it to round_mode
            if p.HasField("round_mode") and self.ceil != p.ceil_mode:
                raise self.error("ceil_mode and round_mode disagree; give one of them")
            self.ceil = bool(p.ceil_mode)
        self.pad = (int(_opt(p, "pad_h") if p.HasField("pad_h") else p.pad),
                    int(_opt(p, "pad_w") if p.HasField("pad_w") else p.pad))
        if p.HasField("pad_h") != p.HasField("pad_w"):
            raise self.error("pad_h and pad_w must be given together")
        if p.HasField("stride_h") != p.HasField("stride_w"):
            raise self.error("stride_h and stride_w must be given together")
        if p.HasField("kernel_h") != p.HasField("kernel_w"):
            raise self.error("kernel_h and kernel_w must be given together")
        self.stride = (int(p.stride_h), int(p.stride_w)) if p.HasField("stride_h") else (int(p.stride),) * 2
        if self.global_pooling:
            if p.HasField("kernel_size") or p.HasField("kernel_h"):
                raise self.error("with global_pooling the kernel size must not be given")
            if any(self.pad) or any(s != 1 for s in self.stride):
                raise self.error("with global_pooling, pad must be 0 and stride 1")
            self.kernel = None
        else:
            if p.HasField("kernel_h"):
                self.kernel = (int(p.kernel_h), int(p.kernel_w))
            elif p.HasField("kernel_size"):
                self.kernel = (int(p.kernel_size),) * 2
            else:
                raise self.error("pooling_param needs kernel_size (or kernel_h and kernel_w, "
                                 "or global_pooling: true)")
            if min(self.kernel) <= 0:
                raise self.error(f"kernel size must be positive, got {self.kernel}")
            if any(pd >= k for pd, k in zip(self.pad, self.kernel)):
                raise self.error(f"pad {self.pad} must be smaller than the kernel {self.kernel}")
        if min(self.stride) <= 0:
            raise self.error(f"stride must be positive, got {self.stride}")
        if self.pool not in (MAX, AVE, STOCHASTIC):
            raise self.error(f"unknown pool method {self.pool}")
        if len(self.param.top) == 2 and self.pool != MAX:
            raise self.error("only MAX pooling has a second (mask) top")

    def geometry(self, bottom_shape) -> tuple[tuple[int, int], tuple[int, int]]:
        """(kernel, output size) for a bottom shape (N, C, H, W), in pixels."""
        if len(bottom_shape) != 4:
            raise self.error(f"bottom has shape {bottom_shape}; pooling needs N, C, H, W", ShapeError)
        hw = bottom_shape[2:]
        if self.global_pooling:
            return tuple(hw), (1, 1)
        any_pad = any(self.pad)
        out = tuple(caffe_pooled_size(i, k, s, p, self.ceil, any_pad)
                    for i, k, s, p in zip(hw, self.kernel, self.stride, self.pad))
        if min(out) <= 0:
            raise self.error(f"input {hw[0]}x{hw[1]} is smaller than the kernel {self.kernel}",
                             ShapeError)
        return self.kernel, out

    def output_shapes(self, bottom_shapes):
        n, c = bottom_shapes[0][:2]
        _, out = self.geometry(bottom_shapes[0])
        return [(n, c, *out)] * len(self.param.top)

    def coord_map(self):
        if self.global_pooling:
            raise NoCoordMap("global pooling collapses the spatial axes")
        return CoordMap(
            tuple(Fraction(1, s) for s in self.stride),
            tuple(Fraction(2 * p - (k - 1), 2 * s) for p, k, s in zip(self.pad, self.kernel, self.stride)),
        )

    def window(self) -> Window:
        kernel = tuple(self.kernel) if self.kernel is not None else None
        return Window(kernel, kernel, tuple(self.stride), tuple(self.pad))

    def build_module(self, bottom_shapes):
        import torch

        kernel, out = self.geometry(bottom_shapes[0])
        hw = bottom_shapes[0][2:]
        native = (self.pool != STOCHASTIC
                  and all(2 * p <= k for p, k in zip(self.pad, kernel))
                  and all(torch_pooled_size(i, k, s, p, self.ceil) == o
                          for i, k, s, p, o in zip(hw, kernel, self.stride, self.pad, out)))
        if len(self.param.top) == 2:  # SegNet's mask top, for an Upsample (unpooling)
            if not native:
                raise self.error("the MAX pooling mask top is compiled only where torch's "
                                 "max_pool2d has Caffe's output size (here it does not)")
            return _torch().MaxPoolMask(kernel, self.stride, self.pad, self.ceil)
        if self.global_pooling:
            return _torch().GlobalPool(self.pool)
        if native and self.pool == MAX:
            return torch.nn.MaxPool2d(kernel, self.stride, self.pad, ceil_mode=self.ceil)
        if native and self.pool == AVE:
            return torch.nn.AvgPool2d(kernel, self.stride, self.pad, ceil_mode=self.ceil,
                                      count_include_pad=True)
        # General path: pad explicitly so that exactly Caffe's windows exist, pool without
        # padding, and (AVE) divide by Caffe's divisor map.
        # Only windows that start inside the input (o * s - p < i) see a pixel; the others
        # (a huge stride) are constants appended after pooling, so that the padding is never
        # larger than the input plus one window (issue 15: it used to reach 55 TB).
        real = tuple(min(o, -(-(i + p) // s)) for i, s, p, o in zip(hw, self.stride, self.pad, out))
        extra = tuple(max(0, (r - 1) * s + k - i - p)
                      for i, k, s, p, r in zip(hw, kernel, self.stride, self.pad, real))
        rescale = None
        if self.pool == AVE:
            # avg_pool2d (no padding) divides by kh * kw; rescale to Caffe's divisor
            with np.errstate(divide="ignore"):
                rescale = np.float32(kernel[0] * kernel[1]) / _caffe_ave_divisor(
                    hw, kernel, self.stride, self.pad, out)
        empty = any((o - 1) * s - p >= i for i, s, p, o in zip(hw, self.stride, self.pad, out))
        return _torch().PaddedPool(self.pool, kernel, self.stride, self.pad, extra, out,
                                   None if rescale is None else rescale[: real[0], : real[1]],
                                   empty, real)


    def static_hw_reason(self, module):
        """None: every pooling form has a dynamic export form (:meth:`dynamic_export_module`),
        except MAX pooling with its mask top (SegNet), whose indices are not re-derived here."""
        if isinstance(module, _torch().MaxPoolMask):
            return ("computes MAX pooling with its argmax mask top (SegNet), which fcnkit exports "
                    "for the compile-time input size only")
        return None

    def dynamic_export_module(self, module, bottom_shapes):
        """Pooling whose sizes follow the input (for ``--dynamic-hw``): Caffe's
        ceil-and-clip rule written as shape arithmetic (ONNX Shape, Div, Mul, Pad and Slice
        nodes), floor-mode ONNX pooling inside; None for global pooling (already any size).

        Per axis, with ``a = i + 2p - k`` and ``c = ceil(a / s)`` (``floor`` for FLOOR
        rounding): the input gets Caffe's pad ``p`` at the start and ``p + (c s - a)`` at
        the end, so that floor-mode pooling yields ``c + 1`` windows; with padding, the
        result is cut to ``floor((i + p - 1) / s) + 1`` windows. That is Caffe's clip rule
        (pooling_layer.cpp): ``min(c, floor((i + p - 1) / s)) = c - 1`` exactly when
        ``c s >= i + p`` because ``p < k`` makes ``c - 1 <= floor((i + p - 1) / s)``. AVE
        divides by the pooled mask of ``[-p, i + p)`` (real padding counts, the overhang
        does not); MAX clamps at ``-FLT_MAX`` where a window can miss the input (stride
        larger than the kernel), as Caffe's initial value does. MAX with pad 0 and stride
        <= kernel is one ONNX MaxPool with ``ceil_mode=1``: exactly Caffe's size there."""
        if self.global_pooling:
            return None
        return _dynamic()(self.pool, self.kernel, self.stride, self.pad, self.ceil,
                                    any(s > k for s, k in zip(self.stride, self.kernel)))

    def export_module(self, module, bottom_shapes):
        """A ceil-mode MaxPool2d / AvgPool2d as floor-mode pooling with explicit asymmetric
        pads (Caffe's pad at the start, pad plus the ceil overhang at the end) and, for AVE,
        a constant correction (kernel area / Caffe's divisor) where windows reach into the
        overhang (:mod:`fcnkit.layers._export_ops`); None for any other module."""
        import torch

        from fcnkit.layers._export_ops import CaffePoolExport

        if not isinstance(module, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)) or not module.ceil_mode:
            return None
        kernel, out = self.geometry(bottom_shapes[0])
        hw = bottom_shapes[0][2:]
        extra = [max(0, (o - 1) * s + k - (i + 2 * p))
                 for i, k, s, p, o in zip(hw, kernel, self.stride, self.pad, out)]
        pads = [self.pad[0], self.pad[1], self.pad[0] + extra[0], self.pad[1] + extra[1]]
        is_max = isinstance(module, torch.nn.MaxPool2d)
        correction = None
        if not is_max and any(extra):
            divisor = _caffe_ave_divisor(hw, kernel, self.stride, self.pad, out).astype(np.float64)
            corr = (kernel[0] * kernel[1]) / divisor
            if not np.allclose(corr, 1.0):
                correction = torch.from_numpy(corr.astype(np.float32))[None, None]
        return CaffePoolExport(is_max, kernel, tuple(self.stride), pads, correction)


def _caffe_ave_divisor(hw, kernel, stride, pad, out) -> np.ndarray:
    """Caffe's AVE pool_size per output pixel, shape (OH, OW) (pooling_layer.cpp)."""
    axes = []
    for i, k, s, p, o in zip(hw, kernel, stride, pad, out):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, i + p)
        axes.append((end - start).astype(np.float32))
    return np.outer(axes[0], axes[1]).astype(np.float32)


@lazy
def _torch():
    """Torch modules for the non-native pooling paths (built on first use)."""
    import types

    import torch
    import torch.nn.functional as F

    class GlobalPool(torch.nn.Module):
        def __init__(self, pool):
            super().__init__()
            self.pool = pool

        def forward(self, x):
            if self.pool == MAX:
                return torch.amax(x, dim=(2, 3), keepdim=True)
            if self.pool == AVE:
                return torch.mean(x, dim=(2, 3), keepdim=True)
            return (x * x).sum(dim=(2, 3), keepdim=True) / x.sum(dim=(2, 3), keepdim=True)

    class PaddedPool(torch.nn.Module):
        def __init__(self, pool, kernel, stride, pad, extra, out, rescale, empty, real=None):
            super().__init__()
            self.pool, self.kernel, self.stride = pool, tuple(kernel), tuple(stride)
            # F.pad order: (left, right, top, bottom)
            self.padding = (pad[1], extra[1], pad[0], extra[0])
            self.real = tuple(real or out)  # windows that see the input; the rest are constant
            self.tail = (0, out[1] - self.real[1], 0, out[0] - self.real[0])
            self.out = self.real
            self.empty = empty
            if rescale is not None:  # kh * kw / Caffe's divisor, per output pixel
                self.register_buffer("rescale", torch.from_numpy(rescale)[None, None], persistent=False)
            else:
                self.rescale = None

        def forward(self, x):
            y = self._pool(x)
            if any(self.tail):  # Caffe: an empty MAX window is -FLT_MAX, an AVE one 0
                y = F.pad(y, self.tail, value=-FLT_MAX if self.pool == MAX else 0.0)
            return y

        def _pool(self, x):
            if self.pool == MAX:
                y = F.max_pool2d(F.pad(x, self.padding, value=float("-inf")), self.kernel, self.stride)
                y = y[:, :, : self.out[0], : self.out[1]]
                return y.clamp_min(-FLT_MAX) if self.empty else y
            # avg_pool2d without divisor_override: the ONNX exporter drops that argument
            if self.pool == AVE:
                m = F.avg_pool2d(F.pad(x, self.padding), self.kernel, self.stride)
                return m[:, :, : self.out[0], : self.out[1]] * self.rescale
            xp = F.pad(x, self.padding)
            num = F.avg_pool2d(xp * xp, self.kernel, self.stride)
            den = F.avg_pool2d(xp, self.kernel, self.stride)
            return (num / den)[:, :, : self.out[0], : self.out[1]]

    class MaxPoolMask(torch.nn.Module):
        """MAX pooling and its mask top: the flat index ``h * W + w`` of each maximum in its
        input plane, as float (Caffe's PoolingLayer top[1]; first maximum on ties)."""

        def __init__(self, kernel, stride, pad, ceil):
            super().__init__()
            self.kernel, self.stride, self.pad, self.ceil = tuple(kernel), tuple(stride), tuple(pad), ceil

        def forward(self, x):
            y, index = F.max_pool2d(x, self.kernel, self.stride, self.pad, ceil_mode=self.ceil,
                                    return_indices=True)
            return y, index.to(x.dtype)

    return types.SimpleNamespace(GlobalPool=GlobalPool, PaddedPool=PaddedPool,
                                 MaxPoolMask=MaxPoolMask)


@lazy
def _dynamic():
    """The export form of pooling at any H and W (built on first use)."""
    import torch
    import torch.nn.functional as F

    class DynamicPool(torch.nn.Module):
        """Caffe pooling of x (N, C, H, W) at any H and W (see
        :meth:`Pooling.dynamic_export_module`); plain torch ops on x's symbolic sizes."""

        def __init__(self, pool, kernel, stride, pad, ceil, can_miss):
            super().__init__()
            self.pool, self.kernel, self.stride = pool, tuple(kernel), tuple(stride)
            self.pad, self.ceil, self.can_miss = tuple(pad), bool(ceil), bool(can_miss)

        def forward(self, x):
            if self.pool == MAX and self.ceil and not any(self.pad) and not self.can_miss:
                # pad 0, every window starts inside the input: ONNX MaxPool ceil_mode=1 is
                # exactly Caffe's size (no clip rule applies without padding)
                return F.max_pool2d(x, self.kernel, self.stride, ceil_mode=True)
            overhang, keep = [], []
            for i, k, s, p in zip(x.shape[2:], self.kernel, self.stride, self.pad):
                a = i + 2 * p - k
                c = (a + s - 1) // s if self.ceil else a // s
                overhang.append(c * s - a if self.ceil else 0)
                keep.append((i + p - 1) // s + 1)
            (ph, pw), (eh, ew) = self.pad, overhang
            value = -float("inf") if self.pool == MAX else 0.0
            xp = F.pad(x, (pw, pw + ew, ph, ph + eh), value=value)
            if self.pool == MAX:
                y = F.max_pool2d(xp, self.kernel, self.stride)
                y = y.clamp_min(-FLT_MAX) if self.can_miss else y
            elif self.pool == AVE:
                # the share of each window inside [-p, i + p); at least 1/(kh kw) unless
                # the window misses it (then its sum is 0 too: Caffe gives 0)
                inside = F.pad(torch.ones_like(x[:1, :1]), (pw, pw, ph, ph), value=1.0)
                share = F.avg_pool2d(F.pad(inside, (0, ew, 0, eh)), self.kernel, self.stride)
                floor = 0.5 / (self.kernel[0] * self.kernel[1])
                y = F.avg_pool2d(xp, self.kernel, self.stride) / share.clamp_min(floor)
            else:
                y = F.avg_pool2d(xp * xp, self.kernel, self.stride) / F.avg_pool2d(xp, self.kernel, self.stride)
            if self.ceil and any(self.pad):  # Caffe's clip rule (only with padding)
                y = y[:, :, : keep[0], : keep[1]]
            return y

    return DynamicPool
