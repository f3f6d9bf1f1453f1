"""Fixtures of the geo tests: tiny test nets opened once per session."""

from __future__ import annotations

import pytest

from tests.geo.geo_helpers import SPACENET, tiny_fcn


@pytest.fixture(scope="session")
def nets_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("nets")


@pytest.fixture(scope="session")
def net_factory(nets_dir):
    """(bands, pool) -> (prototxt path, torch Predictor on the CPU), cached."""
    from fcnkit.deploy.predictor import Predictor

    cache = {}

    def make(bands: int, pool: bool = False):
        key = (bands, pool)
        if key not in cache:
            path = tiny_fcn(nets_dir / f"tiny_{bands}_{int(pool)}.prototxt", bands, pool=pool)
            cache[key] = (path, Predictor.from_path(path, device="cpu"))
        return cache[key]

    return make


@pytest.fixture(scope="session")
def spacenet():
    if not SPACENET.is_dir():
        pytest.skip(f"the shared SpaceNet data folder {SPACENET} is not present")
    return SPACENET
