"""Shared helpers of the deployment tests: the real nets of ../shared/data/caffe that
compile, and a per-session cache of exports (an export costs seconds; several tests read the
same file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.conftest import DATA

CIFAR_W = "cifar10quick_ikkichung/cifar10_quick_iter_5000.caffemodel"


@dataclass(frozen=True)
class RealNet:
    """A real Caffe net of the data folder, as exported in the tests.

    ``tile`` is the small tile the test uses (FCNs with conv1 pad 100 work at 64x64);
    ``input_shapes`` stands in for the shapes Data layers do not declare."""

    key: str
    prototxt: str
    weights: str | None = None
    tile: tuple[int, int] | None = None
    input_shapes: tuple = ()

    @property
    def path(self) -> Path:
        return DATA / self.prototxt

    @property
    def weights_path(self) -> Path | None:
        return DATA / self.weights if self.weights else None


#: Every prototxt of the data folder that compiles (deploy nets as they are; train/val nets
#: with Data layers in their TEST phase with an explicit input shape; the fcn.berkeleyvision
#: train/val nets use a Python data layer and do not compile).
REAL_NETS = [
    RealNet("conv", "bvlc_caffe/v2/examples/net_surgery/conv.prototxt"),
    RealNet("lenet_v0", "bvlc_caffe/v0_legacy/examples/lenet/lenet.prototxt"),
    RealNet("lenet", "lenet_ahmdtaha/mnist_deploy.prototxt", "lenet_ahmdtaha/lenet_iter_10000.caffemodel"),
    RealNet("cifar10_quick", "bvlc_caffe/v2/examples/cifar10/cifar10_quick.prototxt", CIFAR_W),
    RealNet("cifar10_prediction_example", "cifar10quick_ikkichung/prediction_example.prototxt", CIFAR_W),
    RealNet("fsrcnn", "fsrcnn_espcn_wangxuewen99/FSRCNN_mat.prototxt",
            "fsrcnn_espcn_wangxuewen99/fsrcnn_snapshot_iter_2546000.caffemodel"),
    RealNet("resnet50_stem", "resnet50_stem_htshinichi/test.prototxt", "resnet50_stem_htshinichi/test.caffemodel"),
    RealNet("alexnet_v1", "bvlc_caffe/v1_layers_enum/models/bvlc_alexnet/deploy.prototxt"),
    RealNet("alexnet", "bvlc_caffe/v2/models/bvlc_alexnet/deploy.prototxt"),
    RealNet("alexnet_train_val", "bvlc_caffe/v2/models/bvlc_alexnet/train_val.prototxt",
            input_shapes=(("data", (1, 3, 227, 227)),)),
    RealNet("caffenet", "bvlc_caffe/v2/models/bvlc_reference_caffenet/deploy.prototxt"),
    RealNet("caffenet_train_val", "bvlc_caffe/v2/models/bvlc_reference_caffenet/train_val.prototxt",
            input_shapes=(("data", (1, 3, 227, 227)),)),
    RealNet("caffenet_full_conv", "bvlc_caffe/v2/examples/net_surgery/bvlc_caffenet_full_conv.prototxt",
            tile=(227, 227)),
    RealNet("fcn_alexnet_digits", "digits_nvidia/examples/semantic-segmentation/fcn_alexnet.deploy.prototxt",
            tile=(64, 64)),
    RealNet("fcn_alexnet_digits_train_val", "digits_nvidia/examples/semantic-segmentation/fcn_alexnet.prototxt",
            input_shapes=(("data", (1, 3, 64, 64)), ("label", (1, 1, 64, 64)))),
    RealNet("voc_fcn8s", "fcn_berkeleyvision/voc-fcn8s/deploy.prototxt", tile=(64, 64)),
]
BY_KEY = {n.key: n for n in REAL_NETS}


def load_real(key: str, **kw):
    """The real net ``key`` loaded for deployment (ModelSource), with usable weights: the
    caffemodel where there is one, seeded He-normal values where the prototxt has no
    filler (deploy nets), BatchNorm variances of 1 where untrained."""
    from fcnkit.deploy.model import fill_untrained, load_model

    n = BY_KEY[key]
    kw.setdefault("tile", n.tile)
    src = load_model(n.path, weights=n.weights_path, input_shapes=dict(n.input_shapes) or None, **kw)
    fill_untrained(src.compiled)
    return src


def rand(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


class ExportCache:
    """Session cache: (key, options) -> (ModelSource, ExportResult, path)."""

    def __init__(self, root: Path):
        self.root = root
        self.items: dict = {}

    def get(self, key: str, loader, **export_kw):
        from fcnkit.deploy.onnx import export_onnx

        ck = (key, tuple(sorted(export_kw.items())))
        if ck not in self.items:
            src = loader()
            tag = "_".join(f"{k}{v}" for k, v in sorted(export_kw.items()))
            path = self.root / f"{key}{'_' + tag if tag else ''}.onnx"
            result = export_onnx(src, path, **export_kw)
            self.items[ck] = (src, result, path)
        return self.items[ck]
