"""APLS against the oracles computed with CosmiQ/apls 4a78807 (../shared/data/spacenet)."""

from __future__ import annotations

import networkx as nx
import pytest
import rasterio
from shapely.geometry import LineString

from fcnkit.roads.apls import AplsParams, apls, path_similarity
from fcnkit.roads.apls_graph import graph_from_lines, graph_from_wkt_pix
from fcnkit.roads.skeleton import build_pixel_graph, graph_wkt_pix
from fcnkit.roads.vector import read_road_lines

HEAD = AplsParams(linestring_delta=50, is_curved_eps=-1)
V010 = AplsParams(linestring_delta=200, is_curved_eps=0.12)


@pytest.fixture(scope="module")
def img99(spacenet):
    d = spacenet / "apls" / "img99"
    gt = graph_from_lines(read_road_lines(d / "spacenetroads_AOI_2_Vegas_img99.geojson"))
    prop = graph_from_lines(read_road_lines(d / "osm_AOI_2_Vegas_img99.geojson"),
                            first_node_id=500)
    return gt, prop


@pytest.mark.parametrize("params, expected", [
    (HEAD, (0.780562, 0.780817, 0.780306)),
    (V010, (0.734504, 0.732511, 0.736508)),
])
def test_img99_matches_cosmiq(img99, params, expected):
    result = apls(*img99, params)
    got = (result.apls, result.gt_onto_prop, result.prop_onto_gt)
    assert got == pytest.approx(expected, abs=1e-6)
    assert result.gt_length_m == pytest.approx(319.624, abs=1e-3)
    assert result.prop_length_m == pytest.approx(309.596, abs=1e-3)
    assert result.params is params


def test_solaris_skeleton_anchor(spacenet):
    d = spacenet / "solaris"
    with rasterio.open(d / "sample_road_raster_mask.tif") as src:
        mask = src.read(1)
    with rasterio.open(d / "road_mask_input.tif") as src:
        transform = src.transform
    from skimage.morphology import skeletonize

    wkt = graph_wkt_pix(build_pixel_graph(skeletonize(mask > 0)))
    prop = graph_from_wkt_pix(wkt, transform)
    gt = graph_from_lines(read_road_lines(d / "sample_roads_for_masking.geojson"))
    result = apls(gt, prop, HEAD)
    assert (result.apls, result.gt_onto_prop, result.prop_onto_gt) == pytest.approx(
        (0.992486, 0.992586, 0.992386), abs=1e-6)
    assert result.gt_length_m == pytest.approx(1029.70, abs=0.01)
    assert result.prop_length_m == pytest.approx(1028.03, abs=0.01)


def _line_graph(coords_list):
    g = nx.MultiGraph()
    ids = {}
    for coords in coords_list:
        for c in (coords[0], coords[-1]):  # nodes at the line ends only
            if c not in ids:
                ids[c] = len(ids)
                g.add_node(ids[c], x=c[0], y=c[1])
        line = LineString(coords)
        g.add_edge(ids[coords[0]], ids[coords[-1]], geometry=line, length=line.length)
    return g


def test_path_difference_formula_by_hand():
    # native: A-B 100 m, B-C 100 m; prime: A-B 100 m, B-C 150 m (a detour)
    native = _line_graph([[(0, 0), (100, 0)], [(100, 0), (200, 0)]])
    prime = _line_graph([[(0, 0), (100, 0)], [(100, 0), (175, 50), (200, 0)]])
    bc = LineString([(100, 0), (175, 50), (200, 0)]).length
    c, routes = path_similarity(native, prime, [0, 1, 2], "length", 0.001)
    # ordered pairs: AB 0, BA 0, BC d, CB d, AC e, CA e
    d = min(1, abs(100 - bc) / 100)
    e = min(1, abs(200 - (100 + bc)) / 200)
    assert routes == 6
    assert c == pytest.approx(1 - (2 * d + 2 * e) / 6, abs=1e-12)


def test_missing_start_node_scores_one_per_route():
    native = _line_graph([[(0, 0), (100, 0)], [(100, 0), (200, 0)]])
    prime = _line_graph([[(0, 0), (100, 0)]])  # node 2 absent, 0-1 kept
    c, routes = path_similarity(native, prime, [0, 1, 2], "length", 0.001)
    # from 0: to 1 ok (0), to 2 missing (1); from 1: 0 ok, 2 missing; from 2: both 1
    assert routes == 6 and c == pytest.approx(1 - 4 / 6)


def test_empty_graph_gives_zero_with_a_note(img99):
    result = apls(img99[0], nx.MultiGraph(), HEAD)
    assert result.apls == 0 and "proposal graph empty" in result.notes[0]


def test_identical_graphs_score_one(img99):
    assert apls(img99[0], img99[0].copy(), HEAD).apls == pytest.approx(1.0, abs=1e-12)


def test_travel_time_weight_with_one_speed_equals_length_weight(img99):
    by_length = apls(*img99, HEAD)
    by_time = apls(*img99, AplsParams(weight="travel_time_s"))
    # every edge gets the default 13.41 m/s: times are lengths / 13.41, ratios unchanged
    assert by_time.apls == pytest.approx(by_length.apls, abs=1e-9)
    assert "without speed got 13.41 m/s" in by_time.notes[0]


def test_large_graph_sampling_is_seeded(img99):
    params = AplsParams(max_nodes=6, seed=3)
    first, again = apls(*img99, params), apls(*img99, params)
    assert first.apls == again.apls and first.gt_control_points == 6
    assert "sampled control nodes (seed 3)" in first.notes[0]
    assert 0 < first.apls <= 1


def test_travel_time_uses_edge_speeds(img99):
    gt, prop = img99[0].copy(), img99[0].copy()
    for graph, mph in ((gt, 30.0), (prop, 15.0)):
        for _, _, d in graph.edges(data=True):
            d["speed_mph"] = mph  # the proposal is half as fast: every trip takes twice as long
    result = apls(gt, prop, AplsParams(weight="travel_time_s"))
    # every route differs by |t - 2t| / t = 1: C = 0 gt -> prop, APLS 0
    assert result.gt_onto_prop == pytest.approx(0.0, abs=1e-9) and result.apls == 0.0
    assert result.notes == []
    del gt.edges[next(iter(gt.edges(keys=True)))]["speed_mph"]
    assert apls(gt, prop, AplsParams(weight="travel_time_s")).notes == [
        "1 edges without speed got 13.41 m/s"]
    assert apls(gt, prop, AplsParams(weight="length")).apls == pytest.approx(1.0)
