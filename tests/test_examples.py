"""The scripts in examples/ run as a user would run them (fresh processes) and do what they
say: the surgery example ends with an 8-band tile mapped to a 2-class score map of the same
size; the offsets example writes the reports and recomputes FCN-8s' crops 5, 9, 31."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(args, **kw):
    env = dict(os.environ, FCNKIT=str(Path(sys.executable).with_name("fcnkit")))
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, **kw)


def test_classifier_to_8band_fcn(tmp_path):
    r = _run([sys.executable, "examples/classifier_to_8band_fcn.py", str(tmp_path)])
    assert r.returncode == 0, r.stderr
    assert "8-band tile (1, 8, 96, 96) -> score (1, 2, 96, 96)" in r.stdout
    # conv1_1 pad 100 -> 99; two 2x2/2 pools; fc6 as an 8x8 conv (-3.5); upscore k8 s4 (+3.5):
    # 4 ((99 / 2 - 1/4) / 2 - 1/4 - 3.5) + 3.5 = 87
    assert "crop score: offset 87 (computed)" in r.stdout
    report = json.loads((tmp_path / "fcn32s_8band" / "report.json").read_text())
    assert report["crop_offsets"] == {"score": [87, 87]}


def test_offsets_report(tmp_path):
    r = _run(["bash", "examples/offsets_report.sh", "", str(tmp_path)])
    assert r.returncode == 0, r.stderr
    assert "fixed offsets pass the check" in r.stdout
    doc = json.loads((tmp_path / "offsets.json").read_text())
    assert {c["layer"]: c["computed"] for c in doc["crops"]} == {
        "score_pool4c": [5, 5], "score_pool3c": [9, 9], "score": [31, 31]}
    assert "<table>" in (tmp_path / "offsets.html").read_text()
