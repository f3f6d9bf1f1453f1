"""Road labels from centrelines: buffer by the road width, burn onto a raster grid.

Reproduces solaris' ``solaris.vector.mask.road_mask(..., width=4, meters=True)``
(CosmiQ/solaris, ``solaris/vector/mask.py``): the lines are reprojected to the local UTM
zone, buffered by width / 2 with shapely's default round caps (16 segments per quarter
circle), reprojected to the raster's CRS and rasterised (``rasterio.features.rasterize``,
``all_touched=False``). Width in pixels buffers in the raster's pixel space instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import shapely
from affine import Affine

from fcnkit.errors import InputError
from fcnkit.roads.vector import RoadLines, as_road_lines, reproject, utm_crs_for

_WIDTH_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(m|px)?\s*$")
MAX_PIXELS = 1 << 31  # 2 GiB of uint8: refuse bigger label rasters before allocating


@dataclass(frozen=True)
class Width:
    """A full road width: ``value`` in ``unit`` ('m' metres or 'px' pixels)."""

    value: float
    unit: str

    @property
    def radius(self) -> float:
        """Buffer radius (half the width), in ``unit``."""
        return self.value / 2.0


def parse_width(width: Any) -> Width:
    """'4m', '13px', '4' (metres) or a number (metres) as a :class:`Width`.

    Raises:
        InputError: not a positive number with an optional 'm' / 'px' unit.
    """
    if isinstance(width, Width):
        return width
    if isinstance(width, (int, float)) and not isinstance(width, bool):
        value, unit = float(width), "m"
    else:
        match = _WIDTH_RE.match(str(width))
        if not match:
            raise InputError(f"road width {width!r}: give a full width like '4m' or '13px'")
        value, unit = float(match.group(1)), match.group(2) or "m"
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"road width {width!r}: must be a positive number")
    return Width(value, unit)


@dataclass
class LabelReport:
    """What :func:`burn_road_lines` did.

    Attributes:
        mask: (rows, cols) uint8 label raster.
        lines: road features read; outside: features not touching the raster (ignored).
        skipped: non-line or empty features; reprojected_from: the lines' CRS when it
        differed from the raster's, else None.
    """

    mask: np.ndarray
    lines: int
    outside: int
    skipped: int
    reprojected_from: str | None


def _buffer(road: RoadLines, width: Width, transform: Affine, crs: Any) -> list:
    """Buffered polygons in the raster's CRS (metres) or pixel space (pixels)."""
    geoms = road.geometries
    if width.unit == "m":
        utm = utm_crs_for(geoms, road.crs)
        buffered = [g.buffer(width.radius) for g in reproject(geoms, road.crs, utm)]
        return reproject(buffered, utm, crs)
    inv = ~transform
    in_crs = reproject(geoms, road.crs, crs)

    def _to_px(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([inv.a * x + inv.b * y + inv.c, inv.d * x + inv.e * y + inv.f])

    return [shapely.transform(g, _to_px).buffer(width.radius) for g in in_crs]


def _check_grid(shape: Sequence[int], transform: Any) -> tuple[int, int]:
    if len(shape) != 2 or min(shape) <= 0:
        raise InputError(f"label shape {tuple(shape)}: expected (rows, cols), both positive")
    rows, cols = int(shape[0]), int(shape[1])
    if rows * cols > MAX_PIXELS:
        raise InputError(f"label shape {rows}x{cols} exceeds {MAX_PIXELS} pixels; "
                         "label it window by window")
    if not isinstance(transform, Affine):
        raise InputError("transform must be an affine.Affine (rasterio's dataset.transform)")
    return rows, cols


def burn_road_lines(lines: Any, *, shape: Sequence[int], transform: Affine, crs: Any,
                    width: Any, all_touched: bool = False, burn_values: Sequence[int] | int = 255,
                    lines_crs: str | None = None) -> LabelReport:
    """Buffer road lines by half of ``width`` and burn them onto a (rows, cols) grid.

    Args:
        lines: GeoJSON path, :class:`RoadLines`, or shapely (Multi)LineStrings.
        shape: (rows, cols); transform: the grid's affine (CRS units per pixel); crs: its CRS.
        width: full road width, '4m' / '13px' / metres as a number.
        burn_values: one uint8 value for all lines, or one per line (later lines win).
        lines_crs: the lines' CRS if the file / list does not say (default OGC:CRS84).

    Returns:
        A :class:`LabelReport` whose ``mask`` is (rows, cols) uint8, 0 outside roads.

    Raises:
        InputError: bad width, grid, CRS or burn values.
    """
    from rasterio.features import rasterize
    from pyproj import CRS

    rows, cols = _check_grid(shape, transform)
    road = as_road_lines(lines, lines_crs)
    values = ([int(burn_values)] * len(road.geometries) if np.isscalar(burn_values)
              else [int(v) for v in burn_values])
    if len(values) != len(road.geometries) or any(not 0 < v < 256 for v in values):
        raise InputError("burn values: need one value in 1..255 per road line")
    mask = np.zeros((rows, cols), np.uint8)
    same = CRS.from_user_input(road.crs).equals(CRS.from_user_input(crs), ignore_axis_order=True)
    report = LabelReport(mask, len(road.geometries), 0, road.skipped,
                         None if same else str(road.crs))
    if not road.geometries:
        return report
    polys = _buffer(road, parse_width(width), transform, crs)
    px_space = parse_width(width).unit == "px"
    grid = shapely.box(0, 0, cols, rows) if px_space else _grid_box(rows, cols, transform)
    pairs = [(p, v) for p, v in zip(polys, values) if p.intersects(grid)]
    report.outside = len(polys) - len(pairs)
    if pairs:
        rasterize(pairs, out=mask, transform=Affine.identity() if px_space else transform,
                  all_touched=all_touched)
    return report


def _grid_box(rows: int, cols: int, transform: Affine):
    t = transform
    corners = [(t.a * c + t.b * r + t.c, t.d * c + t.e * r + t.f)
               for c, r in ((0, 0), (cols, 0), (cols, rows), (0, rows))]
    return shapely.Polygon(corners).envelope


def road_mask(lines: Any, *, shape: Sequence[int], transform: Affine, crs: Any, width: Any,
              all_touched: bool = False, burn_value: int = 255,
              lines_crs: str | None = None) -> np.ndarray:
    """Road label raster: (rows, cols) uint8, ``burn_value`` within width / 2 of a line.

    The contract function of the road side (see :func:`burn_road_lines` for the arguments
    and errors); with width '4m' it equals solaris' ``road_mask`` pixel for pixel.
    """
    return burn_road_lines(lines, shape=shape, transform=transform, crs=crs, width=width,
                           all_touched=all_touched, burn_values=burn_value,
                           lines_crs=lines_crs).mask


def class_values(road: RoadLines, prop: str,
                 mapping: Mapping[str, int] | None = None) -> list[int]:
    """Burn value of each line from its property ``prop`` (e.g. SpaceNet ``road_type``).

    Without ``mapping`` the property must be an integer 1..255 itself; with it, the
    property's text is looked up (e.g. a speed bin table: speed -> burn value).

    Raises:
        InputError: a line lacks the property or its value maps to nothing valid (the
            message gives the feature index).
    """
    out = []
    for i, props in enumerate(road.properties):
        if prop not in props:
            raise InputError(f"{road.source or 'lines'}: feature {i} has no property {prop!r}")
        raw = props[prop]
        try:
            value = int(mapping[str(raw)]) if mapping is not None else int(float(raw))
        except (KeyError, ValueError, TypeError):
            raise InputError(f"{road.source or 'lines'}: feature {i}: {prop}={raw!r} maps to "
                             "no burn value") from None
        if not 0 < value < 256:
            raise InputError(f"{road.source or 'lines'}: feature {i}: burn value {value} "
                             "outside 1..255")
        out.append(value)
    return out


def read_speed_table(path) -> dict[int, tuple[int, int]]:
    """CRESI's speed-bin table (``speed_conversion_binned7.csv``): {speed mph: (burn value,
    channel)}.

    Raises:
        InputError: unreadable file, missing columns or a bad number (named by line).
    """
    import csv
    import io
    from pathlib import Path

    path = Path(path)
    try:
        reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read it ({e})") from None
    if not reader.fieldnames or not {"burn_val", "speed", "channel"} <= set(reader.fieldnames):
        raise InputError(f"{path}: expected columns burn_val, speed, channel (CRESI table)")
    table = {}
    for row in reader:
        try:
            table[int(round(float(row["speed"])))] = (int(row["burn_val"]), int(row["channel"]))
        except (TypeError, ValueError):
            raise InputError(f"{path}:{reader.line_num}: bad row {row}") from None
    if not table:
        raise InputError(f"{path}: no rows")
    return table


def speed_bins(road: RoadLines, prop: str, table: dict[int, tuple[int, int]]) -> list[tuple]:
    """(burn value, channel) of each line from its speed property (mph), rounded to the
    nearest integer and clipped to the table's range (CRESI speed masks).

    Raises:
        InputError: a line without a numeric speed (the message gives the feature index).
    """
    lo, hi = min(table), max(table)
    out = []
    for i, props in enumerate(road.properties):
        try:
            speed = int(round(float(props[prop])))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{road.source or 'lines'}: feature {i}: no numeric speed "
                             f"property {prop!r}") from None
        out.append(table[min(hi, max(lo, speed))])
    return out


def speed_label_mask(road: RoadLines, table_path, prop: str, multi_channel: bool, *, shape,
                     transform, crs, width, all_touched: bool = False) -> np.ndarray:
    """CRESI speed labels of road lines: (rows, cols) uint8 bin burn values, or with
    ``multi_channel`` (bins, rows, cols) uint8 with 255 on each bin's roads.

    Raises:
        InputError: see :func:`read_speed_table`, :func:`speed_bins`, :func:`burn_road_lines`.
    """
    table = read_speed_table(table_path)
    bins = speed_bins(road, prop, table)
    kwargs = dict(shape=shape, transform=transform, crs=crs, width=width,
                  all_touched=all_touched)
    if not multi_channel:
        return burn_road_lines(road, burn_values=[b for b, _ in bins], **kwargs).mask
    channels = 1 + max(c for _, c in table.values())
    mask = np.zeros((channels,) + tuple(shape), np.uint8)
    for c in range(channels):
        chosen = [g for g, (_, ch) in zip(road.geometries, bins) if ch == c]
        if chosen:
            mask[c] = burn_road_lines(chosen, lines_crs=road.crs, **kwargs).mask
    return mask
