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
    ``input_shapes`` stands in for the shapes Data layers do not declare. ``extra_outputs``
    are blobs exported (and compared) besides the net's outputs, and ``constant`` the outputs
    that do not vary on random input for a reason of the net (so that their parity alone
    would prove nothing, and an extra output is compared instead)."""

    key: str
    prototxt: str
    weights: str | None = None
    tile: tuple[int, int] | None = None
    input_shapes: tuple = ()
    extra_outputs: tuple = ()
    constant: tuple = ()

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
    # its output is ArgMax (top-5 class indices): the trained net gives the same five classes
    # for any standard-normal noise, so the probabilities before it are compared as well
    RealNet("cifar10_prediction_example", "cifar10quick_ikkichung/prediction_example.prototxt", CIFAR_W,
            extra_outputs=("prob",), constant=("argmax",)),
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


# ------------------------------------------------------------------------------------------
# Untrained nets whose scores mean something
# ------------------------------------------------------------------------------------------

def _score_leaves(net, bid: str, crossed: int = 0) -> list[tuple[object, int]]:
    """The weighted layers whose outputs reach blob ``bid`` through linear, position-wise
    steps only (Crop, Eltwise SUM with unit coefficients, bias-free Deconvolution), with how
    many Deconvolutions each path crosses: scaling all of them by a scales ``bid`` by a, and
    a per-channel bias added to one of them shifts ``bid`` by about that constant (a
    bilinear upsampling of a constant is the constant away from the border)."""
    node = net.producer[bid]
    if node.type == "Crop":
        return _score_leaves(net, node.bottoms[0], crossed)
    if node.type == "Eltwise":
        p = node.param.eltwise_param
        assert p.operation == 1 and all(c == 1 for c in p.coeff), f"{node.name}: not a plain sum"
        return [leaf for b in node.bottoms for leaf in _score_leaves(net, b, crossed)]
    if node.type == "Deconvolution":
        assert not node.param.convolution_param.bias_term, f"{node.name}: a deconvolution with a bias"
        return _score_leaves(net, node.bottoms[0], crossed + 1)
    if node.type in ("Convolution", "InnerProduct"):
        return [(node, crossed)]
    raise AssertionError(f"cannot calibrate through {node.type} layer '{node.name}'")


def calibrate_scores(compiled, blob: str = "score", seed: int = 101, target_std: float = 1.5) -> dict:
    """Make an untrained (filled) net's class scores O(1) and centred, in place.

    He-normal weights keep activations O(1), but ReLU features have positive means, so each
    class score carries a large random offset: after fill_untrained, FCN-8s at 32 x 32 gives
    the same class everywhere with probability >= 0.999 on 99% of the pixels, and a
    comparison of such probabilities cannot see a wrong Crop or upsampling. This scales the
    last weighted layers (:func:`_score_leaves`) so that the scores' spread is
    ``target_std`` and removes each class's mean through the bias of the leaf closest to
    the scores, both measured on a seeded standard-normal input (the distribution of the
    export's parity input).

    Returns:
        Statistics of the calibrated reference on another input, for the tests to assert
        on: ``labels`` (count per class), ``prob_std``, ``saturated`` (fraction of pixels
        whose top probability is >= 0.999), ``score_std``, ``spatial`` (the scores' spread
        over the tile, within a sample and class, over their whole spread).
    """
    import torch

    net = compiled.net
    bid = net.final[blob]
    leaves = _score_leaves(net, bid)
    from fcnkit.compile import module_name

    shape = (2,) + tuple(compiled.input_shapes[compiled.inputs[0]][1:])

    def scores(seed_):
        return compiled.run_all(torch.from_numpy(rand(shape, seed_)))[bid].double()

    s = scores(seed)
    mean = s.mean(dim=(0, 2, 3))
    spread = float((s - mean[None, :, None, None]).std())
    alpha = target_std / spread if spread > 0 else 1.0
    mods = [getattr(compiled.module, module_name(n.name)) for n, _ in leaves]
    nearest = mods[min(range(len(leaves)), key=lambda i: leaves[i][1])]
    with torch.no_grad():
        for m in mods:
            m.weight.mul_(alpha)
            if m.bias is not None:
                m.bias.mul_(alpha)
        nearest.bias.sub_((alpha * mean).to(nearest.bias.dtype))
    s = scores(seed + 1)
    prob = torch.softmax(s, dim=1)
    k = s.shape[1]
    labels = torch.bincount(prob.argmax(1).flatten(), minlength=k)
    return {"labels": labels.tolist(), "prob_std": float(prob.std()),
            "saturated": float((prob.max(1).values >= 0.999).double().mean()), "score_std": float(s.std()),
            # spread over the tile within each sample and class, relative to the overall one
            "spatial": float(s.std(dim=(2, 3)).mean() / s.std())}


#: A small FCN with seeded random (gaussian-filled) weights whose class probabilities are
#: not saturated: conv - ReLU - ceil-mode MAX pooling - 1x1 score - bilinear 2x upsampling
#: (Deconvolution) - Crop back to the input - Softmax. 4 bands, 3 classes, 16 x 16 tiles.
SMALL_FCN = """name: "small_fcn"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 dim: 16 dim: 16 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 }
                            bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "score_fr" type: "Convolution" bottom: "pool1" top: "score_fr"
        convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "gaussian" std: 0.5 }
                            bias_filler { type: "gaussian" std: 0.2 } } }
layer { name: "upscore" type: "Deconvolution" bottom: "score_fr" top: "upscore"
        convolution_param { num_output: 3 group: 3 kernel_size: 4 stride: 2 bias_term: false
                            weight_filler { type: "bilinear" } } }
layer { name: "score" type: "Crop" bottom: "upscore" bottom: "data" top: "score" crop_param { axis: 2 offset: 1 } }
layer { name: "prob" type: "Softmax" bottom: "score" top: "prob" }
"""


def write_small_fcn(directory: Path) -> Path:
    path = Path(directory) / "small_fcn.prototxt"
    path.write_text(SMALL_FCN)
    return path


def load_zoo_untrained(name: str, tile: tuple[int, int]):
    """The zoo model ``name`` at ``tile`` (ModelSource) with seeded He-normal weights in its
    Convolution and InnerProduct layers (fill_untrained: the distribution of the zoo's msra
    fillers), its other layers as their fillers make them (bilinear upsampling, BatchNorm
    statistics with variance 1).

    Zero blobs are given for the convolutions so that the compile does not draw their filler
    values first (numpy draws FCN-8s's 134 M msra values in ~6 s, which fill_untrained then
    replaces in ~1.5 s); what is exported is the same net with weights of the same law."""
    from fcnkit import zoo
    from fcnkit.analysis import analyse
    from fcnkit.deploy.model import declared_input_shapes, deploy_shapes, fill_untrained, load_model
    from fcnkit.graph import load_net

    net = load_net(zoo.build(name))
    shapes = analyse(net, deploy_shapes(declared_input_shapes(net), tile)).shapes
    zeros = {n.name: [np.zeros(s, np.float32) for s in n.layer.param_shapes([shapes[b] for b in n.bottoms])]
             for n in net.layers if n.type in ("Convolution", "InnerProduct")}
    # the BatchNorm statistics deliberately come from their fillers
    src = load_model(name, tile=tile, weights=zeros, allow_missing_weights=True)
    fill_untrained(src.compiled)
    return src


# ------------------------------------------------------------------------------------------
# Parity measured in the test, not read from the library's report
# ------------------------------------------------------------------------------------------

def independent_parity(path: Path, compiled, input_dims: dict, seed: int = 17) -> dict[str, float]:
    """{output: max |ort - torch| / max |torch|} for every output of the ONNX file at
    ``path``, computed here: ONNX Runtime (CPU, its default optimisations, not the
    library's session) on a fresh seeded input against the compiled torch net's blob of
    the same name (``run_all``, so extra outputs are covered). ``input_dims``: the export
    result's ``inputs`` (a "batch" axis is run with 2)."""
    import onnxruntime as ort
    import torch

    x = {name: rand(tuple(2 if d == "batch" else d for d in dims), seed=seed + i)
         for i, (name, dims) in enumerate(input_dims.items())}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, x)))
    with torch.no_grad():
        values = compiled.run_all(*[torch.from_numpy(x[n]) for n in compiled.inputs])
    out = {}
    for name, value in got.items():
        ref = values[compiled.net.final[name]].numpy()
        assert value.shape == ref.shape, (name, value.shape, ref.shape)
        out[name] = float(np.abs(value - ref).max() / max(float(np.abs(ref).max()), 1e-30))
    return out
