"""Weights of a compiled net: Caffe blobs matched by layer name, or the layers' fillers.

Rules (Caffe's Net::CopyTrainedLayersFrom): blobs are matched by layer name; layers in
the weights file that the net lacks are ignored (and reported); blob count and element
count must match (legacy 4-D shapes compare right-aligned, i.e. by element count). Layers
without weights are initialised by their fillers (constant 0 when none is given).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch

from fcnkit.errors import WeightsError
from fcnkit.fillers import fill
from fcnkit.layers import Shape


@dataclass
class WeightReport:
    """What happened to each layer's weights.

    Attributes:
        loaded: layers whose blobs came from the weights file.
        initialised: layer -> filler type per blob, for layers filled by their fillers.
        unused: layer names in the weights file that the compiled net does not have.
    """

    loaded: list[str] = field(default_factory=list)
    initialised: dict[str, list[str]] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.loaded)} layer(s) loaded from weights"]
        if self.initialised:
            parts.append(f"{len(self.initialised)} initialised by fillers "
                         f"({', '.join(self.initialised)})")
        if self.unused:
            parts.append(f"{len(self.unused)} unused in the weights file ({', '.join(self.unused)})")
        return "; ".join(parts)


def assign(module: torch.nn.Module, arrays: Mapping[str, np.ndarray], where: str,
           share: bool = False) -> None:
    """Set the module's parameters/buffers of the same names from ``arrays``.

    A tensor still on the meta device (built without storage by :func:`compile_net`) is
    replaced by a new tensor holding the array (on the default device: CPU unless the caller
    builds under ``with torch.device(...)``), without a copy when ``share`` is true
    and the array is float32, C-contiguous, aligned and writable (the caller owns it);
    any other tensor is overwritten in place (its identity stays: shared params stay tied).

    Raises:
        WeightsError: a name is missing on the module or the element counts differ.
    """
    own = dict(module.named_parameters(recurse=False)) | dict(module.named_buffers(recurse=False))
    for name, arr in arrays.items():
        if name not in own:
            raise WeightsError(f"{where}: the torch module has no tensor named '{name}'")
        t = own[name]
        if t.numel() != arr.size:
            raise WeightsError(f"{where}: '{name}' needs {tuple(t.shape)} ({t.numel()} values), "
                               f"got {arr.shape} ({arr.size} values)")
        if t.is_meta:
            data = (np.require(arr, np.float32, ["C", "A", "W"]) if share
                    else np.array(arr, dtype=np.float32, order="C"))
            value = torch.from_numpy(data).reshape(t.shape)
            device = torch.empty(()).device  # the caller's default device (a `with torch.device`)
            if device.type != "cpu":
                value = value.to(device)
            if name in module._parameters:
                module._parameters[name] = torch.nn.Parameter(value, requires_grad=t.requires_grad)
            else:
                module._buffers[name] = value
            continue
        with torch.no_grad():
            t.copy_(torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).reshape(t.shape))


def initialise(net, layers, modules: Mapping[str, torch.nn.Module], shapes: Mapping[str, Shape],
               blobs: Mapping[str, list[np.ndarray]], seed: int = 0,
               source: str | None = None, fill_missing: bool = True,
               share: bool = False) -> WeightReport:
    """Load or fill the weights of every compiled layer; see the module docstring.

    Fillers run only for layers without stored blobs. ``source`` names the weights file
    in messages. ``fill_missing=False`` leaves layers without stored blobs as
    :func:`compile_net` built them (on the meta device: no storage, no filler run; for a
    caller that assigns every tensor afterwards, as ``fcnkit.load`` does; a bad unused
    filler is then no error). ``share``: stored arrays may become the tensors' storage
    (:func:`assign`; true when fcnkit read the weights file itself).

    Raises:
        WeightsError: a blob does not fit (message names the weights file, the layer, the
            blob and both shapes).
    """
    report = WeightReport()
    rng = np.random.default_rng(seed)
    compiled = set()
    for node in layers:
        mod = modules.get(node.name)
        if mod is None:
            continue
        compiled.add(node.name)
        names = node.layer.param_names()
        if not names:
            continue
        bshapes = [shapes[b] for b in node.bottoms]
        stored = blobs.get(node.name)
        if stored:
            try:
                arrays = node.layer.params_to_torch(list(stored), bshapes)
                assign(mod, arrays, node.where(), share)
            except WeightsError as e:
                if source is None:
                    raise
                raise WeightsError(f"weights {source}: {e}") from None
            report.loaded.append(node.name)
            continue
        if not fill_missing:
            report.initialised[node.name] = ["not filled"]
            continue
        fillers = node.layer.fillers()
        filled = [fill(f, s, rng, node.where())
                  for f, s in zip(fillers, node.layer.param_shapes(bshapes))]
        assign(mod, node.layer.params_to_torch(filled, bshapes), node.where(), share=True)
        report.initialised[node.name] = [(f.type or "constant") if f is not None else "constant 0"
                                         for f in fillers]
    report.unused = [name for name, b in blobs.items() if name not in compiled and len(b)]
    return report


def export_blobs(compiled) -> dict[str, list[np.ndarray]]:
    """Caffe blobs of every layer of a compiled net with weights: {layer: [arrays]} in
    Caffe's shapes (the inverse of loading; used to write a caffemodel)."""
    out = {}
    gm = compiled.module
    from fcnkit.compile.naming import module_name

    for node in compiled.net.layers:
        if not node.layer.param_names() or not hasattr(gm, module_name(node.name)):
            continue
        mod = getattr(gm, module_name(node.name))
        tensors = {k: v.detach().cpu().numpy()
                   for k, v in (dict(mod.named_parameters(recurse=False))
                                | dict(mod.named_buffers(recurse=False))).items()}
        bshapes = [compiled.analysis.shapes[b] for b in node.bottoms]
        out[node.name] = node.layer.torch_to_params(tensors, bshapes)
    return out
