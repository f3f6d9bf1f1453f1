"""Road probability rasters and the points the decision commands take (A, B, a goal).

A probability raster is read from a GeoTIFF (band 1; float in [0, 1], or uint8 DN scaled by
1/255 as ``fcnkit predict --probabilities`` may write it) or from a 2-D ``.npy`` array (no
georeferencing: the identity transform, no CRS). Points are map coordinates in the raster's
CRS (the default), coordinates in another CRS (``EPSG:N``, reprojected with pyproj), or pixel
coordinates (``pixel``: X = column, Y = row, 0-based, as rasterio's ``rowcol`` reads a pixel
centre). Rasters are written through :mod:`fcnkit.atomic` (a temporary sibling, then a rename).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fcnkit.atomic import write_bytes
from fcnkit.errors import InputError

#: The largest raster read whole (rows x cols); beyond it, use ``--block`` or tiles.
MAX_PIXELS = 20_000 * 20_000


@dataclass
class ProbabilityRaster:
    """A road probability map and its georeferencing.

    Attributes:
        prob: float32 array (rows, cols), P(road) per pixel in [0, 1]; nodata pixels are 0.
        transform: the affine pixel -> map transform (``affine.Affine``; the identity for .npy).
        crs: a ``rasterio.crs.CRS``, or None (.npy, or a GeoTIFF without CRS).
        path: where it was read from.
    """

    prob: np.ndarray
    transform: Any
    crs: Any
    path: str


def _identity():
    from affine import Affine

    return Affine.identity()


def check_probabilities(prob: np.ndarray, path: str) -> np.ndarray:
    """``prob`` as float32 in [0, 1]; InputError (naming ``path``) for NaN or values outside."""
    if not np.all(np.isfinite(prob)):
        raise InputError(f"{path}: the probability raster holds NaN or infinite values; "
                         "give nodata in the GeoTIFF instead")
    lo, hi = float(prob.min()), float(prob.max())
    if lo < 0.0 or hi > 1.0 + 1e-6:
        raise InputError(f"{path}: probabilities must lie in [0, 1] (found {lo:g} .. {hi:g}); "
                         "give a probability map (fcnkit predict --probabilities), or uint8 DN "
                         "0..255")
    return np.clip(prob, 0.0, 1.0).astype(np.float32, copy=False)


def read_probability(path: str | Path) -> ProbabilityRaster:
    """Read a road probability raster (GeoTIFF band 1 or a 2-D .npy array).

    uint8 values are DN 0..255 and are divided by 255; float values must lie in [0, 1].
    GeoTIFF nodata pixels become probability 0 (not road).

    Raises:
        InputError: unreadable file, not 2-D, more than :data:`MAX_PIXELS` pixels, values
            outside [0, 1], NaN.
    """
    path = str(path)
    if path.lower().endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: cannot read it as a .npy array ({e})") from None
        if arr.ndim != 2 or arr.size == 0 or arr.size > MAX_PIXELS:
            raise InputError(f"{path}: expected a 2-D (rows, cols) array of at most {MAX_PIXELS} "
                             f"pixels, found shape {arr.shape}")
        prob = scale_probabilities(np.asarray(arr), path)
        return ProbabilityRaster(check_probabilities(prob, path), _identity(), None, path)
    import rasterio

    try:
        with rasterio.open(path) as ds:
            if ds.width * ds.height > MAX_PIXELS:
                raise InputError(f"{path}: {ds.height} x {ds.width} pixels is more than the "
                                 f"{MAX_PIXELS} read whole; cut the scene into tiles")
            band = ds.read(1, masked=True)
            transform, crs = ds.transform, ds.crs
    except rasterio.errors.RasterioIOError as e:
        raise InputError(f"{path}: cannot read it as a raster ({e})") from None
    prob = scale_probabilities(band.filled(0), path)
    return ProbabilityRaster(check_probabilities(prob, path), transform, crs, path)


def scale_probabilities(arr: np.ndarray, path: str) -> np.ndarray:
    """uint8 DN / 255 or float as float32; InputError for other dtypes."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    raise InputError(f"{path}: probability rasters are float (0..1) or uint8 (0..255), "
                     f"not {arr.dtype}")


def parse_point(text: str, option: str = "point") -> tuple[float, float]:
    """Parse ``"X,Y"`` into two floats.

    Raises:
        InputError: not two comma-separated finite numbers.
    """
    parts = text.split(",")
    try:
        x, y = (float(p) for p in parts)
    except ValueError:
        raise InputError(f"{option} '{text}': expected X,Y (two numbers separated by a comma)") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InputError(f"{option} '{text}': coordinates must be finite numbers")
    return x, y


def to_pixel(point: tuple[float, float], raster: ProbabilityRaster, crs: str = "map",
             option: str = "point") -> tuple[int, int]:
    """The (row, col) pixel holding ``point``.

    Args:
        point: (X, Y): map coordinates, or (col, row) when ``crs`` is "pixel".
        crs: "map" (the raster's CRS), "pixel", or a CRS pyproj understands ("EPSG:4326").

    Raises:
        InputError: an unknown CRS, a CRS given for a raster without one, or a point outside
            the raster (the message gives the raster's bounds).
    """
    x, y = point
    rows, cols = raster.prob.shape
    if crs == "pixel":
        col, row = x, y
    else:
        if crs != "map":
            x, y = _reproject(x, y, crs, raster, option)
        col, row = ~raster.transform @ (x, y)
    r, c = int(math.floor(row)), int(math.floor(col))
    if not (0 <= r < rows and 0 <= c < cols):
        raise InputError(f"{option} {point[0]:g},{point[1]:g} ({crs}) falls outside the raster "
                         f"{raster.path} (pixel row {row:.1f}, col {col:.1f}; the raster has "
                         f"{rows} rows x {cols} cols)")
    return r, c


def _reproject(x: float, y: float, crs: str, raster: ProbabilityRaster, option: str):
    from pyproj import CRS, Transformer
    from pyproj.exceptions import CRSError

    if raster.crs is None:
        raise InputError(f"{option}: {raster.path} has no CRS, so a point in {crs} cannot be "
                         "placed on it; give pixel coordinates with --crs pixel")
    try:
        source = CRS.from_user_input(crs)
    except CRSError as e:
        raise InputError(f"--crs {crs}: not a CRS pyproj knows ({e}); give EPSG:N, 'map' or "
                         "'pixel'") from None
    tr = Transformer.from_crs(source, CRS.from_user_input(raster.crs.to_wkt()), always_xy=True)
    return tr.transform(x, y)


def pixel_centres(rows: np.ndarray, cols: np.ndarray, transform) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates (x, y) of the centres of pixels (rows, cols) (arrays of equal shape)."""
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f
    cc, rr = np.asarray(cols, float) + 0.5, np.asarray(rows, float) + 0.5
    return a * cc + b * rr + c, d * cc + e * rr + f


def raster_bytes(bands: np.ndarray, transform, crs, nodata=None) -> bytes:
    """A GeoTIFF (deflate) of ``bands`` (rows, cols) or (count, rows, cols) as bytes."""
    import rasterio
    from rasterio.io import MemoryFile

    data = bands[None] if bands.ndim == 2 else bands
    profile = dict(driver="GTiff", count=data.shape[0], height=data.shape[1], width=data.shape[2],
                   dtype=data.dtype.name, transform=transform, crs=crs, compress="deflate",
                   nodata=nodata)
    with rasterio.Env(), MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(data)
        return bytes(mem.read())


def write_raster(path: str | Path, bands: np.ndarray, transform, crs, nodata=None) -> None:
    """Write ``bands`` as a georeferenced GeoTIFF at ``path`` atomically.

    Raises:
        OutputError: ``path`` cannot be written.
    """
    write_bytes(path, raster_bytes(bands, transform, crs, nodata))



def default_bands(count: int) -> list[int]:
    """Image bands (1-based) for the CRF's appearance kernel: WorldView-3 red, green, blue
    (5, 3, 2) for 8 bands, 1, 2, 3 for three or more, else band 1."""
    if count == 8:
        return [5, 3, 2]
    return [1, 2, 3] if count >= 3 else [1]

