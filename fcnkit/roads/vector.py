"""Road lines from GeoJSON and their reprojection (shapely 2 + pyproj; no GDAL/fiona needed).

GeoJSON (RFC 7946) coordinates are lon/lat (OGC:CRS84) unless an old-style ``crs`` member
names another CRS, as SpaceNet's files do (``urn:ogc:def:crs:OGC:1.3:CRS84``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import shapely
from shapely.geometry import shape as geojson_shape

from fcnkit.errors import InputError

CRS84 = "OGC:CRS84"
_LINE_TYPES = ("LineString", "MultiLineString")


@dataclass
class RoadLines:
    """Road centrelines read from a file or given in memory.

    Attributes:
        geometries: shapely LineString / MultiLineString, one per feature, in ``crs``.
        properties: the GeoJSON ``properties`` of each feature (empty dicts in memory).
        crs: a pyproj-readable CRS string of the coordinates.
        source: the file they came from, or None.
        skipped: features that are not lines (Point, Polygon...) or empty, ignored.
    """

    geometries: list
    properties: list[dict] = field(default_factory=list)
    crs: str = CRS84
    source: str | None = None
    skipped: int = 0


def _geojson_crs(doc: dict, path: Path) -> str:
    crs = doc.get("crs")
    if crs is None:
        return CRS84
    try:
        name = crs["properties"]["name"]
    except (KeyError, TypeError):
        raise InputError(f"{path}: its 'crs' member is not of the form "
                         "{'type': 'name', 'properties': {'name': ...}}; remove it (RFC 7946 "
                         "files are lon/lat) or name the CRS") from None
    return str(name)


def read_road_lines(path: str | Path) -> RoadLines:
    """Read road LineStrings / MultiLineStrings from a GeoJSON FeatureCollection.

    Non-line and empty geometries are skipped and counted (SpaceNet tiles without roads hold
    an empty collection or ``LINESTRING EMPTY``).

    Raises:
        InputError: the file is missing, not JSON, not a FeatureCollection, or a feature's
            geometry is malformed (the message gives the feature index).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror or e})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        where = f" (line {e.lineno}, column {e.colno})" if hasattr(e, "lineno") else ""
        raise InputError(f"{path}: not a GeoJSON file{where}: {e}") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise InputError(f"{path}: expected a GeoJSON FeatureCollection, found "
                         f"{type(doc).__name__ if not isinstance(doc, dict) else doc.get('type')!r}")
    features = doc.get("features")
    if not isinstance(features, list):
        raise InputError(f"{path}: its 'features' member is not a list")
    crs = _geojson_crs(doc, path)
    geoms, props, skipped = [], [], 0
    for i, feat in enumerate(features):
        geom_doc = feat.get("geometry") if isinstance(feat, dict) else None
        if geom_doc is None:
            skipped += 1
            continue
        try:
            geom = geojson_shape(geom_doc)
        except Exception as e:  # shapely raises several types on malformed geometry
            raise InputError(f"{path}: feature {i}: malformed geometry ({e})") from None
        if geom.geom_type not in _LINE_TYPES or geom.is_empty:
            skipped += 1
            continue
        geoms.append(geom)
        props.append(dict(feat.get("properties") or {}))
    return RoadLines(geoms, props, crs, str(path), skipped)


def as_road_lines(lines: Any, lines_crs: str | None = None) -> RoadLines:
    """A GeoJSON path, a :class:`RoadLines`, or a sequence of shapely lines, as RoadLines.

    ``lines_crs`` overrides the CRS (default: the file's, or OGC:CRS84 for shapely input).

    Raises:
        InputError: a non-line geometry in a shapely sequence; see :func:`read_road_lines`.
    """
    if isinstance(lines, RoadLines):
        result = lines
    elif isinstance(lines, (str, Path)):
        result = read_road_lines(lines)
    else:
        geoms = list(lines)
        for i, g in enumerate(geoms):
            if getattr(g, "geom_type", None) not in _LINE_TYPES:
                raise InputError(f"road line {i}: expected a shapely LineString or "
                                 f"MultiLineString, got {type(g).__name__}")
        kept = [g for g in geoms if not g.is_empty]
        result = RoadLines(kept, [{} for _ in kept], CRS84, None, len(geoms) - len(kept))
    if lines_crs is not None:
        result = RoadLines(result.geometries, result.properties, lines_crs, result.source,
                           result.skipped)
    return result


def reproject(geoms: Sequence, src_crs: Any, dst_crs: Any) -> list:
    """Reproject shapely geometries vertex by vertex (pyproj, x = easting/lon first).

    Raises:
        InputError: a CRS pyproj does not know.
    """
    from pyproj import CRS, Transformer

    try:
        src, dst = CRS.from_user_input(src_crs), CRS.from_user_input(dst_crs)
    except Exception as e:  # pyproj.exceptions.CRSError
        raise InputError(f"unknown CRS ({e})") from None
    if src == dst:
        return list(geoms)
    tr = Transformer.from_crs(src, dst, always_xy=True)

    def _xy(coords: np.ndarray) -> np.ndarray:
        x, y = tr.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return [shapely.transform(g, _xy) for g in geoms]


def utm_crs_for(geoms: Sequence, crs: Any) -> str:
    """The WGS 84 / UTM zone (EPSG:326zz north, 327zz south) holding the geometries' centre.

    Raises:
        InputError: no geometry to choose a zone from.
    """
    if not geoms:
        raise InputError("no geometry to choose a UTM zone from")
    lonlat = reproject([shapely.GeometryCollection(list(geoms)).envelope.centroid], crs, CRS84)[0]
    zone = int(np.floor((lonlat.x + 180.0) / 6.0)) % 60 + 1
    return f"EPSG:{32600 + zone if lonlat.y >= 0 else 32700 + zone}"
