"""Image inputs are sized from their headers before anything is decoded (a small file can
declare a huge image): the header parse against what OpenCV writes, and the refusal."""

from __future__ import annotations

import numpy as np
import pytest

from fcnkit.compile.image_input import _header_size, load_image
from fcnkit.errors import LimitError
from fcnkit.limits import memory_limit, set_memory_limit

cv2 = pytest.importorskip("cv2")


@pytest.fixture
def small_limit():
    old = memory_limit()
    set_memory_limit(64 << 20)
    yield
    set_memory_limit(old)


@pytest.mark.parametrize("ext, kind", [(".png", "png"), (".jpg", "jpeg")])
@pytest.mark.parametrize("channels", [1, 3])
def test_header_size_is_the_written_size(tmp_path, ext, kind, channels):
    img = np.random.default_rng(0).integers(0, 255, (37, 53, channels), dtype=np.uint8)
    path = tmp_path / f"x{ext}"
    assert cv2.imwrite(str(path), img if channels == 3 else img[:, :, 0])
    assert _header_size(path, kind) == (37, 53, channels)


def _declare_huge(path, kind):
    data = bytearray(path.read_bytes())
    big = (40000).to_bytes(2, "big")
    if kind == "png":
        data[16:24] = (40000).to_bytes(4, "big") * 2  # IHDR width, height
    else:
        i = 2
        while not (0xC0 <= data[i + 1] <= 0xCF and data[i + 1] not in (0xC4, 0xC8, 0xCC)):
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
        data[i + 5:i + 9] = big + big  # SOF height, width
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("ext, kind", [(".png", "png"), (".jpg", "jpeg")])
def test_a_declared_huge_image_is_refused_before_decoding(tmp_path, small_limit, ext, kind):
    path = tmp_path / f"bomb{ext}"
    assert cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))
    _declare_huge(path, kind)
    with pytest.raises(LimitError, match="40000x40000"):
        load_image(path)


def test_a_small_image_loads_under_the_limit(tmp_path, small_limit):
    path = tmp_path / "ok.png"
    assert cv2.imwrite(str(path), np.full((8, 8, 3), 255, np.uint8))
    img = load_image(path)
    assert img.shape == (8, 8, 3) and float(img.max()) == 1.0
