"""``fcnkit roads mask|graph|score`` end to end, and the bad inputs of issue 10
(acceptance 5): clear errors (exit 2), nothing written on failure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from fcnkit.cli.main import main
from fcnkit.roads.vector import read_road_lines, reproject


def _run(capsys, *argv):
    code = main(["roads", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_mask_graph_score_chain(tmp_path, spacenet, capsys):
    d = spacenet / "solaris"
    mask, geo, csv_, scores = (tmp_path / n for n in ("m.tif", "g.geojson", "s.csv", "o.json"))
    code, text = _run(capsys, "mask", d / "sample_roads_for_masking.geojson", "--like",
                      d / "road_mask_input.tif", "-o", mask)
    assert code == 0 and "56416 road pixels from 9 lines" in text
    with rasterio.open(mask) as src, rasterio.open(d / "sample_road_raster_mask.tif") as ref:
        assert np.array_equal(src.read(1), ref.read(1)) and src.crs == ref.crs
    code, text = _run(capsys, "graph", mask, "-o", geo, "--wkt-csv", csv_)
    assert code == 0 and "edges" in text
    assert csv_.read_text().startswith("ImageId,WKT_Pix\nm,")
    code, text = _run(capsys, "score", d / "sample_roads_for_masking.geojson", geo, "-o", scores)
    assert code == 0
    row, = json.loads(scores.read_text())
    assert row["apls"] >= 0.99
    assert row["param_linestring_delta"] == 50 and row["param_max_snap_dist"] == 4
    assert row["param_is_curved_eps"] == -1 and row["param_min_path_length"] == 0.001
    assert "s)" in text  # per-tile time


def test_score_img99_cli_records_parameters(tmp_path, spacenet, capsys):
    d = spacenet / "apls" / "img99"
    out = tmp_path / "scores.csv"
    code, text = _run(capsys, "score", d / "spacenetroads_AOI_2_Vegas_img99.geojson",
                      d / "osm_AOI_2_Vegas_img99.geojson", "--linestring-delta", 200,
                      "--is-curved-eps", 0.12, "-o", out)
    assert code == 0 and "APLS 0.734504" in text
    header, row = out.read_text().splitlines()
    values = dict(zip(header.split(","), row.split(",")))
    assert float(values["apls"]) == pytest.approx(0.734504, abs=1e-6)
    assert values["param_linestring_delta"] == "200.0" and values["param_weight"] == "length"


def test_empty_geojson_gives_empty_mask_and_apls_zero_with_note(tmp_path, spacenet, capsys):
    d = spacenet / "solaris"
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    mask = tmp_path / "m.tif"
    code, text = _run(capsys, "mask", empty, "--like", d / "road_mask_input.tif", "-o", mask)
    assert code == 0 and "0 road pixels from 0 lines" in text
    code, text = _run(capsys, "graph", mask, "-o", tmp_path / "g.geojson", "--wkt-csv",
                      tmp_path / "s.csv")
    assert code == 0 and "m,LINESTRING EMPTY" in (tmp_path / "s.csv").read_text()
    assert json.loads((tmp_path / "g.geojson").read_text())["features"] == []
    code, text = _run(capsys, "score", empty, d / "sample_roads_for_masking.geojson")
    assert code == 0 and "APLS 0.000000" in text and "ground truth graph empty" in text


def test_other_crs_is_reprojected_and_said(tmp_path, spacenet, capsys):
    d = spacenet / "solaris"
    lines = read_road_lines(d / "sample_roads_for_masking.geojson")
    utm = reproject(lines.geometries, lines.crs, "EPSG:32611")
    doc = {"type": "FeatureCollection",
           "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32611"}},
           "features": [{"type": "Feature", "properties": {}, "geometry": g.__geo_interface__}
                        for g in utm]}
    path = tmp_path / "utm.geojson"
    path.write_text(json.dumps(doc))
    mask = tmp_path / "m.tif"
    code, text = _run(capsys, "mask", path, "--like", d / "road_mask_input.tif", "-o", mask)
    assert code == 0 and "reprojected from urn:ogc:def:crs:EPSG::32611" in text
    with rasterio.open(mask) as src, rasterio.open(d / "sample_road_raster_mask.tif") as ref:
        assert int((src.read(1) != ref.read(1)).sum()) <= 10


def test_lines_outside_the_image_are_counted(tmp_path, spacenet, capsys):
    far = tmp_path / "far.geojson"
    far.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {},
         "geometry": {"type": "LineString", "coordinates": [[10, 10], [10.01, 10]]}}]}))
    code, text = _run(capsys, "mask", far, "--like",
                      spacenet / "solaris" / "road_mask_input.tif", "-o", tmp_path / "m.tif")
    assert code == 0 and "1 outside the image, ignored" in text


def test_corrupt_csv_row_named_and_nothing_written(tmp_path, spacenet, capsys):
    d = spacenet / "solaris"
    bad = tmp_path / "road_mask_input.csv"
    bad.write_text('ImageId,WKT_Pix\nroad_mask_input,"LINESTRING (0 0, 5 5)"\n'
                   'road_mask_input,"LINESTRING (1 2, x)"\n')
    out = tmp_path / "scores.csv"
    code, text = _run(capsys, "score", d / "sample_roads_for_masking.geojson", bad, "--image",
                      d / "road_mask_input.tif", "-o", out)
    assert code == 2 and "road_mask_input.csv:3:" in text and "Traceback" not in text
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_mask_of_the_wrong_grid_is_refused(tmp_path, spacenet, capsys):
    d = spacenet / "solaris"
    small = tmp_path / "small.tif"
    with rasterio.open(d / "sample_road_raster_mask.tif") as src:
        profile = src.profile | {"width": 650, "height": 650}
        data = src.read(1)[:650, :650]
    with rasterio.open(small, "w", **profile) as dst:
        dst.write(data, 1)
    out = tmp_path / "o.csv"
    code, text = _run(capsys, "score", d / "sample_road_raster_mask.tif", small, "-o", out)
    assert code == 2 and "different grid" in text and not out.exists()


def test_failed_graph_writes_no_partial_output(tmp_path, capsys):
    bad = tmp_path / "p.tif"
    with rasterio.open(bad, "w", driver="GTiff", width=8, height=8, count=1, dtype="float32",
                       crs="EPSG:32611", transform=rasterio.Affine(1, 0, 0, 0, -1, 8)) as dst:
        dst.write(np.full((1, 8, 8), 7.0, np.float32))
    code, text = _run(capsys, "graph", bad, "-o", tmp_path / "g.geojson", "--graphml",
                      tmp_path / "g.graphml")
    assert code == 2 and "[0, 1]" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.tif"]


def test_many_tiles_from_folders_with_a_mean_row(tmp_path, spacenet, capsys):
    d = spacenet / "apls" / "img99"
    gt_dir, prop_dir = tmp_path / "gt", tmp_path / "prop"
    gt_dir.mkdir()
    prop_dir.mkdir()
    for name in ("a", "b"):
        (gt_dir / f"{name}.geojson").write_bytes(
            (d / "spacenetroads_AOI_2_Vegas_img99.geojson").read_bytes())
    (prop_dir / "a.geojson").write_bytes((d / "osm_AOI_2_Vegas_img99.geojson").read_bytes())
    (prop_dir / "b.geojson").write_bytes(
        (d / "spacenetroads_AOI_2_Vegas_img99.geojson").read_bytes())
    (gt_dir / "c.geojson").write_bytes(  # no proposal for tile c: it scores 0
        (d / "spacenetroads_AOI_2_Vegas_img99.geojson").read_bytes())
    out = tmp_path / "scores.json"
    code, text = _run(capsys, "score", gt_dir, prop_dir, "-o", out)
    assert code == 0
    rows = json.loads(out.read_text())
    assert [r["tile"] for r in rows] == ["a", "b", "c", "mean"]
    assert rows[0]["apls"] == pytest.approx(0.780562, abs=1e-6)
    assert rows[1]["apls"] == pytest.approx(1.0)
    assert rows[2]["apls"] == 0.0 and "proposal graph empty" in rows[2]["notes"]
    assert rows[3]["apls"] == pytest.approx((rows[0]["apls"] + 1.0) / 3)
    assert rows[3]["param_linestring_delta"] == 50.0


def test_mask_refine_floodfill_cli(tmp_path, capsys):
    from tests.roads.test_roads_refine import CRS, TRANSFORM, _scene

    img, surface, line = _scene()
    image = tmp_path / "scene.tif"
    with rasterio.open(image, "w", driver="GTiff", width=200, height=200, count=1,
                       dtype="uint16", crs=CRS, transform=TRANSFORM) as dst:
        dst.write(img)
    lines = tmp_path / "road.geojson"
    lines.write_text(json.dumps({
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "EPSG:32611"}},
        "features": [{"type": "Feature", "properties": {}, "geometry": line.__geo_interface__}]}))
    out = tmp_path / "label.tif"
    code, text = _run(capsys, "mask", lines, "--like", image, "-o", out, "--width", "8m",
                      "--refine", "floodfill", "--lo-diff", 40, "--up-diff", 40,
                      "--max-distance", 12)
    assert code == 0 and "pixels added" in text
    with rasterio.open(out) as src:
        refined = src.read(1) > 0
    iou = (refined & surface).sum() / (refined | surface).sum()
    assert iou > 0.9


def test_submission_csv_against_a_folder_reproduces_the_anchor(tmp_path, spacenet, capsys):
    """The solaris anchor through the CLI: sknw WKT_Pix rows in a SpaceNet CSV, ground truth
    named spacenetroads_<tile>.geojson, image <prefix>_<tile>.tif."""
    from skimage.morphology import skeletonize

    from fcnkit.roads.graph_io import wkt_csv_text
    from fcnkit.roads.skeleton import build_pixel_graph, graph_wkt_pix

    d = spacenet / "solaris"
    with rasterio.open(d / "sample_road_raster_mask.tif") as src:
        wkt = graph_wkt_pix(build_pixel_graph(skeletonize(src.read(1) > 0)))
    gt_dir, im_dir = tmp_path / "gt", tmp_path / "images"
    gt_dir.mkdir()
    im_dir.mkdir()
    (gt_dir / "spacenetroads_tile7.geojson").write_bytes(
        (d / "sample_roads_for_masking.geojson").read_bytes())
    (im_dir / "PAN_tile7.tif").write_bytes((d / "road_mask_input.tif").read_bytes())
    sub = tmp_path / "submission.csv"
    sub.write_text(wkt_csv_text({"tile7": wkt, "tile8": []}))
    (gt_dir / "spacenetroads_tile9.geojson").write_bytes(  # tile 9 is not in the CSV
        (d / "sample_roads_for_masking.geojson").read_bytes())
    (im_dir / "PAN_tile9.tif").write_bytes((d / "road_mask_input.tif").read_bytes())
    out = tmp_path / "s.json"
    code, text = _run(capsys, "score", gt_dir, sub, "--image", im_dir, "-o", out)
    assert code == 0, text
    row7, row9, mean = json.loads(out.read_text())
    assert (row7["tile"], row9["tile"], mean["tile"]) == ("tile7", "tile9", "mean")
    assert row7["apls"] == pytest.approx(0.992486, abs=1e-6)
    assert row9["apls"] == 0.0 and mean["apls"] == pytest.approx(row7["apls"] / 2)


def test_two_masks_get_pixel_metrics(tmp_path, spacenet, capsys):
    d = spacenet / "solaris"
    touched = tmp_path / "touched.tif"
    code, _ = _run(capsys, "mask", d / "sample_roads_for_masking.geojson", "--like",
                   d / "road_mask_input.tif", "-o", touched, "--all-touched")
    assert code == 0
    out = tmp_path / "s.json"
    code, text = _run(capsys, "score", d / "sample_road_raster_mask.tif", touched, "-o", out)
    assert code == 0
    row, = json.loads(out.read_text())
    # all_touched = the 56,416 solaris pixels + 4,243 more: road IoU 56416 / 60659
    assert row["iou_255"] == pytest.approx(56416 / 60659)
    assert row["precision"] == pytest.approx(56416 / 60659) and row["recall"] == 1.0
    assert row["relaxed_precision"] == 1.0  # the extra pixels touch the buffer
    assert row["apls"] > 0.95


def test_graph_with_speed_mask(tmp_path, spacenet, capsys):
    transform = rasterio.Affine(0.5, 0, 500000.0, 0, -0.5, 4000000.0)
    mask = np.zeros((1, 60, 200), np.uint8)
    mask[0, 25:35, 10:190] = 255
    speed = np.zeros((7, 60, 200), np.uint8)
    speed[5, 25:35, 10:190] = 200  # channel 5: 51..60 mph, mean 55.5
    paths = {}
    for name, data in (("mask", mask), ("speed", speed)):
        paths[name] = tmp_path / f"{name}.tif"
        with rasterio.open(paths[name], "w", driver="GTiff", width=200, height=60,
                           count=data.shape[0], dtype="uint8", crs="EPSG:32611",
                           transform=transform) as dst:
            dst.write(data)
    out = tmp_path / "g.geojson"
    code, text = _run(capsys, "graph", paths["mask"], "-o", out, "--speed-mask", paths["speed"],
                      "--speed-bins", spacenet / "cresi" / "speed_conversion_binned7.csv")
    assert code == 0 and "0 edges at the default speed" in text
    (feature,) = json.loads(out.read_text())["features"]
    props = feature["properties"]
    assert props["speed_mph"] == pytest.approx(55.5)
    assert props["travel_time_s"] == pytest.approx(props["length_m"] / (55.5 * 0.44704))
    code, text = _run(capsys, "graph", paths["mask"], "-o", out, "--speed-mask", paths["speed"])
    assert code == 2 and "--speed-bins" in text


def test_speed_labels_single_and_multi_channel(tmp_path, spacenet, capsys):
    d = spacenet / "solaris"
    doc = json.loads((d / "sample_roads_for_masking.geojson").read_text())
    speeds = [5, 25, 45, 65, 30, 30, 12, 70, 0.4]  # mph; 70 and 0.4 clip to the table ends
    for feature, mph in zip(doc["features"], speeds):
        feature["properties"]["inferred_speed_mph"] = mph
    lines = tmp_path / "speeds.geojson"
    lines.write_text(json.dumps(doc))
    table = spacenet / "cresi" / "speed_conversion_binned7.csv"
    single, multi = tmp_path / "s.tif", tmp_path / "m.tif"
    assert _run(capsys, "mask", lines, "--like", d / "road_mask_input.tif", "-o", single,
                "--speed-table", table)[0] == 0
    assert _run(capsys, "mask", lines, "--like", d / "road_mask_input.tif", "-o", multi,
                "--speed-table", table, "--multi-channel")[0] == 0
    rows = [r.split(",") for r in table.read_text().splitlines()[1:]]
    by_speed = {int(r[2]): (int(r[1]), int(r[3])) for r in rows}
    with rasterio.open(single) as a, rasterio.open(multi) as b:
        burned, bands = a.read(1), b.read()
    assert bands.shape[0] == 7
    expected_burns = {by_speed[min(65, max(1, round(s)))][0] for s in speeds}
    assert set(np.unique(burned)) - {0} == expected_burns
    # the union of the bands is the binary road mask; each band only holds its bin's roads
    with rasterio.open(d / "sample_road_raster_mask.tif") as ref:
        assert np.array_equal(bands.max(axis=0) > 0, ref.read(1) > 0)
    channel_of_feature0 = by_speed[5][1]
    assert bands[channel_of_feature0].any()
