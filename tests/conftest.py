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
