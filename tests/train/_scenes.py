"""Tiny synthetic SpaceNet-style datasets for the training tests."""

from __future__ import annotations

from pathlib import Path

from fcnkit.geo.synth import make_scene


def make_dataset(root: Path, scenes: int = 4, size: int = 64, gsd: float = 1.0, seed: int = 0):
    """root/images/*_img<k>.tif, root/labels/*_img<k>_label.tif, root/geojson/*_img<k>.geojson."""
    for k in range(1, scenes + 1):
        make_scene(root / "images" / f"SYN_PS-MS_img{k}.tif",
                   root / "geojson" / f"SYN_geojson_roads_img{k}.geojson", size, seed + k,
                   gsd=gsd, roads=3, buildings=3,
                   path_label=root / "labels" / f"SYN_label_img{k}.tif")
    return root


TINY_FCN = """
name: "tiny_fcn"
layer { name: "data" type: "Data" top: "data" top: "label"
  data_param { source: "unused_lmdb" batch_size: 4 } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 weight_filler { type: "msra" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "score" type: "Convolution" bottom: "conv1" top: "score"
  convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "msra" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "score" bottom: "label" top: "accuracy"
  include { phase: TEST } }
"""


def write_solver(folder: Path, extra: str = "", net: str = "net.prototxt") -> Path:
    (folder / "net.prototxt").write_text(TINY_FCN)
    solver = folder / "solver.prototxt"
    solver.write_text(f'net: "{net}"\nbase_lr: 0.001 lr_policy: "fixed" momentum: 0.9 '
                      f'type: "Adam" max_iter: 6 snapshot: 3 test_iter: 2 test_interval: 3 '
                      f'display: 2 random_seed: 1 snapshot_prefix: "{folder / "snap"}"\n{extra}\n')
    return solver
