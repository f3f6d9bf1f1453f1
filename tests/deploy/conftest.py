"""Fixtures of the deployment tests."""

from __future__ import annotations

import pytest

from tests.deploy.deploy_helpers import ExportCache, load_real


@pytest.fixture(scope="session")
def exports(tmp_path_factory) -> ExportCache:
    """Exports shared by the tests of a session (each export costs seconds)."""
    return ExportCache(tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="session")
def real_export(exports):
    """real_export(key, **export options) -> (ModelSource, ExportResult, path), cached. The
    net's ``extra_outputs`` (deploy_helpers.RealNet) are exported unless given."""
    from tests.deploy.deploy_helpers import BY_KEY

    def get(key, **kw):
        if BY_KEY[key].extra_outputs:
            kw.setdefault("extra_outputs", BY_KEY[key].extra_outputs)
        return exports.get(key, lambda: load_real(key), **kw)

    return get


@pytest.fixture(scope="session")
def zoo_names():
    """The zoo's model names; skips while fcnkit.zoo is not available."""
    from fcnkit.deploy.model import zoo_names as names

    found = names()
    if not found:
        pytest.skip("fcnkit.zoo is not available (no zoo models to export)")
    return found
