"""Training chips: windows of the scenes read with rasterio, stretched, labelled, augmented,
batched by a torch DataLoader with workers.

Chips: a grid of ``chip x chip`` windows per scene with stride ``stride`` (default: the
chip size), the last row/column aligned to the scene's edge so that every pixel is covered.
Labels: a label GeoTIFF's window (0 background, > 0 road), or the scene's road GeoJSON
rasterised by ``fcnkit.roads.labels.road_mask`` (full road width ``width``, e.g. "4m").
Batch ``i`` (a global index, see :mod:`fcnkit.train.loop`) holds chips ``i*B .. i*B+B-1``
of an endless sequence of epochs, each a permutation seeded by (seed, epoch), and its
augmentation is seeded by (seed, i): the same batch index always gives the same batch,
whichever worker makes it, which makes resumed runs exact.

Augmentation (kornia): horizontal and vertical flips, 90-degree rotations (image and label
together), brightness and contrast within +-10 % (image only, on the stretched 0..255 input).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fcnkit.errors import InputError
from fcnkit.train.dataset import Pair, apply_stretch


def _offsets(length: int, chip: int, stride: int) -> list[int]:
    offs = list(range(0, length - chip + 1, stride))
    if offs[-1] != length - chip:
        offs.append(length - chip)
    return offs


@dataclass
class Chips:
    """The chips of some scenes; ``read(k)`` -> (image float32 (C, chip, chip) 0..255,
    label int64 (chip, chip) in {0, 1}; with ``speed_table`` (bins + 1, chip, chip) speed
    channels, see fcnkit.train.speed).

    Raises (at construction):
        InputError: a scene is smaller than a chip, unreadable, or its label GeoTIFF does
            not share the image's grid (size, transform, CRS).
    """

    pairs: list[Pair]
    preprocess: dict
    chip: int
    width: str = "4m"
    stride: int | None = None
    speed_table: Path | None = None
    index: list = field(default_factory=list)

    def __post_init__(self):
        import rasterio

        stride = self.stride or self.chip
        self._grids = []
        for s, pair in enumerate(self.pairs):
            try:
                with rasterio.open(pair.image) as src:
                    grid = (src.height, src.width, src.transform, src.crs)
            except rasterio.errors.RasterioIOError as e:
                raise InputError(f"{pair.image}: cannot read the image ({e})") from None
            h, w = grid[0], grid[1]
            if h < self.chip or w < self.chip:
                raise InputError(f"{pair.image}: {w}x{h} pixels is smaller than one "
                                 f"{self.chip}x{self.chip} chip; use a smaller --chip")
            self._check_label_grid(pair, grid)
            self._grids.append(grid)
            self.index += [(s, r, c) for r in _offsets(h, self.chip, stride)
                           for c in _offsets(w, self.chip, stride)]
        self._labels: dict[int, np.ndarray] = {}

    def _check_label_grid(self, pair: Pair, grid) -> None:
        if pair.label.suffix.lower() not in (".tif", ".tiff"):
            return
        import rasterio

        with rasterio.open(pair.label) as lab:
            if (lab.height, lab.width) != grid[:2] or lab.transform != grid[2] or lab.crs != grid[3]:
                raise InputError(f"{pair.label}: the label raster ({lab.width}x{lab.height}, "
                                 f"{lab.crs}) is not on the grid of {pair.image.name} "
                                 f"({grid[1]}x{grid[0]}, {grid[3]}); labels must share the image's "
                                 "size, transform and CRS")

    def __len__(self) -> int:
        return len(self.index)

    @property
    def grids(self) -> list[tuple]:
        """(rows, cols, transform, CRS) of each scene."""
        return list(self._grids)

    @property
    def label_channels(self) -> int:
        """1 (road class indices), or speed bins + 1 with ``speed_table``."""
        if self.speed_table is None:
            return 1
        from fcnkit.train.speed import speed_channel_count

        return speed_channel_count(self.speed_table)

    def scene_label(self, s: int) -> np.ndarray:
        """The whole road label of scene ``s`` (rows x cols, uint8 0/1; with ``speed_table``
        (bins + 1, rows x cols), fcnkit.train.speed.speed_channels), cached."""
        if s not in self._labels and self.speed_table is not None:
            from fcnkit.train.speed import speed_channels

            h, w, transform, crs = self._grids[s]
            self._labels[s] = speed_channels(self.pairs[s].label, self.speed_table, shape=(h, w),
                                             transform=transform, crs=crs, width=self.width)
        if s not in self._labels:
            self._labels[s] = _read_label(self.pairs[s], self._grids[s], self.width)
        return self._labels[s]

    def read(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        import rasterio
        from rasterio.windows import Window

        s, r, c = self.index[k]
        with rasterio.open(self.pairs[s].image) as src:
            dn = src.read(self.preprocess["bands"], window=Window(c, r, self.chip, self.chip))
        image = apply_stretch(dn, self.preprocess)
        label = self.scene_label(s)[..., r:r + self.chip, c:c + self.chip]
        return image, label.astype(np.int64)


def _read_label(pair: Pair, grid, width: str) -> np.ndarray:
    """Road label (0/1) of a scene from a label GeoTIFF or a road GeoJSON."""
    if pair.label.suffix.lower() in (".tif", ".tiff"):
        import rasterio

        with rasterio.open(pair.label) as lab:
            return (lab.read(1) > 0).astype(np.uint8)
    try:
        from fcnkit.roads.labels import road_mask
    except ImportError:
        raise InputError(f"{pair.label}: labels from road GeoJSON need fcnkit.roads.labels, which "
                         "this installation lacks; give label GeoTIFFs instead") from None
    h, w, transform, crs = grid
    mask = road_mask(str(pair.label), shape=(h, w), transform=transform, crs=crs, width=width)
    if not mask.any() and _has_lines(pair.label):
        raise InputError(f"{pair.label}: none of its road lines falls inside {pair.image.name}; "
                         "is the GeoJSON in another CRS than it declares, or for another scene?")
    return (mask > 0).astype(np.uint8)


def _has_lines(path: Path) -> bool:
    import json

    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("features"))
    except (OSError, ValueError, AttributeError):
        return False


class _Stream(torch.utils.data.IterableDataset):
    """Endless batches start, start+step, ...; worker w of W makes every W-th of them
    (the DataLoader takes them round-robin, so the order is kept)."""

    def __init__(self, chips: Chips, batch: int, start: int, step: int, seed: int, augment: bool):
        super().__init__()
        self.chips, self.batch, self.seed, self.augment = chips, batch, seed, augment
        self.start, self.step = start, step

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        w, workers = (0, 1) if info is None else (info.id, info.num_workers)
        k = self.start + w * self.step
        while True:
            yield make_batch(self.chips, self.batch, k, self.seed, self.augment)
            k += self.step * workers


def make_batch(chips: Chips, batch: int, index: int, seed: int, augment: bool) -> dict:
    """Batch ``index``: {"data": (B, C, chip, chip) float32, "label": (B, 1, chip, chip)}."""
    n = len(chips)
    picks = []
    for j in range(batch):
        pos = index * batch + j
        order = np.random.default_rng((seed, pos // n)).permutation(n) if augment else np.arange(n)
        picks.append(int(order[pos % n]))
    images, labels = zip(*(chips.read(k) for k in picks))
    data = torch.from_numpy(np.stack(images))
    stacked = np.stack(labels)
    label = torch.from_numpy((stacked if stacked.ndim == 4 else stacked[:, None]).astype(np.float32))
    if augment:
        data, label = _augment(data, label, seed, index)
    return {"data": data.contiguous(), "label": label.contiguous()}


def _augment(data, label, seed: int, index: int):
    try:
        import kornia.augmentation as K
    except ImportError:
        from fcnkit.errors import FcnkitError

        raise FcnkitError("training augmentation needs kornia: pip install 'fcnkit[train]'") from None

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed((seed * 1000003 + index) & 0x7FFFFFFF)
        geometric = K.AugmentationSequential(
            K.RandomHorizontalFlip(), K.RandomVerticalFlip(), K.RandomRotation90(times=(0, 3), p=1.0),
            data_keys=["input", "mask"])
        data, label = geometric(data, label)
        photometric = K.AugmentationSequential(K.RandomBrightness((0.9, 1.1), p=0.5),
                                               K.RandomContrast((0.9, 1.1), p=0.5))
        data = photometric(data / 255.0) * 255.0
    return data, label.round()


@dataclass
class ChipSource:
    """A :class:`fcnkit.train.loop.BatchSource` over :class:`Chips` with a DataLoader.

    Attributes:
        chips, batch (chips per batch), seed, augment (training: shuffle + augment;
        validation: in order, as is), workers (DataLoader worker processes).
    """

    chips: Chips
    batch: int
    seed: int = 0
    augment: bool = True
    workers: int = 0

    @property
    def shapes(self) -> dict[str, tuple]:
        c, s = len(self.chips.preprocess["bands"]), self.chips.chip
        return {"data": (self.batch, c, s, s), "label": (self.batch, self.chips.label_channels, s, s)}

    def batches(self, start: int, step: int = 1):
        loader = torch.utils.data.DataLoader(
            _Stream(self.chips, self.batch, start, step, self.seed, self.augment), batch_size=None,
            num_workers=self.workers, pin_memory=torch.cuda.is_available(),
            prefetch_factor=4 if self.workers else None)
        return iter(loader)
