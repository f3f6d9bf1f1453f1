"""Contrast stretch of the SpaceNet roads article: per band, clip at the P_lo and P_hi
percentiles of the valid pixels, then scale linearly to 0..255 (the article uses 2,90 and
2,98; Van Etten, "SpaceNet Road Detection and Routing Challenge Part I", The DownLinQ, 2017).

Valid pixels are those that are neither the raster's nodata nor 0 (imagery fill). For a large
scene the percentiles come from one decimated read (GDAL picks an overview when there is one,
else nearest-neighbour sampling at ``out_shape``), capped at :data:`SAMPLE_PIXELS` pixels; the
error of that sampling against full-resolution percentiles is measured in docs/predict.md.

The parameters are stored with a model as the contracts' preprocess JSON
(``{"fcnkit_preprocess": 1, "bands": [...], "stretch": {...}, "nodata": ...}``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fcnkit.errors import InputError

#: Pixels per band read to estimate the percentiles (1024 x 1024: 1 Mpx, 2 MiB of uint16 per
#: band; samples of 25,000 pixels already stay within 1 stretched DN, docs/predict.md).
SAMPLE_PIXELS = 1024 * 1024


@dataclass
class Stretch:
    """Per-band stretch parameters, in model input order.

    Attributes:
        method: ``"percentile"`` (clip to [lo, hi], scale to out_range) or ``"none"`` (raw DN).
        lo, hi: DN per band (empty for ``none``).
        percentiles: (P_lo, P_hi) the values came from, or None when given as fixed numbers.
        out_range: (0, 255), the model input range.
        sample_shape: (rows, cols) of the read the percentiles were computed on, or None.
    """

    method: str = "percentile"
    lo: list[float] = field(default_factory=list)
    hi: list[float] = field(default_factory=list)
    percentiles: tuple[float, float] | None = (2.0, 98.0)
    out_range: tuple[float, float] = (0.0, 255.0)
    sample_shape: tuple[int, int] | None = None

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Stretch ``pixels`` (bands x rows x cols, any dtype) to float32; see :func:`stretch`."""
        if self.method == "none":
            return np.asarray(pixels, dtype=np.float32)
        return stretch(pixels, self.lo, self.hi, self.out_range)

    def to_json(self, bands, band_names=None, nodata=None) -> dict:
        """The contracts' preprocess JSON for these parameters."""
        s: dict = {"method": self.method}
        if self.method == "percentile":
            s.update({"percentiles": list(self.percentiles) if self.percentiles else None,
                      "lo": [float(v) for v in self.lo], "hi": [float(v) for v in self.hi],
                      "out_range": list(self.out_range)})
        return {"fcnkit_preprocess": 1, "bands": [int(b) for b in bands],
                "band_names": list(band_names) if band_names else [], "stretch": s, "nodata": nodata}


def stretch(pixels: np.ndarray, lo, hi, out_range=(0.0, 255.0)) -> np.ndarray:
    """Clip each band to [lo, hi] and scale linearly to ``out_range``.

    Args:
        pixels: bands x rows x cols (DN).
        lo, hi: one value per band (DN); a band with hi <= lo maps to out_range[0].

    Returns:
        float32 bands x rows x cols in out_range.

    Raises:
        InputError: lo/hi do not have one value per band.
    """
    x = np.array(pixels, dtype=np.float32)  # a copy: the steps below work in place (no temporaries)
    lo_a = np.asarray(lo, dtype=np.float32).reshape(-1, 1, 1)
    hi_a = np.asarray(hi, dtype=np.float32).reshape(-1, 1, 1)
    if lo_a.shape[0] != x.shape[0] or hi_a.shape[0] != x.shape[0]:
        raise InputError(f"the stretch has {lo_a.shape[0]} band(s), the pixels {x.shape[0]}")
    span = hi_a - lo_a
    scale = np.where(span > 0, (out_range[1] - out_range[0]) / np.where(span > 0, span, 1), 0).astype(np.float32)
    np.clip(x, lo_a, hi_a, out=x)
    x -= lo_a
    x *= scale
    x += np.float32(out_range[0])
    return x


def valid_mask(pixels: np.ndarray, nodata) -> np.ndarray:
    """Where ``pixels`` (any shape) are valid: not nodata, not 0, finite (bool, same shape)."""
    v = np.asarray(pixels)
    keep = v != 0
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        keep &= v != nodata
    if np.issubdtype(v.dtype, np.floating):
        keep &= np.isfinite(v)
    return keep


def valid_values(band: np.ndarray, nodata) -> np.ndarray:
    """The 1-D valid values of a band: not nodata, not 0, finite."""
    v = np.asarray(band).ravel()
    return v[valid_mask(v, nodata)]


def array_stretch(pixels: np.ndarray, percentiles=(2.0, 98.0), nodata=None) -> Stretch:
    """The :class:`Stretch` of an array in memory: per band, the P_lo/P_hi percentiles of its
    valid pixels (:func:`valid_values`: not nodata, not 0, finite), DN. A band without a
    valid pixel gets lo = hi = 0 (it maps to out_range[0]).

    Args:
        pixels: bands x rows x cols (DN).
        percentiles: (P_lo, P_hi) in percent (the SpaceNet roads article uses 2/90 and 2/98).
    """
    lo, hi = [], []
    for band in np.asarray(pixels):
        valid = valid_values(band, nodata)
        a, b = np.percentile(valid, percentiles) if valid.size else (0.0, 0.0)
        lo.append(float(a))
        hi.append(float(b))
    return Stretch("percentile", lo, hi, tuple(percentiles))


def percentile_stretch(src, bands, percentiles=(2.0, 98.0), *, sample_pixels: int = SAMPLE_PIXELS) -> Stretch:
    """Per-band P_lo/P_hi percentiles of the valid pixels of an open rasterio dataset.

    Args:
        src: a rasterio dataset (rows x cols); bands: 1-based indices in model input order.
        percentiles: (P_lo, P_hi) in percent, 0 <= P_lo < P_hi <= 100.
        sample_pixels: the most pixels per band read; a larger scene is read decimated
            (same aspect, nearest neighbour or an overview).

    Returns:
        a :class:`Stretch` whose lo/hi are DN (numpy's linear-interpolation percentiles).

    Raises:
        InputError: bad percentiles, or a band without any valid pixel.
    """
    p_lo, p_hi = (float(p) for p in percentiles)
    if not 0 <= p_lo < p_hi <= 100:
        raise InputError(f"--stretch percentiles must satisfy 0 <= P1 < P2 <= 100, got {p_lo},{p_hi}")
    rows, cols = src.height, src.width
    factor = max(1.0, math.sqrt(rows * cols / max(1, sample_pixels)))
    shape = (max(1, int(rows / factor)), max(1, int(cols / factor)))
    from fcnkit.geo.io import read_decimated

    lo, hi = [], []
    for b in bands:  # one band at a time: the sample's memory does not grow with the band count
        v = valid_values(read_decimated(src, (b,), shape)[0], src.nodata)
        if v.size == 0:
            raise InputError(f"{src.name}: band {b} has no valid pixel (all nodata or 0); the stretch "
                             "cannot be computed: give --stretch model or none")
        a, z = np.percentile(v.astype(np.float64), [p_lo, p_hi])
        lo.append(float(a))
        hi.append(float(z))
    return Stretch("percentile", lo, hi, (p_lo, p_hi), sample_shape=shape)


def from_preprocess(doc: dict, *, source: str = "the model's preprocess JSON") -> tuple[Stretch, list[int] | None]:
    """A :class:`Stretch` (and the model's 1-based band list, or None) from the contracts'
    preprocess JSON.

    Raises:
        InputError: not a preprocess JSON of version 1, or fields of the wrong kind/length.
    """
    if not isinstance(doc, dict) or doc.get("fcnkit_preprocess") != 1:
        raise InputError(f"{source}: not an fcnkit preprocess JSON (needs \"fcnkit_preprocess\": 1)")
    bands = doc.get("bands")
    if bands is not None and not (isinstance(bands, list) and all(isinstance(b, int) and b >= 1 for b in bands)):
        raise InputError(f"{source}: \"bands\" must be a list of 1-based band numbers, got {bands!r}")
    s = doc.get("stretch")
    if not isinstance(s, dict) or s.get("method") not in ("percentile", "none"):
        raise InputError(f"{source}: \"stretch\" must be an object with method \"percentile\" or \"none\"")
    if s["method"] == "none":
        return Stretch("none", [], [], None), bands
    lo, hi = s.get("lo"), s.get("hi")
    ok = all(isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v) for v in (lo, hi))
    if not ok or len(lo) != len(hi) or (bands is not None and len(lo) != len(bands)):
        raise InputError(f"{source}: \"lo\" and \"hi\" must be lists of numbers, one per band")
    rng = s.get("out_range", [0, 255])
    pct = s.get("percentiles")
    return Stretch("percentile", [float(v) for v in lo], [float(v) for v in hi],
                   tuple(pct) if isinstance(pct, list) and len(pct) == 2 else None,
                   (float(rng[0]), float(rng[1]))), bands


def parse_stretch_option(text: str) -> tuple[str, tuple[float, float] | None]:
    """``--stretch`` value: ``"P1,P2"`` -> ("percentile", (P1, P2)), ``none``, ``model``.

    Raises:
        InputError: anything else.
    """
    t = text.strip().lower()
    if t in ("none", "model"):
        return t, None
    try:
        a, b = (float(v) for v in t.split(","))
    except ValueError:
        raise InputError(f"--stretch must be P1,P2 (percentiles, e.g. 2,98), none or model; got '{text}'") from None
    if not 0 <= a < b <= 100:
        raise InputError(f"--stretch percentiles must satisfy 0 <= P1 < P2 <= 100, got {text}")
    return "percentile", (a, b)
