"""`fcnkit predict` on bad input: clear errors, no partial outputs, other scenes unaffected."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fcnkit.cli.main import main
from tests.geo.geo_helpers import random_scene, tiny_fcn


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    net = tiny_fcn(d / "net.prototxt", 3)
    random_scene(d / "good.tif", (3, 48, 40), seed=1)
    return d, net


def _err(capsys):
    out = capsys.readouterr()
    return " ".join(out.out.split()), " ".join(out.err.split())


def _outputs(outdir):
    return sorted(p.name for p in outdir.iterdir()) if outdir.exists() else []


def test_predict_writes_outputs_and_a_summary(setup, tmp_path, capsys):
    d, net = setup
    out = tmp_path / "out"
    assert main(["predict", str(net), str(d / "good.tif"), "-o", str(out), "--tile", "32", "--halo", "4",
                 "--probabilities", "uint8", "--overlay", "jpg", "--blend", "linear", "--tta", "flip"]) == 0
    stdout, _ = _err(capsys)
    assert "scenes: 1 done, 0 skipped (complete), 0 failed; 0.00 Mpx" in stdout
    assert "skipped nodata tiles: 0" in stdout
    assert _outputs(out) == ["good.json", "good_labels.tif", "good_overlay.jpg", "good_probabilities.tif"]
    sidecar = json.loads((out / "good.json").read_text())  # what ran: backend auto's choice, in words
    assert sidecar["backend"] in ("torch", "onnxruntime") and sidecar["backend_detail"].startswith(sidecar["backend"])
    assert f"backend: {sidecar['backend_detail']}" in stdout
    assert main(["predict", str(net), str(d / "good.tif"), "-o", str(out), "--tile", "32", "--resume",
                 "--probabilities", "uint8", "--overlay", "jpg"]) == 0
    assert "0 done, 1 skipped" in _err(capsys)[0]


def test_bad_scenes_fail_alone_and_leave_nothing(setup, tmp_path, capsys):
    d, net = setup
    bad = tmp_path / "notraster.tif"
    bad.write_text("this is not a raster\n")
    one_band = tmp_path / "oneband.tif"
    random_scene(one_band, (1, 40, 40))
    truncated = tmp_path / "truncated.tif"
    random_scene(tmp_path / "whole.tif", (3, 300, 300), seed=2)
    data = (tmp_path / "whole.tif").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])  # a download that stopped mid-file
    out = tmp_path / "out"
    rc = main(["predict", str(net), str(bad), str(one_band), str(d / "good.tif"), str(truncated), "-o", str(out),
               "--tile", "32", "--halo", "4"])
    stdout, err = _err(capsys)
    assert rc == 1
    assert f"{bad}: not a raster GDAL can read" in err
    assert "band count mismatch: the model takes 3 bands" in err and "has 1 band(s)" in err
    assert "wv3-rgb" in err  # the presets are named
    assert f"{truncated}: cannot read rows" in err and "truncated or damaged" in err
    assert "cannot write" not in err
    assert "3 scene(s) failed" in err and "Traceback" not in err
    assert _outputs(out) == ["good.json", "good_labels.tif"]  # the good scene is unaffected, nothing partial
    assert "1 done, 0 skipped (complete), 3 failed" in stdout


def test_missing_crs_warns_and_still_writes(setup, tmp_path, capsys):
    import rasterio
    from rasterio.transform import Affine

    _, net = setup
    scene = tmp_path / "nocrs.tif"
    pixels = random_scene(scene, (3, 40, 36), crs=None, transform=Affine.identity())
    out = tmp_path / "out"
    assert main(["predict", str(net), str(scene), "-o", str(out), "--tile", "32", "--halo", "4"]) == 0
    _, err = _err(capsys)
    assert f"warning: {scene}: the raster has no CRS" in err
    with rasterio.open(out / "nocrs_labels.tif") as lab:
        assert lab.crs is None and lab.shape == pixels.shape[1:]
        assert set(np.unique(lab.read(1))) <= {0, 1}


def test_unwritable_outdir_and_bad_options(setup, tmp_path, capsys):
    d, net = setup
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for outdir, message in ((blocker, "exists and is a file"), (blocker / "sub", "cannot create the output folder")):
        assert main(["predict", str(net), str(d / "good.tif"), "-o", str(outdir)]) == 2
        assert message in _err(capsys)[1]
    cases = [(["--bands", "wv3-rnir"], "preset wv3-rnir is for 8-band"), (["--stretch", "90,2"], "--stretch"),
             (["--blend", "gauss"], "--blend"), (["--tile", "32", "--halo", "16"], "leaves no core"),
             (["--probabilities", "int"], "--probabilities")]
    for extra, message in cases:
        out = tmp_path / "o"
        rc = main(["predict", str(net), str(d / "good.tif"), "-o", str(out), *extra])
        _, err = _err(capsys)
        assert rc in (1, 2) and message in err, (extra, err)
        assert not [p for p in _outputs(out) if "good" in p]
        shutil.rmtree(out, ignore_errors=True)
    assert main(["predict", str(net), str(tmp_path / "missing*.tif"), "-o", str(tmp_path / "o")]) == 2
    assert "no such file, directory or matching glob" in _err(capsys)[1]


def test_expand_scenes(tmp_path):
    from fcnkit.errors import InputError
    from fcnkit.geo.batch import expand_scenes

    (tmp_path / "d").mkdir()
    for name in ("b.tif", "a.TIF", "notes.txt"):
        (tmp_path / "d" / name).write_text("x")
    (tmp_path / "c.vrt").write_text("x")
    got = expand_scenes([tmp_path / "d", str(tmp_path / "*.vrt")])
    assert [p.name for p in got] == ["a.TIF", "b.tif", "c.vrt"]
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "b.tif").write_text("x")
    with pytest.raises(InputError, match="outputs of the same name"):
        expand_scenes([tmp_path / "d", tmp_path / "e"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no scene to predict"):
        expand_scenes([tmp_path / "empty"])


def test_stretch_model_reads_the_json_beside_the_caffemodel(setup, tmp_path, capsys):
    """Training writes <snapshot>.preprocess.json beside each caffemodel: --stretch model
    applies exactly those parameters (and bands)."""
    import json

    import rasterio

    from fcnkit import caffe
    from fcnkit.compile.weights import export_blobs
    from fcnkit.deploy.model import load_model
    from fcnkit.geo.stretch import stretch

    d, net = setup
    src = load_model(net)
    weights = tmp_path / "snap_iter_100.caffemodel"
    caffe.write_caffemodel(weights, src.compiled.net.param, export_blobs(src.compiled))
    pre = {"fcnkit_preprocess": 1, "bands": [3, 1, 2], "band_names": ["c", "a", "b"], "nodata": None,
           "stretch": {"method": "percentile", "percentiles": [2, 98], "lo": [700, 800, 900],
                       "hi": [1300, 1400, 1500], "out_range": [0, 255]}}
    (tmp_path / "snap_iter_100.preprocess.json").write_text(json.dumps(pre))
    out = tmp_path / "out"
    assert main(["predict", str(net), "-w", str(weights), str(d / "good.tif"), "-o", str(out), "--stretch", "model",
                 "--tile", "32", "--halo", "4"]) == 0
    side = json.loads((out / "good.json").read_text())
    assert side["bands"] == [3, 1, 2] and side["preprocess"]["stretch"]["lo"] == [700, 800, 900]
    # the labels equal a direct run of the model on the stretched pixels (blend none, whole scene)
    assert main(["predict", str(net), "-w", str(weights), str(d / "good.tif"), "-o", str(tmp_path / "n"),
                 "--stretch", "model", "--tile", "64", "--halo", "8", "--blend", "none"]) == 0
    capsys.readouterr()
    with rasterio.open(d / "good.tif") as scene:
        pixels = scene.read([3, 1, 2])
    from fcnkit.deploy.predictor import Predictor

    x = np.pad(stretch(pixels, [700, 800, 900], [1300, 1400, 1500]), ((0, 0), (8, 8), (8, 8)), mode="reflect")
    p = Predictor.from_path(net, weights=weights, device="cpu").predict(x[None])[0, :, 8:-8, 8:-8]
    with rasterio.open(tmp_path / "n" / "good_labels.tif") as lab:
        got = lab.read(1)
    decided = np.abs(p[1] - p[0]) > 1e-4
    np.testing.assert_array_equal(got[decided], np.argmax(p, axis=0)[decided])
    assert main(["predict", str(net), str(d / "good.tif"), "-o", str(tmp_path / "x"), "--stretch", "model"]) == 1
    assert "--stretch model: the model stores no preprocess JSON" in _err(capsys)[1]
