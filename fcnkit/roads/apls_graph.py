"""Road graphs as CosmiQ's apls builds them, for APLS (SpaceNet 3/5).

Semantics of CosmiQ/apls at commit 4a78807 (``apls/graphTools.py``, ``apls/osmnx_funcs.py``
(osmnx 0.9 code), ``apls/wkt_to_G.py`` and ``_create_gt_graph`` / ``create_edge_linestrings`` /
``_clean_sub_graphs`` in ``apls/apls.py``), re-implemented on networkx 3, shapely 2 and pyproj
(no GDAL, fiona or geopandas). Every step keeps apls' node numbering and networkx iteration
order, because control-point snapping and node renaming depend on them.

From GeoJSON (:func:`graph_from_lines`): vertices at equal lon/lat become one node; each line
becomes bidirectional edges between consecutive vertices with haversine lengths (m, rounded to
the mm); nodes are projected to their UTM zone; chains of degree-2 nodes are merged
("simplified") into edges whose ``geometry`` is the UTM polyline and whose ``length`` is the
sum of the haversine lengths; connected components whose longest shortest path is below
``min_subgraph_length`` m are dropped.

From WKT_Pix (:func:`graph_from_wkt_pix`): pixel vertices become nodes (ids from 1000),
components shorter than ``min_subgraph_length_pix`` pixels are dropped, pixels become lon/lat
through the image's geotransform, lengths are UTM lengths, then the graph is simplified.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import networkx as nx
import numpy as np
import shapely
import shapely.ops
from shapely.geometry import LineString

from fcnkit.errors import InputError
from fcnkit.roads.vector import CRS84, RoadLines, reproject

EARTH_RADIUS_M = 6371009.0  # osmnx great_circle_vec default (mean Earth radius, metres)


def haversine_m(lat1, lon1, lat2, lon2):
    """Great-circle distance in metres (haversine, R = 6,371,009 m), as osmnx 0.9."""
    phi1, phi2 = np.deg2rad(lat1), np.deg2rad(lat2)
    d_phi, d_theta = phi2 - phi1, np.deg2rad(lon2) - np.deg2rad(lon1)
    h = np.sin(d_phi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(d_theta / 2) ** 2
    return 2 * np.arcsin(np.sqrt(np.minimum(1.0, h))) * EARTH_RADIUS_M


def utm_epsg(lon: float) -> str:
    """The UTM zone of a longitude as osmnx 0.9 picks it (northern-hemisphere EPSG:326zz:
    osmnx did not add +south; lengths are the same)."""
    return f"EPSG:{32600 + int(math.floor((lon + 180) / 6.0) + 1)}"


def _to_utm(graph: nx.MultiDiGraph, lonlat_keys=("x", "y")) -> str:
    """Project node x/y (lon/lat) to the UTM zone of their centroid, keeping lon/lat."""
    from pyproj import Transformer

    nodes = list(graph.nodes)
    lon = np.array([graph.nodes[n][lonlat_keys[0]] for n in nodes], float)
    lat = np.array([graph.nodes[n][lonlat_keys[1]] for n in nodes], float)
    centre = shapely.MultiPoint(np.column_stack([lon, lat])).centroid.x
    crs = utm_epsg(centre)
    east, north = Transformer.from_crs(CRS84, crs, always_xy=True).transform(lon, lat)
    for n, x, y, lo, la in zip(nodes, east, north, lon, lat):
        graph.nodes[n].update(x=float(x), y=float(y), lon=float(lo), lat=float(la))
    return crs


def _lines_lonlat(road: RoadLines) -> list:
    return road.geometries if road.crs == CRS84 else reproject(road.geometries, road.crs, CRS84)


def _parse_paths(road: RoadLines, first_node_id: int):
    """apls' graphTools numbering: per line part the counter advances once before and once
    after its new vertices; equal coordinates share the first node made for them."""
    coord_ids: dict[tuple, int] = {}
    nodes: dict[int, tuple] = {}
    paths = []
    idx = first_node_id
    for geom, props in zip(_lines_lonlat(road), road.properties):
        if "LINESTRING EMPTY" in [v for v in props.values() if isinstance(v, str)]:
            continue
        parts = [geom] if geom.geom_type == "LineString" else list(geom.geoms)
        for part in parts:
            idx += 1
            path = []
            for xy in part.coords:
                key = (float(xy[0]), float(xy[1]))
                if key not in coord_ids:
                    coord_ids[key] = idx
                    nodes[idx] = key
                    idx += 1
                path.append(coord_ids[key])
            idx += 1
            paths.append((path, props))
    return nodes, paths


def lines_multidigraph(road: RoadLines, first_node_id: int = 0) -> nx.MultiDiGraph:
    """Unsimplified bidirectional graph of the lines (lon/lat nodes, haversine lengths)."""
    nodes, paths = _parse_paths(road, first_node_id)
    graph = nx.MultiDiGraph()
    for nid, (x, y) in nodes.items():
        graph.add_node(nid, x=x, y=y, osmid=nid)
    for path, props in paths:
        pairs = list(zip(path[:-1], path[1:]))
        attrs = {k: v for k, v in props.items() if k not in ("geometry", "length")}
        graph.add_edges_from(pairs, **attrs)
        graph.add_edges_from([(v, u) for u, v in pairs], **attrs)
    edges = list(graph.edges(keys=True, data=True))
    if edges:
        ends = np.array([(graph.nodes[u]["y"], graph.nodes[u]["x"], graph.nodes[v]["y"],
                          graph.nodes[v]["x"]) for u, v, _, _ in edges])
        lengths = np.round(haversine_m(*ends.T), 3)  # osmnx: mm-rounded great circles
        for (_, _, _, data), length in zip(edges, lengths.tolist()):
            data["length"] = length
    return graph


def _is_endpoint(graph: nx.MultiDiGraph, node) -> bool:
    neighbours = set(graph.predecessors(node)) | set(graph.successors(node))
    if node in neighbours:
        return True
    if graph.out_degree(node) == 0 or graph.in_degree(node) == 0:
        return True
    return not (len(neighbours) == 2 and graph.degree(node) in (2, 4))


def _build_path(graph: nx.MultiDiGraph, path: list, endpoints: set) -> list:
    """osmnx 0.9 build_path, iteratively: follow successors until an endpoint."""
    stack = [(path[-1], iter(list(graph.successors(path[-1]))))]
    while stack:
        node, successors = stack[-1]
        advanced = False
        for succ in successors:
            if succ in path:
                continue
            path.append(succ)
            if succ in endpoints:
                return _close_ring(graph, path, endpoints)
            stack.append((succ, iter(list(graph.successors(succ)))))
            advanced = True
            break
        if not advanced:
            stack.pop()
    return _close_ring(graph, path, endpoints)


def _close_ring(graph, path, endpoints):
    if path[-1] not in endpoints and path[0] in set(graph.successors(path[-1])):
        path.append(path[0])
    return path


def simplify(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """osmnx 0.9 ``simplify_graph(strict=True)``: merge chains of interstitial nodes.

    Merged edges get ``geometry`` (LineString of the chain's node x/y) and the summed
    ``length``; other attributes become the value, or a list of the distinct values.
    """
    graph = graph.copy()
    endpoints = set([n for n in graph.nodes() if _is_endpoint(graph, n)])
    paths = []
    for node in endpoints:
        for succ in graph.successors(node):
            if succ not in endpoints:
                paths.append(_build_path(graph, [node, succ], endpoints))
    remove, add = [], []
    for path in paths:
        attrs: dict[str, list] = {}
        for u, v in zip(path[:-1], path[1:]):
            for key, value in graph.edges[u, v, 0].items():
                attrs.setdefault(key, []).append(value)
        for key, values in attrs.items():
            if key == "length":
                continue
            distinct = _distinct(values)
            attrs[key] = distinct[0] if len(distinct) == 1 else distinct
        attrs["geometry"] = LineString([(graph.nodes[n]["x"], graph.nodes[n]["y"]) for n in path])
        attrs["length"] = sum(attrs["length"])
        remove.extend(path[1:-1])
        add.append((path[0], path[-1], attrs))
    for u, v, attrs in add:
        graph.add_edge(u, v, **attrs)
    graph.remove_nodes_from(set(remove))
    return graph


def _distinct(values: list) -> list:
    out = []
    for value in values:
        try:
            if value not in out:
                out.append(value)
        except (TypeError, ValueError):  # unhashable / array-like attributes
            out.append(value)
    return out


def orient_edge_geometries(graph: nx.MultiGraph) -> nx.MultiGraph:
    """apls ``create_edge_linestrings(remove_redundant=True)``, in place.

    Gives edges without geometry a straight line, turns each geometry to start at the end
    nearer its first node, and removes an edge whose node pair was seen with an equal (or
    reversed) geometry.
    """
    seen_pairs: set = set()
    seen_geoms: list = []
    redundant = []
    for i, (u, v, data) in enumerate(graph.edges(data=True)):
        pu = (graph.nodes[u]["x"], graph.nodes[u]["y"])
        pv = (graph.nodes[v]["x"], graph.nodes[v]["y"])
        if "geometry" not in data:
            line = LineString([pu, pv])
            data["geometry"] = line
        else:
            line = data["geometry"]
            first = line.coords[0]
            if math.dist(pu, first) > math.dist(pv, first):
                data["geometry"] = LineString(list(line.coords)[::-1])
        line_rev = LineString(list(line.coords)[::-1])
        if i == 0:
            seen_pairs = {(u, v), (v, u)}
            seen_geoms.append(line)
        elif (u, v) in seen_pairs or (v, u) in seen_pairs:
            for seen in seen_geoms:
                if line.equals_exact(seen, 0) or line_rev.equals_exact(seen, 0):
                    redundant.append((u, v))
        else:
            seen_pairs.add((u, v))
            seen_geoms.extend([line, line_rev])
    for u, v in redundant:
        if graph.has_edge(u, v):
            graph.remove_edge(u, v)
    return graph


def drop_small_subgraphs(graph: nx.Graph, min_length: float, weight: str = "length",
                         max_nodes_to_skip: int = 100) -> nx.Graph:
    """apls ``_clean_sub_graphs``, in place: remove connected components of at most
    ``max_nodes_to_skip`` nodes whose longest shortest path (``weight``) is < ``min_length``."""
    bad = []
    for comp in list(nx.connected_components(graph)):
        if len(comp) > max_nodes_to_skip:
            continue
        sub = graph.subgraph(comp)
        longest = max(max(d.values()) for _, d in nx.all_pairs_dijkstra_path_length(
            sub, weight=weight))
        if longest < min_length:
            bad.extend(sub.nodes())
    graph.remove_nodes_from(bad)
    return graph


def graph_from_lines(lines: RoadLines, *, first_node_id: int = 0,
                     min_subgraph_length: float = 5.0) -> nx.MultiGraph:
    """The APLS graph of road lines, as apls ``_create_gt_graph`` builds it.

    Args:
        lines: road centrelines (any CRS; reprojected to lon/lat first).
        first_node_id: apls' ``osmNodeidx`` (0 for ground truth, 500 for a GeoJSON proposal).
        min_subgraph_length: components whose longest path is shorter (m) are dropped.

    Returns:
        Undirected MultiGraph, nodes with x/y (UTM m) and lon/lat, edges with ``geometry``
        (UTM LineString from the first node), ``length`` (m). Empty if there are no lines.
    """
    directed = lines_multidigraph(lines, first_node_id)
    if directed.number_of_nodes() == 0:
        return nx.MultiGraph()
    crs = _to_utm(directed)
    graph = orient_edge_geometries(simplify(directed).to_undirected())
    graph = drop_small_subgraphs(graph, min_subgraph_length)
    graph.graph["crs"] = crs
    return graph


def _wkt_segments(wkt_lines: Iterable[str], first_node_id: int):
    """apls ``wkt_list_to_nodes_edges``: nodes at distinct pixel vertices, one edge per
    segment with its length along the line (pixels). A repeated segment is skipped (apls
    gives up on the whole tile there)."""
    ids: dict[tuple, int] = {}
    seen: set = set()
    edges = []
    idx = first_node_id
    for i, text in enumerate(wkt_lines):
        line = text if not isinstance(text, str) else shapely.from_wkt(text)
        coords = [(float(x), float(y)) for x, y, *_ in line.coords]
        for j, loc in enumerate(coords):
            if loc not in ids:
                ids[loc] = idx
                idx += 1
            if j == 0:
                continue
            prev = coords[j - 1]
            if (loc, prev) in seen or (prev, loc) in seen:
                continue
            seen.add((loc, prev))
            length = abs(line.project(shapely.Point(loc)) - line.project(shapely.Point(prev)))
            edges.append((ids[prev], ids[loc], {"length_pix": length, "osmid": i,
                                                "geometry_pix": (prev, loc)}))
    return ids, edges


def graph_from_wkt_pix(wkt_lines: Iterable[Any], transform, *, crs: Any = None,
                       first_node_id: int = 1000, min_subgraph_length_pix: float = 10.0,
                       max_nodes_to_skip: int = 30) -> nx.MultiGraph:
    """The APLS graph of WKT_Pix line strings (x = column, y = row), as apls ``wkt_to_G``.

    Args:
        wkt_lines: WKT texts or shapely LineStrings in pixel coordinates.
        transform: the image's affine (apls uses x0 + col*a, y0 + row*e).
        crs: the image's CRS; None or a geographic CRS means lon/lat (SpaceNet's tiles, what
            apls assumes); a projected CRS (a UTM scene) is taken to lon/lat with pyproj.
        min_subgraph_length_pix: components shorter than this (pixels) are dropped before
            georeferencing (apls ``prop_min_subgraph_length`` 10).

    Raises:
        InputError: a text that is not a LINESTRING.
    """
    try:
        ids, edges = _wkt_segments(wkt_lines, first_node_id)
    except (shapely.errors.GEOSException, AttributeError, NotImplementedError) as e:
        raise InputError(f"WKT_Pix: not a LINESTRING ({e})") from None
    directed = nx.MultiDiGraph()
    for (x, y), nid in ids.items():
        directed.add_node(nid, osmid=nid, x_pix=x, y_pix=y)
    for u, v, attrs in edges:
        directed.add_edge(u, v, **attrs)
    graph = drop_small_subgraphs(directed.to_undirected(), min_subgraph_length_pix,
                                 weight="length_pix", max_nodes_to_skip=max_nodes_to_skip)
    if graph.number_of_nodes() == 0:
        return nx.MultiGraph()
    return _georeference_wkt_graph(graph, transform, crs)


def _pixel_to_lonlat(transform, crs):
    """(col, row) arrays -> (lon, lat) arrays: apls' x0 + col*a, y0 + row*e, then from a
    projected CRS to lon/lat."""
    from pyproj import CRS, Transformer

    projected = crs is not None and not CRS.from_user_input(crs).is_geographic
    to_lonlat = Transformer.from_crs(crs, CRS84, always_xy=True) if projected else None

    def lonlat(x, y):
        gx, gy = transform.c + np.asarray(x) * transform.a, transform.f + np.asarray(y) * transform.e
        return to_lonlat.transform(gx, gy) if to_lonlat is not None else (gx, gy)

    return lonlat


def _georeference_wkt_graph(graph: nx.MultiGraph, transform, crs=None) -> nx.MultiGraph:
    from pyproj import Transformer

    lonlat = _pixel_to_lonlat(transform, crs)

    for n, d in graph.nodes(data=True):
        x, y = lonlat(d["x_pix"], d["y_pix"])
        d["x"], d["y"] = float(x), float(y)
    crs = _to_utm(graph)
    to_utm = Transformer.from_crs(CRS84, crs, always_xy=True)
    for u, v, d in graph.edges(data=True):
        # plain coordinate tuples: networkx deep-copies edge data on every conversion
        px = np.asarray(d["geometry_pix"], float)
        lon, lat = lonlat(px[:, 0], px[:, 1])
        east, north = to_utm.transform(lon, lat)
        d["geometry_utm"] = tuple(zip(east.tolist(), north.tolist()))
        d["length"] = LineString(d["geometry_utm"]).length
    graph = simplify(graph.to_directed()).to_undirected()
    for u, v, d in graph.edges(data=True):
        parts = d["geometry_utm"]
        d["geometry"] = (shapely.ops.linemerge([LineString(p) for p in parts])
                         if isinstance(parts, list) else LineString(parts))
    graph.graph["crs"] = crs
    return graph
