"""Quicklook pictures: the class colours over the stretched image, downsampled, as DIGITS
shows segmentation results (PNG or JPEG through OpenCV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcnkit.atomic import write_bytes
from fcnkit.errors import InputError, OutputError
from fcnkit.geo.io import LABEL_NODATA, PALETTE

ALPHA = 0.5


def overlay_image(src, bands, stretch, labels_path: Path, width: int) -> np.ndarray:
    """rows x cols x 3 uint8 RGB: the first three chosen bands (or the first band as grey),
    stretched, with non-background classes painted at 50 % opacity.

    Args:
        src: the open scene; bands: 1-based model bands; stretch: its
            :class:`fcnkit.geo.stretch.Stretch`; labels_path: the label GeoTIFF just written;
        width: picture width in pixels (height keeps the aspect; never upsampled).
    """
    import rasterio

    if width < 1:
        raise InputError(f"--overlay-width must be >= 1, got {width}")
    w = min(width, src.width)
    h = max(1, round(src.height * w / src.width))
    from fcnkit.geo.io import read_decimated

    pixels = read_decimated(src, bands, (h, w))
    img = stretch.apply(pixels)
    if stretch.method == "none":  # raw DN: scale the sample for display only
        hi = np.percentile(img, 98, axis=(1, 2), keepdims=True)
        img = img / np.maximum(hi, 1e-6) * 255
    rgb = img[:3] if img.shape[0] >= 3 else np.repeat(img[:1], 3, axis=0)
    rgb = np.clip(rgb, 0, 255).transpose(1, 2, 0)
    with rasterio.open(labels_path) as lab_ds:
        lab = lab_ds.read(1, out_shape=(h, w))
    colours = np.array([PALETTE[i % len(PALETTE)] for i in range(256)], np.float32)
    paint = (lab > 0) & (lab != LABEL_NODATA)
    rgb[paint] = (1 - ALPHA) * rgb[paint] + ALPHA * colours[lab[paint]]
    return rgb.astype(np.uint8)


def encode_overlay(path: Path, rgb: np.ndarray) -> bytes:
    """Encode rows x cols x 3 RGB as PNG or JPEG (by the suffix of ``path``).

    Raises:
        OutputError: an unknown suffix or an encoder failure.
    """
    import cv2

    suffix = path.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg"):
        raise OutputError(f"{path}: an overlay is .png or .jpg")
    ok, buf = cv2.imencode(suffix, np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise OutputError(f"{path}: OpenCV could not encode the overlay")
    return buf.tobytes()


def write_overlay(path: Path, rgb: np.ndarray) -> None:
    """:func:`encode_overlay` and write the file atomically (raises OutputError)."""
    write_bytes(path, encode_overlay(path, rgb))
