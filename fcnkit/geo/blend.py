"""The blending accumulator of tiled inference, in column blocks.

Each strip (a row of tiles) is processed in *column blocks* of at most ``block_tiles`` tiles.
A block's tiles are weighted (:func:`fcnkit.geo.tiling.blend_window`) and summed with their
weights into a block accumulator, K x tile x (n * step + overlap) float32 (overlap = tile -
step, the columns a tile shares with the next); when the block is complete, the rows and
columns no later tile touches are divided by the weight sum and handed on as labels (and
probabilities). What later tiles still add to is carried:

- the *column carry*: the block's right overlap (K x tile x overlap), the start of the next
  block of the same strip;
- the *row carry*: the rows below ``step`` (K x overlap x scene width), the start of the
  next strip.

So the buffers are O(tile x block width) plus the row carry, O(overlap x scene width)
(overlap = 2 x halo rows, not a whole strip). Contributions are summed in the same order as
one accumulator over the whole strip (the row carry, then the tiles from left to right), so
the result does not depend on the block width, bit for bit.
"""

from __future__ import annotations

import numpy as np

from fcnkit.errors import InputError
from fcnkit.geo.io import LABEL_NODATA
from fcnkit.geo.tiling import blend_window

#: Rows finished and handed to the writer at a time (temporaries stay small on wide blocks).
FLUSH_ROWS = 64


def column_blocks(n_tiles: int, block_tiles: int) -> list[tuple[int, int]]:
    """The column blocks of a strip of ``n_tiles`` tiles: [(first tile, end tile), ...],
    each at most ``block_tiles`` tiles (>= 1)."""
    block_tiles = max(1, int(block_tiles))
    return [(j0, min(n_tiles, j0 + block_tiles)) for j0 in range(0, n_tiles, block_tiles)]


class BlockBlender:
    """Blends tile predictions (N x K x T x T probabilities) block by block and yields the
    finished parts as ``(row_off, col_off, {"labels": 1 x rows x cols uint8,
    "probabilities": bands x rows x cols})`` in scene pixels (see the module docstring).

    Blocks are numbered ``q = strip * n_blocks + block`` and finished in that order; the
    valid mask of a block (tile x block width bool, False where every band is nodata) must be
    given (:meth:`set_valid`) before the block finishes.
    """

    def __init__(self, plan, strips, blocks, rows: int, cols: int, threshold, probabilities):
        self.plan, self.strips, self.blocks, self.rows, self.cols = plan, strips, blocks, rows, cols
        self.threshold, self.probabilities = threshold, probabilities
        t, self.step = plan.tile, plan.step
        self.ov = t - self.step
        self.weight = blend_window(t, plan.halo, plan.blend, self.step)
        self.width = len(strips[0]) * self.step + self.ov  # accumulator columns, from scene column -halo
        self.max_w = max(j1 - j0 for j0, j1 in blocks) * self.step + self.ov
        self.n_blocks, self.current, self.k, self.k_fixed = len(blocks), -1, 1, False
        self.pending_valid: dict[int, np.ndarray] = {}
        self._allocate(1)

    def _allocate(self, k: int) -> None:
        t = self.plan.tile
        self.k = k
        self.acc_buf = np.zeros((k, t, self.max_w), np.float32)
        self.wsum_buf = np.zeros((t, self.max_w), np.float32)
        self.tmp = np.empty((k, t, t), np.float32)
        self.row_acc = np.zeros((k, self.ov, self.width), np.float32)
        self.row_w = np.zeros((self.ov, self.width), np.float32)
        self.col_acc = np.zeros((k, t, self.ov), np.float32)
        self.col_w = np.zeros((t, self.ov), np.float32)

    def set_valid(self, si: int, bi: int, valid: np.ndarray) -> None:
        """The valid mask of block ``bi`` of strip ``si`` (tile x block width bool)."""
        self.pending_valid[si * self.n_blocks + bi] = valid

    def add(self, refs, probs: np.ndarray):
        """Accumulate ``probs`` (N x K x T x T) of the tiles ``refs`` [(strip, block, tile
        column), ...], in processing order; yields the parts finished on the way.

        Raises:
            InputError: an output not at the tile's resolution, or a class count that changes.
        """
        t = self.plan.tile
        if probs.ndim != 4 or probs.shape[2:] != (t, t):
            raise InputError(f"the model's output has shape {tuple(probs.shape)} for {t}x{t} tiles; "
                             "predict needs an output at the input's resolution (an FCN with its crop)")
        if probs.shape[1] != self.k:
            if self.k_fixed:
                raise InputError(f"the model's class count changed between tiles ({self.k} -> {probs.shape[1]})")
            self._allocate(probs.shape[1])  # nothing accumulated yet: every earlier block was nodata
        self.k_fixed = True
        for p, (si, bi, j) in zip(probs, refs):
            yield from self._advance(si * self.n_blocks + bi)
            c = (j - self.blocks[bi][0]) * self.step
            if p.dtype == np.float32:
                np.multiply(p, self.weight, out=self.tmp)
                self.acc[:, :, c:c + t] += self.tmp
            else:
                self.acc[:, :, c:c + t] += p * self.weight
            self.wsum[:, c:c + t] += self.weight

    def finish(self):
        """Finish every block left (the last ones, and trailing all-nodata blocks)."""
        yield from self._advance(len(self.strips) * self.n_blocks)

    def _advance(self, q: int):
        total = len(self.strips) * self.n_blocks
        while self.current < q:
            if self.current >= 0:
                yield from self._flush()
            self.current += 1
            if self.current < total:
                self._start()

    def _start(self) -> None:
        """Begin block ``current``: zeros, the row carry above it, the column carry left of it."""
        bi = self.current % self.n_blocks
        j0, j1 = self.blocks[bi]
        w, g0 = (j1 - j0) * self.step + self.ov, j0 * self.step
        self.acc, self.wsum = self.acc_buf[:, :, :w], self.wsum_buf[:, :w]
        self.acc.fill(0.0)
        self.wsum.fill(0.0)
        self.acc[:, :self.ov] = self.row_acc[:, :, g0:g0 + w]
        self.wsum[:self.ov] = self.row_w[:, g0:g0 + w]
        if bi > 0:
            self.acc[:, :, :self.ov] = self.col_acc
            self.wsum[:, :self.ov] = self.col_w

    def _flush(self):
        """Finish block ``current``: yield its rows above ``step`` (all rows in the last
        strip) over the columns it owns; keep the carries."""
        si, bi = divmod(self.current, self.n_blocks)
        j0, j1 = self.blocks[bi]
        halo, step, g0 = self.plan.halo, self.step, j0 * self.step
        last_strip, last_block = si == len(self.strips) - 1, bi == self.n_blocks - 1
        own = self.acc.shape[2] if last_block else (j1 - j0) * step  # columns no later block touches
        valid = self.pending_valid.pop(self.current)
        top = int(self.strips[si][0].window.row_off)  # scene row of accumulator row 0
        n_rows = self.acc.shape[1] if last_strip else step
        r_from, r_to = max(0, -top), min(n_rows, self.rows - top)
        c_from, c_to = max(0, halo - g0), min(own, self.cols + halo - g0)  # local columns inside the scene
        for r0 in range(r_from, r_to, FLUSH_ROWS):
            rs, cs = slice(r0, min(r_to, r0 + FLUSH_ROWS)), slice(c_from, c_to)
            w = self.wsum[rs, cs]
            p = self.acc[:, rs, cs] / np.maximum(w, 1e-12)
            ok = valid[rs, cs] & (w > 0)
            arrays = {"labels": labels_of(p, ok, self.threshold)[None]}
            if self.probabilities:
                arrays["probabilities"] = probability_bands(p, ok, self.probabilities)
            yield top + r0, g0 + c_from - halo, arrays
        if not last_strip:
            self.row_acc[:, :, g0:g0 + own] = self.acc[:, step:, :own]
            self.row_w[:, g0:g0 + own] = self.wsum[step:, :own]
        if not last_block:
            self.col_acc[...] = self.acc[:, :, own:own + self.ov]
            self.col_w[...] = self.wsum[:, own:own + self.ov]


def labels_of(p: np.ndarray, ok: np.ndarray, threshold) -> np.ndarray:
    """rows x cols uint8 labels of K x rows x cols probabilities: argmax, or ``p(road) >=
    threshold`` (K = 2, or K = 1 with 0.5 by default); LABEL_NODATA where not ``ok``."""
    k = p.shape[0]
    if k == 1:
        lab = (p[0] >= (0.5 if threshold is None else threshold)).astype(np.uint8)
    elif threshold is not None and k == 2:
        lab = (p[1] >= threshold).astype(np.uint8)
    else:
        lab = np.argmax(p, axis=0).astype(np.uint8)
    lab[~ok] = LABEL_NODATA
    return lab


def probability_bands(p: np.ndarray, ok: np.ndarray, kind: str) -> np.ndarray:
    """The probability output bands (class 1 of a 2-class model, else every class):
    ``uint8`` round(p * 254) with 255 where not ``ok``, or float32 with NaN there."""
    road = p[1:2] if p.shape[0] == 2 else p
    if kind == "uint8":
        out = np.rint(np.clip(road, 0, 1) * 254).astype(np.uint8)
        out[:, ~ok] = 255
    else:
        out = road.astype(np.float32)
        out[:, ~ok] = np.nan
    return out
