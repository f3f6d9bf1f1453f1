"""`predict_scenes(..., ray="local")`: byte-identical labels to the local run on 3 tiny
scenes; a failing scene is retried once and reported while the others go on."""

from __future__ import annotations

import pytest

from fcnkit.geo.predict import SceneOptions
from tests.geo.geo_helpers import random_scene, tiny_fcn

ray = pytest.importorskip("ray", reason="Ray is the optional extra fcnkit[cluster]")


@pytest.mark.slow
def test_ray_matches_local_and_reports_the_failed_scene(tmp_path, monkeypatch):
    from fcnkit.geo.batch import predict_scenes

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    net = tiny_fcn(tmp_path / "net.prototxt", 3)
    scenes = []
    for i in range(3):
        random_scene(tmp_path / f"scene{i}.tif", (3, 40 + 8 * i, 36), seed=i)
        scenes.append(tmp_path / f"scene{i}.tif")
    broken = tmp_path / "broken.tif"
    broken.write_text("not a raster")
    opts = SceneOptions(tile=32, halo=4, blend="hann")
    popts = {"device": "cpu", "model_name": "tiny"}
    local = predict_scenes(str(net), scenes, tmp_path / "local", opts, predictor_options=popts)
    assert len(local.results) == 3 and not local.failures
    events = []
    remote = predict_scenes(str(net), [*scenes, broken], tmp_path / "ray", opts, predictor_options=popts,
                            ray="local", num_actors=2, on_scene=lambda s, k, v: events.append((s, k)))
    assert sorted(r.scene for r in remote.results) == sorted(str(s) for s in scenes)
    assert list(remote.failures) == [str(broken)] and "not a raster GDAL can read" in remote.failures[str(broken)]
    assert remote.retried == [str(broken)] and (str(broken), "retry") in events and (str(broken), "failed") in events
    for s in scenes:
        name = f"{s.stem}_labels.tif"
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert not (tmp_path / "ray" / "broken_labels.tif").exists()
