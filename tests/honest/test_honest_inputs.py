"""Issue 13 item 2: input arrays are checked against the net's declared input before any
layer runs, and image files go through pycaffe's preprocessing.

Truth for images: a NumPy transcription, written here, of BVLC Caffe's
python/caffe/io.py (load_image, resize_image, Transformer.preprocess) in its order:
resize, transpose, channel swap, raw scale, mean, input scale. Images are decoded here by
skimage/rasterio (pycaffe's own readers), fcnkit decodes PNG with OpenCV.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.honest._helpers import CIFAR_NET, CIFAR_WEIGHTS, LENET_NET, LENET_WEIGHTS, run_cli

# the test TIFFs are plain images, not georeferenced rasters
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

EIGHT_BAND_NET = """name: "eight"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 8 dim: 12 dim: 10 } } }
layer { name: "mix" type: "Convolution" bottom: "data" top: "mix"
        convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "gaussian" std: 0.1 } } }
"""


def _caffe_resize(im, dims):
    """caffe.io.resize_image (interp_order 1), with skimage's Caffe-era defaults."""
    from scipy.ndimage import zoom
    from skimage.transform import resize

    if im.shape[-1] in (1, 3):
        lo, hi = im.min(), im.max()
        std = (im - lo) / (hi - lo)
        return (resize(std, dims, order=1, mode="constant", anti_aliasing=False) * (hi - lo) + lo).astype(np.float32)
    return zoom(im, (dims[0] / im.shape[0], dims[1] / im.shape[1], 1), order=1).astype(np.float32)


def _caffe_preprocess(im, dims, swap=None, raw_scale=None, mean=None, input_scale=None):
    """caffe.io.Transformer.preprocess with set_transpose((2, 0, 1))."""
    x = im.astype(np.float32)
    if x.shape[:2] != tuple(dims):
        x = _caffe_resize(x, dims)
    x = x.transpose(2, 0, 1)
    if swap is not None:
        x = x[list(swap), :, :]
    if raw_scale is not None:
        x = x * raw_scale
    if mean is not None:
        x = x - np.asarray(mean, np.float32)[:, None, None]
    if input_scale is not None:
        x = x * input_scale
    return x


def _save(tmp_path, name, arr):
    p = tmp_path / name
    np.save(p, arr.astype(np.float32))
    return p


@pytest.mark.parametrize("shape, needle", [
    ((1, 8, 32, 32), "(1, 8, 32, 32) does not fit input 'data', declared (1, 3, 32, 32) "
                     "(channel count differs: 8 channels, the net takes 3)"),
    ((1, 15, 32, 32), "channel count differs: 15 channels"),
    ((32, 32), "rank differs: 2 axes, the net needs 4"),
    ((32, 32, 3), "it looks like H x W x C: use x.transpose(2, 0, 1)[np.newaxis]"),
    ((3, 32, 32), "it looks like C x H x W: add the batch axis, x[np.newaxis]"),
    ((1, 32, 32, 3), "it looks like N x H x W x C: use x.transpose(0, 3, 1, 2)"),
])
def test_input_that_does_not_fit_the_declared_input_exits_2(tmp_path, capsys, data_dir, shape, needle):
    x = _save(tmp_path, "x.npy", np.zeros(shape))
    out = tmp_path / "out.npz"
    code, _, err = run_cli(capsys, ["run", CIFAR_NET, "-w", CIFAR_WEIGHTS, "-i", x, "-o", out])
    assert code == 2
    assert f"{x}: array of shape" in err and needle in err
    assert "weights" not in err  # refused before the caffemodel is read or a layer runs
    assert not out.exists()


def test_other_spatial_size_and_batch_are_accepted(tmp_path, capsys, data_dir):
    net = tmp_path / "eight.prototxt"
    net.write_text(EIGHT_BAND_NET)
    x = _save(tmp_path, "x.npy", np.ones((2, 8, 5, 7)))
    code, out, _ = run_cli(capsys, ["run", net, "-i", x, "-o", tmp_path / "o.npz"])
    assert code == 0 and "mix: shape (2, 2, 5, 7)" in out


def test_png_through_run_equals_the_caffe_transformer(tmp_path, capsys, data_dir):
    import cv2
    import skimage.io

    rgb = (np.random.default_rng(1).random((40, 48, 3)) * 255).astype(np.uint8)
    png = tmp_path / "im.png"
    cv2.imwrite(str(png), rgb[:, :, ::-1])  # OpenCV writes BGR
    out = tmp_path / "out.npz"
    code, _, err = run_cli(capsys, ["run", CIFAR_NET, "-w", CIFAR_WEIGHTS, "-i", png, "-o", out,
                                    "--all-blobs", "--raw-scale", "255", "--channel-swap", "2,1,0",
                                    "--mean", "125.3,123.0,113.9", "--input-scale", "0.5"])
    assert code == 0, err
    assert "channels reordered 2,1,0; x 255; - mean (125.3, 123, 113.9); x 0.5" in err
    image = skimage.io.imread(png).astype(np.float32) / 255  # caffe.io.load_image
    want = _caffe_preprocess(image, (32, 32), (2, 1, 0), 255.0, (125.3, 123.0, 113.9), 0.5)
    got = np.load(out)["data"]
    assert got.shape == (1, 3, 32, 32)
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-4)
    # the same array given as .npy gives the same output
    x = _save(tmp_path, "x.npy", want[np.newaxis])
    code, _, _ = run_cli(capsys, ["run", CIFAR_NET, "-w", CIFAR_WEIGHTS, "-i", x, "-o", tmp_path / "o2.npz"])
    np.testing.assert_allclose(np.load(tmp_path / "o2.npz")["prob"], np.load(out)["prob"], rtol=1e-4, atol=1e-6)


def test_grey_png_to_a_one_channel_net(tmp_path, capsys, data_dir):
    import cv2

    grey = (np.arange(28 * 28) % 251).reshape(28, 28).astype(np.uint8)
    png = tmp_path / "digit.png"
    cv2.imwrite(str(png), grey)
    out = tmp_path / "out.npz"
    code, _, err = run_cli(capsys, ["run", LENET_NET, "-w", LENET_WEIGHTS, "-i", png, "-o", out, "--all-blobs"])
    assert code == 0, err
    np.testing.assert_allclose(np.load(out)["data"], grey[None, None].astype(np.float32) / 255, rtol=1e-6)


def test_eight_band_tiff_is_read_and_zoomed(tmp_path, capsys):
    import rasterio

    bands = np.random.default_rng(2).integers(0, 65535, (8, 9, 11)).astype(np.uint16)
    tif = tmp_path / "scene.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=11, height=9, count=8, dtype="uint16") as dst:
        dst.write(bands)
    net = tmp_path / "eight.prototxt"
    net.write_text(EIGHT_BAND_NET)
    out = tmp_path / "out.npz"
    code, _, err = run_cli(capsys, ["run", net, "-i", tif, "-o", out, "--all-blobs", "--raw-scale", "2"])
    assert code == 0, err
    image = np.moveaxis(bands, 0, -1).astype(np.float32) / 65535  # img_as_float of uint16
    want = _caffe_preprocess(image, (12, 10), raw_scale=2.0)
    np.testing.assert_allclose(np.load(out)["data"][0], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("flags, needle", [
    (["--channel-swap", "1,0"], "--channel-swap 1,0 is not an order of the net's 3 channels"),
    (["--mean", "1,2"], "--mean has 2 value(s), the net's input has 3 channel(s)"),
    (["--mean", "a,b,c"], "--mean must be comma-separated numbers"),
])
def test_bad_preprocessing_flags_exit_2(tmp_path, capsys, data_dir, flags, needle):
    import cv2

    png = tmp_path / "im.png"
    cv2.imwrite(str(png), np.zeros((8, 8, 3), np.uint8))
    code, _, err = run_cli(capsys, ["run", CIFAR_NET, "-i", png, "-o", tmp_path / "o.npz", *flags])
    assert code == 2 and needle in err


def test_image_with_the_wrong_channel_count(tmp_path, capsys):
    import rasterio

    tif = tmp_path / "two.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=4, height=4, count=2, dtype="uint8") as dst:
        dst.write(np.zeros((2, 4, 4), np.uint8))
    net = tmp_path / "eight.prototxt"
    net.write_text(EIGHT_BAND_NET)
    code, _, err = run_cli(capsys, ["run", net, "-i", tif, "-o", tmp_path / "o.npz"])
    assert code == 2 and f"{tif}: has 2 channel(s), the net's input has 8" in err
