"""Dense CRF (fcnkit.roads.crf) against the closed-form mean field written with dense N x N
kernel matrices, the bilateral grid against the exact sum, and speckle removal."""

from __future__ import annotations

import numpy as np
import pytest

from fcnkit.errors import InputError
from fcnkit.roads import crf


def _closed_form(prob, image, p: crf.CrfParams):
    """Mean field of the module docstring with every pair of pixels, no truncation."""
    rows, cols = prob.shape
    rr, cc = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    pos = np.stack([rr.ravel(), cc.ravel()], 1).astype(float)
    d2 = ((pos[:, None] - pos[None]) ** 2).sum(-1)
    val = image.reshape(image.shape[0], -1).T
    v2 = ((val[:, None] - val[None]) ** 2).sum(-1)
    kernels = [(p.w_gamma, np.exp(-d2 / (2 * p.theta_gamma ** 2))),
               (p.w_alpha, np.exp(-d2 / (2 * p.theta_alpha ** 2) - v2 / (2 * p.theta_beta ** 2)))]
    pairwise = 0
    for w, k in kernels:
        d = k.sum(1)
        kn = k / np.sqrt(d[:, None] * d[None])
        np.fill_diagonal(kn, 0.0)
        pairwise = pairwise + w * kn
    pr = np.clip(prob.ravel().astype(float), p.eps, 1 - p.eps)
    unary = -np.log(np.stack([1 - pr, pr], 1))  # (N, 2)
    q = np.exp(-unary)
    q /= q.sum(1, keepdims=True)
    for _ in range(p.iterations):
        msg = pairwise @ q  # sum_{j != i} K(i, j) Q_j(l)
        energy = unary + msg[:, ::-1]  # Potts, two labels: pay for the other label
        q = np.exp(-(energy - energy.min(1, keepdims=True)))
        q /= q.sum(1, keepdims=True)
    return q[:, 1].reshape(rows, cols)


def test_mean_field_equals_the_closed_form_on_a_tiny_case():
    rng = np.random.default_rng(0)
    prob = rng.uniform(0.05, 0.95, (7, 8))
    image = rng.uniform(0, 255, (3, 7, 8))
    params = crf.CrfParams(theta_gamma=1.0, w_gamma=2.0, theta_alpha=1.5, theta_beta=60.0,
                           w_alpha=4.0, iterations=4, bilateral="exact")
    got = crf.mean_field(prob, image, params)
    want = _closed_form(prob, image, params)
    # the only difference: kernels truncated at 4 theta (exp(-8) ~ 3e-4 relative)
    np.testing.assert_allclose(got, want, atol=2e-3)
    assert np.abs(got - prob).max() > 0.05  # the pairwise terms did act


def _scene(seed=0, size=64):
    rng = np.random.default_rng(seed)
    truth = np.zeros((size, size), bool)
    truth[20:26, :] = True
    truth[:, 40:45] = True
    image = np.where(truth, 190.0, 70.0)[None].repeat(3, 0) + rng.normal(0, 10, (3, size, size))
    prob = np.where(truth, 0.75, 0.2) + rng.normal(0, 0.08, truth.shape)
    speckles = rng.random(truth.shape) < 0.03
    prob[speckles & ~truth] = 0.9  # isolated false positives
    return truth, np.clip(prob, 0.01, 0.99), image


def _iou(mask, truth):
    return (mask & truth).sum() / (mask | truth).sum()


def test_crf_removes_isolated_speckles():
    truth, prob, image = _scene()
    before = _iou(prob > 0.5, truth)
    q = crf.dense_crf(prob, image, crf.CrfParams(theta_alpha=10.0))
    after = _iou(q > 0.5, truth)
    assert before < 0.9 and after > 0.97
    assert not (q > 0.5)[~truth].any() or (q > 0.5)[~truth].mean() < 0.005


def test_bilateral_grid_approximates_the_exact_sum():
    truth, prob, image = _scene(1, 48)
    # normalised messages (what the mean field uses): the grid's errors of scale cancel
    exact = crf._Messages(lambda v: crf._bilateral_exact(v, image, 6.0, 13.0), prob.shape)
    grid = crf._Messages(crf._BilateralGrid(image, 6.0, 13.0), prob.shape)
    assert np.median(np.abs(grid(prob) - exact(prob)) / exact(prob)) < 0.1
    q_exact = crf.mean_field(prob, image, crf.CrfParams(theta_alpha=6.0, bilateral="exact"))
    q_grid = crf.mean_field(prob, image, crf.CrfParams(theta_alpha=6.0, bilateral="grid"))
    assert np.abs(q_exact - q_grid).max() < 0.1  # 0.088 measured (a pixel near a road edge)
    assert ((q_exact > 0.5) == (q_grid > 0.5)).mean() > 0.995


def test_tiles_match_the_whole_raster():
    truth, prob, image = _scene(2, 64)
    params = crf.CrfParams(theta_alpha=4.0, bilateral="exact", iterations=3)
    whole = crf.dense_crf(prob, image, params, tile=1024)
    tiled = crf.dense_crf(prob, image, params, tile=24)
    assert np.abs(whole - tiled).max() < 0.02
    assert ((whole > 0.5) == (tiled > 0.5)).all()


def test_stretch_and_errors():
    band = np.array([[0, 10, 20], [30, 40, 1000]], float)
    out = crf.stretch(band[None], percentiles=(0, 100))[0]
    assert out[0, 0] == 0 and out[1, 2] == 255 and out[0, 1] == 0
    assert out[0, 2] == pytest.approx(255 * 10 / 990)
    with pytest.raises(InputError):
        crf.dense_crf(np.zeros((4, 4)), np.zeros((3, 5, 5)))
    with pytest.raises(InputError):
        crf.CrfParams(theta_alpha=0).check()


def test_scene_windows_match_the_array_computation(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    from fcnkit.roads.crf_scene import crf_scene

    truth, prob, image = _scene(3, 48)
    dn = (image * 4 + 100).astype(np.uint16)  # DN; the stretch maps them back to 0..255
    profile = dict(driver="GTiff", height=48, width=48, crs="EPSG:32611",
                   transform=from_origin(500000, 4000000, 0.3, 0.3))
    with rasterio.open(tmp_path / "p.tif", "w", count=1, dtype="float32", **profile) as ds:
        ds.write(prob.astype(np.float32), 1)
    with rasterio.open(tmp_path / "img.tif", "w", count=3, dtype="uint16", **profile) as ds:
        ds.write(dn)
    params = crf.CrfParams(theta_alpha=4.0, bilateral="exact", iterations=3)
    out, qpath = tmp_path / "mask.tif", tmp_path / "q.tif"
    after, before = crf_scene(tmp_path / "p.tif", tmp_path / "img.tif", out, params, tile=20,
                              probabilities_path=qpath)
    want = crf.dense_crf(prob.astype(np.float32), crf.stretch(dn), params, tile=20)
    with rasterio.open(qpath) as ds:
        np.testing.assert_allclose(ds.read(1), want, atol=1e-5)
    with rasterio.open(out) as ds:
        assert ds.transform == profile["transform"] and ds.crs == ds.crs.from_epsg(32611)
        mask = ds.read(1)
    np.testing.assert_array_equal(mask > 0, want > 0.5)
    assert after == int((want > 0.5).sum()) and before == int((prob > 0.5).sum())
    moved = dict(profile, transform=from_origin(500003, 4000000, 0.3, 0.3))
    with rasterio.open(tmp_path / "moved.tif", "w", count=3, dtype="uint16", **moved) as ds:
        ds.write(dn)
    with pytest.raises(InputError, match="share one grid"):
        crf_scene(tmp_path / "p.tif", tmp_path / "moved.tif", tmp_path / "x.tif", params)
    with pytest.raises(InputError, match="do not exist"):
        crf_scene(tmp_path / "p.tif", tmp_path / "img.tif", tmp_path / "x.tif", params, bands=[4])
    assert not (tmp_path / "x.tif").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.tif", "mask.tif", "moved.tif",
                                                          "p.tif", "q.tif"]


def test_scene_failure_in_a_late_window_leaves_nothing(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    from fcnkit.roads.crf_scene import crf_scene

    prob = np.full((40, 40), 0.3, np.float32)
    prob[35, 35] = 3.0  # only the last window sees it
    profile = dict(driver="GTiff", height=40, width=40, crs="EPSG:32611",
                   transform=from_origin(500000, 4000000, 0.3, 0.3))
    with rasterio.open(tmp_path / "p.tif", "w", count=1, dtype="float32", **profile) as ds:
        ds.write(prob, 1)
    with rasterio.open(tmp_path / "img.tif", "w", count=1, dtype="uint16", **profile) as ds:
        ds.write(np.full((40, 40), 500, np.uint16), 1)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        crf_scene(tmp_path / "p.tif", tmp_path / "img.tif", tmp_path / "out" / "m.tif",
                  crf.CrfParams(theta_alpha=2.0, iterations=1), tile=16,
                  probabilities_path=tmp_path / "out" / "q.tif")
    assert list((tmp_path / "out").iterdir()) == []
