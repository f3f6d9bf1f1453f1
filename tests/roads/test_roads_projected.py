"""Road graphs and APLS on a projected (UTM) raster: a mask's pixels are taken through the
raster's CRS to lon/lat before apls' UTM lengths (SpaceNet's own tiles are EPSG:4326, so the
reference code only ever saw geographic grids)."""

from __future__ import annotations

import networkx as nx
import pytest
import rasterio

from fcnkit.geo.synth import make_scene
from fcnkit.roads.score import load_graph, score_tile


@pytest.fixture(scope="module")
def utm_scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("utm")
    make_scene(d / "s.tif", d / "s.geojson", size=512, seed=3, gsd=0.6)
    return d


def test_synthetic_labels_are_noded_like_spacenet(utm_scene):
    # crossing roads share a vertex, so apls' graph of the ground truth is one network
    gt = load_graph(utm_scene / "s.geojson", first_node_id=0)
    assert nx.number_connected_components(gt) == 1


def test_true_mask_of_a_utm_scene_scores_high(utm_scene):
    with rasterio.open(utm_scene / "s_label.tif") as src:
        assert src.crs.is_projected
    prop = load_graph(utm_scene / "s_label.tif", first_node_id=1000)
    gt = load_graph(utm_scene / "s.geojson", first_node_id=0)
    # same network, lengths in metres on both sides (0.6 m pixels, roads of 6-12 m)
    gt_len = sum(d["length"] for *_, d in gt.edges(data=True))
    prop_len = sum(d["length"] for *_, d in prop.edges(data=True))
    assert prop_len == pytest.approx(gt_len, rel=0.05)
    row = score_tile(utm_scene / "s.geojson", utm_scene / "s_label.tif")
    assert row["apls"] > 0.9
