"""Scoring road networks from files: ground truth and proposal as GeoJSON, WKT_Pix CSV (with
the image for georeferencing), GraphML, or a mask raster (through the graph step), one tile
or many; APLS with every parameter recorded, pixel metrics when both are masks.

Node numbering follows apls' ``gather_files`` (ground truth from 0, a GeoJSON proposal from
500, a WKT_Pix proposal from 1000), so that results equal CosmiQ's.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import networkx as nx
import numpy as np

from fcnkit.errors import InputError
from fcnkit.roads.apls import AplsParams, apls
from fcnkit.roads.graph import GraphParams

RASTER_SUFFIXES = (".tif", ".tiff")
GRAPH_SUFFIXES = (".geojson", ".json", ".csv", ".graphml") + RASTER_SUFFIXES


def read_grid(path: str | Path):
    """(shape, transform, crs) of a raster.

    Raises:
        InputError: not a readable raster.
    """
    import rasterio

    try:
        with rasterio.open(path) as src:
            return src.shape, src.transform, src.crs
    except rasterio.errors.RasterioIOError as e:
        raise InputError(f"{path}: not a readable raster ({e})") from None


def read_mask(path: str | Path) -> tuple[np.ndarray, tuple]:
    """Band 1 of a mask raster and its (shape, transform, crs)."""
    import rasterio

    try:
        with rasterio.open(path) as src:
            return src.read(1), (src.shape, src.transform, src.crs)
    except rasterio.errors.RasterioIOError as e:
        raise InputError(f"{path}: not a readable raster ({e})") from None


def _graphml_lines(path: Path):
    import shapely

    from fcnkit.roads.vector import RoadLines

    try:
        g = nx.read_graphml(path)
    except Exception as e:  # networkx raises several parser errors
        raise InputError(f"{path}: not a GraphML file ({e})") from None
    lines = []
    for u, v, d in g.edges(data=True):
        if "geometry" not in d:
            raise InputError(f"{path}: edge {u}-{v} has no 'geometry' (WKT) attribute")
        lines.append(shapely.from_wkt(d["geometry"]))
    return RoadLines(lines, [{} for _ in lines], g.graph.get("crs") or "OGC:CRS84", str(path))


def mask_wkt_pix(mask: np.ndarray, gsd_m: float, params: GraphParams = GraphParams(),
                 clean: bool = True) -> list[str]:
    """WKT_Pix lines of a road mask (graph step, sknw pixel indices)."""
    from fcnkit.roads.graph import mask_to_pixel_graph
    from fcnkit.roads.skeleton import graph_wkt_pix

    pixel_graph, _ = mask_to_pixel_graph(mask, gsd_m, params, clean=clean)
    return graph_wkt_pix(pixel_graph)


def gsd_metres(transform, crs) -> float:
    """Approximate ground sample distance (m/pixel) of a grid (degrees at the equator scale)."""
    from pyproj import CRS

    size = abs(transform.a)
    if CRS.from_user_input(crs).is_geographic:
        return size * 111_320.0 * np.cos(np.deg2rad(abs(transform.f)))
    return size


def load_graph(path: str | Path, *, first_node_id: int, image: str | Path | None = None,
               image_id: str | None = None, graph_params: GraphParams = GraphParams(),
               clean: bool = True) -> nx.MultiGraph:
    """An APLS graph from a GeoJSON, WKT_Pix CSV (needs ``image``; ``image_id`` selects the
    rows, default the image's stem), GraphML, or mask raster file.

    Raises:
        InputError: unknown suffix, unreadable file, CSV without the image or the id.
    """
    from fcnkit.roads.apls_graph import graph_from_lines, graph_from_wkt_pix
    from fcnkit.roads.graph_io import read_wkt_csv
    from fcnkit.roads.vector import read_road_lines

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json"):
        return graph_from_lines(read_road_lines(path), first_node_id=first_node_id)
    if suffix == ".graphml":
        return graph_from_lines(_graphml_lines(path), first_node_id=first_node_id)
    if suffix == ".csv":
        if image is None:
            raise InputError(f"{path}: a WKT_Pix CSV is in pixels; give --image for its grid")
        rows = read_wkt_csv(path)
        key = image_id or Path(image).stem
        # a tile missing from a submission has no roads (SpaceNet scores it, apls skips it)
        _, transform, crs = read_grid(image)
        return graph_from_wkt_pix(rows.get(key, []), transform, crs=crs, first_node_id=1000)
    if suffix in RASTER_SUFFIXES:
        mask, (_, transform, crs) = read_mask(path)
        lines = mask_wkt_pix(mask, gsd_metres(transform, crs), graph_params, clean)
        return graph_from_wkt_pix(lines, transform, crs=crs, first_node_id=1000)
    raise InputError(f"{path}: unknown road file type {suffix!r}; give .geojson, .csv "
                     "(WKT_Pix), .graphml or a mask .tif")


def score_tile(gt_path, prop_path, *, params: AplsParams = AplsParams(), image=None,
               image_id: str | None = None, graph_params: GraphParams = GraphParams(),
               rho_px: float = 3.0, with_topo: bool = False) -> dict:
    """One row of scores (APLS, both directions, lengths, every parameter, seconds; pixel
    metrics when both files are masks of one grid; TOPO (apls' defaults, ``max_nodes``
    origins, ``seed``) if ``with_topo``)."""
    start = time.perf_counter()
    gt = load_graph(gt_path, first_node_id=0, image=image, image_id=image_id,
                    graph_params=graph_params)
    if prop_path is None:  # no proposal file for this tile: no roads proposed
        prop = nx.MultiGraph()
    else:
        prop_first = 500 if Path(prop_path).suffix.lower() in (".geojson", ".json",
                                                               ".graphml") else 1000
        prop = load_graph(prop_path, first_node_id=prop_first, image=image,
                          image_id=image_id, graph_params=graph_params)
    result = apls(gt, prop, params)
    row = {"tile": image_id or tile_id(Path(gt_path)), "apls": result.apls,
           "apls_gt_onto_prop": result.gt_onto_prop, "apls_prop_onto_gt": result.prop_onto_gt,
           "gt_length_m": result.gt_length_m, "prop_length_m": result.prop_length_m,
           "gt_control_points": result.gt_control_points,
           "prop_control_points": result.prop_control_points}
    if prop_path is not None and all(Path(p).suffix.lower() in RASTER_SUFFIXES
                                     for p in (gt_path, prop_path)):
        row.update(_pixel_row(gt_path, prop_path, rho_px))
    if with_topo:
        from fcnkit.roads.topo import topo

        t = topo(gt, prop, n_nodes=params.max_nodes, seed=params.seed)
        row.update(topo_tp=t.tp, topo_fp=t.fp, topo_fn=t.fn, topo_precision=t.precision,
                   topo_recall=t.recall, topo_f1=t.f1, param_topo_subgraph_radius=150.0,
                   param_topo_interval=30.0, param_topo_hole_size=4.0)
    row.update({f"param_{k}": v for k, v in asdict(params).items()})
    row["notes"] = "; ".join(result.notes)
    row["seconds"] = time.perf_counter() - start
    return row


def _pixel_row(gt_path, prop_path, rho_px) -> dict:
    from fcnkit.roads.metrics import pixel_scores

    truth, (shape_t, tr_t, crs_t) = read_mask(gt_path)
    pred, (shape_p, tr_p, crs_p) = read_mask(prop_path)
    if shape_t != shape_p or not np.allclose(tuple(tr_t), tuple(tr_p)) or crs_t != crs_p:
        raise InputError(f"{prop_path}: mask of a different grid than {gt_path} "
                         f"({shape_p} vs {shape_t}, or transform/CRS differ)")
    s = pixel_scores(truth, pred, rho_px=rho_px)
    row = {f"iou_{k}": v for k, v in s.iou.items()}
    row.update(mean_iou=s.mean_iou, precision=s.precision, recall=s.recall, f1=s.f1,
               relaxed_precision=s.relaxed_precision, relaxed_recall=s.relaxed_recall,
               relaxed_f1=s.relaxed_f1, rho_px=rho_px)
    return row


def tile_id(path: Path) -> str:
    """A tile's id from a ground-truth file name: the stem without SpaceNet's
    ``spacenetroads_`` prefix (``spacenetroads_AOI_2_Vegas_img99`` -> ``AOI_2_Vegas_img99``)."""
    return path.stem.split("spacenetroads_")[-1]


def _find(folder: Path, tile: str, suffixes) -> Path | None:
    """The file of ``folder`` whose stem is the tile id or ends with ``_<tile id>``
    (SpaceNet's ``RGB-PanSharpen_AOI_2_Vegas_img99.tif``)."""
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes
                   and (p.stem == tile or p.stem.endswith("_" + tile)))
    return found[0] if found else None


def pair_tiles(gt_dir: Path, prop: Path, image_dir: Path | None) -> list[tuple]:
    """(tile id, gt file, proposal file or None, image or None) for each ground-truth file:
    the proposal is a file of the proposal folder named like the tile (None if there is none:
    the tile scores 0), or one WKT_Pix CSV whose ImageId is the tile id."""
    pairs = []
    for gt in sorted(p for p in gt_dir.iterdir() if p.suffix.lower() in GRAPH_SUFFIXES):
        tile = tile_id(gt)
        image = _find(image_dir, tile, RASTER_SUFFIXES) if image_dir is not None else None
        proposal = _find(prop, tile, GRAPH_SUFFIXES) if prop.is_dir() else prop
        pairs.append((tile, gt, proposal, image))
    return pairs


def mean_row(rows: list[dict]) -> dict:
    """The mean of every numeric score column over tiles (parameters copied once)."""
    out: dict = {"tile": "mean"}
    for key in rows[0] if rows else []:
        if key in ("tile", "notes") or key.startswith("param_"):
            continue
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        out[key] = float(np.nanmean(values)) if values else float("nan")
    for key, value in (rows[0] if rows else {}).items():
        if key.startswith("param_"):
            out[key] = value
    out["notes"] = f"{len(rows)} tiles"
    return out
