#!/usr/bin/env python
"""Generate OpenCV 4.10 oracle outputs for the SSD-like fork fixture (tests/forks/data).

OpenCV's dnn module up to 4.x has a Caffe importer that knows SSD's Normalize, Permute,
PriorBox and Flatten; OpenCV 5 dropped it. So the oracle is made in two steps, by two
Pythons, and the small results are committed (tests never need OpenCV 4.10):

1. fcnkit's venv writes the weights (fcnkit's fillers, seed 0) as a caffemodel and a
   random input::

       PYTHONPATH=. /work/main/.venv/bin/python tools/gen_fork_oracles.py weights

2. a venv with OpenCV 4.10 (``python3 -m venv /tmp/cv410 && /tmp/cv410/bin/pip install
   opencv-python-headless==4.10.0.84 numpy``) runs the net with cv2.dnn and saves the blobs::

       /tmp/cv410/bin/python tools/gen_fork_oracles.py opencv

Files (tests/forks/data): ssd_like.caffemodel, ssd_like_opencv410.npz (``data`` and one
array per blob in BLOBS).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "tests" / "forks" / "data"
NET = DATA / "ssd_like.prototxt"
WEIGHTS = DATA / "ssd_like.caffemodel"
ORACLE = DATA / "ssd_like_opencv410.npz"
INPUT = DATA / "ssd_like_input.npy"
BLOBS = ["conv1_norm", "conv2_norm", "conv1_norm_mbox_loc_perm", "mbox_loc", "mbox_conf_flatten",
         "mbox_priorbox"]


def write_weights() -> None:
    """Compile with fillers (seed 0), write the caffemodel and the input (fcnkit's venv)."""
    from fcnkit.caffe.caffemodel import write_caffemodel
    from fcnkit.caffe.prototxt import read_prototxt
    from fcnkit.compile import compile_net
    from fcnkit.graph import load_net

    src = read_prototxt(NET)
    compiled = compile_net(load_net(src), deploy=True, seed=0)
    blobs = {}
    for node in compiled.net.layers:
        names = node.layer.param_names()
        if not names:
            continue
        module = dict(compiled.module.named_modules())[
            next(k for k, v in compiled.layer_of_module.items() if v == node.name)]
        own = dict(module.named_parameters()) | dict(module.named_buffers())
        shapes = [compiled.analysis.shapes[b] for b in node.bottoms]
        arrays = node.layer.torch_to_params({k: v.detach().numpy() for k, v in own.items()}, shapes)
        # a shared Normalize scale is a 0-D blob in SSD; OpenCV cannot hold a 0-D Mat, and
        # Caffe loaders (fcnkit's too) compare element counts, so store it as (1,)
        blobs[node.name] = [a.reshape(1) if a.ndim == 0 else a for a in arrays]
    plain = type(src.param)()
    plain.CopyFrom(src.param)
    keep = [layer for layer in plain.layer if layer.name in blobs]
    del plain.layer[:]
    plain.layer.extend(keep)
    write_caffemodel(WEIGHTS, plain, blobs)
    np.save(INPUT, np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32))
    print(f"wrote {WEIGHTS} and {INPUT}")


def run_opencv() -> None:
    """Run the fixture with OpenCV's Caffe importer and save the blobs (OpenCV 4.10 venv)."""
    import cv2

    net = cv2.dnn.readNetFromCaffe(str(NET), str(WEIGHTS))
    x = np.load(INPUT)
    net.setInput(x)
    outs = net.forward(BLOBS)
    np.savez_compressed(ORACLE, data=x, opencv_version=np.array(cv2.__version__),
                        **{name: np.asarray(o) for name, o in zip(BLOBS, outs)})
    print(f"wrote {ORACLE} with OpenCV {cv2.__version__}")


if __name__ == "__main__":
    {"weights": write_weights, "opencv": run_opencv}[sys.argv[1]]()
