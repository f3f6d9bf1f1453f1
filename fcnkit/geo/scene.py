"""Tiled inference over one scene: ``predict_scene``.

The scene is read in strips of tiles (one row of tiles at a time, cut into chunks of
``batch`` tiles) by a reader thread, stretched, predicted in batches, blended into a strip
accumulator, and the finished rows go to a writer thread; both threads talk through bounded
queues (2 items), so memory is bounded by a strip, not by the scene, and the model does not
wait on I/O. Rows are final one strip later (the halo below a strip is shared with the next).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from rasterio.windows import Window

from fcnkit.errors import FcnkitError, InputError
from fcnkit.geo.io import LABEL_NODATA, read_window, valid_mask
from fcnkit.geo.tiling import blend_window, tile_step, tile_windows

_DONE = object()
QUEUE_SIZE = 2


@dataclass
class TilingPlan:
    """Tile, halo, output stride and step (pixels), and the blend mode of a run."""

    tile: int
    halo: int
    stride: int
    blend: str

    @property
    def step(self) -> int:
        return tile_step(self.tile, self.halo, self.stride)


@dataclass
class SceneStats:
    """Counts of one scene: tiles predicted and skipped (all nodata), pixels, seconds."""

    tiles: int = 0
    skipped: int = 0
    pixels: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def plan_tiling(info, tile: int | None, halo: int | None, blend: str) -> TilingPlan:
    """The tiling of a model: ``tile`` (default: the model's fixed tile, else 512), ``halo``
    (default: the model's recommended halo capped at tile / 4), both multiples of the output
    stride where the model states one.

    Raises:
        InputError: a tile that a fixed-size model cannot take, or a halo leaving no core.
    """
    stride = int(info.output_stride or 1)
    fixed = info.tile
    if fixed is not None and fixed[0] != fixed[1]:
        raise InputError(f"the model is built for {fixed[0]}x{fixed[1]} tiles; predict needs square tiles")
    if tile is None:
        tile = fixed[0] if fixed is not None else 512
    elif fixed is not None and tile != fixed[0]:
        raise InputError(f"the model is built for {fixed[0]}x{fixed[1]} tiles; --tile {tile} needs an export at "
                         "that tile or with --dynamic-hw")
    if halo is None:
        rec = info.halo if info.halo is not None else tile // 8
        halo = min(rec, tile // 4)
    halo = -(-int(halo) // stride) * stride  # tile origins stay multiples of the output stride
    plan = TilingPlan(int(tile), int(halo), stride, blend)
    plan.step  # noqa: B018 - raises when the halo leaves no core
    blend_window(plan.tile, plan.halo, blend)
    return plan


def _predict_probs(predictor, x: np.ndarray, tta: str) -> np.ndarray:
    """N x K x H x W probabilities for N x C x H x W tiles; ``tta="flip"`` averages the
    identity and the 3 flips (horizontal, vertical, both), each undone, as CRESI does."""
    if tta == "none":
        return predictor.predict(x)
    acc = None
    for axes in ((), (3,), (2,), (2, 3)):
        xi = np.flip(x, axes) if axes else x
        p = predictor.predict(np.ascontiguousarray(xi))
        p = np.flip(p, axes) if axes else p
        acc = p.astype(np.float32) if acc is None else acc + p
    return acc / 4.0


def _reader(src, strips, bands, stretch, nodata, chunk, out_q, stop):
    """Reader thread: per chunk of tiles, (strip index, tile indices, N x C x T x T float32,
    valid mask of the chunk window, chunk window)."""
    try:
        for si, strip in enumerate(strips):
            for k in range(0, len(strip), chunk):
                part = strip[k:k + chunk]
                first, last = part[0].window, part[-1].window
                win = Window(first.col_off, first.row_off, last.col_off + last.width - first.col_off, first.height)
                pixels = read_window(src, win, bands)
                valid = valid_mask(pixels, nodata)
                x = stretch.apply(pixels)
                x[:, ~valid] = 0.0
                t = int(first.width)
                tiles, keep = [], []
                for j, tl in enumerate(part):
                    c = int(tl.window.col_off - first.col_off)
                    core = valid[int(tl.core.row_off - tl.window.row_off):][:int(tl.core.height),
                                 c + int(tl.core.col_off - tl.window.col_off):][:, :int(tl.core.width)]
                    if core.any():
                        tiles.append(x[:, :, c:c + t])
                        keep.append(k + j)
                batch = np.stack(tiles) if tiles else None
                if not _put(out_q, (si, keep, len(part), batch, valid, win), stop):
                    return
        _put(out_q, _DONE, stop)
    except BaseException as e:  # noqa: BLE001 - handed to the main thread, which raises it
        _put(out_q, e, stop)


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _writer(sinks, in_q, stop, errors):
    """Writer thread: (row_off, {sink: rows array}) -> windowed writes."""
    try:
        while True:
            item = in_q.get()
            if item is _DONE:
                return
            row_off, arrays = item
            for name, arr in arrays.items():
                dst = sinks[name]
                dst.write(arr, window=Window(0, row_off, arr.shape[-1], arr.shape[-2]))
    except BaseException as e:  # noqa: BLE001
        errors.append(e)
        stop.set()
        while True:  # drain so that the producer never blocks
            try:
                if in_q.get(timeout=0.1) is _DONE:
                    return
            except queue.Empty:
                if stop.is_set():
                    return


def run_tiles(predictor, src, scene_info, bands, stretch, plan: TilingPlan, sinks: dict, *,
              batch: int, tta: str = "none", threshold: float | None = None,
              probabilities: str | None = None, progress: Callable[[int, int], Any] | None = None) -> SceneStats:
    """Predict every tile of an open scene and write labels (and probabilities) to ``sinks``.

    Args:
        predictor: a :class:`fcnkit.deploy.Predictor` (N x C x T x T float32 in, N x K x T x T out).
        src: the open rasterio dataset; scene_info: its :class:`fcnkit.geo.io.SceneInfo`.
        bands: 1-based band indices; stretch: a :class:`fcnkit.geo.stretch.Stretch`.
        plan: the tiling; sinks: ``{"labels": dataset, "probabilities": dataset}`` opened for writing.
        batch: tiles per chunk; tta: ``none`` or ``flip``.
        threshold: road probability (class 1) at or above which a pixel is road (K = 2 or 1);
            None: argmax (K >= 2) or 0.5 (K = 1).
        probabilities: None, ``uint8`` (round(p * 254), 255 nodata) or ``float`` (float32 bits,
            stored as 16-bit floats, NaN nodata).
        progress: called with (tiles done, tiles in all).

    Returns:
        :class:`SceneStats`.

    Raises:
        InputError: a model output that is not at the tile's resolution; read errors.
        OutputError: write errors.
    """
    rows, cols = scene_info.rows, scene_info.cols
    strips = tile_windows((rows, cols), plan.tile, plan.halo, plan.stride)
    step, halo, t = plan.step, plan.halo, plan.tile
    weight = blend_window(t, halo, plan.blend, step)
    width = len(strips[0]) * step + 2 * halo  # accumulator columns, from column -halo
    total = sum(len(s) for s in strips)
    stats = SceneStats(pixels=rows * cols)
    stop, errors = threading.Event(), []
    in_q: queue.Queue = queue.Queue(QUEUE_SIZE)
    out_q: queue.Queue = queue.Queue(QUEUE_SIZE)
    reader = threading.Thread(target=_reader, args=(src, strips, bands, stretch, scene_info.nodata, batch,
                                                    in_q, stop), daemon=True)
    writer = threading.Thread(target=_writer, args=(sinks, out_q, stop, errors), daemon=True)
    reader.start()
    writer.start()
    acc = wsum = carry = valid = None
    done = 0
    current = -1
    try:
        while True:
            item = in_q.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            si, keep, n_part, x, chunk_valid, win = item
            if si != current:
                if current >= 0:
                    carry = _flush(acc, wsum, valid, strips[current][0], step, halo, rows, cols, out_q, stop,
                                   threshold, probabilities)
                acc, wsum, valid = _new_strip(carry, t, width, halo)
                current = si
            c_off = int(win.col_off) + halo
            valid[:, c_off:c_off + chunk_valid.shape[1]] = chunk_valid
            if x is not None:
                probs = _predict_probs(predictor, x, tta)
                if probs.ndim != 4 or probs.shape[2:] != x.shape[2:]:
                    raise InputError(f"the model's output has shape {tuple(probs.shape)} for {t}x{t} tiles; "
                                     "predict needs an output at the input's resolution (an FCN with its crop)")
                if acc is None or acc.shape[0] != probs.shape[1]:
                    acc, wsum = _resize_classes(acc, wsum, probs.shape[1])
                for p, idx in zip(probs, keep):
                    c = int(strips[si][idx].window.col_off) + halo
                    acc[:, :, c:c + t] += p * weight
                    wsum[:, c:c + t] += weight
            stats.tiles += len(keep)
            stats.skipped += n_part - len(keep)
            done += n_part
            if progress is not None:
                progress(done, total)
            if errors:
                raise errors[0]
        if current >= 0:
            _flush(acc, wsum, valid, strips[current][0], step, halo, rows, cols, out_q, stop, threshold,
                   probabilities, last=True)
        _put(out_q, _DONE, stop)
        writer.join()
        if errors:
            raise errors[0]
    except BaseException:
        stop.set()
        raise
    finally:
        stop.set()
        reader.join(timeout=10)
    return stats


def _new_strip(carry, t, width, halo):
    k = carry[0].shape[0] if carry is not None else 1
    acc = np.zeros((k, t, width), np.float32)
    wsum = np.zeros((t, width), np.float32)
    if carry is not None:
        n = carry[1].shape[0]
        acc[:, :n] = carry[0]
        wsum[:n] = carry[1]
    return acc, wsum, np.zeros((t, width), bool)


def _resize_classes(acc, wsum, k):
    if acc.shape[0] == 1 and not acc.any():
        return np.zeros((k,) + acc.shape[1:], np.float32), wsum
    raise InputError(f"the model's class count changed between tiles ({acc.shape[0]} -> {k})")


def _flush(acc, wsum, valid, first_tile, step, halo, rows, cols, out_q, stop, threshold, probabilities,
           last=False):
    """Finish the rows of a strip that no later tile touches and queue them for writing;
    returns the carry (the accumulator rows shared with the next strip)."""
    top = int(first_tile.window.row_off)  # scene row of accumulator row 0
    n_rows = acc.shape[1] if last else step
    r_from, r_to = max(0, -top), min(n_rows, rows - top)
    if r_to > r_from:
        sl = slice(r_from, r_to)
        cs = slice(halo, halo + cols)
        w = wsum[sl, cs]
        p = acc[:, sl, cs] / np.maximum(w, 1e-12)
        ok = valid[sl, cs] & (w > 0)
        arrays = {"labels": _labels(p, ok, threshold)[None]}
        if probabilities:
            arrays["probabilities"] = _prob_bands(p, ok, probabilities)
        _put(out_q, (top + r_from, arrays), stop)
    if last:
        return None
    return acc[:, step:].copy(), wsum[step:].copy()


def _labels(p, ok, threshold):
    k = p.shape[0]
    if k == 1:
        lab = (p[0] >= (0.5 if threshold is None else threshold)).astype(np.uint8)
    elif threshold is not None and k == 2:
        lab = (p[1] >= threshold).astype(np.uint8)
    else:
        lab = np.argmax(p, axis=0).astype(np.uint8)
    lab[~ok] = LABEL_NODATA
    return lab


def _prob_bands(p, ok, kind):
    road = p[1:2] if p.shape[0] == 2 else p
    if kind == "uint8":
        out = np.rint(np.clip(road, 0, 1) * 254).astype(np.uint8)
        out[:, ~ok] = 255
    else:
        out = road.astype(np.float32)
        out[:, ~ok] = np.nan
    return out


def check_path_is_scene(path: Path) -> None:
    """Raise InputError when ``path`` is not a file."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")


__all__ = ["TilingPlan", "SceneStats", "plan_tiling", "run_tiles", "FcnkitError"]
