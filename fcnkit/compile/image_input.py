"""Image files as net inputs, preprocessed as pycaffe's ``caffe.io`` does.

Reading follows ``caffe.io.load_image`` (BVLC caffe, python/caffe/io.py): the image becomes
float32 in [0, 1] (``skimage.img_as_float``: uint8 / 255, uint16 / 65535), H x W x K, RGB
(grey tiled to 3 channels for a colour net, kept as 1 channel for a 1-channel net; alpha
dropped). PNG and JPEG are decoded by OpenCV (BGR turned to RGB), TIFF by rasterio (bands x
rows x cols turned to rows x cols x bands; any number of bands).

Preprocessing follows ``caffe.io.Transformer.preprocess`` with the flags of
``python/classify.py``, in Caffe's order: resize to the net's H x W (``resize_image``:
bilinear; skimage for 1 or 3 channels on the image scaled to [0, 1], scipy's ``zoom``
otherwise; mode constant, no anti-aliasing, as the skimage of Caffe's time), transpose to
K x H x W, channel swap, ``* raw_scale``, ``- mean``, ``* input_scale``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fcnkit.errors import InputError

_MAGIC = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpeg", b"II*\x00": "tiff",
          b"MM\x00*": "tiff", b"II+\x00": "tiff", b"MM\x00+": "tiff"}


def image_kind(path: str | Path) -> str | None:
    """``"png"``, ``"jpeg"`` or ``"tiff"`` from the file's first bytes, else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    return next((k for magic, k in _MAGIC.items() if head.startswith(magic)), None)


@dataclass
class Preprocess:
    """classify.py's preprocessing flags (None: the step is skipped, as in the Transformer).

    Attributes:
        mean: per-channel (K,) or per-pixel (K, H, W) values subtracted after ``raw_scale``
            (in the net's channel order, i.e. after the channel swap).
        raw_scale: factor applied before the mean (255 for nets trained on [0, 255] pixels).
        channel_swap: new channel order, e.g. (2, 1, 0) for RGB -> BGR.
        input_scale: factor applied after the mean.
    """

    mean: np.ndarray | None = None
    raw_scale: float | None = None
    channel_swap: tuple[int, ...] | None = None
    input_scale: float | None = None

    @classmethod
    def from_options(cls, mean: str | None = None, raw_scale: float | None = None,
                     channel_swap: str | None = None, input_scale: float | None = None) -> "Preprocess":
        """From CLI text: ``mean`` a ``.npy`` file or comma-separated values per channel;
        ``channel_swap`` comma-separated indices.

        Raises:
            InputError: a value that does not parse, or a mean file that is not a numeric
                .npy array.
        """
        from fcnkit.npyio import read_npy

        arr = None
        if mean is not None:
            if Path(mean).is_file():
                arr = np.asarray(read_npy(Path(mean)), dtype=np.float32)
            else:
                arr = np.asarray(_numbers(mean, "--mean", float), dtype=np.float32)
        swap = tuple(_numbers(channel_swap, "--channel-swap", int)) if channel_swap else None
        return cls(arr, raw_scale, swap, input_scale)

    def describe(self) -> str:
        """What is applied, in order, for the terminal."""
        steps = ["read as float in [0, 1], resized to the net's H x W, transposed to C x H x W"]
        if self.channel_swap is not None:
            steps.append(f"channels reordered {','.join(map(str, self.channel_swap))}")
        if self.raw_scale is not None:
            steps.append(f"x {self.raw_scale:g}")
        if self.mean is not None:
            steps.append(f"- mean {self.mean.shape}" if self.mean.ndim > 1
                         else f"- mean ({', '.join(f'{v:g}' for v in self.mean)})")
        if self.input_scale is not None:
            steps.append(f"x {self.input_scale:g}")
        return "; ".join(steps)


def _numbers(text: str, option: str, kind):
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{option} must be comma-separated numbers (or, for --mean, a .npy "
                         f"file that exists), got '{text}'") from None


def _header_size(path: Path, kind: str) -> tuple[int, int, int] | None:
    """(rows, cols, channels) from a PNG's IHDR or a JPEG's SOF marker, read before decoding
    (PNG: ISO/IEC 15948 section 11.2.2; JPEG: ITU-T T.81 B.2.2); None when not found."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if kind == "png" and len(head) >= 26 and head[12:16] == b"IHDR":
        channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(head[25], 4)
        return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big"), channels
    i = 2
    while kind == "jpeg" and i + 9 < len(head) and head[i] == 0xFF:
        marker, length = head[i + 1], int.from_bytes(head[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return (int.from_bytes(head[i + 5:i + 7], "big"), int.from_bytes(head[i + 7:i + 9], "big"),
                    head[i + 9])
        i += 2 + length
    return None


def _check_image_size(path: Path, kind: str) -> None:
    """The decoded image (8-bit decode, float32 copy and its preprocessing, about 12 bytes a
    value) against the memory limit, before anything is decoded.

    Raises:
        LimitError: the image would exceed :func:`fcnkit.limits.memory_limit`.
    """
    from fcnkit.limits import check_bytes

    if kind == "tiff":
        import rasterio

        try:
            with rasterio.open(path) as src:
                size = (src.height, src.width, src.count)
        except rasterio.errors.RasterioError:
            return  # reported by the read itself
    else:
        size = _header_size(path, kind)
    if size is not None:
        check_bytes(size[0] * size[1] * max(size[2], 3) * 12, f"{path}: the decoded {size[0]}x{size[1]} image")


def load_image(path: str | Path, color: bool = True) -> np.ndarray:
    """An image file as ``caffe.io.load_image`` gives it: (H, W, K) float32 in [0, 1].

    Args:
        color: colour (grey tiled to 3 channels) or intensity (grey kept as 1 channel).

    Raises:
        InputError: the file cannot be decoded. LimitError: its header declares an image
            larger than the memory limit (checked before decoding).
    """
    from skimage.util import img_as_float

    path = Path(path)
    kind = image_kind(path)
    _check_image_size(path, kind)
    if kind == "tiff":
        import warnings

        import rasterio

        try:
            with warnings.catch_warnings():  # a plain (not georeferenced) TIFF is expected here
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                with rasterio.open(path) as src:
                    img = np.moveaxis(src.read(), 0, -1)
        except rasterio.errors.RasterioError as e:
            raise InputError(f"{path}: cannot read this TIFF ({e})") from None
    else:
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise InputError(f"{path}: OpenCV cannot decode this image")
        if img.ndim == 3 and img.shape[2] >= 3:  # OpenCV decodes to BGR(A)
            img = img[:, :, [2, 1, 0]]
    img = img_as_float(img).astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
    if img.shape[2] == 1 and color:
        img = np.tile(img, (1, 1, 3))
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return img


def resize_image(img: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """(H', W', K) -> (H, W, K) float32, bilinear, as ``caffe.io.resize_image``."""
    h, w = int(size[0]), int(size[1])
    if img.shape[-1] in (1, 3):
        from skimage.transform import resize

        lo, hi = float(img.min()), float(img.max())
        if hi <= lo:  # constant image: Caffe avoids the division by 0
            return np.full((h, w, img.shape[-1]), lo, dtype=np.float32)
        unit = (img - lo) / (hi - lo)
        out = resize(unit, (h, w), order=1, mode="constant", anti_aliasing=False)
        return (out * (hi - lo) + lo).astype(np.float32)
    from scipy.ndimage import zoom

    return zoom(img, (h / img.shape[0], w / img.shape[1], 1), order=1).astype(np.float32)


def preprocess_image(img: np.ndarray, shape: Sequence[int], pre: Preprocess,
                     where: str = "image") -> np.ndarray:
    """``caffe.io.Transformer.preprocess`` of an (H', W', K) image for a net input of
    ``shape`` (N, C, H, W); returns (1, C, H, W) float32.

    Raises:
        InputError: K differs from C, or a flag does not fit C (channel swap length, mean
            channels or shape).
    """
    c, h, w = (int(d) for d in shape[1:4])
    if img.shape[2] != c:
        raise InputError(f"{where}: has {img.shape[2]} channel(s), the net's input has {c} "
                         f"(declared shape {tuple(shape)})")
    out = img if img.shape[:2] == (h, w) else resize_image(img, (h, w))
    out = np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32)
    if pre.channel_swap is not None:
        if sorted(pre.channel_swap) != list(range(c)):
            raise InputError(f"--channel-swap {','.join(map(str, pre.channel_swap))} is not an "
                             f"order of the net's {c} channels")
        out = out[list(pre.channel_swap)]
    if pre.raw_scale is not None:
        out = out * np.float32(pre.raw_scale)
    if pre.mean is not None:
        out = out - _mean_for(pre.mean, (c, h, w))
    if pre.input_scale is not None:
        out = out * np.float32(pre.input_scale)
    return out[np.newaxis].astype(np.float32)


def _mean_for(mean: np.ndarray, chw: tuple[int, int, int]) -> np.ndarray:
    """The mean broadcast to C x H x W, as ``Transformer.set_mean`` accepts it."""
    if mean.ndim == 1:
        if mean.shape[0] != chw[0]:
            raise InputError(f"--mean has {mean.shape[0]} value(s), the net's input has "
                             f"{chw[0]} channel(s)")
        return mean[:, np.newaxis, np.newaxis]
    full = mean[np.newaxis] if mean.ndim == 2 else mean
    if full.shape != chw:
        raise InputError(f"--mean has shape {mean.shape}, the net's input is {chw} (C, H, W); "
                         "for a per-channel mean give np.load(f).mean(1).mean(1) or "
                         "comma-separated values")
    return full
