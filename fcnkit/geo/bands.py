"""Band presets: which source bands (1-based, as GDAL and rasterio count them) feed a model,
in model input order.

WorldView-3 multispectral (MUL) band centres in nanometres, from DigitalGlobe's WorldView-3
data sheet (the SpaceNet roads imagery): coastal 427, blue 478, green 546, yellow 608,
red 659, red edge 724, NIR1 833, NIR2 949.
"""

from __future__ import annotations

from dataclasses import dataclass

from fcnkit.errors import InputError

#: WorldView-3 MUL bands in file order: (name, centre wavelength in nm).
WV3_BANDS = (("coastal", 427), ("blue", 478), ("green", 546), ("yellow", 608), ("red", 659),
             ("red_edge", 724), ("nir1", 833), ("nir2", 949))


@dataclass(frozen=True)
class BandPreset:
    """A named choice of source bands.

    Attributes:
        name: the preset name (``wv3-8band``...).
        bands: 1-based source band indices in model input order.
        band_names: a name per chosen band (model input order).
        wavelengths_nm: centre wavelength per chosen band, nanometres.
        source_bands: the band count of the rasters the preset is for (8 for WorldView-3 MUL).
    """

    name: str
    bands: tuple[int, ...]
    band_names: tuple[str, ...]
    wavelengths_nm: tuple[int, ...]
    source_bands: int = 8


def _wv3(name: str, bands: tuple[int, ...]) -> BandPreset:
    return BandPreset(name, bands, tuple(WV3_BANDS[b - 1][0] for b in bands),
                      tuple(WV3_BANDS[b - 1][1] for b in bands))


#: The presets by name: all 8 bands; true colour (red, green, blue); red edge + NIR1 + NIR2
#: (the R/NIR model of the SpaceNet roads article).
PRESETS: dict[str, BandPreset] = {p.name: p for p in (
    _wv3("wv3-8band", (1, 2, 3, 4, 5, 6, 7, 8)),
    _wv3("wv3-rgb", (5, 3, 2)),
    _wv3("wv3-rnir", (6, 7, 8)),
)}


def parse_bands(spec: str | BandPreset | list[int] | tuple[int, ...] | None, *, scene_bands: int,
                model_bands: int, model_band_names: list[str] | None = None,
                scene: str = "the scene") -> tuple[int, ...]:
    """Resolve a ``--bands`` value to 1-based source band indices and check them.

    Args:
        spec: a preset name, a :class:`BandPreset`, a comma-separated list ("5,3,2"), a
            sequence of ints, or None (all bands of the scene when their count is the model's,
            ``wv3-8band`` semantics).
        scene_bands: band count of the raster; model_bands: C, the model's input channels.
        model_band_names: the model's band names, for the error messages.

    Raises:
        InputError: unknown preset, bad list, an index outside 1..scene_bands, a preset for
            8-band rasters on another band count, or a count that is not the model's (the
            message names the model's bands, the scene's band count and the presets).
    """
    names = ", ".join(PRESETS)
    model_desc = (f"{model_bands} bands ({', '.join(model_band_names)})" if model_band_names
                  else f"{model_bands} bands")
    if spec is None:
        bands = tuple(range(1, scene_bands + 1))
    elif isinstance(spec, BandPreset):
        bands = _preset_bands(spec, scene_bands, scene)
    elif isinstance(spec, str) and spec in PRESETS:
        bands = _preset_bands(PRESETS[spec], scene_bands, scene)
    elif isinstance(spec, str):
        try:
            bands = tuple(int(v) for v in spec.split(",") if v.strip())
        except ValueError:
            raise InputError(f"--bands '{spec}' is neither a preset ({names}) nor a comma-separated list "
                             "of 1-based band numbers") from None
    else:
        bands = tuple(int(v) for v in spec)
    if not bands:
        raise InputError("--bands names no band")
    bad = [b for b in bands if not 1 <= b <= scene_bands]
    if bad:
        raise InputError(f"{scene} has {scene_bands} band(s); --bands names {bad}, outside 1..{scene_bands}")
    if len(bands) != model_bands:
        raise InputError(f"band count mismatch: the model takes {model_desc}, {scene} has {scene_bands} "
                         f"band(s) and {len(bands)} were chosen ({','.join(map(str, bands))}); choose "
                         f"{model_bands} with --bands (a 1-based list, or a preset for 8-band WorldView-3 "
                         f"rasters: {names})")
    return bands


def _preset_bands(preset: BandPreset, scene_bands: int, scene: str) -> tuple[int, ...]:
    if scene_bands != preset.source_bands:
        raise InputError(f"preset {preset.name} is for {preset.source_bands}-band WorldView-3 rasters; {scene} "
                         f"has {scene_bands} band(s): give a 1-based band list with --bands instead")
    return preset.bands
