"""Shared helpers of the zoo tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

import torch

from fcnkit import zoo
from fcnkit.compile import compile_net
from fcnkit.graph import NetState, load_net

ROOT = Path(__file__).resolve().parents[2]
PROTOTXT = ROOT / "prototxt"

FCN = [n for n in zoo.names() if zoo.info(n)["family"] == "fcn"]
TIRAMISU = [n for n in zoo.names() if zoo.info(n)["family"] == "tiramisu"]


def compile_zoo(name: str, shape=None, phase: str = "deploy", state: str = "TEST", *,
                meta: bool = False):
    """Compile a zoo model for an input shape (N, C, H, W) or its declared one.

    ``meta``: build the module on torch's meta device without weights (shapes and FLOPs
    only; the fillers are dropped so nothing large is allocated).

    The VGG/AlexNet FCNs (57-134 M parameters) get their MSRA weights from torch's
    ``kaiming_normal_`` (the same distribution as Caffe's "msra" filler, N(0, sqrt(2 /
    fan_in))) rather than fcnkit's NumPy fillers, which take seconds for fc6 alone; the
    bilinear upsampling fillers stay. FC-DenseNets use the prototxt's fillers.
    """
    param = zoo.build(name, phase=phase)
    shapes = {"data": tuple(shape)} if shape else None
    if shape and phase == "train_val":
        shapes["label"] = (shape[0], 1, *shape[2:])
    torch_msra = [] if meta or zoo.info(name)["family"] != "fcn" else [
        lp.name for lp in param.layer if lp.convolution_param.weight_filler.type == "msra"]
    for lp in param.layer:
        if meta or lp.name in torch_msra:
            lp.convolution_param.ClearField("weight_filler")
    net = load_net(param, NetState.make(state))
    if meta:
        with torch.device("meta"):
            return compile_net(net, input_shapes=shapes)
    compiled = compile_net(net, input_shapes=shapes)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in torch_msra:
            torch.nn.init.kaiming_normal_(getattr(compiled.module, layer).weight,
                                          nonlinearity="relu", generator=g)
    return compiled


def make_realistic(compiled, seed: int = 0) -> None:
    """Give freshly filled weights what a trained net has, so the forward is a real test:

    - BatchNorm statistics: Caffe starts them at 0 (mean, variance and the scale factor
      s), which in TEST divides by sqrt(eps) at every layer and overflows a 50-layer net;
      set variance 1 (PyTorch's BatchNorm2d start);
    - zero-initialised score layers (FCN): small random weights, so the class scores
      differ from pixel to pixel instead of a uniform softmax.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, mod in compiled.module.named_modules():
            if hasattr(mod, "running_var") and hasattr(mod, "scale_factor"):
                mod.running_mean.zero_()
                mod.running_var.fill_(1.0)
                mod.scale_factor.fill_(1.0)
            w = getattr(mod, "weight", None)
            if isinstance(w, torch.nn.Parameter) and w.dim() == 4 and not w.any():
                w.copy_(torch.randn(w.shape, generator=g) * 0.01)
