"""Fork layers against NumPy transcriptions of the forks' C++ (written here, loop by loop).

Each fixture in tests/forks/data is a small net in its fork's syntax; it is parsed,
compiled with fillers, run once, and every fork layer's top is recomputed from its bottoms
and parameters by the transcription. Sources: SSD weiliu89/caffe (branch ssd)
src/caffe/layers/{normalize,permute,prior_box}_layer.cpp; SegNet alexgkendall/caffe-segnet
src/caffe/layers/{bn,upsample}_layer.cpp and BVLC pooling_layer.cpp (the mask top); PSPNet
hszhao/PSPNet src/caffe/layers/{bn,interp}_layer.cpp and src/caffe/util/interp.cpp;
py-faster-rcnn caffe-fast-rcnn src/caffe/layers/roi_pooling_layer.cpp.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fcnkit.errors import FcnkitError
from tests.forks._nets import Run

TOL = 1e-5


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL)


# ------------------------------------------------------------------------------------ SSD

def normalize_ref(x, scale, across_spatial, channel_shared, eps=1e-10):
    n, c, h, w = x.shape
    top = np.empty_like(x)
    for i in range(n):
        sq = x[i].astype(np.float64) ** 2
        if across_spatial:
            top[i] = x[i] / math.sqrt(sq.sum() + eps)
        else:
            norm = np.sqrt(sq.sum(axis=0) + eps)              # gemv over channels, + eps, sqrt
            top[i] = x[i] / norm[None]
        top[i] *= scale if channel_shared else scale.reshape(c, 1, 1)
    return top


def prior_box_ref(layer_hw, img_hw, min_sizes, max_sizes, ratios_in, flip, clip, variance,
                  step=None, offset=0.5):
    ratios = [1.0]
    for r in ratios_in:
        if any(abs(r - q) < 1e-6 for q in ratios):
            continue
        ratios.append(r)
        if flip:
            ratios.append(1.0 / r)
    layer_h, layer_w = layer_hw
    img_h, img_w = img_hw
    step_h, step_w = (step, step) if step else (img_h / layer_h, img_w / layer_w)
    out = []
    for h in range(layer_h):
        for w in range(layer_w):
            cx, cy = (w + offset) * step_w, (h + offset) * step_h
            for s, min_size in enumerate(min_sizes):
                boxes = [(min_size, min_size)]
                if max_sizes:
                    m = math.sqrt(min_size * max_sizes[s])
                    boxes.append((m, m))
                for r in ratios:
                    if abs(r - 1.0) < 1e-6:
                        continue
                    boxes.append((min_size * math.sqrt(r), min_size / math.sqrt(r)))
                for bw, bh in boxes:
                    out += [(cx - bw / 2.0) / img_w, (cy - bh / 2.0) / img_h,
                            (cx + bw / 2.0) / img_w, (cy + bh / 2.0) / img_h]
    out = np.asarray(out, dtype=np.float32)
    if clip:
        out = np.minimum(np.maximum(out, 0.0), 1.0)
    var = np.empty_like(out)
    for k in range(0, out.size, 4):
        var[k:k + 4] = variance if len(variance) == 4 else variance[0]
    return np.stack([out, var])[None]


@pytest.fixture(scope="module")
def ssd():
    return Run("ssd_like.prototxt")


def test_ssd_normalize_per_position_and_per_sample(ssd):
    (scale,) = ssd.params("conv1_norm")
    assert scale.shape == (4,) and np.ptp(scale) > 0   # channel_shared: false, gaussian filler
    close(ssd.top("conv1_norm"), normalize_ref(ssd.bottom("conv1_norm"), scale, False, False))
    (scale2,) = ssd.params("conv2_norm")
    assert scale2.shape == () and float(scale2) == 10.0
    close(ssd.top("conv2_norm"), normalize_ref(ssd.bottom("conv2_norm"), scale2, True, True))


def test_ssd_permute_and_flatten_give_caffes_memory_order(ssd):
    x = ssd.bottom("conv1_norm_mbox_loc_perm")
    n, c, h, w = x.shape
    ref = np.empty((n, h, w, c), np.float32)  # permute_layer.cpp: new index from old strides
    for i in range(n):
        for y in range(h):
            for z in range(w):
                for k in range(c):
                    ref[i, y, z, k] = x[i, k, y, z]
    close(ssd.top("conv1_norm_mbox_loc_perm"), ref)
    close(ssd.top("conv1_norm_mbox_loc_flat"), ref.reshape(n, -1))


def test_ssd_prior_boxes(ssd):
    close(ssd.top("conv1_norm_mbox_priorbox"),
          prior_box_ref((8, 8), (32, 32), [8.0], [16.0], [2.0], True, False,
                        [0.1, 0.1, 0.2, 0.2], step=4))
    # two ratios, one a near-duplicate of the other; no flip; clipped; step from the sizes
    close(ssd.top("conv2_mbox_priorbox"),
          prior_box_ref((4, 4), (32, 32), [14.0], [], [2.0, 3.0, 2.0000001], False, True, [0.1]))
    assert ssd.top("mbox_priorbox").shape == (1, 2, (8 * 8 * 4 + 4 * 4 * 3) * 4)


def test_ssd_detection_output_is_dropped_by_deploy_and_refused_otherwise(ssd):
    assert sorted(ssd.compiled.outputs) == ["mbox_conf_flatten", "mbox_loc", "mbox_priorbox"]
    assert ssd.compiled.analysis.shapes[ssd.net.layer("detection_out").tops[0]] == (1, 1, 1, 7)
    with pytest.raises(FcnkitError, match=r"detection_out.*non-maximum suppression.*--deploy"):
        Run("ssd_like.prototxt", deploy=False)


# ------------------------------------------------------------------------------ SegNet / ENet

def max_pool_mask_ref(x, k, s):
    """BVLC pooling_layer.cpp MAX with top[1]: ceil rounding, no pad; first maximum wins."""
    n, c, h, w = x.shape
    oh, ow = -(-(h - k) // s) + 1, -(-(w - k) // s) + 1
    top, mask = np.full((n, c, oh, ow), -np.inf, np.float32), np.full((n, c, oh, ow), -1.0, np.float32)
    for i in range(n):
        for j in range(c):
            for ph in range(oh):
                for pw in range(ow):
                    for y in range(ph * s, min(ph * s + k, h)):
                        for z in range(pw * s, min(pw * s + k, w)):
                            if x[i, j, y, z] > top[i, j, ph, pw]:
                                top[i, j, ph, pw], mask[i, j, ph, pw] = x[i, j, y, z], y * w + z
    return top, mask


def upsample_ref(x, mask, oh, ow):
    n, c, h, w = x.shape
    top = np.zeros((n, c, oh * ow), np.float32)
    for i in range(n):
        for j in range(c):
            for k in range(h * w):
                idx = int(mask[i, j].flat[k])
                assert idx < oh * ow
                top[i, j, idx] = x[i, j].flat[k]
    return top.reshape(n, c, oh, ow)


def segnet_bn_ref(x, scale, shift, inference):
    if not inference:  # LEARN: batch statistics, var = E(x^2) - (Ex)^2, var_eps_ 1e-9
        mean = x.mean(axis=(0, 2, 3), keepdims=True)
        var = (x ** 2).mean(axis=(0, 2, 3), keepdims=True) - mean ** 2
        x = (x - mean) / np.sqrt(var + 1e-9)
    return x * scale + shift


@pytest.mark.parametrize("name, bn, pool, up, size", [
    ("segnet_like.prototxt", "conv1_bn", "pool1", "upsample1", (12, 10)),
    ("enet_like.prototxt", "bn0", "pool0", "upsample0", (9, 11)),
])
def test_segnet_pooling_mask_upsample_and_bn(name, bn, pool, up, size):
    r = Run(name)
    scale, shift = r.params(bn)
    close(r.top(bn), segnet_bn_ref(r.bottom(bn), scale, shift, inference=True))
    ref_top, ref_mask = max_pool_mask_ref(r.bottom(pool), 2, 2)
    close(r.top(pool, 0), ref_top)
    np.testing.assert_array_equal(r.top(pool, 1), ref_mask)
    values = r.bottom(up, 0)
    out = r.top(up)
    assert out.shape[2:] == size
    close(out, upsample_ref(values, r.bottom(up, 1), *size))
    assert np.count_nonzero(out) == np.count_nonzero(values)


def test_segnet_bn_learn_mode_uses_batch_statistics():
    r = Run("segnet_like.prototxt")
    scale, shift = r.params("conv2_bn")
    close(r.top("conv2_bn"), segnet_bn_ref(r.bottom("conv2_bn"), scale, shift, inference=False))


def test_enet_spatial_dropout_is_the_identity_at_inference():
    r = Run("enet_like.prototxt")
    np.testing.assert_array_equal(r.top("drop0"), r.bottom("drop0"))


# ------------------------------------------------------------------------------------ PSPNet

def interp2_ref(x, pad_beg, pad_end, oh, ow):
    """util/interp.cpp caffe_cpu_interp2 (align corners) on the input cropped by the pads."""
    n, c, h, w = x.shape
    h1, w1 = h + pad_beg + pad_end, w + pad_beg + pad_end
    x1 = y1 = -pad_beg
    if (h1, w1) == (oh, ow):
        return x[:, :, y1:y1 + h1, x1:x1 + w1].copy()
    rh = np.float32((h1 - 1) / (oh - 1)) if oh > 1 else np.float32(0)
    rw = np.float32((w1 - 1) / (ow - 1)) if ow > 1 else np.float32(0)
    top = np.empty((n, c, oh, ow), np.float32)
    for i in range(oh):
        h1r = np.float32(rh * i)
        hh = int(h1r)
        hp = 1 if hh < h1 - 1 else 0
        l1 = np.float32(h1r - hh)
        l0 = np.float32(1) - l1
        for j in range(ow):
            w1r = np.float32(rw * j)
            ww = int(w1r)
            wp = 1 if ww < w1 - 1 else 0
            m1 = np.float32(w1r - ww)
            m0 = np.float32(1) - m1
            a = x[:, :, y1 + hh, x1 + ww]
            top[:, :, i, j] = (l0 * (m0 * a + m1 * x[:, :, y1 + hh, x1 + ww + wp])
                               + l1 * (m0 * x[:, :, y1 + hh + hp, x1 + ww]
                                       + m1 * x[:, :, y1 + hh + hp, x1 + ww + wp]))
    return top


@pytest.fixture(scope="module")
def psp():
    return Run("pspnet_like.prototxt")


def test_pspnet_bn_frozen(psp):
    slope, bias, mean, var = psp.params("conv1/bn")
    assert np.ptp(slope) > 0 and np.all(var == 1.0)  # frozen: moving variance starts at 1
    x = psp.bottom("conv1/bn")
    close(psp.top("conv1/bn"), (x - mean) / np.sqrt(var + 1e-5) * slope + bias)


@pytest.mark.parametrize("layer, pads, size", [
    ("pool6_interp", (0, 0), (13, 11)),        # height/width
    ("zoom", (0, 0), (37, 31)),                 # 13 + 12 * 2, 11 + 10 * 2
    ("shrink", (0, 0), (7, 6)),                 # (13 - 1) / 2 + 1, (11 - 1) / 2 + 1
    ("cropzoom", (-1, -2), (19, 15)),           # H_eff 10 -> 10 + 9, W_eff 8 -> 8 + 7
])
def test_pspnet_interp(psp, layer, pads, size):
    out = psp.top(layer)
    assert out.shape[2:] == size
    close(out, interp2_ref(psp.bottom(layer), *pads, *size))


def test_interp_zoom_coordinate_map(psp):
    from fractions import Fraction

    cm = psp.net.layer("cropzoom").layer.coord_map()
    assert cm.factor == (2, 2) and cm.offset == (Fraction(-2), Fraction(-2))


# ------------------------------------------------------------------------------ Faster R-CNN

def roi_pool_ref(x, rois, ph_n, pw_n, scale):
    def c_round(v):
        return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)

    _, c, height, width = x.shape
    top = np.empty((len(rois), c, ph_n, pw_n), np.float32)
    for r, roi in enumerate(rois):
        b = int(roi[0])
        sw, sh, ew, eh = (c_round(float(v) * scale) for v in roi[1:])
        bh = np.float32(max(eh - sh + 1, 1)) / np.float32(ph_n)
        bw = np.float32(max(ew - sw + 1, 1)) / np.float32(pw_n)
        for ch in range(c):
            for ph in range(ph_n):
                for pw in range(pw_n):
                    hs = min(max(int(math.floor(ph * bh)) + sh, 0), height)
                    he = min(max(int(math.ceil((ph + 1) * bh)) + sh, 0), height)
                    ws = min(max(int(math.floor(pw * bw)) + sw, 0), width)
                    we = min(max(int(math.ceil((pw + 1) * bw)) + sw, 0), width)
                    v = 0.0 if he <= hs or we <= ws else -np.finfo(np.float32).max
                    for y in range(hs, he):
                        for z in range(ws, we):
                            v = max(v, x[b, ch, y, z])
                    top[r, ch, ph, pw] = v
    return top


def test_faster_rcnn_roi_pooling():
    rois = np.array([[0, 0, 0, 23, 19], [0, 3.2, 5.7, 9.9, 12.4], [0, -4, -4, 2, 1],
                     [0, 30, 30, 40, 40]], np.float32)
    r = Run("faster_rcnn_like.prototxt", inputs={"rois": rois})
    out = r.top("roi_pool5")
    assert out.shape == (4, 3, 2, 3)
    close(out, roi_pool_ref(r.bottom("roi_pool5"), rois, 2, 3, 0.5))
    assert np.all(out[3] == 0)  # a region outside the map: every bin empty
