"""Helpers for the layer tests: build a layer from prototxt text, run its torch module."""

from __future__ import annotations

import numpy as np
from google.protobuf import text_format

import fcnkit.layers as L
from fcnkit.caffe import caffe_pb2


def make(text: str, name: str = "l") -> L.Layer:
    """A registered layer object from the text of one LayerParameter (``type`` inside)."""
    p = text_format.Parse(text, caffe_pb2.LayerParameter())
    if not p.name:
        p.name = name
    return L.get(p.type)(p)


def run(layer: L.Layer, *bottoms, train: bool = False, blobs=None):
    """Build ``layer``'s module for the bottoms' shapes, load ``blobs`` (Caffe arrays) if
    given, run it, return numpy outputs (a tuple when several tops)."""
    import torch

    shapes = [tuple(np.shape(b)) for b in bottoms]
    mod = layer.build_module(shapes)
    if blobs is not None:
        arrays = layer.params_to_torch([np.asarray(b, dtype=np.float32) for b in blobs], shapes)
        own = dict(mod.named_parameters(recurse=False)) | dict(mod.named_buffers(recurse=False))
        with torch.no_grad():
            for k, v in arrays.items():
                own[k].copy_(torch.from_numpy(np.ascontiguousarray(v)).reshape(own[k].shape))
    mod.train(train)
    with torch.no_grad():
        out = mod(*[torch.as_tensor(np.asarray(b, dtype=np.float32)) for b in bottoms])
    if isinstance(out, tuple):
        return tuple(o.numpy() for o in out)
    return out.numpy()


def rand(*shape, seed=0, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)
