"""Tiled inference over one scene: ``predict_scene``.

The scene is read strip by strip (a row of tiles), each strip in column blocks of at most
:data:`BLOCK_PX` pixels, by a reader thread: one windowed read per block, stretched, its
tiles copied into reusable batch buffers. The main thread predicts full batches and blends
them block by block (:mod:`fcnkit.geo.blend`); finished parts go to a writer thread, which
writes them by window. The threads talk through bounded queues (2 items), so memory is
bounded by a block of tiles (plus a carry of 2 x halo rows across the scene), not by the
scene's height or width, and the model does not wait on I/O."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from rasterio.windows import Window

from fcnkit.errors import FcnkitError, InputError
from fcnkit.geo.blend import BlockBlender, column_blocks
from fcnkit.geo.io import read_window, valid_mask
from fcnkit.geo.tiling import blend_window, tile_step, tile_windows

_DONE = object()
QUEUE_SIZE = 2
#: Column block width, pixels of tile cores: the read, accumulation and write buffers are
#: tile x about this wide, whatever the scene's width.
BLOCK_PX = 2048


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


def _reader(src, strips, blocks, bands, stretch, nodata, buffers, out_q, stop):
    """Reader thread: per column block, one windowed read (tile rows x block width), the
    stretch, then ``("block", strip, block, valid mask, tiles, kept)``; the kept tiles (core
    not all nodata) are copied into the next free batch buffer of ``buffers`` (a ring of
    N x C x T x T float32 arrays, reused: no per-tile allocation), and each full batch goes
    out as ``("tiles", batch, [(strip, block, tile column), ...])``; batches span blocks and
    strips, so they stay full."""
    try:
        slot, n_buf, refs = 0, buffers[0].shape[0], []
        for si, strip in enumerate(strips):
            for bi, (j0, j1) in enumerate(blocks):
                part = strip[j0:j1]
                first, last = part[0].window, part[-1].window
                win = Window(first.col_off, first.row_off, last.col_off + last.width - first.col_off, first.height)
                pixels = read_window(src, win, bands)
                valid = valid_mask(pixels, nodata)
                x = stretch.apply(pixels)
                del pixels
                all_valid = bool(valid.all())
                if not all_valid:
                    x[:, ~valid] = 0.0
                t, kept = int(first.width), 0
                for j, tl in enumerate(part):
                    c = int(tl.window.col_off - first.col_off)
                    if not all_valid and not _core(valid, tl, c).any():
                        continue
                    buffers[slot][len(refs)] = x[:, :, c:c + t]
                    refs.append((si, bi, j0 + j))
                    kept += 1
                    if len(refs) == n_buf:
                        if not _put(out_q, ("tiles", buffers[slot], refs), stop):
                            return
                        slot, refs = (slot + 1) % len(buffers), []
                if not _put(out_q, ("block", si, bi, valid, len(part), kept), stop):
                    return
        if refs and not _put(out_q, ("tiles", buffers[slot][:len(refs)], refs), stop):
            return
        _put(out_q, _DONE, stop)
    except BaseException as e:  # noqa: BLE001 - handed to the main thread, which raises it
        _put(out_q, e, stop)


def _core(valid: np.ndarray, tl, c: int) -> np.ndarray:
    """The valid mask of a tile's core (``c``: the tile's column in the block window)."""
    r = int(tl.core.row_off - tl.window.row_off)
    c0 = c + int(tl.core.col_off - tl.window.col_off)
    return valid[r:r + int(tl.core.height), c0:c0 + int(tl.core.width)]


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _writer(sinks, in_q, stop, errors):
    """Writer thread: (row_off, col_off, {sink: bands x rows x cols array}) -> windowed writes; ends on _DONE, or on
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
            row_off, col_off, arrays = item
            for name, arr in arrays.items():
                sinks[name].write(arr, window=Window(col_off, row_off, arr.shape[-1], arr.shape[-2]))
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which raises it
            errors.append(e)
            stop.set()
            failed = True


def run_tiles(predictor, src, scene_info, bands, stretch, plan: TilingPlan, sinks: dict, *,
              batch: int, tta: str = "none", threshold: float | None = None,
              probabilities: str | None = None, progress: Callable[[int, int], Any] | None = None,
              block_px: int | None = None) -> SceneStats:
    """Predict every tile of an open scene and write labels (and probabilities) to ``sinks``.

    Each strip of tiles is processed in column blocks of at most ``block_px`` pixels of
    tile cores (at least one tile), so the read, accumulation and write buffers do not grow
    with the scene's width (:mod:`fcnkit.geo.blend`); the outputs do not depend on it.

    Args:
        predictor: a :class:`fcnkit.deploy.Predictor` (N x C x T x T float32 in, N x K x T x T out).
        src: the open rasterio dataset; scene_info: its :class:`fcnkit.geo.io.SceneInfo`.
        bands: 1-based band indices; stretch: a :class:`fcnkit.geo.stretch.Stretch`.
        plan: the tiling; sinks: ``{"labels": dataset, "probabilities": dataset}`` opened for writing.
        batch: tiles per model call; tta: ``none`` or ``flip``.
        threshold: road probability (class 1) at or above which a pixel is road (K = 2 or 1);
            None: argmax (K >= 2) or 0.5 (K = 1).
        probabilities: None, ``uint8`` (round(p * 254), 255 nodata) or ``float`` (float32 bits,
            stored as 16-bit floats, NaN nodata).
        progress: called with (tiles done, tiles in all).
        block_px: column block width in pixels (default :data:`BLOCK_PX`).

    Returns:
        :class:`SceneStats`.

    Raises:
        InputError: a model output that is not at the tile's resolution; read errors.
        OutputError: write errors.
    """
    strips = tile_windows((scene_info.rows, scene_info.cols), plan.tile, plan.halo, plan.stride)
    blocks = column_blocks(len(strips[0]), (block_px or BLOCK_PX) // plan.step)
    blender = BlockBlender(plan, strips, blocks, scene_info.rows, scene_info.cols, threshold, probabilities)
    total = sum(len(s) for s in strips)
    stats = SceneStats(pixels=scene_info.rows * scene_info.cols)
    stop, errors = threading.Event(), []
    in_q: queue.Queue = queue.Queue(QUEUE_SIZE)
    out_q: queue.Queue = queue.Queue(QUEUE_SIZE)
    # a batch buffer is reused once the main thread is done with it: QUEUE_SIZE queued, one
    # being predicted, one being filled
    buffers = [np.empty((max(1, batch), len(bands), plan.tile, plan.tile), np.float32)
               for _ in range(QUEUE_SIZE + 2)]
    reader = threading.Thread(target=_reader, args=(src, strips, blocks, bands, stretch, scene_info.nodata,
                                                    buffers, in_q, stop), daemon=True)
    writer = threading.Thread(target=_writer, args=(sinks, out_q, stop, errors), daemon=True)
    reader.start()
    writer.start()
    done = 0
    try:
        while (item := in_q.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            if item[0] == "block":
                _, si, bi, valid, n_part, kept = item
                blender.set_valid(si, bi, valid)
                stats.skipped += n_part - kept
                done += n_part - kept
            else:
                _, x, refs = item
                for part in blender.add(refs, _predict_probs(predictor, x, tta)):
                    _put(out_q, part, stop)
                stats.tiles += len(refs)
                done += len(refs)
            if progress is not None:
                progress(done, total)
            if errors:
                raise errors[0]
        for part in blender.finish():
            _put(out_q, part, stop)
        _put(out_q, _DONE, stop)
        writer.join()
        if errors:
            raise errors[0]
    finally:
        stop.set()
        reader.join(timeout=10)
        writer.join(timeout=10)
    return stats


def check_path_is_scene(path: Path) -> None:
    """Raise InputError when ``path`` is not a file."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")


__all__ = ["TilingPlan", "SceneStats", "plan_tiling", "run_tiles", "FcnkitError"]
