"""Slow, obviously-correct NumPy transcriptions of Caffe's C++ forward loops.

Each function follows the loop structure of the named BVLC Caffe source file (not a
vectorised formula), so that the torch modules of fcnkit.layers can be checked against
an independent truth. Inputs and outputs are float arrays in Caffe's axis order.
"""

from __future__ import annotations

import math

import numpy as np

FLT_MAX = float(np.finfo(np.float32).max)
FLT_MIN = float(np.finfo(np.float32).tiny)


# ---- pooling_layer.cpp -------------------------------------------------------------

def pooled_size(i, k, s, p, ceil=True, any_pad=None):
    """PoolingLayer::Reshape for one axis (float division, then ceil or floor)."""
    any_pad = p > 0 if any_pad is None else any_pad
    r = (i + 2 * p - k) / s
    o = int(math.ceil(r) if ceil else math.floor(r)) + 1
    if any_pad and (o - 1) * s >= i + p:
        o -= 1
    return o


def pool(x, kernel, stride=(1, 1), pad=(0, 0), method="MAX", ceil=True, global_pooling=False):
    """PoolingLayer::Forward_cpu, MAX and AVE."""
    n_, c_, h_, w_ = x.shape
    if global_pooling:
        kernel, stride, pad = (h_, w_), (1, 1), (0, 0)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    any_pad = ph > 0 or pw > 0
    oh = pooled_size(h_, kh, sh, ph, ceil, any_pad)
    ow = pooled_size(w_, kw, sw, pw, ceil, any_pad)
    y = np.zeros((n_, c_, oh, ow), dtype=np.float64)
    for n in range(n_):
        for c in range(c_):
            for i in range(oh):
                for j in range(ow):
                    hstart, wstart = i * sh - ph, j * sw - pw
                    if method == "MAX":
                        hend, wend = min(hstart + kh, h_), min(wstart + kw, w_)
                        hstart, wstart = max(hstart, 0), max(wstart, 0)
                        best = -FLT_MAX
                        for h in range(hstart, hend):
                            for w in range(wstart, wend):
                                if x[n, c, h, w] > best:
                                    best = x[n, c, h, w]
                        y[n, c, i, j] = best
                    else:
                        hend, wend = min(hstart + kh, h_ + ph), min(wstart + kw, w_ + pw)
                        pool_size = (hend - hstart) * (wend - wstart)
                        hstart, wstart = max(hstart, 0), max(wstart, 0)
                        hend, wend = min(hend, h_), min(wend, w_)
                        total = 0.0
                        for h in range(hstart, hend):
                            for w in range(wstart, wend):
                                total += x[n, c, h, w]
                        y[n, c, i, j] = total / pool_size
    return y


# ---- conv_layer.cpp / deconv_layer.cpp ------------------------------------------

def conv_out_size(i, k, s, p, d):
    return (i + 2 * p - (d * (k - 1) + 1)) // s + 1


def deconv_out_size(i, k, s, p, d):
    return s * (i - 1) + d * (k - 1) + 1 - 2 * p


def convolution(x, w, b, stride, pad, dilation, group):
    """Direct convolution: weights (O, C/g, kh, kw)."""
    n_, c_, h_, w_ = x.shape
    o_, cg, kh, kw = w.shape
    oh = conv_out_size(h_, kh, stride[0], pad[0], dilation[0])
    ow = conv_out_size(w_, kw, stride[1], pad[1], dilation[1])
    y = np.zeros((n_, o_, oh, ow))
    og = o_ // group
    for n in range(n_):
        for o in range(o_):
            g = o // og
            for i in range(oh):
                for j in range(ow):
                    acc = 0.0 if b is None else b[o]
                    for ci in range(cg):
                        for ky in range(kh):
                            for kx in range(kw):
                                yy = i * stride[0] - pad[0] + ky * dilation[0]
                                xx = j * stride[1] - pad[1] + kx * dilation[1]
                                if 0 <= yy < h_ and 0 <= xx < w_:
                                    acc += x[n, g * cg + ci, yy, xx] * w[o, ci, ky, kx]
                    y[n, o, i, j] = acc
    return y


def deconvolution(x, w, b, stride, pad, dilation, group):
    """Deconvolution as Caffe computes it (col2im of W^T x): every input pixel scatters
    ``x * w`` into the output. Weights (C_in, O/g, kh, kw)."""
    n_, c_, h_, w_ = x.shape
    _, og, kh, kw = w.shape
    oh = deconv_out_size(h_, kh, stride[0], pad[0], dilation[0])
    ow = deconv_out_size(w_, kw, stride[1], pad[1], dilation[1])
    y = np.zeros((n_, og * group, oh, ow))
    cg = c_ // group
    for n in range(n_):
        for ci in range(c_):
            g = ci // cg
            for i in range(h_):
                for j in range(w_):
                    for o in range(og):
                        for ky in range(kh):
                            for kx in range(kw):
                                yy = i * stride[0] - pad[0] + ky * dilation[0]
                                xx = j * stride[1] - pad[1] + kx * dilation[1]
                                if 0 <= yy < oh and 0 <= xx < ow:
                                    y[n, g * og + o, yy, xx] += x[n, ci, i, j] * w[ci, o, ky, kx]
    if b is not None:
        y += np.asarray(b).reshape(1, -1, 1, 1)
    return y


# ---- inner_product_layer.cpp -----------------------------------------------------

def inner_product(x, w, b, axis=1, transpose=False):
    m = int(np.prod(x.shape[:axis]))
    k = int(np.prod(x.shape[axis:]))
    xf = x.reshape(m, k)
    n = w.shape[1] if transpose else w.shape[0]
    y = np.zeros((m, n))
    for r in range(m):
        for c in range(n):
            acc = 0.0
            for t in range(k):
                acc += xf[r, t] * (w[t, c] if transpose else w[c, t])
            y[r, c] = acc + (0.0 if b is None else b[c])
    return y.reshape(x.shape[:axis] + (n,))


# ---- lrn_layer.cpp ---------------------------------------------------------------

def lrn_across(x, size, alpha, beta, k):
    """CrossChannelForward_cpu: scale = k + alpha/size * sum of squares over the window."""
    n_, c_, h_, w_ = x.shape
    pre_pad = (size - 1) // 2
    y = np.zeros_like(x, dtype=np.float64)
    for n in range(n_):
        for c in range(c_):
            scale = np.full((h_, w_), float(k))
            for cc in range(c - pre_pad, c - pre_pad + size):
                if 0 <= cc < c_:
                    scale += alpha / size * x[n, cc] ** 2
            y[n, c] = x[n, c] * scale ** (-beta)
    return y


def lrn_within(x, size, alpha, beta):
    """WithinChannelForward: split -> square -> AVE pool (size, stride 1, pad (size-1)/2)
    -> power(shift 1, scale alpha, power -beta) -> product."""
    pre_pad = (size - 1) // 2
    pooled = pool(x.astype(np.float64) ** 2, (size, size), (1, 1), (pre_pad, pre_pad), "AVE")
    return x * (1.0 + alpha * pooled) ** (-beta)


# ---- batch_norm_layer.cpp ----------------------------------------------------------

def batch_norm(x, blobs, use_global_stats, maf=0.999, eps=1e-5):
    """BatchNormLayer::Forward_cpu. ``blobs`` = [mean*s, var*s, [s]]; returns (y, new
    blobs); the blobs change only with batch statistics."""
    b0, b1, s = (np.array(b, dtype=np.float64).copy() for b in blobs)
    n_, c_ = x.shape[:2]
    spatial = int(np.prod(x.shape[2:]))
    xr = x.reshape(n_, c_, spatial).astype(np.float64)
    if use_global_stats:
        factor = 0.0 if s[0] == 0 else 1.0 / s[0]
        mean, var = b0 * factor, b1 * factor
    else:
        mean = np.zeros(c_)
        for c in range(c_):
            mean[c] = sum(xr[n, c, i] for n in range(n_) for i in range(spatial)) / (n_ * spatial)
    centred = xr - mean.reshape(1, c_, 1)
    if not use_global_stats:
        var = np.zeros(c_)
        for c in range(c_):
            var[c] = sum(centred[n, c, i] ** 2 for n in range(n_) for i in range(spatial)) / (n_ * spatial)
        s[0] = s[0] * maf + 1
        b0 = mean + maf * b0
        m = x.size // c_
        correction = m / (m - 1) if m > 1 else 1.0
        b1 = correction * var + maf * b1
    y = centred / np.sqrt(var + eps).reshape(1, c_, 1)
    return y.reshape(x.shape), [b0, b1, s]


# ---- crop_layer.cpp ----------------------------------------------------------------

def crop(x, ref_shape, axis=2, offset=()):
    ndim = x.ndim
    axis = axis + ndim if axis < 0 else axis
    offs = []
    for i in range(ndim):
        if i < axis:
            offs.append(0)
        elif len(offset) == 0:
            offs.append(0)
        elif len(offset) == 1:
            offs.append(offset[0])
        else:
            offs.append(offset[i - axis])
    out_shape = tuple(x.shape[i] if i < axis else ref_shape[i] for i in range(ndim))
    y = np.zeros(out_shape)
    for idx in np.ndindex(*out_shape):
        y[idx] = x[tuple(j + o for j, o in zip(idx, offs))]
    return y


# ---- softmax_layer.cpp / softmax_loss_layer.cpp --------------------------------------

def softmax(x, axis=1):
    axis = axis + x.ndim if axis < 0 else axis
    outer = int(np.prod(x.shape[:axis]))
    c_ = x.shape[axis]
    inner = int(np.prod(x.shape[axis + 1:]))
    xr = x.reshape(outer, c_, inner).astype(np.float64)
    y = np.zeros_like(xr)
    for o in range(outer):
        for i in range(inner):
            mx = max(xr[o, c, i] for c in range(c_))
            e = [math.exp(xr[o, c, i] - mx) for c in range(c_)]
            total = sum(e)
            for c in range(c_):
                y[o, c, i] = e[c] / total
    return y.reshape(x.shape)


def normalizer(mode, outer, inner, valid_count):
    """LossLayer::GetNormalizer; modes FULL, VALID, BATCH_SIZE, NONE."""
    if mode == "FULL":
        n = outer * inner
    elif mode == "VALID":
        n = outer * inner if valid_count == -1 else valid_count
    elif mode == "BATCH_SIZE":
        n = outer
    else:
        n = 1
    return max(1.0, n)


def softmax_loss(x, label, axis=1, ignore_label=None, mode="VALID"):
    prob = softmax(x, axis)
    axis = axis + x.ndim if axis < 0 else axis
    outer = int(np.prod(x.shape[:axis]))
    c_ = x.shape[axis]
    inner = int(np.prod(x.shape[axis + 1:]))
    p = prob.reshape(outer, c_, inner)
    lab = np.asarray(label).reshape(-1)
    loss, count = 0.0, 0
    for o in range(outer):
        for i in range(inner):
            v = int(lab[o * inner + i])
            if ignore_label is not None and v == ignore_label:
                continue
            loss -= math.log(max(p[o, v, i], FLT_MIN))
            count += 1
    return loss / normalizer(mode, outer, inner, count), prob


def sigmoid_cross_entropy_loss(x, target, ignore_label=None, mode="BATCH_SIZE"):
    xf, tf = x.reshape(-1).astype(np.float64), np.asarray(target).reshape(-1).astype(np.float64)
    loss, valid = 0.0, 0
    for i in range(xf.size):
        if ignore_label is not None and int(tf[i]) == ignore_label:
            continue
        pos = 1.0 if xf[i] >= 0 else 0.0
        loss -= xf[i] * (tf[i] - pos) - math.log(1 + math.exp(xf[i] - 2 * xf[i] * pos))
        valid += 1
    outer = x.shape[0]
    return loss / normalizer(mode, outer, xf.size // outer, valid)


def euclidean_loss(a, b):
    d = a.reshape(-1).astype(np.float64) - b.reshape(-1)
    return float(np.dot(d, d)) / a.shape[0] / 2


def accuracy(x, label, axis=1, top_k=1, ignore_label=None):
    """AccuracyLayer::Forward_cpu: (accuracy, per-class accuracy)."""
    axis = axis + x.ndim if axis < 0 else axis
    outer = int(np.prod(x.shape[:axis]))
    c_ = x.shape[axis]
    inner = int(np.prod(x.shape[axis + 1:]))
    xr = x.reshape(outer, c_, inner)
    lab = np.asarray(label).reshape(-1)
    acc, count = 0, 0
    nums, hits = np.zeros(c_), np.zeros(c_)
    for o in range(outer):
        for i in range(inner):
            v = int(lab[o * inner + i])
            if ignore_label is not None and v == ignore_label:
                continue
            nums[v] += 1
            true = xr[o, v, i]
            better = -1  # the true class counts as "better" too
            for k in range(c_):
                if better >= top_k:
                    break
                better += xr[o, k, i] >= true
            if better < top_k:
                acc += 1
                hits[v] += 1
            count += 1
    per_class = np.array([hits[c] / nums[c] if nums[c] else 0.0 for c in range(c_)])
    return (acc / count if count else 0.0), per_class


# ---- mvn_layer.cpp / reduction_layer.cpp / argmax_layer.cpp ----------------------------

def mvn(x, normalize_variance=True, across_channels=False, eps=1e-9):
    num = x.shape[0] if across_channels else x.shape[0] * (x.shape[1] if x.ndim > 1 else 1)
    dim = x.size // num
    xr = x.reshape(num, dim).astype(np.float64)
    y = np.zeros_like(xr)
    for r in range(num):
        mean = sum(xr[r]) / dim
        y[r] = xr[r] - mean
        if normalize_variance:
            var = sum(v * v for v in y[r]) / dim
            y[r] = y[r] / (var ** 0.5 + eps)
    return y.reshape(x.shape)


def reduction(x, operation="SUM", axis=0, coeff=1.0):
    axis = axis + x.ndim if axis < 0 else axis
    num = int(np.prod(x.shape[:axis]))
    dim = x.size // num
    xr = x.reshape(num, dim).astype(np.float64)
    c = coeff / dim if operation == "MEAN" else coeff
    out = np.zeros(num)
    for r in range(num):
        if operation in ("SUM", "MEAN"):
            v = sum(xr[r])
        elif operation == "ASUM":
            v = sum(abs(t) for t in xr[r])
        else:
            v = sum(t * t for t in xr[r])
        out[r] = v * c
    return out.reshape(x.shape[:axis])


def argmax(x, top_k=1, out_max_val=False, axis=None):
    """ArgMaxLayer::Forward_cpu (pairs sorted in decreasing (value, index) order)."""
    if axis is not None:
        axis = axis + x.ndim if axis < 0 else axis
        dim = x.shape[axis]
        axis_dist = int(np.prod(x.shape[axis + 1:]))
        num = x.size // dim
        shape = list(x.shape)
        shape[axis] = top_k
    else:
        dim = x.size // x.shape[0]
        axis_dist = 1
        num = x.shape[0]
        shape = [1] * max(x.ndim, 3)
        shape[0], shape[2] = x.shape[0], top_k
        if out_max_val:
            shape[1] = 2
    flat = x.reshape(-1)
    top = np.zeros(int(np.prod(shape)))
    for i in range(num):
        pairs = [(flat[(i // axis_dist * dim + j) * axis_dist + i % axis_dist], j) for j in range(dim)]
        pairs.sort(reverse=True)
        for j in range(top_k):
            if out_max_val:
                if axis is not None:
                    top[(i // axis_dist * top_k + j) * axis_dist + i % axis_dist] = pairs[j][0]
                else:
                    top[2 * i * top_k + j] = pairs[j][1]
                    top[2 * i * top_k + top_k + j] = pairs[j][0]
            else:
                top[(i // axis_dist * top_k + j) * axis_dist + i % axis_dist] = pairs[j][1]
    return top.reshape(shape)
