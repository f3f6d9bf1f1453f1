"""The compiled net's graph rewritten for export (the compiled module is never modified):
each layer's ONNX-exact form (:meth:`fcnkit.layers.Layer.export_module`), fused layer
pairs (:meth:`fcnkit.layers.Layer.export_fused`), extra outputs, fp16 copies; what keeps H
and W static (:meth:`fcnkit.layers.Layer.static_hw_reason`); renaming of ONNX graph values.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from fcnkit.errors import InputError


def dynamic_hw_blockers(compiled) -> list[str]:
    """Reasons why the compiled net cannot be exported with dynamic H and W (empty: it can),
    one per layer whose :meth:`fcnkit.layers.Layer.static_hw_reason` gives one
    (InnerProduct, Flatten, Reshape), prefixed with the layer's type, name and line."""
    from fcnkit.compile import module_name

    mods = dict(compiled.module.named_children())
    out = []
    for node in compiled.net.layers:
        mod = mods.get(module_name(node.name))
        reason = None if mod is None else node.layer.static_hw_reason(mod)
        if reason:
            where = f"{node.type} layer '{node.name}'" + (f" (line {node.line})" if node.line else "")
            out.append(f"{where} {reason}")
    return out


def resolve_blob(compiled, name: str) -> str:
    """The blob version id whose value the compiled module computes for the Caffe blob
    ``name`` (its final version; a Split top resolves to the Split's bottom, which it
    aliases).

    Raises:
        InputError: no such blob, or one the compiled (deploy) net does not compute.
    """
    net = compiled.net
    if name not in net.final:
        raise InputError(f"blob '{name}' is not in the net (blobs: {', '.join(sorted(net.final))})")
    bid = net.final[name]
    computed = set(compiled.blob_of_node.values())
    while bid not in computed:
        prod = net.producer.get(bid)
        if prod is None or prod.role != "alias":
            raise InputError(f"blob '{name}' is not computed by the compiled net (it was dropped "
                             "for deployment, e.g. a loss or label blob)")
        bid = prod.bottoms[0]
    return bid


def _converted(mod, dtype):
    """A copy of ``mod`` whose floating-point parameters and buffers are new tensors of
    ``dtype``; the original is left alone. (``Module.half()`` on a shallow copy would
    convert the shared Parameter objects in place, through ``param.data``; a deep copy
    duplicates every weight once more before converting it.)"""
    import copy

    import torch

    new = copy.copy(mod)
    new._parameters = {k: None if p is None else torch.nn.Parameter(
        p.detach().to(dtype) if p.is_floating_point() else p.detach(), requires_grad=False)
        for k, p in mod._parameters.items()}
    new._buffers = {k: None if b is None else (b.to(dtype) if b.is_floating_point() else b)
                    for k, b in mod._buffers.items()}
    new._modules = {k: None if m is None else _converted(m, dtype) for k, m in mod._modules.items()}
    return new


def fused_pairs(compiled, graph) -> list[tuple[Any, Any, Any]]:
    """(fx node, next fx node, fused module) for each pair of ``graph`` (a copy of
    ``compiled.module.graph``) whose layers compute as one op at export
    (:meth:`fcnkit.layers.Layer.export_fused`: a BatchNorm with stored statistics and its
    in-place per-channel Scale); the first node's only user is the second, with one
    argument and no keywords."""
    from fcnkit.compile import module_name

    layer = {module_name(n.name): n for n in compiled.net.layers}
    gm = compiled.module
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or node.kwargs or len(node.args) != 1:
            continue
        prev = node.args[0]
        if getattr(prev, "op", None) != "call_module" or len(prev.users) != 1 or prev.kwargs:
            continue
        first, second = layer.get(prev.target), layer.get(node.target)
        if first is None or second is None:
            continue
        fused = first.layer.export_fused(gm.get_submodule(prev.target), second.layer,
                                        gm.get_submodule(node.target))
        if fused is not None:
            pairs.append((prev, node, fused))
    return pairs


def _export_forms(compiled, dynamic_hw: bool) -> dict[str, Any]:
    """{submodule name: its export form} for the layers that have one
    (:meth:`fcnkit.layers.Layer.dynamic_export_module` first when ``dynamic_hw``, then
    :meth:`fcnkit.layers.Layer.export_module`)."""
    from fcnkit.compile import module_name

    swaps = {}
    for node in compiled.net.layers:
        name = module_name(node.name)
        mod = getattr(compiled.module, name, None)
        if mod is None:
            continue
        bshapes = [compiled.analysis.shapes[b] for b in node.bottoms]
        rep = node.layer.dynamic_export_module(mod, bshapes) if dynamic_hw else None
        rep = rep if rep is not None else node.layer.export_module(mod, bshapes)
        if rep is not None:
            swaps[name] = rep
    return swaps


def module_for_export(compiled, half: bool, extra_outputs: Sequence[str] = (), fuse: bool = True,
                      dynamic_hw: bool = False):
    """A module for export: the compiled net's graph, with

    - LRN and ceil-mode pooling layers swapped for their exact ONNX forms
      (:mod:`fcnkit.layers._export_ops`); with ``dynamic_hw``, each layer's
      :meth:`fcnkit.layers.Layer.dynamic_export_module` first (Pooling, Crop: sizes
      computed from the input's shape);
    - each Caffe BatchNorm followed by its in-place Scale fused into one per-channel affine
      op (:class:`fcnkit.deploy._export_ops.BatchNormScaleExport`; ONNX: one
      BatchNormalization node with scale and bias instead of BatchNormalization, Mul and
      Add), when ``fuse``: fewer ops to trace, decompose and translate;
    - the outputs as a tuple: ``compiled.outputs``, then ``extra_outputs`` (blob names).

    The compiled module is never modified, and its weights are shared, not copied (fp16:
    converted copies of them).

    Returns:
        (module, custom translation table for ``torch.onnx.export``, output names).

    Raises:
        InputError: an extra output that the net does not compute.
    """
    import torch
    import torch.fx

    from fcnkit.layers import export_translations

    gm = compiled.module
    swaps = _export_forms(compiled, dynamic_hw)
    names = list(compiled.outputs) + [n for n in dict.fromkeys(extra_outputs) if n not in compiled.outputs]
    node_of = {n.name: n for n in gm.graph.nodes}
    fx_of_blob = {bid: node_of[n] for n, bid in compiled.blob_of_node.items() if n in node_of}
    graph = torch.fx.Graph()
    env: dict = {}
    results = None
    for n in gm.graph.nodes:
        if n.op == "output":
            results = n.args[0]
            continue
        env[n] = graph.node_copy(n, lambda a: env[a])
    values = []
    for name in names:
        if name in compiled.outputs:
            values.append(env[results[name]])
            continue
        bid = resolve_blob(compiled, name)
        src = fx_of_blob[bid]
        if src.op == "placeholder":
            raise InputError(f"blob '{name}' is an input of the net, not something it computes")
        values.append(env[src])
    graph.output(tuple(values))

    owners: dict[str, Any] = {}
    if fuse:
        for first, second, fused in fused_pairs(compiled, graph):
            # the fused node takes the BatchNorm's module name, so that its ONNX node is
            # named after the BatchNorm layer (fcnkit.deploy.onnx.naming)
            second.args = first.args
            second.target = first.target
            graph.erase_node(first)
            owners[second.target] = fused
    graph.lint()
    for n in graph.nodes:
        if n.op == "call_module" and n.target not in owners:
            owners[n.target] = swaps.get(n.target) or gm.get_submodule(n.target)
        elif n.op == "get_attr" and n.target not in owners:
            owners[n.target] = getattr(gm, n.target)
    if half:
        owners = {k: _converted(v, torch.float16) if isinstance(v, torch.nn.Module)
                  else (v.to(torch.float16) if v.is_floating_point() else v) for k, v in owners.items()}
    module = torch.fx.GraphModule(owners, graph, class_name=type(gm).__name__)
    table = export_translations() if swaps else {}
    return module.eval(), table, names


def rename_values(model, old_to_new: Mapping[str, str]) -> None:
    """Rename graph values (inputs/outputs) everywhere they are referenced."""
    if not old_to_new:
        return
    g = model.graph
    for n in g.node:
        for i, v in enumerate(n.input):
            if v in old_to_new:
                n.input[i] = old_to_new[v]
        for i, v in enumerate(n.output):
            if v in old_to_new:
                n.output[i] = old_to_new[v]
    for coll in (g.input, g.output, g.value_info):
        for v in coll:
            if v.name in old_to_new:
                v.name = old_to_new[v.name]
