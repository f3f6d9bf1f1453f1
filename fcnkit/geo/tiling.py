"""Tiles with a halo over a scene, and the blending windows that join their predictions.

A scene of rows x cols pixels is covered by *cores* of ``step = tile - 2 * halo`` pixels
(a multiple of the output stride), laid edge to edge from (0, 0); each tile is its core grown
by ``halo`` on every side, so neighbouring tiles overlap by ``2 * halo`` and tile origins
``k * step - halo`` are multiples of the output stride when the halo is. Tiles reaching
outside the scene are filled by reflection (:func:`fcnkit.geo.io.read_window`).

Blending: each tile's prediction is multiplied by a weight window (tile x tile) and
accumulated with the weights, then divided by the accumulated weight:

- ``none``: 1 on the core, 0 on the halo (each pixel from exactly one tile: the centre crop);
- ``linear``: per axis ``min(1, (d + 0.5) / (2 * halo))`` with d the distance to the tile
  edge in pixels, a ramp across the overlap;
- ``hann``: the separable Hann window over the tile, ``sin^2(pi (i + 1) / (tile + 1))``
  (scipy.signal.windows.hann(tile + 2)[1:-1]: no zero weight, so a pixel is never lost).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from fcnkit.errors import InputError

BLENDS = ("hann", "linear", "none")


@dataclass(frozen=True)
class Tile:
    """One tile: ``window`` (tile x tile, may reach outside the scene), ``core`` (the part it
    owns, clipped to the scene), and its (row, col) index in the tile grid."""

    window: Window
    core: Window
    row: int
    col: int


def tile_step(tile: int, halo: int, stride: int = 1) -> int:
    """Core size ``tile - 2 * halo`` rounded down to a multiple of ``stride`` (pixels).

    Raises:
        InputError: the halo leaves no core (the message gives the largest halo allowed).
    """
    if tile < 1 or halo < 0 or stride < 1:
        raise InputError(f"tile ({tile}) and stride ({stride}) must be >= 1 and halo ({halo}) >= 0")
    step = (tile - 2 * halo) // stride * stride
    if step < 1:
        raise InputError(f"a halo of {halo} px leaves no core in a {tile} px tile (output stride {stride}); "
                         f"use a halo below {(tile - stride) // 2 + 1} or a larger --tile")
    return step


def tile_windows(shape: tuple[int, int], tile: int, halo: int, stride: int = 1) -> list[list[Tile]]:
    """The tiles over a scene, as strips (rows of tiles) in reading order.

    Args:
        shape: (rows, cols) of the scene in pixels.
        tile: tile size in pixels (square tiles, the model's input H = W).
        halo: overlap per side in pixels.
        stride: the model's output stride; cores are multiples of it.

    Returns:
        a list of strips, each a list of :class:`Tile` (rasterio ``Window(col_off, row_off,
        width, height)``).

    Raises:
        InputError: bad sizes (see :func:`tile_step`).
    """
    rows, cols = shape
    if rows < 1 or cols < 1:
        raise InputError(f"the scene has no pixels ({rows} x {cols})")
    step = tile_step(tile, halo, stride)
    strips = []
    for i, r0 in enumerate(range(0, rows, step)):
        strip = []
        for j, c0 in enumerate(range(0, cols, step)):
            core = Window(c0, r0, min(step, cols - c0), min(step, rows - r0))
            strip.append(Tile(Window(c0 - halo, r0 - halo, tile, tile), core, i, j))
        strips.append(strip)
    return strips


def blend_window(tile: int, halo: int, blend: str, step: int | None = None) -> np.ndarray:
    """The tile x tile float32 weight window of a blend mode (see the module docstring).

    Raises:
        InputError: an unknown blend mode.
    """
    if blend not in BLENDS:
        raise InputError(f"--blend must be one of {', '.join(BLENDS)}, got '{blend}'")
    i = np.arange(tile, dtype=np.float64)
    if blend == "none":
        step = tile - 2 * halo if step is None else step
        w1 = ((i >= halo) & (i < halo + step)).astype(np.float64)
    elif blend == "linear":
        d = np.minimum(i, tile - 1 - i)
        w1 = np.minimum(1.0, (d + 0.5) / max(1, 2 * halo))
    else:
        w1 = np.sin(np.pi * (i + 1) / (tile + 1)) ** 2
    return np.outer(w1, w1).astype(np.float32)
