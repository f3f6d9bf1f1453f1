"""Fixtures of the road tests: the real SpaceNet / solaris / apls files (read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest

#: ../shared/data/spacenet relative to the repository root.
SPACENET = Path(__file__).resolve().parents[3] / "shared" / "data" / "spacenet"


@pytest.fixture(scope="session")
def spacenet() -> Path:
    if not SPACENET.is_dir():
        pytest.skip(f"the shared SpaceNet data folder {SPACENET} is not present")
    return SPACENET


@pytest.fixture(scope="session")
def solaris_grid(spacenet):
    """(shape, transform, crs) of solaris' road_mask_input.tif."""
    import rasterio

    with rasterio.open(spacenet / "solaris" / "road_mask_input.tif") as src:
        return src.shape, src.transform, src.crs
