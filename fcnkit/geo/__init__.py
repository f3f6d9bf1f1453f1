"""fcnkit.geo: rasters for road models (rasterio windows, bands, stretch, tiled inference).

Sees a Predictor and rasters, nothing of Caffe (DESIGN.md, "The road side").

The public API (imported lazily, so that ``import fcnkit.geo`` stays light):

- :func:`read_window` (bands x rows x cols, reflection outside the scene),
  :func:`tile_windows` (rasterio ``Window`` tiles with a halo), :func:`stretch` and
  :func:`percentile_stretch` (SpaceNet article contrast stretch), :class:`BandPreset` and
  :data:`PRESETS` (WorldView-3);
- :func:`predict_scene` (one scene to georeferenced outputs), :func:`predict_scenes` (many,
  locally or on Ray), :class:`SceneOptions`.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "read_window": "fcnkit.geo.io", "open_scene": "fcnkit.geo.io",
    "tile_windows": "fcnkit.geo.tiling", "blend_window": "fcnkit.geo.tiling",
    "stretch": "fcnkit.geo.stretch", "percentile_stretch": "fcnkit.geo.stretch", "Stretch": "fcnkit.geo.stretch",
    "BandPreset": "fcnkit.geo.bands", "PRESETS": "fcnkit.geo.bands",
    "predict_scene": "fcnkit.geo.predict", "SceneOptions": "fcnkit.geo.predict",
    "predict_scenes": "fcnkit.geo.batch", "expand_scenes": "fcnkit.geo.batch",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fcnkit.geo' has no attribute '{name}'")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
