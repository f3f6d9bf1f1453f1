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
#: Rows finished and handed to the writer at a time.
FLUSH_ROWS = 64


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
    """Writer thread: (row_off, {sink: rows array}) -> windowed writes; ends on _DONE, or on
    ``stop`` (the main thread failed) once nothing is left to take."""
    failed = False
    while True:
        try:
            item = in_q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return
            continue
        if item is _DONE:
            return
        if failed:
            continue  # drain, so that the producer never blocks
        try:
            row_off, arrays = item
            for name, arr in arrays.items():
                sinks[name].write(arr, window=Window(0, row_off, arr.shape[-1], arr.shape[-2]))
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which raises it
            errors.append(e)
            stop.set()
            failed = True


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
    strips = tile_windows((scene_info.rows, scene_info.cols), plan.tile, plan.halo, plan.stride)
    blender = _Blender(plan, strips, scene_info.rows, scene_info.cols, threshold, probabilities)
    total = sum(len(s) for s in strips)
    stats = SceneStats(pixels=scene_info.rows * scene_info.cols)
    stop, errors = threading.Event(), []
    in_q: queue.Queue = queue.Queue(QUEUE_SIZE)
    out_q: queue.Queue = queue.Queue(QUEUE_SIZE)
    reader = threading.Thread(target=_reader, args=(src, strips, bands, stretch, scene_info.nodata, batch,
                                                    in_q, stop), daemon=True)
    writer = threading.Thread(target=_writer, args=(sinks, out_q, stop, errors), daemon=True)
    reader.start()
    writer.start()
    done = 0
    try:
        while (item := in_q.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            si, keep, n_part, x, chunk_valid, win = item
            for rows_block in blender.start(si):
                _put(out_q, rows_block, stop)
            probs = _predict_probs(predictor, x, tta) if x is not None else None
            blender.add(si, keep, probs, chunk_valid, win)
            stats.tiles += len(keep)
            stats.skipped += n_part - len(keep)
            done += n_part
            if progress is not None:
                progress(done, total)
            if errors:
                raise errors[0]
        for rows_block in blender.finish():
            _put(out_q, rows_block, stop)
        _put(out_q, _DONE, stop)
        writer.join()
        if errors:
            raise errors[0]
    finally:
        stop.set()
        reader.join(timeout=10)
        writer.join(timeout=10)
    return stats


class _Blender:
    """The strip accumulator: weighted class probabilities (K x tile x width) and weights
    (tile x width) of the current strip, from scene column -halo; rows shared with the next
    strip are carried over. Yields finished rows as (row_off, {sink name: array})."""

    def __init__(self, plan: TilingPlan, strips, rows, cols, threshold, probabilities):
        self.plan, self.strips, self.rows, self.cols = plan, strips, rows, cols
        self.threshold, self.probabilities = threshold, probabilities
        self.step = plan.step
        self.weight = blend_window(plan.tile, plan.halo, plan.blend, self.step)
        self.width = len(strips[0]) * self.step + 2 * plan.halo
        self.current = -1
        self.acc = self.wsum = self.valid = self.carry = None

    def start(self, si: int):
        """Begin strip ``si`` (flushing the previous one)."""
        if si == self.current:
            return
        if self.current >= 0:
            yield from self._flush(last=False)
        t = self.plan.tile
        k = self.carry[0].shape[0] if self.carry is not None else 1
        self.acc = np.zeros((k, t, self.width), np.float32)
        self.wsum = np.zeros((t, self.width), np.float32)
        self.valid = np.zeros((t, self.width), bool)
        if self.carry is not None:
            n = self.carry[1].shape[0]
            self.acc[:, :n], self.wsum[:n] = self.carry
        self.current = si

    def add(self, si, keep, probs, chunk_valid, win) -> None:
        """Accumulate the N x K x T x T ``probs`` of tiles ``keep`` of strip ``si``."""
        halo, t = self.plan.halo, self.plan.tile
        c_off = int(win.col_off) + halo
        self.valid[:, c_off:c_off + chunk_valid.shape[1]] = chunk_valid
        if probs is None:
            return
        if probs.ndim != 4 or probs.shape[2:] != (t, t):
            raise InputError(f"the model's output has shape {tuple(probs.shape)} for {t}x{t} tiles; "
                             "predict needs an output at the input's resolution (an FCN with its crop)")
        if self.acc.shape[0] != probs.shape[1]:
            if self.acc.shape[0] != 1 or self.acc.any():
                raise InputError(f"the model's class count changed between tiles ({self.acc.shape[0]} -> "
                                 f"{probs.shape[1]})")
            self.acc = np.zeros((probs.shape[1],) + self.acc.shape[1:], np.float32)
        for p, idx in zip(probs, keep):
            c = int(self.strips[si][idx].window.col_off) + halo
            self.acc[:, :, c:c + t] += p * self.weight
            self.wsum[:, c:c + t] += self.weight

    def finish(self):
        """Flush the last strip, carry included."""
        if self.current >= 0:
            yield from self._flush(last=True)

    def _flush(self, last: bool):
        """Finish the rows no later tile touches; keep the rest as the carry."""
        halo, step = self.plan.halo, self.step
        top = int(self.strips[self.current][0].window.row_off)  # scene row of accumulator row 0
        n_rows = self.acc.shape[1] if last else step
        r_from, r_to = max(0, -top), min(n_rows, self.rows - top)
        cs = slice(halo, halo + self.cols)
        for r0 in range(r_from, r_to, FLUSH_ROWS):  # row blocks: temporaries stay small on wide scenes
            sl = slice(r0, min(r_to, r0 + FLUSH_ROWS))
            w = self.wsum[sl, cs]
            p = self.acc[:, sl, cs] / np.maximum(w, 1e-12)
            ok = self.valid[sl, cs] & (w > 0)
            arrays = {"labels": _labels(p, ok, self.threshold)[None]}
            if self.probabilities:
                arrays["probabilities"] = _prob_bands(p, ok, self.probabilities)
            yield top + r0, arrays
        self.carry = None if last else (self.acc[:, step:].copy(), self.wsum[step:].copy())


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
