"""Mask -> graph: sknw semantics on hand-made skeletons, the perfect-mask round trip on real
tiles (>= 0.99 APLS on the solaris tile; cleaning never lowers APLS), speeds and outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from affine import Affine
from shapely.geometry import shape

from fcnkit.errors import InputError
from fcnkit.roads.apls import AplsParams, apls
from fcnkit.roads.apls_graph import graph_from_lines
from fcnkit.roads.graph import mask_to_pixel_graph
from fcnkit.roads.graph_io import (assign_speeds, geojson_text, georeference, graphml_text,
                                   read_speed_bins, read_wkt_csv, wkt_csv_text, wkt_pix_lines)
from fcnkit.roads.labels import road_mask
from fcnkit.roads.skeleton import build_pixel_graph
from fcnkit.roads.vector import RoadLines, read_road_lines, reproject


def test_cross_skeleton_gives_one_junction_and_four_arms():
    ske = np.zeros((11, 11), bool)
    ske[5, 1:10] = True
    ske[1:10, 5] = True
    g = build_pixel_graph(ske)
    # the 3x3 neighbourhood of the centre holds the only pixels with != 2 neighbours
    # besides the 4 arm tips: one junction cluster + 4 end nodes, 4 edges
    assert g.number_of_nodes() == 5 and g.number_of_edges() == 4
    junction = [n for n, d in g.degree() if d == 4]
    assert len(junction) == 1 and g.nodes[junction[0]]["o"].tolist() == [5, 5]
    tips = sorted(tuple(g.nodes[n]["o"].tolist()) for n, d in g.degree() if d == 1)
    assert tips == [(1, 5), (5, 1), (5, 9), (9, 5)]
    for _, _, d in g.edges(data=True):  # ends replaced by node centres
        assert d["pts"][0].tolist() in ([5, 5], *map(list, tips))
        assert d["weight"] == pytest.approx(4.0)


def test_ring_without_nodes_becomes_a_node_and_a_loop():
    ske = np.zeros((7, 7), bool)
    for r, c in [(1, 3), (2, 2), (3, 1), (4, 2), (5, 3), (4, 4), (3, 5), (2, 4)]:
        ske[r, c] = True  # a diamond ring: every pixel has exactly 2 (diagonal) neighbours
    g = build_pixel_graph(ske)
    assert g.number_of_nodes() == 1 and g.number_of_edges() == 1
    (u, v, d), = g.edges(data=True)
    assert u == v and g.nodes[u]["o"].tolist() == [1, 3]  # first pixel in row-major order
    assert d["weight"] == pytest.approx(8 * np.sqrt(2))


def _utm_grid(lines, gsd=0.3, margin=20.0):
    utm = reproject(lines.geometries, lines.crs, "EPSG:32611")
    x0, y0, x1, y1 = shapely.GeometryCollection(utm).bounds
    transform = Affine(gsd, 0, x0 - margin, 0, -gsd, y1 + margin)
    return (int((y1 - y0 + 2 * margin) / gsd), int((x1 - x0 + 2 * margin) / gsd)), transform


def _round_trip(lines, shape_, transform, crs, clean):
    mask = road_mask(lines, shape=shape_, transform=transform, crs=crs, width="4m")
    pixel_graph, _ = mask_to_pixel_graph(mask, 0.3, clean=clean)
    fc = json.loads(geojson_text(georeference(pixel_graph, transform, crs)))
    geoms = [shape(f["geometry"]) for f in fc["features"]]
    prop = graph_from_lines(RoadLines(geoms, [{}] * len(geoms)), first_node_id=500)
    return apls(graph_from_lines(lines), prop, AplsParams()).apls


def test_perfect_mask_round_trip_on_the_solaris_tile(spacenet, solaris_grid):
    lines = read_road_lines(spacenet / "solaris" / "sample_roads_for_masking.geojson")
    raw = _round_trip(lines, *solaris_grid, clean=False)
    cleaned = _round_trip(lines, *solaris_grid, clean=True)
    assert cleaned >= 0.99 and cleaned >= raw


@pytest.mark.parametrize("name", ["spacenetroads_AOI_2_Vegas_img99.geojson",
                                  "osm_AOI_2_Vegas_img99.geojson"])
def test_cleaning_never_lowers_apls_on_img99(spacenet, name):
    lines = read_road_lines(spacenet / "apls" / "img99" / name)
    shape_, transform = _utm_grid(lines)
    raw = _round_trip(lines, shape_, transform, "EPSG:32611", clean=False)
    cleaned = _round_trip(lines, shape_, transform, "EPSG:32611", clean=True)
    assert cleaned >= raw and cleaned > 0.95


def _bar_graph():
    mask = np.zeros((60, 200), np.uint8)
    mask[25:35, 10:190] = 255  # one straight road, 180 px long
    transform = Affine(0.5, 0, 500000.0, 0, -0.5, 4000000.0)
    pg, _ = mask_to_pixel_graph(mask, 0.5, clean=True)
    return georeference(pg, transform, "EPSG:32611")


def test_lengths_in_metres_and_speeds_from_bins(spacenet):
    g = _bar_graph()
    (_, _, d), = g.edges(data=True)
    pts = d["pts"]
    assert d["length"] == pytest.approx(0.5 * np.hypot(*(pts[-1] - pts[0])), rel=1e-6)
    bins = read_speed_bins(spacenet / "cresi" / "speed_conversion_binned7.csv")
    assert len(bins) == 7 and bins[0] == pytest.approx(5.5)  # speeds 1..10 mph in channel 0
    speed_mask = np.zeros((7, 60, 200), np.uint8)
    speed_mask[3] = 255  # all signal in channel 3
    assert assign_speeds(g, speed_mask, bins) == 0
    assert d["speed_mph"] == pytest.approx(bins[3])
    assert d["travel_time_s"] == pytest.approx(d["length"] / (bins[3] * 0.44704))
    assert assign_speeds(g, None, None) == 1 and d["speed_mph"] == 30.0


def test_outputs_geojson_graphml_wkt(tmp_path):
    g = _bar_graph()
    fc = json.loads(geojson_text(g))
    assert fc["features"][0]["geometry"]["type"] == "LineString"
    lon, lat = fc["features"][0]["geometry"]["coordinates"][0]
    assert -118 < lon < -116 and 36 < lat < 37  # UTM 11N near 500000 E, 4000000 N
    assert "<graphml" in graphml_text(g)
    text = wkt_csv_text({"tile1": wkt_pix_lines(g), "tile2": []})
    path = tmp_path / "s.csv"
    path.write_text(text)
    rows = read_wkt_csv(path)
    assert rows["tile2"] == [] and rows["tile1"][0].startswith("LINESTRING (")
    assert "tile2,LINESTRING EMPTY" in text


def test_corrupt_csv_row_is_named_by_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('ImageId,WKT_Pix\nt,"LINESTRING (0 0, 1 1)"\nt,"LINESTRING (0 0, oops)"\n')
    with pytest.raises(InputError, match=r"bad.csv:3: WKT_Pix is not valid WKT"):
        read_wkt_csv(path)
    path.write_text('ImageId,WKT_Pix\nt,"POINT (0 0)"\n')
    with pytest.raises(InputError, match=r"bad.csv:2: WKT_Pix must be a LINESTRING"):
        read_wkt_csv(path)


def test_float_mask_out_of_range_is_an_input_error():
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        mask_to_pixel_graph(np.full((10, 10), 3.0, np.float32), 0.3)


def _ends(graph):
    return sorted(tuple(graph.nodes[n]["o"].tolist()) for n, d in graph.degree() if d == 1)


def test_short_and_collinear_gaps_are_bridged_oblique_ones_not():
    import networkx as nx

    mask = np.zeros((100, 300), np.uint8)
    mask[45:56, 10:100] = 255    # road A
    mask[45:56, 115:180] = 255   # road B: 15 px (4.5 m) gap, bridged as short
    mask[45:56, 230:290] = 255   # road C: 50 px gap, collinear: bridged
    g, report = mask_to_pixel_graph(mask, 0.3)
    assert report.bridges == 2 and nx.number_connected_components(g) == 1
    oblique = np.zeros((200, 200), np.uint8)
    oblique[45:56, 10:100] = 255          # horizontal road ending at column 99
    oblique[90:190, 130:141] = 255        # vertical road starting 35 px below-right
    g, report = mask_to_pixel_graph(oblique, 0.3)
    assert report.bridges == 0 and nx.number_connected_components(g) == 2


def test_short_spur_removed_long_branch_kept():
    mask = np.zeros((160, 300), np.uint8)
    mask[45:56, 10:290] = 255     # main road
    mask[56:80, 70:79] = 255      # a 7 m stub below it (< 10 m): a spur
    mask[56:150, 200:209] = 255   # a 30 m side road: kept
    g, report = mask_to_pixel_graph(mask, 0.3)
    assert report.spurs >= 1
    tips = _ends(g)
    assert not any(r > 60 and 60 <= c <= 90 for r, c in tips)  # stub tip gone
    assert any(r > 140 and 195 <= c <= 215 for r, c in tips)   # side road tip kept
