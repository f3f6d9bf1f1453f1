"""Shared helpers of the geo tests: a tiny fully convolutional test net (prototxt with seeded
fillers: the same weights in every process) and tiny random rasters."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPACENET = Path(__file__).resolve().parents[3] / "shared" / "data" / "spacenet"


def tiny_fcn(path: Path, bands: int, classes: int = 2, tile: int = 32, pool: bool = False) -> Path:
    """Write a small FCN prototxt: conv3x3 (pad 1) -> ReLU -> conv3x3 (pad 1) -> conv1x1 to
    ``classes`` -> Softmax; receptive field 5 px, output stride 1. With ``pool``: a 2x2/2 max
    pooling and a 4x4/2 deconvolution + crop back to the input (output stride 2)."""
    def conv(name, bottom, n, k, pad, std=0.3):
        return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}"\n'
                f'  convolution_param {{ num_output: {n} kernel_size: {k} pad: {pad}\n'
                f'    weight_filler {{ type: "gaussian" std: {std} }} bias_filler {{ type: "constant" value: 0.1 }} }} }}\n')
    text = (f'name: "tiny"\nlayer {{ name: "data" type: "Input" top: "data"\n'
            f'  input_param {{ shape {{ dim: 1 dim: {bands} dim: {tile} dim: {tile} }} }} }}\n')
    text += conv("conv1", "data", 6, 3, 1, 0.05)
    text += 'layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }\n'
    last = "conv1"
    if pool:
        text += ('layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"\n'
                 '  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n')
        last = "pool1"
    text += conv("conv2", last, 6, 3, 1)
    text += conv("score", "conv2", classes, 1, 0)
    last = "score"
    if pool:
        text += ('layer { name: "up" type: "Deconvolution" bottom: "score" top: "up"\n'
                 f'  convolution_param {{ num_output: {classes} kernel_size: 4 stride: 2 group: {classes} bias_term: false\n'
                 '    weight_filler { type: "bilinear" } } }\n'
                 'layer { name: "crop" type: "Crop" bottom: "up" bottom: "data" top: "crop"\n'
                 '  crop_param { axis: 2 offset: 1 } }\n')
        last = "crop"
    text += f'layer {{ name: "prob" type: "Softmax" bottom: "{last}" top: "prob" }}\n'
    path.write_text(text)
    return path


def random_scene(path: Path, shape=(3, 96, 80), dtype="uint16", nodata=None, crs="EPSG:32611", seed=0,
                 transform=None) -> np.ndarray:
    """Write a random GeoTIFF (bands x rows x cols) with a smooth pattern; returns its pixels."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    b, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    base = (np.sin(yy / 5.0) + np.cos(xx / 7.0)) * 300 + 1000
    data = (base[None] + rng.normal(0, 150, size=shape)).clip(1, 2047).astype(dtype)
    prof = {"driver": "GTiff", "width": w, "height": h, "count": b, "dtype": dtype,
            "transform": transform or from_origin(500000.0, 4000000.0, 0.3, 0.3)}
    if crs:
        prof["crs"] = crs
    if nodata is not None:
        prof["nodata"] = nodata
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data)
    return data
