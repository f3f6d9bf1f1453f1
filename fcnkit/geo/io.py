"""Raster I/O for scene inference: opening and checking scenes, reading windows with
reflection at the scene borders, and writing georeferenced outputs (rasterio / GDAL).

Arrays are bands x rows x cols (rasterio's order); windows are rasterio ``Window(col_off,
row_off, width, height)`` in pixels.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from fcnkit.errors import InputError, OutputError

#: Output label value where the input is nodata.
LABEL_NODATA = 255
#: Colours of the classes in the label GeoTIFF and overlays (RGB); class 1 is road.
PALETTE = ((0, 0, 0), (255, 200, 0), (0, 160, 255), (255, 0, 128), (0, 200, 80), (160, 80, 255),
           (255, 120, 40), (120, 255, 255))
BLOCK = 256


@dataclass
class SceneInfo:
    """What a scene is: size (rows, cols), band count, dtype, nodata, CRS (or None), and
    warnings to show (a missing CRS)."""

    path: str
    rows: int
    cols: int
    count: int
    dtype: str
    nodata: float | None
    crs: object
    transform: object
    warnings: list[str]


def open_scene(path: str | Path):
    """Open a raster with rasterio, with fcnkit's errors.

    Returns:
        (dataset, :class:`SceneInfo`); the caller closes the dataset.

    Raises:
        InputError: not a raster GDAL can open (names the file), no bands.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(path)
    except RasterioIOError as e:
        raise InputError(f"{path}: not a raster GDAL can read ({_first_line(e)})") from None
    if src.count < 1:
        src.close()
        raise InputError(f"{path}: the raster has no bands")
    warn = []
    if src.crs is None:
        warn.append(f"{path}: the raster has no CRS; outputs are written with its pixel grid only "
                    "(no georeferencing)")
    info = SceneInfo(str(path), src.height, src.width, src.count, src.dtypes[0], src.nodata, src.crs,
                     src.transform, warn)
    return src, info


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def reflect_index(index: np.ndarray, size: int) -> np.ndarray:
    """Map pixel indices outside [0, size) back into it by reflection about the edge pixels
    (numpy ``np.pad`` mode ``reflect``: ... 2 1 | 0 1 2 ... size-1 | size-2 ...)."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    m = np.mod(index, period)
    return np.where(m < size, m, period - m)


def read_window(src, window: Window, bands, *, boundless: str = "reflect") -> np.ndarray:
    """Read ``bands`` of ``window``; parts outside the scene are filled by reflection.

    Args:
        src: an open rasterio dataset.
        window: the pixel window (may reach outside the scene, negative offsets included).
        bands: 1-based band indices (model input order).
        boundless: ``reflect`` (the only mode: reflection padding at the scene borders).

    Returns:
        bands x window.height x window.width, the raster's dtype.

    Raises:
        InputError: the file cannot be read there (a truncated or damaged file).
    """
    from rasterio.errors import RasterioIOError

    if boundless != "reflect":
        raise InputError(f"read_window: unknown boundless mode '{boundless}' (reflect)")
    r0, c0 = int(window.row_off), int(window.col_off)
    h, w = int(window.height), int(window.width)
    rows = reflect_index(np.arange(r0, r0 + h), src.height)
    cols = reflect_index(np.arange(c0, c0 + w), src.width)
    rmin, rmax, cmin, cmax = rows.min(), rows.max(), cols.min(), cols.max()
    try:
        data = src.read(list(bands), window=Window(int(cmin), int(rmin), int(cmax - cmin + 1), int(rmax - rmin + 1)))
    except (RasterioIOError, OSError) as e:
        raise InputError(f"{src.name}: cannot read rows {rmin}..{rmax}, columns {cmin}..{cmax} "
                         f"({_first_line(e)}); the file is truncated or damaged") from None
    inside = r0 >= 0 and c0 >= 0 and r0 + h <= src.height and c0 + w <= src.width
    if inside:
        return data
    return data[:, rows - rmin][:, :, cols - cmin]


def read_decimated(src, bands, shape: tuple[int, int]) -> np.ndarray:
    """Read ``bands`` of the whole scene at ``shape`` (rows, cols) (nearest neighbour, or an
    overview GDAL picks): bands x rows x cols.

    Raises:
        InputError: the file cannot be read (a truncated or damaged file).
    """
    from rasterio.errors import RasterioIOError

    try:
        return src.read(list(bands), out_shape=(len(bands), *shape))
    except (RasterioIOError, OSError) as e:
        raise InputError(f"{src.name}: cannot read rows 0..{src.height - 1}, columns 0..{src.width - 1} at "
                         f"{shape[0]} x {shape[1]} ({_first_line(e)}); the file is truncated or damaged") from None


def valid_mask(pixels: np.ndarray, nodata) -> np.ndarray:
    """rows x cols bool: False where every band is nodata (or NaN), the GDAL dataset mask rule."""
    invalid = np.ones(pixels.shape[1:], dtype=bool)
    has_rule = False
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        invalid &= np.all(pixels == nodata, axis=0)
        has_rule = True
    if np.issubdtype(pixels.dtype, np.floating):
        nan = np.all(np.isnan(pixels), axis=0)
        invalid = (invalid | nan) if has_rule else nan
        has_rule = True
    return ~invalid if has_rule else np.ones(pixels.shape[1:], dtype=bool)


def temp_sibling(path: Path) -> Path:
    """A new empty temporary file beside ``path`` (renamed into place when complete).

    Raises:
        OutputError: the folder cannot be written (names ``path``).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make outputs private
    except OSError as e:
        raise OutputError(f"{path}: cannot write it ({e.strerror or e}); check that its folder exists and "
                          "is writable") from None
    return Path(tmp)


def output_profile(info: SceneInfo, count: int, dtype: str, nodata) -> dict:
    """The GTiff creation profile of an output: the scene's size, CRS and transform; tiled
    256 x 256, DEFLATE, BIGTIFF when needed."""
    profile = {"driver": "GTiff", "width": info.cols, "height": info.rows, "count": count, "dtype": dtype,
               "nodata": nodata, "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK,
               "compress": "deflate", "bigtiff": "if_safer"}
    if info.crs is not None:
        profile["crs"] = info.crs
    if info.crs is not None or not info.transform.is_identity:
        profile["transform"] = info.transform
    return profile


def open_output(path: Path, profile: dict, *, colormap: bool = False, description: str | None = None):
    """Create a GTiff at ``path`` (a temporary file) with ``profile``; optional colour table
    and band description. Returns the open rasterio dataset.

    Raises:
        OutputError: GDAL cannot create it.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dst = rasterio.open(path, "w", **profile)
    except (RasterioIOError, OSError) as e:
        raise OutputError(f"{path}: cannot create it ({_first_line(e)})") from None
    if colormap:
        cmap = {i: (*PALETTE[i % len(PALETTE)], 255) for i in range(255)}
        cmap[LABEL_NODATA] = (0, 0, 0, 0)
        dst.write_colormap(1, cmap)
    if description:
        for b in range(1, profile["count"] + 1):
            dst.set_band_description(b, description if profile["count"] == 1 else f"{description} {b - 1}")
    return dst


def build_overviews(dst, resampling: str = "nearest") -> None:
    """Internal overviews 2, 4, 8, ... until the smaller side is below one block."""
    from rasterio.enums import Resampling

    factors, f = [], 2
    while min(dst.height, dst.width) / f >= BLOCK // 2 and f <= 1024:
        factors.append(f)
        f *= 2
    if factors:
        dst.build_overviews(factors, Resampling[resampling])
        dst.update_tags(ns="rio_overview", resampling=resampling)


def to_cog(path: Path, final: Path, resampling: str = "nearest", extra: dict | None = None) -> Path:
    """Translate a complete GTiff into a Cloud-Optimized GeoTIFF (rio-cogeo, DEFLATE,
    512 px blocks, internal overviews); returns the temporary COG file beside ``final``.

    Raises:
        OutputError: rio-cogeo is missing or the translation fails.
    """
    try:
        from rio_cogeo.cogeo import cog_translate
        from rio_cogeo.profiles import cog_profiles
    except ImportError:
        raise OutputError("--cog needs rio-cogeo: pip install rio-cogeo") from None
    tmp = temp_sibling(final)
    try:
        profile = {**cog_profiles.get("deflate"), **(extra or {})}
        cog_translate(str(path), str(tmp), profile, overview_resampling=resampling,
                      quiet=True, use_cog_driver=False, in_memory=False)
    except Exception as e:  # noqa: BLE001 - GDAL/rio-cogeo errors become one clear error
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(f"{final}: the COG translation failed ({_first_line(e)})") from None
    return tmp
