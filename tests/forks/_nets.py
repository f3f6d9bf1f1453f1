"""Compile a fixture of tests/forks/data and read every blob and every layer's parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"


class Run:
    """One forward pass of a compiled fixture: ``top(layer)``, ``bottom(layer, i)`` and
    ``params(layer)`` (Caffe blobs as numpy arrays, from the compiled module)."""

    def __init__(self, name: str, inputs: dict | None = None, seed: int = 0, deploy=True):
        import torch

        from fcnkit.compile import compile_net
        from fcnkit.graph import load_net

        self.net = load_net(DATA / name)
        self.compiled = compile_net(self.net, deploy=deploy, seed=seed)
        shapes = self.compiled.input_shapes
        rng = np.random.default_rng(seed)
        self.inputs = {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}
        self.inputs.update(inputs or {})
        args = [torch.from_numpy(self.inputs[n]) for n in self.compiled.inputs]
        self.values = {k: v.detach().numpy() for k, v in self.compiled.run_all(*args).items()}
        modules = dict(self.compiled.module.named_children())
        self.modules = {self.compiled.layer_of_module[k]: m for k, m in modules.items()
                        if k in self.compiled.layer_of_module}

    def top(self, layer: str, i: int = 0) -> np.ndarray:
        return self.values[self.net.layer(layer).tops[i]]

    def bottom(self, layer: str, i: int = 0) -> np.ndarray:
        node = self.net.layer(layer)
        blob = node.bottoms[i]
        return self.values[blob] if blob in self.values else self.inputs[self.net.blob_name[blob]]

    def params(self, layer: str) -> list[np.ndarray]:
        node = self.net.layer(layer)
        mod = self.modules[layer]
        own = dict(mod.named_parameters()) | dict(mod.named_buffers())
        tensors = {k: v.detach().numpy() for k, v in own.items()}
        shapes = [self.compiled.analysis.shapes[b] for b in node.bottoms]
        return node.layer.torch_to_params(tensors, shapes)
