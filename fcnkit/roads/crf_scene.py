"""The dense CRF over a whole scene, window by window, so that memory does not grow with it.

Each ``tile`` x ``tile`` window is read with its halo from the probability raster and the
image (rasterio windows), processed by :func:`fcnkit.roads.crf.mean_field`, and its centre
written into the output GeoTIFF; the output goes to a temporary sibling that is renamed into
place only when complete. The image stretch (2nd-98th percentile per band over valid pixels)
is computed once for the whole scene from a decimated read (at most
:data:`STRETCH_SAMPLE` pixels on the long side), so that every tile is stretched alike.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from fcnkit.atomic import make_public
from fcnkit.errors import InputError, OutputError
from fcnkit.roads.crf import CrfParams, mean_field
from fcnkit.roads.points import check_probabilities, default_bands, scale_probabilities

#: Long side, in pixels, of the decimated read used for the stretch percentiles.
STRETCH_SAMPLE = 2048


def _open(path):
    import rasterio

    try:
        return rasterio.open(str(path))
    except rasterio.errors.RasterioIOError as e:
        raise InputError(f"{path}: cannot read it as a raster ({e})") from None


def _check_grid(prob_ds, image_ds, bands):
    bad = [b for b in bands if not 1 <= b <= image_ds.count]
    if bad:
        raise InputError(f"{image_ds.name}: has {image_ds.count} bands; band(s) {bad} do not exist")
    if len(bands) > 3:
        raise InputError("--bands: the appearance kernel takes at most 3 bands")
    if (image_ds.height, image_ds.width) != (prob_ds.height, prob_ds.width) or \
            image_ds.crs != prob_ds.crs or not image_ds.transform.almost_equals(prob_ds.transform):
        raise InputError(f"{image_ds.name} ({image_ds.height} x {image_ds.width}) and "
                         f"{prob_ds.name} ({prob_ds.height} x {prob_ds.width}) must share one "
                         "grid (size, CRS, transform); give the image the map was predicted from")


def stretch_limits(image_ds, bands, percentiles=(2.0, 98.0)) -> tuple[np.ndarray, np.ndarray]:
    """Per-band (lo, hi) DN percentiles over valid pixels (not nodata, not 0) of a decimated
    read of ``bands`` (1-based). Arrays of len(bands)."""
    scale = max(1.0, max(image_ds.height, image_ds.width) / STRETCH_SAMPLE)
    shape = (len(bands), max(1, int(image_ds.height / scale)), max(1, int(image_ds.width / scale)))
    sample = image_ds.read(bands, out_shape=shape)
    lo, hi = np.zeros(len(bands)), np.ones(len(bands))
    for i, band in enumerate(sample):
        valid = band != 0
        if image_ds.nodata is not None:
            valid &= band != image_ds.nodata
        if valid.any():
            lo[i], hi[i] = np.percentile(band[valid], percentiles)
    return lo, hi


def _stretched(image_ds, bands, window, lo, hi) -> np.ndarray:
    data = image_ds.read(bands, window=window).astype(np.float64)
    span = np.maximum(hi - lo, 1e-12)[:, None, None]
    out = np.clip((data - lo[:, None, None]) / span, 0, 1) * 255
    if image_ds.nodata is not None:
        out[data == image_ds.nodata] = 0
    out[data == 0] = 0
    return out


def _windows(rows, cols, tile, halo):
    from rasterio.windows import Window

    for r0 in range(0, rows, tile):
        for c0 in range(0, cols, tile):
            r1, c1 = min(rows, r0 + tile), min(cols, c0 + tile)
            a0, b0 = max(0, r0 - halo), max(0, c0 - halo)
            a1, b1 = min(rows, r1 + halo), min(cols, c1 + halo)
            yield (Window(c0, r0, c1 - c0, r1 - r0), Window(b0, a0, b1 - b0, a1 - a0),
                   (slice(r0 - a0, r1 - a0), slice(c0 - b0, c1 - b0)))


@contextlib.contextmanager
def _temporary_sibling(path: Path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        make_public(tmp)  # mkstemp makes 0600; the output gets 0666 less the umask
    except OSError as e:
        raise OutputError(f"{path}: cannot write it ({e.strerror or e})") from None
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def crf_scene(prob_path, image_path, out_path, params: CrfParams | None = None, *,
              bands: list[int] | None = None, tile: int = 2048,
              probabilities_path=None) -> tuple[int, int]:
    """Dense CRF over a scene, window by window; writes the mask GeoTIFF (uint8, 255 road,
    0 not; the probability raster's grid) and optionally the float32 road marginals.

    Returns (road pixels after, pixels with p > 0.5 before).

    Raises:
        InputError: unreadable rasters, other grids, bad bands or parameters.
        OutputError: an output cannot be written (nothing is left behind).
    """
    params = params or CrfParams()
    params.check()
    if str(prob_path).lower().endswith(".npy"):
        raise InputError(f"{prob_path}: the CRF needs a GeoTIFF probability raster on the "
                         "image's grid; a .npy array has no grid to check")
    if tile < 16:
        raise InputError(f"--tile must be at least 16 pixels, not {tile}")
    halo = int(math.ceil(3 * max(params.theta_gamma, params.theta_alpha)))
    outs = [Path(out_path)] + ([Path(probabilities_path)] if probabilities_path else [])
    with _open(prob_path) as prob_ds, _open(image_path) as image_ds, contextlib.ExitStack() as stack:
        bands = bands or default_bands(image_ds.count)
        _check_grid(prob_ds, image_ds, bands)
        lo, hi = stretch_limits(image_ds, bands)
        tmps = [stack.enter_context(_temporary_sibling(p)) for p in outs]
        counts = _run_windows(prob_ds, image_ds, bands, lo, hi, params, tile, halo, tmps)
        for tmp, path in zip(tmps, outs):
            try:
                os.replace(tmp, path)
            except OSError as e:
                raise OutputError(f"{path}: cannot write it ({e.strerror or e})") from None
    return counts


def _run_windows(prob_ds, image_ds, bands, lo, hi, params, tile, halo, tmps):
    import rasterio

    profile = dict(driver="GTiff", height=prob_ds.height, width=prob_ds.width, count=1,
                   crs=prob_ds.crs, transform=prob_ds.transform, compress="deflate",
                   tiled=True, blockxsize=256, blockysize=256)
    after = before = 0
    with contextlib.ExitStack() as stack:
        dsts = [stack.enter_context(rasterio.open(tmps[0], "w", dtype="uint8", **profile))]
        if len(tmps) > 1:
            dsts.append(stack.enter_context(rasterio.open(tmps[1], "w", dtype="float32", **profile)))
        for inner, outer, centre in _windows(prob_ds.height, prob_ds.width, tile, halo):
            band = prob_ds.read(1, window=outer, masked=True).filled(0)
            prob = check_probabilities(scale_probabilities(band, prob_ds.name), prob_ds.name)
            q = mean_field(prob, _stretched(image_ds, bands, outer, lo, hi), params)[centre]
            mask = np.where(q > 0.5, 255, 0).astype(np.uint8)
            dsts[0].write(mask, 1, window=inner)
            if len(dsts) > 1:
                dsts[1].write(q, 1, window=inner)
            after += int((mask > 0).sum())
            before += int((prob[centre] > 0.5).sum())
    return after, before
