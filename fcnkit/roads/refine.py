"""floodFill refinement of buffered road labels (the SpaceNet roads article's fix for
labels narrower or wider than the road surface: seeds on the label's skeleton, OpenCV
``cv2.floodFill`` on the stretched image within colour tolerances, limited to a corridor
around the lines, union with the buffered label).

Source: CosmiQ Works, "SpaceNet Road Detection and Routing Challenge Part I/II" (the
8-band / floodFill label discussion; ``/work/shared/seeds/spacenet-roads-deep-learning.txt``)
and OpenCV ``cv2.floodFill`` (``FLOODFILL_MASK_ONLY``, ``FLOODFILL_FIXED_RANGE``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fcnkit.errors import InputError


@dataclass(frozen=True)
class FloodFillParams:
    """Parameters of :func:`floodfill_refine`.

    Attributes:
        lo_diff, up_diff: per-channel tolerances below / above (stretched 0..255 units).
        connectivity: 4 or 8.
        fixed_range: compare with the seed pixel (True) or with the neighbour (floating).
        max_distance_m: the fill stays within this distance of the road lines (metres).
        seed_step: use every ``seed_step``-th skeleton pixel as a seed.
    """

    lo_diff: tuple = (12.0,)
    up_diff: tuple = (12.0,)
    connectivity: int = 8
    fixed_range: bool = True
    max_distance_m: float = 6.0
    seed_step: int = 1


@dataclass
class RefineReport:
    """Result of :func:`floodfill_refine`: the new label (rows, cols) uint8, the fill alone
    (bool), and pixels added to / removed from the buffered label."""

    mask: np.ndarray
    fill: np.ndarray
    added: int
    removed: int
    seeds: int


def stretch_to_uint8(image: np.ndarray, percentiles=(2.0, 98.0)) -> np.ndarray:
    """(bands, rows, cols) DN -> (rows, cols, bands) uint8 for OpenCV: fcnkit.geo's
    percentile stretch (:func:`fcnkit.geo.stretch.array_stretch`: per band clipped to the
    [p_lo, p_hi] percentiles of its valid, nonzero pixels and scaled to 0..255, the SpaceNet
    article's stretch), truncated to integers."""
    from fcnkit.geo.stretch import array_stretch

    out = array_stretch(image, percentiles).apply(image)
    return np.ascontiguousarray(np.moveaxis(out, 0, -1)).astype(np.uint8)


def _tolerance(values, channels: int, name: str) -> tuple:
    values = tuple(float(v) for v in values)
    if len(values) == 1:
        values = values * channels
    if len(values) != channels or any(v < 0 for v in values):
        raise InputError(f"--{name}: give one value or one per channel ({channels}), all >= 0")
    return values + (0.0,) * (4 - channels)


def floodfill_refine(image: np.ndarray, label: np.ndarray, corridor: np.ndarray,
                     params: FloodFillParams = FloodFillParams()) -> RefineReport:
    """Grow a buffered road label over the road surface seen in the image.

    Args:
        image: (rows, cols, channels) uint8 stretched image, 1 or 3 channels.
        label: (rows, cols) buffered road label, nonzero = road.
        corridor: (rows, cols) bool, where the fill may go (within max_distance of lines).

    Returns:
        :class:`RefineReport`; ``mask`` = label OR fill (255 where the label had no class).

    Raises:
        InputError: channel count not 1 or 3, grids differ, bad tolerances/connectivity.
    """
    import cv2
    from skimage.morphology import skeletonize

    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] not in (1, 3):
        raise InputError(f"floodFill needs 1 or 3 image channels, got {image.shape[2]}; "
                         "choose bands with --bands")
    if image.shape[:2] != label.shape or corridor.shape != label.shape:
        raise InputError(f"image {image.shape[:2]}, label {label.shape} and corridor "
                         f"{corridor.shape} must share one grid")
    if params.connectivity not in (4, 8):
        raise InputError(f"connectivity {params.connectivity}: give 4 or 8")
    channels = image.shape[2]
    lo = _tolerance(params.lo_diff, channels, "lo-diff")
    up = _tolerance(params.up_diff, channels, "up-diff")
    rows, cols = label.shape
    # cv2 never fills where its mask is nonzero: mark everything outside the corridor
    fill_mask = np.ones((rows + 2, cols + 2), np.uint8)
    fill_mask[1:-1, 1:-1][corridor] = 0
    flags = params.connectivity | cv2.FLOODFILL_MASK_ONLY | (255 << 8)
    if params.fixed_range:
        flags |= cv2.FLOODFILL_FIXED_RANGE
    img = np.ascontiguousarray(image if channels == 3 else image[..., 0])
    seeds = np.argwhere(skeletonize(label > 0) & corridor)[:: max(1, params.seed_step)]
    for r, c in seeds:
        if fill_mask[r + 1, c + 1] == 0:
            cv2.floodFill(img, fill_mask, (int(c), int(r)), 0, lo, up, flags)
    fill = fill_mask[1:-1, 1:-1] == 255
    road = label > 0
    out = label.copy().astype(np.uint8)
    out[fill & ~road] = 255
    return RefineReport(out, fill, int((fill & ~road).sum()), 0, len(seeds))


def refine_with_image(image_path, road, label: np.ndarray, grid, params: FloodFillParams,
                      bands=None) -> RefineReport:
    """floodFill refinement of ``label`` over the image file it was made for.

    Args:
        image_path: the reference image (its grid is ``grid`` = (shape, transform, crs)).
        road: the :class:`~fcnkit.roads.vector.RoadLines` the label was burnt from (the
            corridor is within ``params.max_distance_m`` of them).
        bands: 1-based bands to compare (1 or 3; default band 1, or 1, 2, 3).

    Raises:
        InputError: a band the image does not have; see :func:`floodfill_refine`.
    """
    import rasterio

    from fcnkit.roads.labels import burn_road_lines

    shape, transform, crs = grid
    with rasterio.open(image_path) as src:
        chosen = list(bands) if bands else ([1, 2, 3] if src.count >= 3 else [1])
        if any(not 1 <= b <= src.count for b in chosen):
            raise InputError(f"--bands {chosen}: {image_path} has bands 1..{src.count}")
        image = stretch_to_uint8(src.read(chosen))
    corridor = burn_road_lines(road, shape=shape, transform=transform, crs=crs,
                               width=2 * params.max_distance_m).mask > 0
    return floodfill_refine(image, label, corridor, params)
