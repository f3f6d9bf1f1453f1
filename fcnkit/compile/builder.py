"""Compile a checked net into one torch.fx GraphModule.

Every non-input layer becomes a submodule named after the Caffe layer (``conv1``), so
parameters are named ``conv1.weight``; a name that is not a plain ASCII identifier is made
one (:func:`module_name`: text from an input file never reaches generated code otherwise).
The graph calls them in prototxt order, with one fx value per blob version. ``forward`` takes one tensor per net input (in the order of the
input layers' tops) and returns a dict of the net outputs keyed by Caffe blob name.

``model.eval()`` is Caffe's TEST phase and ``model.train()`` its TRAIN phase (Dropout,
BatchNorm ``use_global_stats``); the module starts in the mode of the net's phase.
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch
import torch.fx

from fcnkit.analysis import NetAnalysis, analyse
from fcnkit.compile.budget import check_net_memory
from fcnkit.compile.load_report import WeightsLoadReport, check_weights_report, weights_load_report
from fcnkit.compile.naming import _RESERVED_ARGS, module_name, safe_identifier
from fcnkit.compile.weights import WeightReport, initialise
from fcnkit.errors import NetDefinitionError
from fcnkit.graph import TRAIN, Net
from fcnkit.layers import Shape


@dataclass
class CompiledNet:
    """The result of :func:`compile_net`.

    Attributes:
        module: the torch.fx GraphModule; ``module(*inputs)`` -> {blob name: tensor}.
        net: the checked net it was compiled from.
        analysis: shapes, coordinate maps and costs for the compile-time input shapes.
        inputs: Caffe names of the module's inputs, in argument order.
        outputs: Caffe names of the module's outputs (the dict keys).
        weights: what was loaded from the caffemodel and what was initialised by fillers.
        blob_of_node: fx node name -> blob version id (for per-blob dumps).
        deploy: loss and metric layers (and inputs only they used) were dropped.
        layer_of_module: submodule name (:func:`module_name`) -> Caffe layer name; the
            table that maps the identifiers in the generated code back to the net (data,
            stored in ``fcnkit.json``; never written as source).
        load_report: which layers the weights file loaded, filled or left at zero (None
            when compiled without weights).
    """

    module: torch.fx.GraphModule
    net: Net
    analysis: NetAnalysis
    inputs: list[str]
    outputs: list[str]
    weights: WeightReport
    blob_of_node: dict[str, str] = field(default_factory=dict)
    deploy: bool = False
    layer_of_module: dict[str, str] = field(default_factory=dict)
    load_report: WeightsLoadReport | None = None

    @property
    def input_shapes(self) -> dict[str, Shape]:
        """Compile-time shapes of the inputs, keyed by Caffe blob name."""
        return {self.net.blob_name[b]: self.analysis.shapes[b] for b in self.net.inputs
                if self.net.blob_name[b] in self.inputs}

    def __call__(self, *args, **kwargs):
        """``module(*args)`` in train mode; in eval mode the same outputs through
        :meth:`inference_module` (fused layers, channels-last), built on the first call and
        rebuilt when a submodule of ``module`` or its graph is replaced."""
        if self.module.training:
            return self.module(*args, **kwargs)
        key = (id(self.module), id(self.module.graph), tuple(map(id, self.module._modules.values())))
        cached = self.__dict__.get("_inference")
        if cached is None or cached[0] != key:
            cached = (key, self.inference_module())
            self.__dict__["_inference"] = cached
        return cached[1](*args, **kwargs)

    def inference_module(self, *, fuse: bool | None = None, channels_last: bool | None = None,
                         prepack: bool | None = None):
        """A new eval-mode module computing the same outputs faster (BatchNorm + Scale +
        ReLU fused, in-place activations, channels-last, prepacked convolution weights; it
        shares this module's weights):
        :func:`fcnkit.compile.inference.inference_module`."""
        from fcnkit.compile.inference import inference_module

        return inference_module(self, fuse=fuse, channels_last=channels_last, prepack=prepack)

    def run_all(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run forward and return every blob version (blob id -> tensor), in-place
        intermediate versions included (id ``blob@layer``).

        Raises:
            LimitError: keeping every blob at once exceeds the memory limit.
        """
        from fcnkit.limits import check_bytes

        kept = set(self.blob_of_node.values())
        check_bytes(sum(math.prod(s) for b, s in self.analysis.shapes.items() if b in kept) * 4,
                    f"{self.net.path or self.net.name}: keeping every blob of the net at once")
        values: dict[str, torch.Tensor] = {}
        blob_of = self.blob_of_node

        class Recorder(torch.fx.Interpreter):
            def run_node(self, n):
                out = super().run_node(n)
                if n.name in blob_of:
                    values[blob_of[n.name]] = out
                return out

        with torch.no_grad():
            Recorder(self.module).run(*inputs)
        return values


def _kept_layers(net: Net, deploy: bool):
    """Layers to compile: all, or without loss/metric/postprocess layers (deploy)."""
    if not deploy:
        return list(net.layers)
    kept = [n for n in net.layers if n.role not in ("loss", "metric", "postprocess")]
    used = {b for n in kept if n.role != "input" for b in n.bottoms}
    # Keep an input layer's top only if something still uses it (drops 'label').
    return [n for n in kept if n.role != "input" or any(t in used for t in n.tops)]


def compile_net(net: Net, weights: Any = None, input_shapes: Mapping[str | None, Shape] | None = None,
                *, deploy: bool = False, seed: int = 0, analysis: NetAnalysis | None = None,
                fill_missing: bool = True, allow_missing_weights: bool = False) -> CompiledNet:
    """Compile ``net`` into a torch.fx GraphModule with weights.

    Args:
        net: a checked :class:`fcnkit.graph.Net`.
        weights: a :class:`fcnkit.caffe.CaffeModel`, a caffemodel path, a
            ``{layer: [np.ndarray, ...]}`` dict of Caffe blobs, or None (fillers only).
        input_shapes: overrides of the input shapes ({blob name or None: (N, C, H, W)}).
        deploy: drop loss/metric layers and the inputs only they use (labels).
        seed: seed of the random fillers.
        fill_missing: run the fillers of layers without weights (False: leave their tensors
            on the meta device, without storage, for a caller that assigns every tensor
            next, e.g. ``load_state_dict(..., assign=True)``). Fillers never run for layers
            with stored weights, nor does torch's default initialisation for any layer
            with parameters (they are built on the meta device, then assigned).
        allow_missing_weights: with ``weights``, accept a load where no layer loads or a
            layer without a weight filler (all zeros) is missing from the weights
            (:func:`fcnkit.compile.load_report.check_weights_report`).

    Returns:
        A :class:`CompiledNet`; its module maps one (N, C, H, W) float32 tensor per net
        input to {Caffe output blob name: tensor}.

    Raises:
        ShapeError, InputError: shapes cannot be inferred.
        WeightsError: a weights blob does not fit its layer; or, unless
            ``allow_missing_weights``, no layer loads from ``weights`` or a layer that would be
            all zeros is not in it (``error.report`` holds the :class:`WeightsLoadReport`).
        NetDefinitionError: the net has no layers, or a layer cannot be compiled.
        LimitError: its parameters or activations exceed the memory limit
            (:mod:`fcnkit.compile.budget`).
    """
    from fcnkit import caffe

    owned = isinstance(weights, (str, bytes)) or hasattr(weights, "__fspath__")
    if owned:  # read here: its arrays may become the tensors (no copy)
        weights = caffe.read_caffemodel(weights)
    blobs = weights.blobs if hasattr(weights, "blobs") else (weights or {})

    if not net.layers:
        where = f"{net.path}: " if net.path else ""
        raise NetDefinitionError(f"{where}the net has no layers in phase {net.state.phase_name} "
                                 "(an empty file, a solver prototxt, or every layer excluded "
                                 "by its include/exclude rules?); nothing to compile")
    analysis = analysis or analyse(net, input_shapes)
    shapes = analysis.shapes
    layers = _kept_layers(net, deploy)
    load_report = None
    if weights is not None:  # before any tensor is allocated: a wrong file fails fast
        load_report = weights_load_report(layers, blobs, shapes, getattr(weights, "path", None))
        check_weights_report(load_report, allow_missing_weights)
    check_net_memory(layers, shapes)  # before any tensor is allocated

    root = torch.nn.Module()
    graph = torch.fx.Graph()
    value, blob_of_node, inputs = _placeholders(graph, net, layers, deploy)

    modules, taken = _emit_layers(graph, root, layers, shapes, value, blob_of_node)
    out_names = _emit_outputs(graph, net, layers, value, deploy)

    report = initialise(net, layers, modules, shapes, blobs, seed, getattr(weights, "path", None),
                        fill_missing, share=owned)
    gm = torch.fx.GraphModule(root, graph, class_name=safe_identifier(net.name or "CaffeNet", "net_"))
    gm.train(net.state.phase == TRAIN)
    audit_code(gm.code, out_names)
    return CompiledNet(gm, net, analysis, inputs, out_names, report, blob_of_node, deploy, taken,
                       load_report)


def _emit_layers(graph: torch.fx.Graph, root: torch.nn.Module, layers, shapes, value: dict,
                 blob_of_node: dict) -> tuple[dict[str, torch.nn.Module], dict[str, str]]:
    """Add each kept layer's module to ``root`` and its call to ``graph``, in net order,
    recording {blob id: fx value} in ``value`` and {fx node name: blob id} in
    ``blob_of_node``; return ({layer name: module}, {submodule name: layer name}).

    Raises:
        NetDefinitionError: a layer cannot be built, or two layers share a module name.
    """
    modules: dict[str, torch.nn.Module] = {}
    taken: dict[str, str] = {}  # submodule name -> layer name
    for node in layers:
        if node.role == "input":
            continue
        args = tuple(value[b] for b in node.bottoms)
        if node.role == "sink":  # computes nothing (Silence)
            continue
        if node.role == "alias":  # its tops are its bottom (Split)
            for t in node.tops:
                value[t] = args[0]
            continue
        bshapes = [shapes[b] for b in node.bottoms]
        mod = _build_module(node.layer, bshapes)
        name = _claim_module_name(node, taken)
        root.add_module(name, mod)
        modules[node.name] = mod
        call = graph.call_module(name, args)
        if len(node.tops) == 1:
            value[node.tops[0]] = call
            blob_of_node[call.name] = node.tops[0]
        else:
            for i, t in enumerate(node.tops):
                item = graph.call_function(operator.getitem, (call, i))
                value[t] = item
                blob_of_node[item.name] = t
    return modules, taken


def _build_module(layer, bottom_shapes) -> torch.nn.Module:
    """``layer.build_module(bottom_shapes)``; a layer with parameters is built on the meta
    device (no storage; torch's default initialisation, e.g. Conv2d's
    ``kaiming_uniform_``, does nothing there), since :func:`initialise` or ``load`` assigns
    every one of its Caffe blobs afterwards. A module holding another tensor (one no weights
    file gives) is built for real instead."""
    names = set(layer.param_names())
    if not names:
        return layer.build_module(bottom_shapes)
    with torch.device("meta"):
        mod = layer.build_module(bottom_shapes)
    tensors = list(mod.named_parameters()) + list(mod.named_buffers())
    if all(name in names or not t.is_meta for name, t in tensors):
        return mod
    return layer.build_module(bottom_shapes)


def _emit_outputs(graph: torch.fx.Graph, net: Net, layers, value: dict, deploy: bool) -> list[str]:
    """Make the graph return {Caffe blob name: tensor} for every top no kept layer reads
    (net inputs too, unless ``deploy``); return those names, in net order."""
    consumed = {b for n in layers if n.role != "input" for b in n.bottoms}
    outputs = [t for n in layers for t in n.tops if t not in consumed and t in value
               and (n.role != "input" or not deploy)]
    out_names = [net.blob_name[t] for t in outputs]
    graph.output({net.blob_name[t]: value[t] for t in outputs})
    graph.lint()
    return out_names


def _claim_module_name(node, taken: dict[str, str]) -> str:
    """:func:`module_name` of ``node``'s layer, recorded in ``taken`` ({module name: layer
    name}, which becomes :attr:`CompiledNet.layer_of_module`).

    Raises:
        NetDefinitionError: another layer already has that module name.
    """
    name = module_name(node.name)
    if name in taken:
        raise NetDefinitionError(
            f"{node.where()}: its submodule name '{name}' is also that of layer "
            f"'{taken[name]}' (module names are ASCII identifiers: '.', '-', '/' and other "
            "characters become '_'); rename one of the two layers")
    taken[name] = node.name
    return name


def _placeholders(graph, net: Net, layers, deploy: bool):
    """One fx placeholder per net input (in deploy mode, only inputs a kept layer uses).
    Returns ({blob id: node}, {node name: blob id}, [input blob names])."""
    value: dict[str, torch.fx.Node] = {}
    blob_of_node: dict[str, str] = {}
    inputs: list[str] = []
    used = {b for n in layers if n.role != "input" for b in n.bottoms}
    taken: set[str] = set()  # argument names so far
    for node in layers:
        if node.role != "input":
            continue
        for t in node.tops:
            if deploy and t not in used:
                continue
            ph = graph.placeholder(_placeholder_name(net.blob_name[t], taken))
            taken.add(ph.target)
            value[t] = ph
            blob_of_node[ph.name] = t
            inputs.append(net.blob_name[t])
    return value, blob_of_node, inputs


def _placeholder_name(blob: str, taken: set[str]) -> str:
    """A forward() argument name for input blob ``blob``: fx writes it into the generated
    source, so only :func:`safe_identifier` text, distinct from the other arguments and
    from the names the generated code uses."""
    name = safe_identifier(blob, prefix="blob_")
    if name in _RESERVED_ARGS or name in taken:
        base, i = f"input_{name}", 1
        name = base
        while name in taken:
            i += 1
            name = f"{base}_{i}"
    return name


def audit_code(code: str, output_names: list[str]) -> None:
    """Check the generated ``forward`` source: the only string literals it may hold are the
    output dict's keys (Python string literals written by ``repr``), and it may not call
    ``getattr``/``eval``/``exec``/``__import__`` (torch.fx writes ``getattr(self, "NAME")``
    for a submodule name that is not an identifier). A second line of defence behind
    :func:`module_name`; a failure is a bug in fcnkit.

    Raises:
        RuntimeError: the code holds anything else (never :class:`FcnkitError`: it is not
            the input's fault).
    """
    allowed = set(output_names)
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value not in allowed:
            raise RuntimeError(f"generated code holds an unexpected string literal {node.value!r}")
        if isinstance(node, ast.Name) and node.id in ("getattr", "eval", "exec", "__import__", "compile"):
            raise RuntimeError(f"generated code calls {node.id}")


def to_numpy(outputs: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """{name: tensor} -> {name: float32 numpy array} (detached, on the CPU)."""
    return {k: v.detach().cpu().float().numpy() for k, v in outputs.items()}
