"""A small RGB classifier turned into an 8-band FCN-32s road segmenter, end to end.

1. write a VGG-style classifier (3 bands, 10 classes, fc layers) with fcnkit.netspec and
   give it random "pretrained" weights in a caffemodel;
2. ``fcnkit surgery``: fc -> conv, a 2-class FCN-32s head with bilinear upsampling and the
   crop offset computed from the coordinate maps, conv1 adapted to WorldView-3's 8 bands;
3. compile the result and run it on an 8-band tile: the output has the tile's size.

Usage: python examples/classifier_to_8band_fcn.py [WORKDIR]   (default: a temporary folder)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from fcnkit import caffe, compile_net, load_net
from fcnkit.cli.main import main as fcnkit
from fcnkit.netspec import L, NetSpec
from fcnkit.netspec.blocks import vgg_block


def classifier() -> caffe.caffe_pb2.NetParameter:
    """A 3-band 32x32 classifier: two VGG blocks (pool1 at stride 2, pool2 at 4) + 2 fc."""
    n = NetSpec("tiny_vgg")
    n.data = L.Input(shape=dict(dim=[1, 3, 32, 32]))
    x = vgg_block(n, n.data, 1, 2, 16)
    x = vgg_block(n, x, 2, 2, 32)
    n.fc6 = L.InnerProduct(x, num_output=64)
    n.relu6 = L.ReLU(n.fc6, in_place=True)
    n.fc7 = L.InnerProduct(n.relu6, num_output=10)
    n.prob = L.Softmax(n.fc7)
    return n.to_proto()


def main(workdir: Path) -> int:
    net = classifier()
    rng = np.random.default_rng(0)
    compiled = compile_net(load_net(net))  # fillers give the shapes of every blob
    blobs = {}
    for name, module in compiled.module.named_children():
        params = [p.detach().numpy() for p in module.parameters(recurse=False)]
        if params:
            blobs[name] = [rng.standard_normal(p.shape).astype(np.float32) * 0.1 for p in params]
    caffe.write_prototxt(workdir / "classifier.prototxt", net)
    caffe.write_caffemodel(workdir / "classifier.caffemodel", net, blobs)

    out = workdir / "fcn32s_8band"
    code = fcnkit(["surgery", str(workdir / "classifier.prototxt"), str(workdir / "classifier.caffemodel"),
                   "--classes", "2", "--head", "fcn32s", "--bands", "8", "--input-shape", "1,8,96,96",
                   "-o", str(out), "--force"])
    if code:
        return code
    print((out / "report.md").read_text().splitlines()[0])

    fcn = compile_net(load_net(out / "net.prototxt"), out / "net.caffemodel", {"data": (1, 8, 96, 96)})
    tile = torch.rand(1, 8, 96, 96)
    with torch.no_grad():
        score = fcn.module(tile)[fcn.outputs[0]]
    print(f"8-band tile {tuple(tile.shape)} -> {fcn.outputs[0]} {tuple(score.shape)}")
    return 0 if tuple(score.shape) == (1, 2, 96, 96) else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        wd = Path(sys.argv[1])
        wd.mkdir(parents=True, exist_ok=True)
        sys.exit(main(wd))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(main(Path(tmp)))
