"""Small nets and data streams shared by the training tests."""

from __future__ import annotations

import numpy as np

#: Two convolutions + InnerProduct + SoftmaxWithLoss; conv2 has lr_mult 0 on its bias
#: (frozen) and decay_mult 2 on its weight; ip shares nothing.
SMALL_NET = """
name: "small"
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 3 dim: 6 dim: 6 } shape { dim: 2 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1
    weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  param { lr_mult: 1 decay_mult: 2 } param { lr_mult: 0 }
  convolution_param { num_output: 3 kernel_size: 3 stride: 2
    weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "constant" value: 0.2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "conv2" top: "ip"
  param { lr_mult: 2 decay_mult: 0 } param { lr_mult: 1 }
  inner_product_param { num_output: 3
    weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "constant" value: 0 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def data_stream(n: int, seed: int = 7, batch: int = 2):
    """n fixed batches: (data (batch, 3, 6, 6) float, label (batch,) in {0, 1, 2})."""
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(batch, 3, 6, 6)), rng.integers(0, 3, size=batch).astype(float))
            for _ in range(n)]
