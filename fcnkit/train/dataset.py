"""Road datasets in SpaceNet's layout: scenes, their labels, the split and the stretch.

- Pairs: image GeoTIFFs in one folder and labels in another (road GeoJSON, or label
  GeoTIFFs 0/255), matched by image id: the last ``img<digits>`` token of the file stem
  (SpaceNet: ``..._PS-MS_img1.tif`` <-> ``..._geojson_roads_img1.geojson``), else the whole
  stem. Or a CSV with columns ``image,label`` (paths relative to the CSV's folder).
- Split: 70 / 15 / 15 % of the scenes (train / val / test; the SpaceNet roads article's
  proportions) by a seeded permutation of the sorted ids, recorded in a JSON file and
  reused when that file exists.
- Stretch (SpaceNet roads article; contracts.md): per band, the P_lo / P_hi percentiles
  (default 2 and 90) of the valid pixels (not nodata, not 0) of the training scenes; DN
  clipped to [lo, hi] and scaled linearly to 0..255 (float32 model input).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcnkit.errors import InputError
from fcnkit.geo.stretch import Stretch, valid_values

IMAGE_SUFFIXES = (".tif", ".tiff")
LABEL_SUFFIXES = (".geojson", ".json", ".tif", ".tiff")
#: Pixels sampled per scene for the percentiles (the scene is read decimated beyond this).
STRETCH_SAMPLE = 1 << 20


@dataclass(frozen=True)
class Pair:
    """One scene: its id, image GeoTIFF and label (GeoJSON lines or label GeoTIFF)."""

    id: str
    image: Path
    label: Path


def image_id(path: Path) -> str:
    """The id matching an image and its label: the last ``img<digits>`` of the stem."""
    found = re.findall(r"img\d+", path.stem)
    return found[-1] if found else path.stem


def _by_id(folder: Path, suffixes, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputError(f"{folder}: the {what} folder does not exist")
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in suffixes or p.name.startswith("."):
            continue
        key = image_id(p)
        if key in out:
            raise InputError(f"{folder}: {out[key].name} and {p.name} have the same image id "
                             f"'{key}'; keep one {what} per scene")
        out[key] = p
    if not out:
        raise InputError(f"{folder}: no {what} files ({', '.join(suffixes)})")
    return out


def find_pairs(images: str | Path, labels: str | Path) -> list[Pair]:
    """Match images and labels by image id.

    Raises:
        InputError: a folder is missing/empty, an id is repeated, or some images have no
            label or labels no image (the message lists them).
    """
    imgs = _by_id(Path(images), IMAGE_SUFFIXES, "image")
    labs = _by_id(Path(labels), LABEL_SUFFIXES, "label")
    lonely_images = sorted(set(imgs) - set(labs))
    lonely_labels = sorted(set(labs) - set(imgs))
    if lonely_images or lonely_labels:
        parts = []
        if lonely_images:
            parts.append(f"images without a label: {', '.join(imgs[k].name for k in lonely_images[:5])}")
        if lonely_labels:
            parts.append(f"labels without an image: {', '.join(labs[k].name for k in lonely_labels[:5])}")
        raise InputError(f"{images} / {labels}: unmatched scenes ({'; '.join(parts)}); names are "
                         "matched by their last 'img<N>' token (or the whole file stem)")
    return [Pair(k, imgs[k], labs[k]) for k in sorted(imgs)]


def read_pairs_csv(path: str | Path) -> list[Pair]:
    """Pairs from a CSV with header ``image,label``.

    Raises:
        InputError: unreadable CSV, missing columns, or a missing file (with its row).
    """
    path = Path(path)
    try:
        rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the pairs CSV ({e})") from None
    if not rows or not {"image", "label"} <= set(rows[0]):
        raise InputError(f"{path}: the pairs CSV needs a header 'image,label' and rows")
    pairs = []
    for line, row in enumerate(rows, start=2):
        image, label = (path.parent / row["image"]), (path.parent / row["label"])
        for p in (image, label):
            if not p.is_file():
                raise InputError(f"{path}, line {line}: {p} does not exist")
        pairs.append(Pair(image_id(image), image, label))
    return pairs


def split_scenes(pairs: list[Pair], path: str | Path, seed: int = 0) -> dict[str, list[Pair]]:
    """Split 70/15/15 by scene (or read the split recorded in ``path``).

    Returns:
        {"train": [...], "val": [...], "test": [...]}.

    Raises:
        InputError: the recorded split names scenes the dataset does not have.
    """
    path = Path(path)
    by_id = {p.id: p for p in pairs}
    if path.is_file():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
            parts = {k: list(recorded[k]) for k in ("train", "val", "test")}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}: not a split file written by fcnkit ({e})") from None
        unknown = sorted({i for ids in parts.values() for i in ids} - set(by_id))
        if unknown:
            raise InputError(f"{path}: the split names scenes the dataset lacks: "
                             f"{', '.join(unknown[:5])}; delete the file to split again")
        return {k: [by_id[i] for i in ids] for k, ids in parts.items()}
    ids = sorted(by_id)
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    n_val = int(round(0.15 * len(ids)))
    n_test = int(round(0.15 * len(ids)))
    parts = {"val": order[:n_val], "test": order[n_val:n_val + n_test],
             "train": order[n_val + n_test:]}
    from fcnkit.atomic import write_text

    write_text(path, json.dumps({"fcnkit_split": 1, "seed": seed, "proportions": [70, 15, 15],
                                 **{k: sorted(v) for k, v in parts.items()}}, indent=1))
    return {k: [by_id[i] for i in sorted(v)] for k, v in parts.items()}


def compute_stretch(images, bands: list[int], percentiles=(2.0, 90.0),
                    band_names: list[str] | None = None) -> dict:
    """The preprocess JSON dict (contracts.md) from the valid pixels of ``images``.

    Args:
        images: GeoTIFF paths (the training scenes).
        bands: 1-based source band indices, in model input order.
        percentiles: (P_lo, P_hi) in percent.
        band_names: names to record (default: the GeoTIFF's band descriptions, else bandN).

    Raises:
        InputError: a band index is out of range, or a band has no valid pixel.
    """
    import rasterio

    samples: list[list[np.ndarray]] = [[] for _ in bands]
    nodata = None
    for path in images:
        with rasterio.open(path) as src:
            bad = [b for b in bands if not 1 <= b <= src.count]
            if bad:
                raise InputError(f"{path}: band(s) {bad} out of range (the image has {src.count})")
            nodata = src.nodata
            described = [src.descriptions[b - 1] for b in bands]
            step = max(1, int(np.ceil(np.sqrt(src.width * src.height / STRETCH_SAMPLE))))
            shape = (len(bands), max(1, src.height // step), max(1, src.width // step))
            data = src.read(bands, out_shape=shape)
        for k in range(len(bands)):
            samples[k].append(valid_values(data[k], nodata))
    if not samples[0]:
        raise InputError("no training image to compute the stretch from")
    lo, hi = [], []
    for k, band in enumerate(bands):
        v = np.concatenate(samples[k]) if samples[k] else np.empty(0)
        if not v.size:
            raise InputError(f"band {band} has no valid pixel in the training scenes")
        a, b = np.percentile(v, percentiles)
        lo.append(float(a))
        hi.append(float(max(b, a + 1e-6)))
    names = list(band_names or [d or f"band{b}" for d, b in zip(described, bands)])
    return Stretch("percentile", lo, hi, tuple(percentiles)).to_json(bands, names, nodata)


def apply_stretch(data: np.ndarray, preprocess: dict) -> np.ndarray:
    """bands x rows x cols DN -> float32 0..255 (clip to [lo, hi], scale linearly): the very
    function `fcnkit predict --stretch model` applies (:meth:`fcnkit.geo.stretch.Stretch.apply`),
    so that inference repeats the training's preprocessing exactly.

    Raises:
        InputError: ``preprocess`` is not a valid preprocess JSON.
    """
    from fcnkit.geo.stretch import from_preprocess

    return from_preprocess(preprocess, source="the training's preprocess JSON")[0].apply(data)
