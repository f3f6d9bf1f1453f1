"""The compiled net rewritten for inference: exact fusions and channels-last memory.

:func:`inference_module` builds, from a :class:`fcnkit.compile.CompiledNet`, a module that
computes the same outputs (same dict keys, values equal to float32 rounding) faster:

- Fusion (``fuse``): each layer whose top only the next layer reads is offered to it
  (:meth:`fcnkit.layers.Layer.inference_fused`): Caffe's BatchNorm (stored statistics) +
  per-channel Scale + ReLU become one ``F.batch_norm`` with the ReLU applied in place on
  its output; a Convolution + ReLU write the ReLU into the convolution's output. Blobs that
  the net returns are never fused away; a dump of every blob (``run --all-blobs``,
  ``verify``, :meth:`CompiledNet.run_all`) uses the unfused module.
- Channels-last (``channels_last``): (N, C, H, W) inputs are copied once to
  ``torch.channels_last`` (NHWC in memory), so convolutions, pooling and the element-wise
  layers between them run on oneDNN's NHWC kernels (torch's NCHW max pooling is 9x
  slower, issue 16); 4-D outputs are returned in the usual (contiguous) layout.
- Prepacking (``prepack``, with channels-last on a torch built with oneDNN): layers that
  offer it (:meth:`fcnkit.layers.Layer.inference_packed`: Convolution, alone or fused with
  its ReLU) run on weights reordered once into oneDNN's layout, with the activation as a
  oneDNN post-op, instead of a weight copy and reorder on every call (FCN-8s at 512x512:
  1.4x faster). Costs a second copy of those weights in memory.

The module shares the compiled module's submodules and tensors (no copy; a weight changed
there is used here) and is for eval mode only (Caffe's TEST phase): a BatchNorm without
``use_global_stats`` uses its stored statistics. Training builds its own module
(``fcnkit.train``) and keeps every layer separate.

Opt-outs: ``FCNKIT_INFERENCE_FUSION=0``, ``FCNKIT_CHANNELS_LAST=0`` and ``FCNKIT_PREPACK=0``
(docs/performance.md).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.fx

from fcnkit.compile.naming import module_name


def _env_on(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("0", "false", "no", "off")


def channels_last_pays(compiled) -> bool:
    """Whether channels-last memory is worth its conversions: the net has a spatial filter,
    upsampling filter or pooling layer (asked through the layer contract) on a 4-D blob."""
    shapes = compiled.analysis.shapes
    for node in compiled.net.layers:
        layer = node.layer
        if (layer.spatial_filter or layer.upsampling_filter or layer.pools) and node.bottoms \
                and len(shapes.get(node.bottoms[0], ())) == 4:
            return True
    return False


def inference_module(compiled, *, fuse: bool | None = None, channels_last: bool | None = None,
                     prepack: bool | None = None) -> torch.fx.GraphModule:
    """A module computing ``compiled``'s outputs for inference (see the module docstring).

    Args:
        compiled: a :class:`fcnkit.compile.CompiledNet`.
        fuse: fuse layers (default: unless ``FCNKIT_INFERENCE_FUSION=0``).
        channels_last: run 4-D blobs channels-last (default: unless
            ``FCNKIT_CHANNELS_LAST=0``, when :func:`channels_last_pays`).
        prepack: run packable layers on prepacked weights (default: with channels-last,
            unless ``FCNKIT_PREPACK=0``; ignored without channels-last). The packed
            modules serve float32 CPU inputs outside autograd; a module moved to another
            device or dtype runs their plain form.

    Returns:
        A GraphModule in eval mode: ``module(*inputs)`` with one (N, C, H, W) tensor per
        net input -> {Caffe output blob name: tensor}, like ``compiled.module``.
    """
    if fuse is None:
        fuse = _env_on("FCNKIT_INFERENCE_FUSION")
    if channels_last is None:
        channels_last = _env_on("FCNKIT_CHANNELS_LAST") and channels_last_pays(compiled)
    gm = compiled.module
    graph = torch.fx.Graph()
    env: dict = {}
    for n in gm.graph.nodes:
        env[n] = graph.node_copy(n, lambda a: env[a])
    owners: dict[str, Any] = {}
    leaders = {module_name(n.name): n.layer for n in compiled.net.layers}
    if fuse:
        fused, fused_leaders = _fuse(compiled, graph)
        owners.update(fused)
        leaders.update(fused_leaders)
    if channels_last:
        _channels_last(compiled, graph)
        if _env_on("FCNKIT_PREPACK") if prepack is None else prepack:
            _prepack(gm, graph, owners, leaders)
    graph.lint()
    for n in graph.nodes:
        if n.op == "call_module" and n.target not in owners:
            owners[n.target] = gm.get_submodule(n.target)
        elif n.op == "get_attr" and n.target not in owners:
            owners[n.target] = getattr(gm, n.target)
    return torch.fx.GraphModule(owners, graph, class_name=type(gm).__name__).eval()


def _fuse(compiled, graph: torch.fx.Graph) -> tuple[dict[str, torch.nn.Module], dict[str, Any]]:
    """Fuse, in ``graph`` (a copy of the compiled module's), each call whose only reader
    is the next call, as long as the first layer accepts
    (:meth:`fcnkit.layers.Layer.inference_fused`); the fused call keeps the second node's
    name and target. Returns ({target: fused module}, {target: the layer leading it})."""
    gm = compiled.module
    layer_of = {module_name(n.name): n.layer for n in compiled.net.layers}
    fused: dict[str, torch.nn.Module] = {}
    first_layer: dict[str, Any] = {}  # target of a fused call -> the layer that leads it
    for node in list(graph.nodes):
        if node.op != "call_module" or node.kwargs or len(node.args) != 1:
            continue
        prev = node.args[0]
        if getattr(prev, "op", None) != "call_module" or prev.kwargs or len(prev.users) != 1:
            continue
        first = first_layer.get(prev.target) or layer_of.get(prev.target)
        second = layer_of.get(node.target)
        if first is None or second is None:
            continue
        prev_mod = fused.get(prev.target) or gm.get_submodule(prev.target)
        module = first.inference_fused(prev_mod, second, gm.get_submodule(node.target))
        if module is None:
            continue
        node.args = prev.args
        graph.erase_node(prev)
        fused.pop(prev.target, None)
        fused[node.target] = module
        first_layer[node.target] = first
    return fused, first_layer


def _prepack(gm, graph: torch.fx.Graph, owners: dict[str, Any], leaders: dict[str, Any]) -> None:
    """Replace, in ``owners``, each called module whose leading layer offers a prepacked
    form (:meth:`fcnkit.layers.Layer.inference_packed`) by that form."""
    for node in graph.nodes:
        layer = leaders.get(node.target) if node.op == "call_module" else None
        if layer is None:
            continue
        module = owners[node.target] if node.target in owners else gm.get_submodule(node.target)
        packed = layer.inference_packed(module)
        if packed is not None:
            owners[node.target] = packed


def _channels_last(compiled, graph: torch.fx.Graph) -> None:
    """Copy each 4-D input to channels-last memory after its placeholder, and give 4-D
    outputs back in the contiguous layout."""
    shapes = compiled.analysis.shapes
    blob_of = compiled.blob_of_node
    output = None
    for node in list(graph.nodes):
        if node.op == "placeholder" and len(shapes.get(blob_of.get(node.name), ())) == 4:
            with graph.inserting_after(node):
                cl = graph.call_method("contiguous", (node,),
                                       {"memory_format": torch.channels_last})
            node.replace_all_uses_with(  # an input returned as an output stays as given
                cl, delete_user_cb=lambda user: user is not cl and user.op != "output")
        elif node.op == "output":
            output = node
    results = dict(output.args[0])
    with graph.inserting_before(output):
        for name, value in results.items():
            bid = blob_of.get(value.name) if isinstance(value, torch.fx.Node) else None
            if bid is not None and len(shapes.get(bid, ())) == 4:
                results[name] = graph.call_method("contiguous", (value,))
    output.args = (results,)
