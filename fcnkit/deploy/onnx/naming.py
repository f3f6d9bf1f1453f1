"""ONNX node and initializer names from the Caffe layer names (issue 13, item 9).

The exporter names nodes after torch ops (``node_conv2d``, ``node_prelu_1``) and folded
constants ``val_N``; a user who opens the file in Netron looks for ``conv4-2``. This step
works on the exported ``onnx.ModelProto`` only, so it does not depend on how the exporter
traced the module. Which layer a node comes from is read from the compiled module's table
(:attr:`fcnkit.compile.CompiledNet.layer_of_module`, ``fcnkit.json`` "modules": submodule
name -> Caffe layer name) and from the node's module scope:

- the dynamo exporter's ``pkg.torch.onnx.name_scopes`` node metadata
  (``['', 'conv4_2', 'conv2d_4']``);
- the TorchScript exporter's node names (``/conv4_2/Conv``).

A node without a scope (the ``Shape`` of an input that a layer reads its size from) belongs
to the layer of the first node that uses its output.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from typing import Mapping, Sequence

#: Node metadata key under which torch.onnx.export (dynamo) records the module scopes.
SCOPES_KEY = "pkg.torch.onnx.name_scopes"


def _scopes(node) -> list[str]:
    """The module scopes of an exported node, outermost first (may be empty)."""
    for prop in node.metadata_props:
        if prop.key == SCOPES_KEY:
            try:
                value = ast.literal_eval(prop.value)  # a list of str written by the exporter
            except (ValueError, SyntaxError):
                return []
            return [str(v) for v in value] if isinstance(value, list) else []
    if node.name.startswith("/"):  # TorchScript exporter: /scope/.../Op
        return node.name.strip("/").split("/")[:-1]
    return []


def node_layers(model, layer_of_module: Mapping[str, str]) -> list[str | None]:
    """The Caffe layer name of each node of ``model.graph`` (None: no layer found), from
    its module scope or else from the first node that consumes one of its outputs."""
    nodes = list(model.graph.node)
    layers: list[str | None] = []
    for node in nodes:
        layer = next((layer_of_module[s] for s in _scopes(node) if s in layer_of_module), None)
        layers.append(layer)
    consumers: dict[str, list[int]] = defaultdict(list)
    for i, node in enumerate(nodes):
        for v in node.input:
            consumers[v].append(i)
    for i in reversed(range(len(nodes))):  # topological order: consumers come later
        if layers[i] is None:
            users = [j for v in nodes[i].output for j in consumers.get(v, ())]
            layers[i] = next((layers[j] for j in sorted(users) if layers[j] is not None), None)
    return layers


#: ONNX ops into which the exporter's optimiser folds a following BatchNormalization.
_FOLDING_OPS = ("Conv", "ConvTranspose", "Gemm")


def folded_layers(compiled, fused: Mapping[str, Sequence[str]] = ()) -> dict[str, str]:
    """{layer L: layer K} where K produces L's first bottom and has learnable parameters:
    if K ends up with no node of its own, the ONNX optimiser folded L into K's op (a
    BatchNorm into the preceding Convolution). ``fused`` ({BatchNorm: [its Scale]}) maps
    a fused Scale's layer to its BatchNorm first."""
    modules = dict(compiled.module.named_children())
    module_of = {layer: module for module, layer in compiled.layer_of_module.items()}
    out = {}
    for node in compiled.net.layers:
        if not node.bottoms or node.name not in module_of:
            continue
        prod = compiled.net.producer.get(node.bottoms[0])
        mod = modules.get(module_of.get(prod.name, "")) if prod is not None else None
        if mod is not None and any(True for _ in mod.parameters()):
            out[node.name] = prod.name
    return out


def name_nodes(model, layer_of_module: Mapping[str, str], fused: Mapping[str, Sequence[str]] | None = None,
               folds: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Name every node of ``model`` after its Caffe layer, in place: the layer's last node
    (the one whose output is the layer's top) is named ``layer``, its other nodes
    ``layer/1``, ``layer/2``, ... in graph order; that node's ``doc_string`` says
    ``Caffe layer conv1``, or ``Caffe layers conv1, bn_conv1, scale_conv1`` when it
    computes several (``fused``: {layer: layers fused into it before export}; ``folds``,
    :func:`folded_layers`: a layer whose op the optimiser folded into the op of the layer
    before it, which then names the node). Nodes of no layer keep their names (made
    unique). Returns {layer: its node names}.

    Initializers that the nodes of one layer alone use are renamed ``layer/<param>`` (a
    parameter ``conv4_2.weight``: ``conv4-2/weight``) or ``layer/<input name in the ONNX
    operator schema>`` (a PReLU slope: ``PReLU1/slope``, not ``val_3``); constants shared
    by several layers ``shared/<schema input name>`` (``shared/axes``)."""
    fused, folds = dict(fused or {}), dict(folds or {})
    layers = node_layers(model, layer_of_module)
    nodes = list(model.graph.node)
    by_layer: dict[str, list[int]] = defaultdict(list)
    for i, layer in enumerate(layers):
        if layer is not None:
            by_layer[layer].append(i)
    computes = {layer: [layer, *fused.get(layer, ())] for layer in by_layer}
    for layer in list(by_layer):
        into = folds.get(layer)
        if into and into not in by_layer and nodes[by_layer[layer][-1]].op_type in _FOLDING_OPS:
            by_layer[into] = by_layer.pop(layer)
            computes[into] = [into, *computes.pop(layer)]
            for i in by_layer[into]:
                layers[i] = into
    caffe_names = set(layer_of_module.values())
    taken = set(caffe_names)
    names: dict[str, list[str]] = {}
    for layer, idx in by_layer.items():
        order = idx[-1:] + idx[:-1]
        given, j = [layer], 1
        while len(given) < len(order):  # skip a suffix that another layer is named
            if f"{layer}/{j}" not in caffe_names:
                given.append(f"{layer}/{j}")
            j += 1
        for i, name in zip(order, given):
            nodes[i].name = name
        done = computes[layer]
        nodes[order[0]].doc_string = ("Caffe layer " if len(done) == 1 else "Caffe layers ") + ", ".join(done)
        names[layer] = given
        taken.update(given)
    for i, node in enumerate(nodes):
        if layers[i] is None:
            base, j = node.name or node.op_type, 1
            while node.name in taken or not node.name:
                node.name, j = f"{base}/{j}", j + 1
            taken.add(node.name)
    _name_initializers(model, layers, layer_of_module)
    return names


def _schema_input(op_type: str, domain: str, index: int) -> str:
    """The name of input ``index`` of an ONNX operator in its schema (``PRelu`` 1:
    ``slope``); ``input<index>`` when the schema is unknown."""
    import onnx

    try:
        schema = onnx.defs.get_schema(op_type, domain=domain or "")
    except Exception:  # noqa: BLE001 - onnx.defs.SchemaError, a custom domain
        return f"input{index}"
    formal = schema.inputs
    if not formal:
        return f"input{index}"
    return formal[min(index, len(formal) - 1)].name


def _name_initializers(model, layers: list[str | None], layer_of_module: Mapping[str, str]) -> None:
    """Rename the initializers that the nodes of one layer alone use (see :func:`name_nodes`)."""
    g = model.graph
    users: dict[str, set[str | None]] = defaultdict(set)
    first_use: dict[str, tuple[int, int]] = {}
    for i, node in enumerate(g.node):
        for k, v in enumerate(node.input):
            users[v].add(layers[i])
            first_use.setdefault(v, (i, k))
    module_of = {layer: module for module, layer in layer_of_module.items()}
    existing = {v for n in g.node for v in list(n.input) + list(n.output)} | {v.name for v in g.input}
    renames: dict[str, str] = {}
    for init in g.initializer:
        if init.name not in first_use:
            continue
        owners = users[init.name]
        layer = next(iter(owners)) if len(owners) == 1 else None
        module, _, param = init.name.partition(".")
        i, k = first_use[init.name]
        if layer is not None and module == module_of.get(layer) and param:
            base = f"{layer}/{param}"
        elif layer is None and param and module in module_of.values():
            continue  # a parameter several layers use: keep its module name
        else:
            node = g.node[i]
            base = f"{layer or 'shared'}/{_schema_input(node.op_type, node.domain, k)}"
        new, j = base, 1
        while new in existing or new in renames.values():
            new, j = f"{base}/{j}", j + 1
        renames[init.name] = new
    if not renames:
        return
    for init in g.initializer:
        init.name = renames.get(init.name, init.name)
    for node in g.node:
        for k, v in enumerate(node.input):
            if v in renames:
                node.input[k] = renames[v]
    for coll in (g.input, g.value_info):
        for v in coll:
            if v.name in renames:
                v.name = renames[v.name]
