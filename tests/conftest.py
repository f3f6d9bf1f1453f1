"""Shared test fixtures: where the real third-party Caffe files are (read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest

#: ../shared/data/caffe relative to the repository root.
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "caffe"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"the shared Caffe data folder {DATA} is not present")
    return DATA
