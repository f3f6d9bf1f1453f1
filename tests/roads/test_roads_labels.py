"""Road labels against solaris' published mask (CosmiQ/solaris test data)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from shapely.geometry import LineString

from fcnkit.errors import InputError
from fcnkit.roads.labels import burn_road_lines, class_values, parse_width, road_mask
from fcnkit.roads.vector import read_road_lines


def _oracle(spacenet):
    with rasterio.open(spacenet / "solaris" / "sample_road_raster_mask.tif") as src:
        return src.read(1)


def test_road_mask_equals_solaris_mask(spacenet, solaris_grid):
    shape, transform, crs = solaris_grid
    mask = road_mask(spacenet / "solaris" / "sample_roads_for_masking.geojson", shape=shape,
                     transform=transform, crs=crs, width="4m")
    oracle = _oracle(spacenet)
    assert mask.dtype == np.uint8 and mask.shape == (1300, 1300)
    assert int((mask != oracle).sum()) == 0
    assert int((mask == 255).sum()) == 56416


def test_all_touched_adds_the_documented_pixels(spacenet, solaris_grid):
    shape, transform, crs = solaris_grid
    mask = road_mask(spacenet / "solaris" / "sample_roads_for_masking.geojson", shape=shape,
                     transform=transform, crs=crs, width=4.0, all_touched=True)
    oracle = _oracle(spacenet)
    assert int((mask != oracle).sum()) == 4243
    assert not np.any(oracle[mask == 0])  # all_touched only adds pixels


def test_pixel_width_buffers_in_pixel_space(solaris_grid):
    shape, transform, crs = solaris_grid
    # a horizontal line along the centre of row 100 (pixel centres), 13 px wide
    x0, y = transform.c + 200 * transform.a, transform.f + 100.5 * transform.e
    x1 = transform.c + 600 * transform.a
    mask = road_mask([LineString([(x0, y), (x1, y)])], shape=shape, transform=transform,
                     crs=crs, width="13px", lines_crs="EPSG:4326")
    rows = np.flatnonzero(mask[:, 400])
    assert rows.tolist() == list(range(94, 107))  # centre row 100 +- 6 (radius 6.5)


def test_class_burning_by_property(spacenet, solaris_grid):
    shape, transform, crs = solaris_grid
    lines = read_road_lines(spacenet / "solaris" / "sample_roads_for_masking.geojson")
    values = class_values(lines, "lane_number")
    report = burn_road_lines(lines, shape=shape, transform=transform, crs=crs, width="4m",
                             burn_values=values)
    assert set(np.unique(report.mask)) == {0} | set(values)
    # the union of the classes is the binary mask
    assert int(((report.mask > 0) != (_oracle(spacenet) > 0)).sum()) <= 0


def test_lines_outside_are_counted_and_crs_said(solaris_grid):
    shape, transform, crs = solaris_grid
    far = LineString([(10.0, 10.0), (10.001, 10.0)])
    report = burn_road_lines([far], shape=shape, transform=transform, crs=crs, width="4m")
    assert report.outside == 1 and not report.mask.any()
    assert report.reprojected_from is None  # CRS84 vs EPSG:4326: same up to axis order


@pytest.mark.parametrize("bad", ["4 km", "-3m", "0px", "wide", float("nan")])
def test_bad_width_is_an_input_error(bad):
    with pytest.raises(InputError, match="width"):
        parse_width(bad)


def test_missing_property_names_the_feature(spacenet):
    lines = read_road_lines(spacenet / "solaris" / "sample_roads_for_masking.geojson")
    with pytest.raises(InputError, match="feature 0 has no property 'speed'"):
        class_values(lines, "speed")
