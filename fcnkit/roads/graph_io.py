"""Georeferenced road graphs: pixel graph -> CRS coordinates and metres, speeds and travel
times (SpaceNet 5 / CRESI), and the GeoJSON, GraphML and WKT_Pix CSV files.

Pixel (row, col) points are placed at pixel centres (``transform * (col + 0.5, row + 0.5)``);
WKT_Pix keeps the SpaceNet convention of x = column, y = row pixel indices. Lengths are
measured in the local UTM zone (metres). Speeds: CRESI's bin table
(``speed_conversion_binned7.csv``: speed in mph per mask channel); an edge's speed is the
bins' mean speeds weighted by the mask channels summed along its pixels (CRESI
``infer_speed``); ``travel_time_s`` = length / speed.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import networkx as nx
import numpy as np
from shapely.geometry import LineString, mapping

from fcnkit.errors import InputError

MPH_TO_MPS = 0.44704  # 1 mile per hour in m/s (exact)
DEFAULT_SPEED_MPH = 30.0  # apls / CRESI default (13.41 m/s)


def georeference(pixel_graph: nx.MultiGraph, transform, crs) -> nx.MultiGraph:
    """A pixel graph (:mod:`fcnkit.roads.skeleton`) in the raster's CRS.

    Returns:
        MultiGraph: nodes with ``x``, ``y`` (CRS units) and ``row``, ``col``; edges with
        ``geometry`` (LineString in the CRS), ``pts`` (row, col), ``length`` (m, UTM).
    """
    from fcnkit.roads.vector import reproject, utm_crs_for

    graph = nx.MultiGraph(crs=str(crs))
    t = transform

    def to_crs(rc: np.ndarray) -> np.ndarray:
        c, r = rc[:, 1] + 0.5, rc[:, 0] + 0.5
        return np.column_stack([t.a * c + t.b * r + t.c, t.d * c + t.e * r + t.f])

    for n, d in pixel_graph.nodes(data=True):
        x, y = to_crs(np.asarray([d["o"]], float))[0]
        graph.add_node(n, x=float(x), y=float(y), row=int(d["o"][0]), col=int(d["o"][1]))
    lines, keys = [], []
    for u, v, k, d in pixel_graph.edges(keys=True, data=True):
        pts = np.asarray(d["pts"], float)
        if len(pts) == 1:
            pts = np.vstack([pts, pts])
        lines.append(LineString(to_crs(pts)))
        keys.append((u, v, k, pts))
    if lines:
        utm = utm_crs_for(lines, crs)
        for (u, v, k, pts), line, metric in zip(keys, lines, reproject(lines, crs, utm)):
            graph.add_edge(u, v, key=k, geometry=line, pts=pts, length=float(metric.length))
    return graph


def read_speed_bins(path: str | Path) -> np.ndarray:
    """Mean speed (mph) of each mask channel from a CRESI speed-bin CSV
    (columns ``burn_val``, ``speed``, ``channel``).

    Raises:
        InputError: unreadable file, missing column or a bad number (named by line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror or e})") from None
    rows = csv.DictReader(io.StringIO(text))
    if not rows.fieldnames or not {"speed", "channel"} <= set(rows.fieldnames):
        raise InputError(f"{path}: expected columns 'speed' and 'channel' (CRESI speed bins)")
    per_channel: dict[int, list] = {}
    for line_no, row in enumerate(rows, start=2):
        try:
            per_channel.setdefault(int(row["channel"]), []).append(float(row["speed"]))
        except (TypeError, ValueError):
            raise InputError(f"{path}:{line_no}: bad speed/channel {row}") from None
    if not per_channel or sorted(per_channel) != list(range(len(per_channel))):
        raise InputError(f"{path}: channels must be 0..N-1")
    return np.array([np.mean(per_channel[c]) for c in range(len(per_channel))])


def assign_speeds(graph: nx.MultiGraph, speed_mask: np.ndarray | None,
                  bin_speeds_mph: np.ndarray | None,
                  default_mph: float = DEFAULT_SPEED_MPH) -> int:
    """Set ``speed_mph``, ``speed_m/s`` and ``travel_time_s`` on every edge, in place.

    Args:
        speed_mask: (channels, rows, cols) speed-bin mask, or None for the default speed.
        bin_speeds_mph: mean speed of each channel (:func:`read_speed_bins`).

    Returns:
        Number of edges that got the default speed (no mask, or no mask signal on them).

    Raises:
        InputError: channel count differs from the bin table.
    """
    if speed_mask is not None and (bin_speeds_mph is None
                                   or speed_mask.shape[0] != len(bin_speeds_mph)):
        raise InputError(f"speed mask has {speed_mask.shape[0]} channels but the speed table "
                         f"{0 if bin_speeds_mph is None else len(bin_speeds_mph)} bins")
    defaulted = 0
    for _, _, d in graph.edges(data=True):
        speed = None
        if speed_mask is not None:
            pts = np.rint(d["pts"]).astype(int)
            rows = np.clip(pts[:, 0], 0, speed_mask.shape[1] - 1)
            cols = np.clip(pts[:, 1], 0, speed_mask.shape[2] - 1)
            weights = speed_mask[:, rows, cols].astype(float).sum(axis=1)
            if weights.sum() > 0:
                speed = float(np.dot(weights, bin_speeds_mph) / weights.sum())
        if speed is None:
            speed, defaulted = default_mph, defaulted + 1
        d["speed_mph"] = speed
        d["speed_m/s"] = speed * MPH_TO_MPS
        d["travel_time_s"] = d["length"] / d["speed_m/s"]
    return defaulted


def _edge_properties(u, v, d) -> dict:
    props = {"u": int(u), "v": int(v), "length_m": d["length"]}
    for key in ("speed_mph", "travel_time_s"):
        if key in d:
            props[key] = d[key]
    return props


def geojson_text(graph: nx.MultiGraph) -> str:
    """The edges as an RFC 7946 GeoJSON FeatureCollection (lon/lat) of LineStrings."""
    from fcnkit.roads.vector import CRS84, reproject

    edges = list(graph.edges(data=True))
    lines = reproject([d["geometry"] for _, _, d in edges], graph.graph.get("crs", CRS84),
                      CRS84) if edges else []
    features = [{"type": "Feature", "properties": _edge_properties(u, v, d),
                 "geometry": mapping(line)} for (u, v, d), line in zip(edges, lines)]
    return json.dumps({"type": "FeatureCollection", "features": features}, indent=1)


def graphml_text(graph: nx.MultiGraph) -> str:
    """GraphML (networkx 3): node x/y/row/col, edge length/speeds and geometry as WKT."""
    out = nx.MultiGraph()
    out.graph["crs"] = graph.graph.get("crs", "")
    for n, d in graph.nodes(data=True):
        out.add_node(n, **{k: d[k] for k in ("x", "y", "row", "col") if k in d})
    for u, v, k, d in graph.edges(keys=True, data=True):
        attrs = {key: d[key] for key in ("length", "speed_mph", "speed_m/s", "travel_time_s")
                 if key in d}
        out.add_edge(u, v, key=k, geometry=d["geometry"].wkt, **attrs)
    return "\n".join(nx.generate_graphml(out))


def wkt_pix_lines(graph: nx.MultiGraph) -> list[str]:
    """WKT_Pix LINESTRINGs (x = column, y = row) of the edges."""
    out = []
    for _, _, d in graph.edges(data=True):
        coords = ", ".join(f"{c:g} {r:g}" for r, c in np.asarray(d["pts"], float))
        out.append(f"LINESTRING ({coords})")
    return out


def wkt_csv_text(rows: dict[str, list[str]]) -> str:
    """SpaceNet submission CSV ``ImageId,WKT_Pix``; a tile without roads gets
    ``LINESTRING EMPTY``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["ImageId", "WKT_Pix"])
    for image_id, lines in rows.items():
        for line in lines or ["LINESTRING EMPTY"]:
            writer.writerow([image_id, line])
    return buf.getvalue()


def read_wkt_csv(path: str | Path) -> dict[str, list[str]]:
    """``ImageId,WKT_Pix`` CSV -> {image id: [WKT LINESTRING, ...]} (EMPTY rows give []).

    Raises:
        InputError: missing columns, or a row whose WKT is not a LINESTRING (file:line).
    """
    import shapely

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read it ({e})") from None
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"ImageId", "WKT_Pix"} <= set(reader.fieldnames):
        raise InputError(f"{path}: expected a SpaceNet CSV with columns ImageId,WKT_Pix")
    out: dict[str, list[str]] = {}
    for row in reader:
        line_no = reader.line_num
        image_id, text_wkt = row.get("ImageId"), (row.get("WKT_Pix") or "").strip()
        if not image_id:
            raise InputError(f"{path}:{line_no}: empty ImageId")
        lines = out.setdefault(image_id, [])
        if text_wkt.upper() == "LINESTRING EMPTY":
            continue
        try:
            geom = shapely.from_wkt(text_wkt)
        except shapely.errors.GEOSException as e:
            raise InputError(f"{path}:{line_no}: WKT_Pix is not valid WKT ({e})") from None
        if geom.geom_type != "LineString":
            raise InputError(f"{path}:{line_no}: WKT_Pix must be a LINESTRING, "
                             f"got {geom.geom_type}")
        lines.append(text_wkt)
    return out
