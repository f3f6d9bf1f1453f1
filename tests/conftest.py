"""Shared test fixtures: where the real third-party Caffe files are (read-only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one pytest-xdist worker per core: one torch intra-op thread each,
    # so that the workers do not oversubscribe the cores
    import torch

    torch.set_num_threads(1)

#: ../shared/data/caffe relative to the repository root.
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "caffe"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"the shared Caffe data folder {DATA} is not present")
    return DATA


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache_in_tmp(tmp_path_factory):
    """Predictor(backend="auto") caches ONNX exports (fcnkit.deploy.onnx.cache): the tests'
    go to a temporary folder of the session, never to the user's ~/.cache."""
    old = os.environ.get("FCNKIT_CACHE_DIR")
    os.environ["FCNKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("fcnkit-cache"))
    yield
    if old is None:
        os.environ.pop("FCNKIT_CACHE_DIR", None)
    else:
        os.environ["FCNKIT_CACHE_DIR"] = old
