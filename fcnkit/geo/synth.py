"""Synthetic 8-band WorldView-3 road scenes: GeoTIFF (uint16, 11-bit DN, UTM) + road GeoJSON
+ the true road label raster. For tests, benchmarks and demos; never a substitute for real data.

Land cover (vegetation, bare soil, concrete, roofs with shadows, water) and asphalt roads get
reflectances at the eight WorldView-3 MUL band centres (coastal 427, blue 478, green 546,
yellow 608, red 659, red edge 724, NIR1 833, NIR2 949 nm). The values in :data:`SPECTRA` are
approximate, rounded readings of typical spectra of the USGS Spectral Library Version 7
(splib07a, Kokaly et al. 2017, USGS Data Series 1035: "Lawn_Grass GDS91", "Asphalt_Road
GDS376", "Concrete_Road GDS375", "Terra-cotta roof tile", "Seawater", dry soils) and the
ECOSTRESS spectral library (Meerdink et al. 2019, manmade "asphalt" / "concrete" entries), at
the band centres only: they keep the contrasts that matter (asphalt dark and flat, weakest
in red edge and NIR compared with vegetation, whose red edge/NIR plateau is bright: the
SpaceNet roads article's Figure 5 argument), not the exact curves. DN = round(reflectance
x :data:`GAIN` + Gaussian noise), clipped to the 11-bit range 1..2047 (0 is nodata).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcnkit.errors import InputError

#: Reflectance (0..1) at the 8 WorldView-3 band centres, per material (see module docstring).
SPECTRA = {
    "asphalt": (0.060, 0.065, 0.070, 0.075, 0.078, 0.082, 0.088, 0.095),
    "vegetation": (0.035, 0.045, 0.100, 0.075, 0.050, 0.250, 0.450, 0.460),
    "soil": (0.100, 0.120, 0.170, 0.210, 0.250, 0.280, 0.310, 0.330),
    "concrete": (0.240, 0.270, 0.300, 0.320, 0.330, 0.340, 0.350, 0.355),
    "roof": (0.060, 0.070, 0.100, 0.170, 0.250, 0.300, 0.330, 0.350),
    "water": (0.070, 0.070, 0.060, 0.040, 0.030, 0.020, 0.010, 0.005),
    "shadow": (0.040, 0.035, 0.030, 0.025, 0.022, 0.020, 0.020, 0.020),
}
#: DN per unit reflectance (11-bit WorldView-3 DN; reflectance 0.68 reaches 2047).
GAIN = 3000.0
#: Default CRS: WGS 84 / UTM zone 11N (Las Vegas, SpaceNet AOI 2).
UTM_CRS = "EPSG:32611"
MAX_SIZE = 8192


@dataclass
class SceneInfo:
    """What :func:`make_scene` wrote: paths, size (pixels), ground sampling distance (m),
    CRS, road count and road-pixel fraction of the label."""

    image: Path
    geojson: Path
    label: Path
    size: int
    gsd: float
    crs: str
    roads: int
    road_fraction: float


def _roads(rng, size: int, gsd: float, x0: float, y0: float, count: int):
    """Road LineStrings (UTM metres) crossing the scene edge to edge, with widths (m)."""
    from shapely.geometry import LineString

    extent = size * gsd
    roads = []
    for k in range(count):
        width = float(rng.choice([6.0, 8.0, 12.0]))
        t = rng.uniform(0.1, 0.9) * extent
        slope = rng.uniform(-0.3, 0.3) * extent
        bend = rng.uniform(-0.15, 0.15) * extent
        if k % 2 == 0:  # west-east, with one bend in the middle
            pts = [(x0 - gsd, y0 - t), (x0 + extent / 2, y0 - t - bend), (x0 + extent + gsd, y0 - t - slope)]
        else:
            pts = [(x0 + t, y0 + gsd), (x0 + t + bend, y0 - extent / 2), (x0 + t + slope, y0 - extent - gsd)]
        roads.append((LineString(pts), width))
    return roads


def _noded(lines):
    """The road lines with one shared vertex at every crossing, as SpaceNet's road labels are
    noded: apls builds its graph from line vertices only, so two lines that cross without a
    common vertex would be two unconnected roads. The geometry is unchanged (a vertex is
    inserted on a straight segment); each crossing point is computed once and the same
    coordinates go into both lines, so both transform to the same lon/lat."""
    from shapely.geometry import LineString, Point

    crossings: list[list[tuple[float, float]]] = [[] for _ in lines]
    for i in range(len(lines)):
        for j in range(i + 1, len(lines)):
            hit = lines[i][0].intersection(lines[j][0])
            points = [(p.x, p.y) for p in getattr(hit, "geoms", [hit])
                      if not p.is_empty and p.geom_type == "Point"]
            crossings[i] += points
            crossings[j] += points
    noded = []
    for (line, width), points in zip(lines, crossings):
        along = sorted([(line.project(Point(c)), tuple(c)) for c in line.coords]
                       + [(line.project(Point(c)), c) for c in points])
        coords = [c for k, (_, c) in enumerate(along) if k == 0 or c != along[k - 1][1]]
        noded.append((LineString(coords), width))
    return noded


def _cover(rng, size: int) -> np.ndarray:
    """Land-cover class index per pixel (0 vegetation, 1 soil, 2 concrete, 3 water) from
    smoothed noise fields."""
    from scipy.ndimage import gaussian_filter

    fields = [gaussian_filter(rng.normal(size=(size, size)), size / 12) for _ in range(3)]
    cover = np.where(fields[0] > 0, 0, 1)
    cover = np.where(fields[1] > 0.6 * fields[1].std(), 2, cover)
    cover = np.where(fields[2] > 1.8 * fields[2].std(), 3, cover)
    return cover


def make_scene(path_tif, path_geojson, size: int = 256, seed: int = 0, *, gsd: float = 0.6,
               roads: int = 4, buildings: int = 12, noise: float = 0.01, crs: str = UTM_CRS,
               path_label=None) -> SceneInfo:
    """Write one synthetic 8-band scene, its road GeoJSON and its true road label.

    Args:
        path_tif: output GeoTIFF: 8 bands x size x size, uint16 DN (11-bit, nodata 0),
            north-up in ``crs`` with ``gsd`` metre pixels.
        path_geojson: output road lines (RFC 7946, lon/lat WGS 84, SpaceNet style), each
            with properties ``width_m`` (full road width, metres), ``lanes``,
            ``inferred_speed_mph`` and ``road_type``.
        size: scene side (pixels, 16..8192).
        seed: random seed (same seed, same files).
        gsd: pixel size (metres).
        roads, buildings: number of roads and of roof rectangles.
        noise: sensor noise (reflectance units, standard deviation).
        crs: a projected CRS in metres (UTM).
        path_label: output label GeoTIFF (uint8 0/255, road = lines buffered by width / 2,
            all_touched False); default ``<path_tif stem>_label.tif`` beside the image.

    Returns:
        A :class:`SceneInfo`.

    Raises:
        InputError: size out of range.
        OutputError: a file cannot be written (atomic: nothing partial is left).
    """
    from rasterio.features import rasterize
    from rasterio.transform import from_origin

    if not 16 <= size <= MAX_SIZE:
        raise InputError(f"synthetic scene size must be 16..{MAX_SIZE} pixels, got {size}")
    rng = np.random.default_rng(seed)
    x0, y0 = 500000.0 + rng.integers(0, 50) * 1000.0, 4000000.0 + rng.integers(0, 50) * 1000.0
    transform = from_origin(x0, y0, gsd, gsd)
    lines = _roads(rng, size, gsd, x0, y0, roads)
    road_shapes = [line.buffer(width / 2) for line, width in lines]
    road = rasterize([(g, 1) for g in road_shapes], (size, size), transform=transform,
                     dtype="uint8") if road_shapes else np.zeros((size, size), np.uint8)
    names = list(SPECTRA)
    material = np.array([names.index(n) for n in ("vegetation", "soil", "concrete", "water")])[
        _cover(rng, size)]
    roofs, shadows = _buildings(rng, size, gsd, x0, y0, buildings, road_shapes)
    for shapes, name in ((shadows, "shadow"), (roofs, "roof")):
        if shapes:
            mask = rasterize([(g, 1) for g in shapes], (size, size), transform=transform, dtype="uint8")
            material[mask > 0] = names.index(name)
    material[road > 0] = names.index("asphalt")
    refl = np.asarray(list(SPECTRA.values()))[material].transpose(2, 0, 1)
    refl = refl * rng.uniform(0.9, 1.1, size=(1, size, size))  # illumination/texture
    dn = np.clip(np.rint(refl * GAIN + rng.normal(0, noise * GAIN, refl.shape)), 1, 2047)
    info = SceneInfo(Path(path_tif), Path(path_geojson),
                     Path(path_label) if path_label else Path(path_tif).with_name(Path(path_tif).stem + "_label.tif"),
                     size, gsd, crs, len(lines), float(road.mean()))
    _write(info, dn.astype(np.uint16), (road * 255).astype(np.uint8), transform, lines, crs)
    return info


def _buildings(rng, size, gsd, x0, y0, count, road_shapes):
    """Roof rectangles away from roads, each with a shadow strip to its south-east."""
    from shapely.geometry import box
    from shapely.ops import unary_union

    roads = unary_union(road_shapes) if road_shapes else None
    roofs, shadows = [], []
    extent = size * gsd
    for _ in range(count * 4):
        if len(roofs) >= count:
            break
        w, h = rng.uniform(6, 20, size=2)
        cx, cy = x0 + rng.uniform(0, extent), y0 - rng.uniform(0, extent)
        roof = box(cx, cy - h, cx + w, cy)
        if roads is not None and roof.buffer(2.0).intersects(roads):
            continue
        roofs.append(roof)
        shadows.append(box(cx + 0.3 * w, cy - h - 0.4 * h, cx + w + 0.3 * w, cy - 0.4 * h))
    return roofs, shadows


def _write(info: SceneInfo, dn, label, transform, lines, crs) -> None:
    import rasterio
    from pyproj import Transformer

    from fcnkit.atomic import atomic_open, write_text

    profile = dict(driver="GTiff", width=info.size, height=info.size, transform=transform, crs=crs)
    for path, data, extra in ((info.image, dn, dict(count=8, dtype="uint16", nodata=0)),
                              (info.label, label[None], dict(count=1, dtype="uint8"))):
        with atomic_open(path, "wb") as f:
            with rasterio.MemoryFile() as mem:
                with mem.open(**profile, **extra) as dst:
                    dst.write(data)
                    if data.shape[0] == 8:
                        dst.descriptions = ("coastal", "blue", "green", "yellow", "red",
                                            "red_edge", "nir1", "nir2")
                f.write(mem.read())
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    features = []
    for line, width in _noded(lines):
        coords = [list(to_lonlat.transform(x, y)) for x, y in line.coords]
        lanes = int(width // 3)
        features.append({"type": "Feature", "geometry": {"type": "LineString", "coordinates": coords},
                         "properties": {"width_m": width, "lanes": lanes,
                                        "inferred_speed_mph": {2: 25, 4: 45}.get(lanes, 35),
                                        "road_type": "residential" if lanes == 2 else "primary"}})
    write_text(info.geojson, json.dumps({"type": "FeatureCollection", "features": features}))
