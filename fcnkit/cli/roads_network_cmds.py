"""``fcnkit roads mask|graph|score``: road labels, mask -> road graph, SpaceNet metrics.

Thin: parse options, call :mod:`fcnkit.roads`, print. Every output is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from fcnkit.cli.common import console, err_console
from fcnkit.errors import InputError


def _write_raster(path: Path, array, transform, crs, nodata=None) -> None:
    """A single- or multi-band GeoTIFF, written to a temporary sibling then renamed."""
    from rasterio.io import MemoryFile

    from fcnkit.atomic import write_bytes

    data = array if array.ndim == 3 else array[None]
    profile = dict(driver="GTiff", height=data.shape[1], width=data.shape[2],
                   count=data.shape[0], dtype=str(data.dtype), transform=transform, crs=crs,
                   compress="deflate", nodata=nodata)
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data)
        write_bytes(path, mem.read())


def mask_cmd(
    lines: Path = typer.Argument(..., help="road lines (GeoJSON LineString/MultiLineString)"),
    like: Path = typer.Option(..., "--like", help="reference image: the label's grid and CRS"),
    output: Path = typer.Option(..., "-o", "--output", help="label GeoTIFF to write"),
    width: str = typer.Option("4m", "--width", help="full road width: '4m' or '13px'"),
    all_touched: bool = typer.Option(False, "--all-touched", help="burn every touched pixel"),
    burn: int = typer.Option(255, "--burn", help="burn value (1..255)"),
    class_property: Optional[str] = typer.Option(
        None, "--class-property", help="burn each line with the integer value of this "
        "property (e.g. road_type)"),
    speed_table: Optional[Path] = typer.Option(
        None, "--speed-table", help="CRESI speed bins CSV: burn each line with the bin of its "
        "--class-property speed in mph (default property inferred_speed_mph)"),
    multi_channel: bool = typer.Option(False, "--multi-channel", help="with --speed-table: "
                                       "one band per speed bin (255 on its roads)"),
    refine: Optional[str] = typer.Option(None, "--refine", help="'floodfill' to grow the "
                                         "label over the road surface in --like"),
    bands: Optional[List[int]] = typer.Option(None, "--bands", help="1-based image bands for "
                                              "floodFill (1 or 3; default 1 or 1,2,3)"),
    lo_diff: List[float] = typer.Option([12.0], "--lo-diff", help="floodFill lower tolerance "
                                        "per channel (stretched 0..255)"),
    up_diff: List[float] = typer.Option([12.0], "--up-diff", help="floodFill upper tolerance"),
    connectivity: int = typer.Option(8, "--connectivity", help="floodFill 4 or 8"),
    floating: bool = typer.Option(False, "--floating-range", help="compare with neighbours, "
                                  "not the seed"),
    max_distance: float = typer.Option(6.0, "--max-distance", help="floodFill corridor around "
                                       "the lines, metres"),
):
    """Rasterise road lines onto an image's grid (solaris-equal buffered labels)."""
    from fcnkit.roads import labels as L
    from fcnkit.roads.score import read_grid
    from fcnkit.roads.vector import read_road_lines

    shape, transform, crs = read_grid(like)
    road = read_road_lines(lines)
    if speed_table is not None:
        return _speed_mask(road, speed_table, class_property or "inferred_speed_mph",
                           multi_channel, (shape, transform, crs), width, all_touched, output)
    values = L.class_values(road, class_property) if class_property else burn
    report = L.burn_road_lines(road, shape=shape, transform=transform, crs=crs, width=width,
                               all_touched=all_touched, burn_values=values)
    mask = report.mask
    if refine:
        mask = _refine(refine, like, road, report.mask, (shape, transform, crs), bands,
                       lo_diff, up_diff, connectivity, floating, max_distance)
    _write_raster(output, mask, transform, crs, nodata=None)
    if report.reprojected_from:
        console.print(f"lines reprojected from {report.reprojected_from} to {crs}", markup=False)
    console.print(f"wrote {output}: {int((mask > 0).sum())} road pixels from {report.lines} "
                  f"lines ({report.outside} outside the image, ignored; {report.skipped} "
                  "non-line features skipped)", markup=False)


def _speed_mask(road, table_path, prop, multi_channel, grid, width, all_touched, output):
    from fcnkit.roads.labels import speed_label_mask

    shape, transform, crs = grid
    mask = speed_label_mask(road, table_path, prop, multi_channel, shape=shape,
                            transform=transform, crs=crs, width=width, all_touched=all_touched)
    _write_raster(output, mask, transform, crs)
    console.print(f"wrote {output}: speed labels of {len(road.geometries)} lines "
                  f"({'one band per bin' if multi_channel else 'bin burn values'})",
                  markup=False)


def _refine(method, like, road, label, grid, bands, lo, up, connectivity, floating, max_m):
    from fcnkit.roads.refine import FloodFillParams, refine_with_image

    if method != "floodfill":
        raise InputError(f"--refine {method!r}: the one refinement is 'floodfill'")
    params = FloodFillParams(tuple(lo), tuple(up), connectivity, not floating, max_m)
    result = refine_with_image(like, road, label, grid, params, bands)
    console.print(f"floodFill: {result.seeds} seeds, {result.added} pixels added, "
                  f"{result.removed} removed", markup=False)
    return result.mask


def graph_cmd(
    mask: Path = typer.Argument(..., help="road mask or probability GeoTIFF (band 1)"),
    output: Path = typer.Option(..., "-o", "--output", help="road graph GeoJSON to write"),
    threshold: float = typer.Option(0.3, "--threshold", help="road if probability > T "
                                    "(uint8 masks: value/255; CRESI 0.3)"),
    wkt_csv: Optional[Path] = typer.Option(None, "--wkt-csv", help="also write the SpaceNet "
                                           "ImageId,WKT_Pix CSV"),
    graphml: Optional[Path] = typer.Option(None, "--graphml", help="also write GraphML"),
    image_id: Optional[str] = typer.Option(None, "--image-id", help="ImageId for the CSV "
                                           "(default: the mask's stem)"),
    speed_mask: Optional[Path] = typer.Option(None, "--speed-mask", help="multi-channel "
                                              "speed-bin mask (SpaceNet 5 / CRESI)"),
    speed_bins: Optional[Path] = typer.Option(None, "--speed-bins", help="CRESI speed bin "
                                              "CSV (speed_conversion_binned7.csv)"),
    no_clean: bool = typer.Option(False, "--no-clean", help="keep the raw skeleton graph"),
    min_spur: float = typer.Option(10.0, "--min-spur-m", help="spur length to remove, m"),
    min_subgraph: float = typer.Option(6.0, "--min-subgraph-m", help="subgraph length to "
                                       "remove, m"),
):
    """Road mask -> road graph (GeoJSON; WKT_Pix CSV; GraphML), lengths in metres."""
    from fcnkit.atomic import write_text
    from fcnkit.roads.graph import GraphParams, mask_to_pixel_graph
    from fcnkit.roads.graph_io import (assign_speeds, geojson_text, graphml_text,
                                       georeference, read_speed_bins, wkt_csv_text,
                                       wkt_pix_lines)
    from fcnkit.roads.score import gsd_metres, read_mask

    array, (shape, transform, crs) = read_mask(mask)
    params = GraphParams(threshold=threshold, min_spur_length_m=min_spur,
                         min_subgraph_length_m=min_subgraph)
    pixel_graph, report = mask_to_pixel_graph(array, gsd_metres(transform, crs), params,
                                              clean=not no_clean)
    graph = georeference(pixel_graph, transform, crs)
    speeds = None
    if speed_mask is not None:
        import rasterio

        with rasterio.open(speed_mask) as src:
            if src.shape != shape:
                raise InputError(f"{speed_mask}: grid {src.shape} differs from {mask} {shape}")
            speeds = src.read()
    if speeds is not None and speed_bins is None:
        raise InputError("--speed-mask needs --speed-bins (the CRESI bin table)")
    bins = read_speed_bins(speed_bins) if speed_bins else None
    defaulted = assign_speeds(graph, speeds, bins)
    texts = [(output, geojson_text(graph))]
    if graphml:
        texts.append((graphml, graphml_text(graph)))
    if wkt_csv:
        texts.append((wkt_csv, wkt_csv_text({image_id or mask.stem: wkt_pix_lines(graph)})))
    for path, text in texts:
        write_text(path, text)
    total = sum(d["length"] for _, _, d in graph.edges(data=True))
    console.print(f"wrote {', '.join(str(p) for p, _ in texts)}: {graph.number_of_nodes()} "
                  f"nodes, {graph.number_of_edges()} edges, {total:.1f} m of road; cleaning: "
                  f"{report.spurs} spurs, {report.bridges} gaps bridged, "
                  f"{report.subgraph_nodes} small-subgraph nodes, {report.self_loops} loops "
                  f"removed; {defaulted} edges at the default speed", markup=False)


def score_cmd(
    gt: Path = typer.Argument(..., help="ground truth: GeoJSON, WKT_Pix CSV, GraphML, mask "
                              ".tif, or a folder of them"),
    proposal: Path = typer.Argument(..., help="proposal: same kinds, a folder, or one WKT_Pix "
                                    "CSV for all tiles"),
    image: Optional[Path] = typer.Option(None, "--image", help="image (or folder of images) "
                                         "giving WKT_Pix's grid"),
    linestring_delta: float = typer.Option(50.0, "--linestring-delta", help="midpoint "
                                           "spacing, m (apls HEAD 50)"),
    is_curved_eps: float = typer.Option(-1.0, "--is-curved-eps", help="straightness "
                                        "threshold; <0: midpoints on every edge"),
    max_snap_dist: float = typer.Option(4.0, "--max-snap-dist", help="snap distance, m"),
    min_path_length: float = typer.Option(0.001, "--min-path-length", help="shortest path "
                                          "scored, m"),
    weight: str = typer.Option("length", "--weight", help="length or travel_time_s"),
    max_nodes: int = typer.Option(500, "--max-nodes", help="sample control nodes above this"),
    seed: int = typer.Option(0, "--seed", help="seed of that sampling"),
    rho: float = typer.Option(3.0, "--rho", help="relaxed precision/recall slack, pixels"),
    with_topo: bool = typer.Option(False, "--topo", help="also the TOPO metric (apls: radius "
                                   "150 m, interval 30 m, hole 4 m)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="scores .csv or .json"),
):
    """APLS (and pixel IoU/F1 for masks) of proposals against ground truth, per tile + mean."""
    import time

    from fcnkit.roads.apls import AplsParams
    from fcnkit.roads.score import mean_row, pair_tiles, score_tile

    if weight not in ("length", "travel_time_s"):
        raise InputError(f"--weight {weight!r}: give length or travel_time_s")
    params = AplsParams(linestring_delta, is_curved_eps, max_snap_dist, min_path_length,
                        weight, max_nodes, seed)
    for path in (gt, proposal):
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
    if gt.is_dir():
        tiles = pair_tiles(gt, proposal, image if image and image.is_dir() else None)
        if not tiles:
            raise InputError(f"{gt}: no ground-truth files (.geojson, .csv, .graphml, .tif)")
    else:
        tiles = [(None, gt, proposal, image)]
    rows = []
    for tile_id, gt_path, prop_path, tile_image in tiles:
        start = time.perf_counter()
        rows.append(score_tile(gt_path, prop_path, params=params, image=tile_image,
                               image_id=tile_id if prop_path is not None
                               and prop_path.suffix == ".csv" else None,
                               rho_px=rho, with_topo=with_topo))
        err_console.print(f"{rows[-1]['tile']}: APLS {rows[-1]['apls']:.6f} "
                          f"({time.perf_counter() - start:.2f} s)", markup=False)
        if rows[-1]["notes"]:
            err_console.print(f"  note: {rows[-1]['notes']}", markup=False)
    if len(rows) > 1:
        rows.append(mean_row(rows))
    _report(rows, output)


def _report(rows: list[dict], output: Optional[Path]) -> None:
    import csv
    import io
    import json

    from fcnkit.atomic import write_text

    keys = list(dict.fromkeys(k for r in rows for k in r))
    if output is not None:
        if output.suffix.lower() == ".json":
            write_text(output, json.dumps(rows, indent=1, default=str))
        else:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            write_text(output, buf.getvalue())
    for row in rows:
        console.print(f"{row['tile']}: APLS {row['apls']:.6f} (gt->prop "
                      f"{row['apls_gt_onto_prop']:.6f}, prop->gt {row['apls_prop_onto_gt']:.6f})"
                      + (f", mean IoU {row['mean_iou']:.4f}" if "mean_iou" in row else ""),
                      markup=False)
    params = {k[6:]: v for k, v in rows[0].items() if k.startswith("param_")}
    console.print("parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()), markup=False)
    if output is not None:
        console.print(f"wrote {output}", markup=False)


def register(roads_app: typer.Typer) -> None:
    """Add ``mask``, ``graph`` and ``score`` to the ``fcnkit roads`` group."""
    roads_app.command("mask")(mask_cmd)
    roads_app.command("graph")(graph_cmd)
    roads_app.command("score")(score_cmd)
