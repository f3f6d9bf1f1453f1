"""`fcnkit roads connect | route | policy | crf` end to end: georeferenced outputs keep the
input's CRS and transform, map / EPSG / pixel points land on the right pixel, bad input gives
a clear error and no output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

from fcnkit.cli.main import main
from fcnkit.roads import points

TRANSFORM = from_origin(500000.0, 4000000.0, 0.3, 0.3)
CRS = "EPSG:32611"


def _write(path, data, dtype):
    bands = data[None] if data.ndim == 2 else data
    with rasterio.open(path, "w", driver="GTiff", count=bands.shape[0], height=bands.shape[1],
                       width=bands.shape[2], dtype=dtype, crs=CRS, transform=TRANSFORM) as ds:
        ds.write(bands.astype(dtype))
    return path


@pytest.fixture
def scene(tmp_path):
    prob = np.full((40, 50), 0.05, np.float32)
    prob[20, :] = 0.95
    prob[:, 30] = 0.9
    image = np.full((8, 40, 50), 300, np.uint16)
    image[:, 20, :] = 900
    image[:, :, 30] = 900
    image += np.random.default_rng(0).integers(0, 40, image.shape).astype(np.uint16)
    return (_write(tmp_path / "p.tif", prob, "float32"), _write(tmp_path / "img.tif", image, "uint16"),
            prob)


def _centre(row, col):
    x, y = TRANSFORM @ (col + 0.5, row + 0.5)
    return f"{x},{y}"


def _grid(path):
    with rasterio.open(path) as ds:
        return ds.crs.to_string(), ds.transform, ds.read()


def test_points_in_map_epsg_and_pixel_coordinates_land_on_the_pixel(scene):
    raster = points.read_probability(scene[0])
    x, y = TRANSFORM @ (17 + 0.5, 9 + 0.5)
    assert points.to_pixel((x, y), raster) == (9, 17)
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(x, y)
    assert points.to_pixel((lon, lat), raster, "EPSG:4326") == (9, 17)
    assert points.to_pixel((17.0, 9.0), raster, "pixel") == (9, 17)
    x0, y0 = TRANSFORM @ (17, 9)  # the pixel's upper-left corner belongs to it
    assert points.to_pixel((x0 + 1e-6, y0 - 1e-6), raster) == (9, 17)


def test_connect_writes_json_and_a_georeferenced_reach_map(scene, tmp_path, capsys):
    prob_tif, _, prob = scene
    out, reach = tmp_path / "r.json", tmp_path / "reach.tif"
    assert main(["roads", "connect", str(prob_tif), "--from", _centre(20, 0), "--to",
                 _centre(0, 30), "-n", "64", "--seed", "4", "-o", str(out), "--reach",
                 str(reach)]) == 0
    record = json.loads(out.read_text())
    assert record["source_pixel"] == [20, 0] and record["target_pixel"] == [0, 30]
    assert record["realisations"] == 64 and record["seed"] == 4
    assert record["low"] <= record["estimate"] <= record["high"]
    crs, transform, data = _grid(reach)
    assert crs == CRS and transform == TRANSFORM and data.shape == (1, 40, 50)
    assert data[0, 0, 30] == pytest.approx(record["estimate"])
    assert "P(A <-> B)" in capsys.readouterr().out


def test_route_policy_and_crf_outputs_keep_the_grid(scene, tmp_path):
    prob_tif, image_tif, prob = scene
    route = tmp_path / "route.geojson"
    assert main(["roads", "route", str(prob_tif), "--from", "0,20", "--to", "30,0", "--crs",
                 "pixel", "-o", str(route)]) == 0
    feature = json.loads(route.read_text())["features"][0]
    assert feature["properties"]["length_m"] == pytest.approx(
        0.3 * feature["properties"]["length_px"])
    lon, lat = feature["geometry"]["coordinates"][0]
    back = Transformer.from_crs("EPSG:4326", CRS, always_xy=True).transform(lon, lat)
    assert np.allclose(back, TRANSFORM @ (0.5, 20.5), atol=1e-3)
    pol, val, png = tmp_path / "pol.tif", tmp_path / "v.tif", tmp_path / "pol.png"
    assert main(["roads", "policy", str(prob_tif), "--goal", "30,20", "--crs", "pixel", "-o",
                 str(pol), "--value", str(val), "--png", str(png)]) == 0
    for path in (pol, val):
        crs, transform, data = _grid(path)
        assert crs == CRS and transform == TRANSFORM and data.shape == (1, 40, 50)
    assert _grid(pol)[2][0, 20, 30] == 255 and png.read_bytes()[:4] == b"\x89PNG"
    assert main(["roads", "policy", str(prob_tif), "--goal", "30,20", "--crs", "pixel", "-o",
                 str(pol), "--block", "4", "--method", "value"]) == 0
    crs, transform, data = _grid(pol)
    assert transform == TRANSFORM @ TRANSFORM.scale(4) and data.shape == (1, 10, 13)
    mask = tmp_path / "mask.tif"
    assert main(["roads", "crf", str(prob_tif), "--image", str(image_tif), "-o", str(mask),
                 "--theta-alpha", "8"]) == 0
    crs, transform, data = _grid(mask)
    assert crs == CRS and transform == TRANSFORM
    np.testing.assert_array_equal(data[0] > 0, prob > 0.5)


def test_uint8_and_npy_probability_rasters(tmp_path):
    dn = np.full((6, 7), 51, np.uint8)
    path = _write(tmp_path / "p8.tif", dn, "uint8")
    assert np.allclose(points.read_probability(path).prob, 0.2)
    np.save(tmp_path / "p.npy", np.full((6, 7), 0.5, np.float32))
    raster = points.read_probability(tmp_path / "p.npy")
    assert raster.crs is None and raster.prob.shape == (6, 7)


@pytest.mark.parametrize("args, message", [
    (["--from", "0,99", "--to", "1,1", "--crs", "pixel"], "falls outside the raster"),
    (["--from", "0;1", "--to", "1,1", "--crs", "pixel"], "expected X,Y"),
    (["--from", "0,1", "--to", "1,1", "--crs", "EPSG:999999"], "not a CRS"),
    (["--from", "0,1", "--to", "1,1", "--crs", "pixel", "--connectivity", "6"], "4 or 8"),
])
def test_bad_input_is_a_clear_error_with_no_output(scene, tmp_path, capsys, args, message):
    out = tmp_path / "r.json"
    assert main(["roads", "connect", str(scene[0]), "-o", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_bad_probability_values_are_refused(tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.full((4, 4), 3.0, np.float32))
    assert main(["roads", "route", str(tmp_path / "bad.npy"), "--from", "0,0", "--to", "1,1",
                 "--crs", "pixel", "-o", str(tmp_path / "r.geojson")]) == 2
    assert "must lie in [0, 1]" in capsys.readouterr().err


def test_connect_exact_variant_and_astar_route(scene, tmp_path, capsys):
    prob_tif = scene[0]
    out = tmp_path / "e.json"
    assert main(["roads", "connect", str(prob_tif), "--from", "0,20", "--to", "30,0", "--crs",
                 "pixel", "--threshold", "0.5", "-o", str(out)]) == 0
    assert "connected (8-connectivity" in capsys.readouterr().out
    record = json.loads(out.read_text())
    assert record["estimate"] == 1.0 and record["threshold"] == 0.5
    assert main(["roads", "connect", str(prob_tif), "--from", "0,20", "--to", "30,0", "--crs",
                 "pixel", "--threshold", "0.95"]) == 0  # the column road is 0.9 < 0.95
    assert "not connected" in capsys.readouterr().out
    mcp, astar = tmp_path / "m.geojson", tmp_path / "a.geojson"
    for path, method in ((mcp, "mcp"), (astar, "astar")):
        assert main(["roads", "route", str(prob_tif), "--from", "0,20", "--to", "30,0", "--crs",
                     "pixel", "-o", str(path), "--method", method]) == 0
    costs = [json.loads(p.read_text())["features"][0]["properties"]["cost"] for p in (mcp, astar)]
    assert costs[0] == pytest.approx(costs[1], rel=1e-9)
