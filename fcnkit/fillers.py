"""Caffe's weight fillers in NumPy (include/caffe/filler.hpp).

Every filler takes a FillerParameter (or None = Caffe's default, constant 0) and a blob
shape in Caffe's layout, and returns a float32 array of that shape. Randomness comes from a
``numpy.random.Generator`` so results are reproducible; the values follow Caffe's
distributions, not its random stream.

``n`` for xavier and msra is ``fan_in = count / shape[0]`` by default, ``fan_out =
count / shape[1]``, or their average (``variance_norm``).
"""

from __future__ import annotations

import math

import numpy as np

from fcnkit.errors import NetDefinitionError

FAN_IN, FAN_OUT, AVERAGE = 0, 1, 2
FILLER_TYPES = ("constant", "uniform", "gaussian", "positive_unitball", "xavier", "msra",
                "bilinear", "bilinear_interp")


def _fan(shape, variance_norm: int) -> float:
    count = math.prod(shape)
    fan_in = count / shape[0] if len(shape) >= 1 and shape[0] else count
    fan_out = count / shape[1] if len(shape) >= 2 and shape[1] else count
    if variance_norm == FAN_OUT:
        return fan_out
    if variance_norm == AVERAGE:
        return (fan_in + fan_out) / 2
    return fan_in


def bilinear_kernel(size: int) -> np.ndarray:
    """Caffe's BilinearFiller kernel for a square ``size x size`` kernel (float32).

    ``f = ceil(size / 2)``, ``c = (size - 1) / (2 f)`` (filler.hpp),
    ``w(x, y) = (1 - |x/f - c|) (1 - |y/f - c|)``; equal, for odd and even sizes, to
    fcn.berkeleyvision.org's ``surgery.upsample_filt``. For size 4: the outer product of
    [0.25, 0.75, 0.75, 0.25].
    """
    f = math.ceil(size / 2)
    c = (size - 1) / (2.0 * f)
    x = np.arange(size, dtype=np.float64)
    w = 1 - np.abs(x / f - c)
    return np.outer(w, w).astype(np.float32)


# Drawn in float32 directly, in place: float64 draws plus a cast took most of the time
# (and twice the memory) of filling VGG's 103 M-value fc6.
def _uniform(rng: np.random.Generator, low: float, high: float, shape) -> np.ndarray:
    out = rng.random(shape, dtype=np.float32)
    out *= np.float32(high - low)
    out += np.float32(low)
    return out


def _normal(rng: np.random.Generator, mean: float, std: float, shape) -> np.ndarray:
    out = rng.standard_normal(shape, dtype=np.float32)
    out *= np.float32(std)
    out += np.float32(mean)
    return out


def fill(filler, shape: tuple[int, ...], rng: np.random.Generator | None = None,
         where: str = "") -> np.ndarray:
    """A new float32 array of ``shape`` filled as Caffe's filler ``filler`` would.

    ``filler`` is a caffe FillerParameter or None (constant 0, Caffe's default for a
    blob without a filler). ``type: "bilinear"`` is Caffe's convention (the same kernel in
    every (out, in) slice, for a group = channels Deconvolution); ``"bilinear_interp"`` is
    FCN's convention (surgery.interp: the kernel on the diagonal of a full C x C
    deconvolution, zero elsewhere).

    Raises:
        NetDefinitionError: unknown filler type, or a bilinear filler on a blob that is
            not a square 4-D kernel. ``where`` (e.g. "layer 'upscore'") starts the message.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    shape = tuple(int(d) for d in shape)
    if filler is None:
        return np.zeros(shape, np.float32)
    kind = filler.type or "constant"
    prefix = f"{where}: " if where else ""
    if kind == "constant":
        return np.full(shape, filler.value, np.float32)
    if kind == "uniform":
        return _uniform(rng, filler.min, filler.max, shape)
    if kind == "gaussian":
        out = _normal(rng, filler.mean, filler.std, shape)
        if filler.sparse >= 0:
            # Caffe keeps each weight with probability sparse / num_outputs (filler.hpp).
            num_outputs = shape[0] if shape else 1
            keep = rng.random(shape) < min(1.0, filler.sparse / max(num_outputs, 1))
            out *= keep
        return out
    if kind == "positive_unitball":
        out = rng.random(shape).astype(np.float64)
        rows = out.reshape(shape[0] if shape else 1, -1)
        rows /= rows.sum(axis=1, keepdims=True)
        return out.astype(np.float32)
    if kind == "xavier":
        scale = math.sqrt(3.0 / _fan(shape, filler.variance_norm))
        return _uniform(rng, -scale, scale, shape)
    if kind == "msra":
        std = math.sqrt(2.0 / _fan(shape, filler.variance_norm))
        return _normal(rng, 0.0, std, shape)
    if kind in ("bilinear", "bilinear_interp"):
        if len(shape) != 4 or shape[2] != shape[3]:
            raise NetDefinitionError(f"{prefix}the bilinear filler needs a square 4-D kernel, "
                                     f"got blob shape {shape}")
        k = bilinear_kernel(shape[2])
        if kind == "bilinear":
            return np.broadcast_to(k, shape).copy()
        out = np.zeros(shape, np.float32)
        for i in range(min(shape[0], shape[1])):
            out[i, i] = k
        return out
    raise NetDefinitionError(f"{prefix}unknown filler type '{kind}'; known: {', '.join(FILLER_TYPES)}")
