"""tools/bench_startup.py is a benchmark, not a test; what it decides is tested here: a row's
difference over its baseline and the met / NOT met verdict, and that its small net is the
2-convolution net it says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "tools"))  # bench_startup imports benchlib beside it
    try:
        spec = importlib.util.spec_from_file_location("bench_startup", ROOT / "tools" / "bench_startup.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.path.remove(str(ROOT / "tools"))


@pytest.mark.parametrize("ms,verdict,over", [(3000.0, "met", "+1.000"), (3001.0, "NOT met", "+1.001"),
                                             (1500.0, "met", "-0.500")])
def test_row_is_the_median_difference_against_the_target(bench, ms, verdict, over):
    base = bench.Stats([1900.0, 2000.0, 2100.0])  # median 2000 ms
    row = bench._row("fcnkit export", bench.Stats([ms - 50, ms, ms + 50]), base, 1.0)
    assert f"over its baseline: {over} s" in row
    assert row.endswith(f"(target <= 1 s: {verdict})")


def test_the_small_net_has_two_convolutions(bench):
    from fcnkit import caffe
    from fcnkit.graph import load_net

    net = load_net(caffe.parse_prototxt(bench.TWO_CONV))
    assert [n.type for n in net.layers] == ["Input", "Convolution", "ReLU", "Convolution"]
    assert net.outputs == ["conv2"]
