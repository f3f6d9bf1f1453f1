"""ONNX export of a compiled Caffe net, checked end to end.

:func:`export_onnx` runs torch's current exporter (``torch.onnx.export(..., dynamo=True)``,
which captures the module with ``torch.export`` and translates it with onnxscript), then:

1. asserts that the written file's ``ai.onnx`` opset is exactly the one requested (the
   exporter converts to opsets below its own with the ONNX version converter and, when that
   fails, silently keeps its own opset: fcnkit makes that an :class:`ExportError`);
2. runs ``onnx.checker.check_model(full_check=True)`` and strict ONNX shape inference;
3. runs the graph in ONNX Runtime (CPU) on a seeded random input and compares every output
   with the torch module (fp32 reference): max abs error and relative error
   (max abs / max |reference|) must be within the tolerance (fp32: 1e-4; fp16:
   :data:`FP16_TOLERANCE`); a reference that does not vary with the input (an untrained
   net: 0.5 everywhere) passes whatever the graph computes, so it is reported as a warning
   (:attr:`ExportResult.warnings`);
4. only then writes the file, atomically (a failed check leaves no file behind).

Graph conventions:

- inputs and outputs are named after the Caffe net's input and output blobs (``data`` ->
  ``prob``), in the compiled module's order;
- the batch axis is dynamic (``batch``) unless a fixed batch is asked for; H and W are static
  at the tile size unless ``dynamic_hw`` is asked for and the net allows it
  (:func:`dynamic_hw_blockers` names what prevents it: ceil-mode pooling with stride > 1,
  Crop windows, flattening layers);
- Caffe ``LRN`` (ACROSS_CHANNELS) becomes one ONNX ``LRN`` node (same window and
  ``alpha / size`` scaling as Caffe's ``lrn_layer.cpp``); Softmax keeps its axis (opset >= 13
  semantics); Crop becomes ``Slice``; Caffe's ceil-mode pooling is exported exactly (the
  parity run checks it);
- a BatchNorm followed by its in-place Scale becomes one ``BatchNormalization`` node with
  scale and bias (the exporter's optimiser folds it into a preceding Conv); besides being
  the better graph, it nearly halves the ops the exporter traces for FC-DenseNets;
- ``extra_outputs`` adds blobs as graph outputs (e.g. ``score`` before the Softmax, where
  saturated probabilities would hide a wrong graph), each parity-checked too;
- the model's ``metadata_props`` record the source prototxt, fcnkit and torch versions, input
  band names, tile size, class names, crop offsets, and which outputs are probabilities.

Sources: torch.onnx documentation (``dynamo=True`` exporter, ``dynamic_shapes``,
``custom_translation_table``); ONNX operator specs (LRN-13, Softmax-13, Slice);
Caffe ``src/caffe/layers/lrn_layer.cpp``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from fcnkit.deploy._common import ONNX_TO_NUMPY, canonical_dtype, error_stats, parse_batch, parse_tile
from fcnkit.errors import ExportError, InputError

#: Opset written when none is asked for.
DEFAULT_OPSET = 18
#: Lowest opset fcnkit exports: Softmax before opset 13 flattens the trailing axes instead
#: of normalising along one axis (CAFFE_FACTS.md), so Caffe's Softmax has no exact form.
MIN_OPSET = 13
#: Parity tolerance of an fp32 export (relative: max abs error / max |reference|).
FP32_TOLERANCE = 1e-4
#: Parity tolerance of an fp16 export against the fp32 torch module (relative). fp16 keeps
#: 11 significant bits (unit round-off 4.9e-4); every layer rounds its weights and its
#: output once, and the errors add up over depth (FCN-8s has ~20 weighted layers): 1e-2
#: leaves headroom over the 1e-3..5e-3 measured on the real nets and zoo models, and still
#: fails a wrong graph, whose error is of the order of the outputs themselves.
FP16_TOLERANCE = 1e-2
#: Largest ONNX file written as one protobuf (the protobuf limit is 2 GiB).
MAX_PROTO_BYTES = 2**31 - 1

# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------

@dataclass
class ParityRow:
    """Agreement of one ONNX output with the torch module.

    Attributes:
        output: the output (Caffe blob) name.
        shape: shape of the compared tensors (N, C, H, W for images).
        max_abs: max |onnxruntime - torch| (output units, e.g. probability).
        relative: ``max_abs / max |torch|``.
        tolerance: the relative tolerance it was held to.
        size: (H, W) of the input it was measured at, or None for non-image inputs.
        varies: whether the torch reference changes with the input (a reference that is
            constant over the random input, or the same for every sample of the batch,
            makes the comparison meaningless: an untrained net whose weights are all 0
            gives 0.5 everywhere through ONNX Runtime and torch alike).
        value_range: (min, max) of the torch reference.
    """

    output: str
    shape: tuple[int, ...]
    max_abs: float
    relative: float
    tolerance: float
    size: tuple[int, int] | None = None
    varies: bool = True
    value_range: tuple[float, float] = (math.nan, math.nan)

    @property
    def ok(self) -> bool:
        return self.relative <= self.tolerance


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote and measured.

    Attributes:
        path: the ONNX file.
        opset: the file's ``ai.onnx`` opset (equal to the one requested).
        dtype: ``fp32`` or ``fp16`` (the graph's input/output and weight precision).
        inputs, outputs: {name: shape}, dynamic axes as strings (``"batch"``).
        parity: one row per output (and per checked input size).
        dynamic_batch, dynamic_hw: which axes are dynamic in the file.
        notes: things the user should know (e.g. why H and W stayed static).
        warnings: things that make the result doubtful (a parity run that was not
            meaningful because the torch reference does not vary with the input).
        metadata: the ``metadata_props`` written into the file.
        node_types: ONNX op type -> count.
        size_bytes: file size in bytes.
        seconds: wall time of export + checks (s).
    """

    path: Path
    opset: int
    dtype: str
    inputs: dict[str, list]
    outputs: dict[str, list]
    parity: list[ParityRow]
    dynamic_batch: bool
    dynamic_hw: bool
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    node_types: dict[str, int] = field(default_factory=dict)
    size_bytes: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def max_abs(self) -> float:
        return max((r.max_abs for r in self.parity), default=0.0)

    @property
    def relative(self) -> float:
        return max((r.relative for r in self.parity), default=0.0)

    @property
    def tolerance(self) -> float:
        return min((r.tolerance for r in self.parity), default=math.nan)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.parity)

    @property
    def meaningful(self) -> bool:
        """Whether parity was measured and every torch reference varied with the input."""
        return bool(self.parity) and all(r.varies for r in self.parity)

    def summary(self) -> str:
        """One line: opset, precision, I/O shapes and the parity measured against torch."""
        def io(d):
            return ", ".join(f"{k}({','.join(map(str, v))})" for k, v in d.items())

        text = f"opset {self.opset}, {self.dtype}, {io(self.inputs)} -> {io(self.outputs)}"
        if self.parity:
            text += (f"; ONNX Runtime vs torch: max abs {self.max_abs:.3g}, relative "
                     f"{self.relative:.3g} (tolerance {self.tolerance:g})")
            if not self.meaningful:
                text += " NOT MEANINGFUL: the torch output does not vary with the input"
        else:
            text += "; parity not checked"
        return text

    def lines(self) -> list[str]:
        """Per-output parity lines, then the notes."""
        out = []
        for r in self.parity:
            at = f" at {r.size[0]}x{r.size[1]}" if r.size else ""
            const = "" if r.varies else ", constant reference"
            out.append(f"{r.output} ({','.join(map(str, r.shape))}){at}: max abs {r.max_abs:.3g}, relative {r.relative:.3g} "
                       f"({'ok' if r.ok else 'FAIL'}, tolerance {r.tolerance:g}{const})")
        return out + [f"note: {n}" for n in self.notes] + [f"warning: {w}" for w in self.warnings]


@dataclass
class OnnxInfo:
    """What a deployed ONNX file declares (read without running it).

    Attributes:
        opset: ``ai.onnx`` opset.
        inputs, outputs: [(name, shape, numpy dtype name)], dynamic dims as strings or None.
        metadata: ``metadata_props`` (raw strings).
        softmax_outputs: outputs produced directly by a Softmax node.
    """

    path: Path | None
    opset: int
    inputs: list[tuple[str, list, str]]
    outputs: list[tuple[str, list, str]]
    metadata: dict[str, str]
    softmax_outputs: set[str]

    def meta_json(self, key: str, default: Any = None) -> Any:
        """A ``fcnkit.*`` metadata value decoded from JSON (``default`` when absent)."""
        v = self.metadata.get(key)
        if v is None:
            return default
        try:
            return json.loads(v)
        except ValueError:
            return v

    @property
    def dtype(self) -> str:
        """``fp32``/``fp16``/``bf16`` of the first input."""
        name = self.inputs[0][2] if self.inputs else "float32"
        return {"float16": "fp16", "bfloat16": "bf16"}.get(name, "fp32")


def _dims(value_info) -> list:
    t = value_info.type.tensor_type
    dims = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or None)
    return dims


def _opset_of(model) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 0


def inspect_onnx(path_or_model) -> OnnxInfo:
    """Read an ONNX file's opset, graph inputs/outputs (initializers excluded), metadata and
    which outputs come straight from a Softmax node.

    Raises:
        InputError: the file cannot be read as ONNX.
    """
    import onnx

    path = None
    model = path_or_model
    if not isinstance(path_or_model, onnx.ModelProto):
        path = Path(path_or_model)
        if not path.is_file():
            raise InputError(f"{path}: no such ONNX file")
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as e:  # noqa: BLE001 - protobuf decode errors have many types
            raise InputError(f"{path}: not a readable ONNX file ({e})") from None
    g = model.graph
    inits = {i.name for i in g.initializer}

    def io(vs):
        return [(v.name, _dims(v), ONNX_TO_NUMPY.get(v.type.tensor_type.elem_type, "float32"))
                for v in vs if v.name not in inits]

    producer = {o: n for n in g.node for o in n.output}
    soft = set()
    for o in g.output:
        n = producer.get(o.name)
        # An exporter may end a Softmax with a Cast (fp16) or Identity.
        while n is not None and n.op_type in ("Identity", "Cast"):
            n = producer.get(n.input[0])
        if n is not None and n.op_type == "Softmax":
            soft.add(o.name)
    meta = {p.key: p.value for p in model.metadata_props}
    return OnnxInfo(path, _opset_of(model), io(g.input), io(g.output), meta, soft)


# --------------------------------------------------------------------------------------
# What prevents dynamic H and W
# --------------------------------------------------------------------------------------

def dynamic_hw_blockers(compiled) -> list[str]:
    """Reasons why the compiled net cannot be exported with dynamic H and W (empty: it can).

    - Pooling that rounds up (Caffe's default CEIL) with a stride > 1: the output size and
      Caffe's clip rule are resolved for the compile-time input size (and a non-native
      window layout is padded and sliced to that size).
    - Pooling compiled to fcnkit's explicit-padding path (AVE divisor maps, STOCHASTIC).
    - Crop: its window (offset and size) is fixed at compile time.
    - InnerProduct, Flatten, Reshape: they fix C x H x W of their bottom.
    """
    import torch

    net = compiled.net
    mods = dict(compiled.module.named_children())
    out = []
    from fcnkit.compile import module_name

    for node in net.layers:
        mod = mods.get(module_name(node.name))
        if mod is None:
            continue
        where = f"{node.type} layer '{node.name}'" + (f" (line {node.line})" if node.line else "")
        if node.type == "Pooling":
            impl = node.impl
            if getattr(impl, "global_pooling", False):
                continue
            stride = tuple(getattr(impl, "stride", (1, 1)))
            if getattr(impl, "ceil", False) and max(stride) > 1:
                out.append(f"{where} rounds its output size up (Caffe CEIL rounding, stride "
                           f"{stride[0]}x{stride[1]}): the ceil-and-clip size was resolved for the "
                           "compile-time input size")
            elif not isinstance(mod, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
                out.append(f"{where} is computed with explicit padding and a divisor map sized "
                           "for the compile-time input")
        elif node.type == "Crop":
            out.append(f"{where} cuts a window whose offset and size were fixed at compile time")
        elif node.type in ("InnerProduct", "Flatten", "Reshape"):
            out.append(f"{where} fixes the C x H x W size of its input")
    return out


# --------------------------------------------------------------------------------------
# Export helpers
# --------------------------------------------------------------------------------------

def _pool_export(layer, mod, bottom_shape):
    """An explicit-pads replacement for a compiled ceil-mode pooling module (MaxPool2d /
    AvgPool2d with ``ceil_mode``), or None when the module needs none."""
    import torch

    from fcnkit.deploy._export_ops import CaffePoolExport

    if not isinstance(mod, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)) or not mod.ceil_mode:
        return None
    impl = layer.impl
    kernel, out = impl.geometry(bottom_shape)
    hw, stride, pad = bottom_shape[2:], tuple(impl.stride), tuple(impl.pad)
    extra = [max(0, (o - 1) * s + k - (i + 2 * p)) for i, k, s, p, o in zip(hw, kernel, stride, pad, out)]
    pads = [pad[0], pad[1], pad[0] + extra[0], pad[1] + extra[1]]
    is_max = isinstance(mod, torch.nn.MaxPool2d)
    correction = None
    if not is_max and any(extra):
        axes = []
        for i, k, s, p, o in zip(hw, kernel, stride, pad, out):
            start = np.arange(o) * s - p
            axes.append((np.minimum(start + k, i + p) - start).astype(np.float64))
        corr = (kernel[0] * kernel[1]) / np.outer(axes[0], axes[1])
        if not np.allclose(corr, 1.0):
            correction = torch.from_numpy(corr.astype(np.float32))[None, None]
    return CaffePoolExport(is_max, kernel, stride, pads, correction)


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
        if prod is None or prod.type != "Split":
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


def _bn_scale_pairs(compiled, graph) -> list[tuple[Any, Any]]:
    """(BatchNorm fx node, Scale fx node) pairs of ``graph`` that compute one per-channel
    affine map: a Caffe BatchNorm with stored statistics on an N, C, ... blob whose only
    user is a one-bottom Scale with a learned per-channel (axis 1, num_axes 1) scale."""
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
        ls, lb = layer.get(node.target), layer.get(prev.target)
        if ls is None or lb is None or ls.type != "Scale" or lb.type != "BatchNorm":
            continue
        bn, sc = gm.get_submodule(prev.target), gm.get_submodule(node.target)
        if not all(hasattr(bn, a) for a in ("running_mean", "running_var", "eps", "channels", "view")):
            continue  # a BatchNorm module fcnkit does not know (a plugin's)
        if bn.use_global_stats is False or getattr(bn, "one_axis", True) or getattr(sc, "weight", None) is None:
            continue  # batch statistics, a 1-D blob, or a second-bottom scale: not an affine map
        view = tuple(getattr(bn, "view", ()))
        if tuple(getattr(sc, "view", ())) != view or sc.weight.numel() != bn.channels or \
                (sc.bias is not None and sc.bias.numel() != bn.channels):
            continue
        pairs.append((prev, node))
    return pairs


def _export_module(compiled, half: bool, extra_outputs: Sequence[str] = (), fuse: bool = True):
    """A module for export: the compiled net's graph, with

    - LRN and ceil-mode pooling layers swapped for their exact ONNX forms
      (:mod:`fcnkit.deploy._export_ops`);
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

    from fcnkit.compile import module_name
    from fcnkit.deploy import _export_ops as ops

    gm = compiled.module
    swaps = {}
    for node in compiled.net.layers:
        name = module_name(node.name)
        mod = getattr(gm, name, None)
        if mod is None:
            continue
        if node.type == "LRN" and int(node.param.lrn_param.norm_region) == 0:
            p = node.param.lrn_param
            swaps[name] = ops.LRNExport(p.local_size, p.alpha, p.beta, p.k)
        elif node.type == "Pooling":
            rep = _pool_export(node, mod, compiled.analysis.shapes[node.bottoms[0]])
            if rep is not None:
                swaps[name] = rep

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
        for bn_node, sc_node in _bn_scale_pairs(compiled, graph):
            fused = ops.BatchNormScaleExport(gm.get_submodule(bn_node.target), gm.get_submodule(sc_node.target))
            sc_node.args = bn_node.args
            graph.erase_node(bn_node)
            owners[sc_node.target] = fused
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
    table = dict(ops.TRANSLATIONS) if swaps else {}
    return module.eval(), table, names


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record):
        try:
            msg = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                msg += f"\n{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
            self.records.append(msg)
        except Exception:  # noqa: BLE001 - logging must never raise
            pass


@contextlib.contextmanager
def _quiet() -> Iterator[_Capture]:
    """Silence the exporter's progress output and warnings; keep its log for error messages."""
    cap = _Capture()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export",
                                               "onnxscript", "onnx_ir", "torch.fx.experimental")]
    saved = [(lg, lg.level, lg.propagate, list(lg.handlers)) for lg in loggers]
    for lg in loggers:
        lg.handlers = [cap]
        lg.propagate = False
        lg.setLevel(logging.DEBUG if lg.name.startswith(("onnxscript", "torch.onnx")) else logging.ERROR)
    out, err = io.StringIO(), io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            warnings.simplefilter("ignore")
            yield cap
    finally:
        for lg, level, prop, handlers in saved:
            lg.setLevel(level)
            lg.propagate = prop
            lg.handlers = handlers
        cap.records.extend(line for line in (out.getvalue() + err.getvalue()).splitlines() if line.strip())


def _conversion_reason(records: Sequence[str]) -> str:
    """The version converter's own words from the exporter's log (e.g. "No Adapter From
    Version $14 for Relu")."""
    lines = [ln.strip() for r in records for ln in r.splitlines() if ln.strip()]
    for keys in (("No Adapter", "adapter_lookup"), ("Failed to convert",), ("not supported by the onnxscript",)):
        hits = [ln for ln in lines if any(k in ln for k in keys)]
        if hits:
            return "; ".join(dict.fromkeys(hits))[:600]
    return ""


def _short(e: BaseException, limit: int = 1500) -> str:
    """A readable one-paragraph form of an exporter exception (ANSI colours and the
    exporter's generic advice removed; the exception summary kept)."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", f"{type(e).__name__}: {e}")
    if "## Exception summary" in text:
        text = text.split("## Exception summary", 1)[1]
        for stop in ("\nFor more information", "\nThe error above occurred", "\n(Refer to"):
            text = text.split(stop, 1)[0]
        text = " ".join(text.split())
    cause = e.__cause__ or e.__context__
    if cause is not None and str(cause)[:200] not in text:
        text += f" (caused by {type(cause).__name__}: {str(cause)[:400]})"
    return text if len(text) <= limit else text[:limit] + " ..."


def _rename_values(model, old_to_new: Mapping[str, str]) -> None:
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


def _metadata(compiled, *, source: str | None, bands, classes, tile, dtype, opset, dynamic_batch,
              dynamic_hw, extra: Mapping[str, Any] | None, outputs: Sequence[str] | None = None) -> dict[str, str]:
    import torch

    from fcnkit import __version__

    net = compiled.net
    try:
        from fcnkit.analysis import crop_table

        crops = {r.layer: {"axis": r.axis, "offset": r.computed if r.computed is not None else r.declared}
                 for r in crop_table(net)}
    except Exception:  # noqa: BLE001 - metadata must not make an export fail
        crops = {}
    outputs = list(outputs if outputs is not None else compiled.outputs)
    kinds = {}
    for name in outputs:
        bid = net.final.get(name, name) if hasattr(net, "final") else name
        prod = net.producer.get(bid) if hasattr(net, "producer") else None
        kinds[name] = "probabilities" if prod is not None and prod.type == "Softmax" else "scores"
    shapes = compiled.input_shapes
    first = next((s for s in shapes.values() if len(s) == 4), None)
    if bands is None and first is not None:
        bands_out = [f"band{i + 1}" for i in range(first[1])]
        bands_named = False
    else:
        bands_out, bands_named = list(bands or []), bands is not None
    meta = {
        "fcnkit.version": __version__,
        "fcnkit.torch_version": torch.__version__.split("+")[0],
        "fcnkit.source": source or (Path(net.path).name if getattr(net, "path", None) else (net.name or "")),
        "fcnkit.net_name": net.name or "",
        "fcnkit.inputs": json.dumps(list(compiled.inputs)),
        "fcnkit.outputs": json.dumps(outputs),
        "fcnkit.output_kinds": json.dumps(kinds),
        "fcnkit.bands": json.dumps(bands_out),
        "fcnkit.bands_named": json.dumps(bands_named),
        "fcnkit.tile": f"{first[2]},{first[3]}" if first is not None else "",
        "fcnkit.classes": json.dumps(list(classes) if classes is not None else []),
        "fcnkit.crop_offsets": json.dumps(crops),
        "fcnkit.dtype": dtype,
        "fcnkit.opset": str(opset),
        "fcnkit.dynamic_batch": json.dumps(dynamic_batch),
        "fcnkit.dynamic_hw": json.dumps(dynamic_hw),
    }
    from fcnkit.deploy.tiling_info import metadata as tiling_metadata

    meta.update(tiling_metadata(compiled, outputs[0] if outputs else None))
    for k, v in (extra or {}).items():
        meta[k if "." in k else f"fcnkit.{k}"] = v if isinstance(v, str) else json.dumps(v)
    return meta


def _ort_session(model_bytes: bytes):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    # Basic (semantics-preserving) graph optimisations only: the extended/layout passes cost
    # seconds on large models (4.8 s vs 1.2 s for FCN-8s) and are not what is being checked.
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def _random_inputs(shapes: Mapping[str, Sequence[int]], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(tuple(s)).astype(np.float32) for k, s in shapes.items()}


#: A torch reference whose values spread by less than this fraction of their magnitude
#: over the random parity input (or between its samples) is taken as not varying with it.
CONSTANT_REFERENCE = 1e-6


def reference_outputs(compiled, inputs: Mapping[str, np.ndarray], names: Sequence[str]) -> dict:
    """The torch module's fp32 values of the blobs ``names`` on ``inputs`` ({input name:
    float32 (N, C, H, W)}): the module's outputs, and for other blobs (extra ONNX outputs)
    their value inside the forward pass (:meth:`fcnkit.compile.CompiledNet.run_all`).

    Returns:
        {name: torch tensor}.
    """
    import torch

    args = [torch.from_numpy(inputs[n]) for n in compiled.inputs]
    with torch.no_grad():
        if all(n in compiled.outputs for n in names):
            out = compiled.module(*args)
            return {n: out[n] for n in names}
        values = compiled.run_all(*args)
    return {n: values[resolve_blob(compiled, n)] for n in names}


def _varies(r: np.ndarray) -> bool:
    """Whether a reference changes with the input: not constant over all its elements and,
    with several samples, not the same for every sample."""
    scale = float(np.max(np.abs(r))) if r.size else 0.0
    tol = CONSTANT_REFERENCE * scale
    if r.size == 0 or scale == 0.0 or float(np.ptp(r)) <= tol:
        return False
    if r.ndim >= 1 and r.shape[0] > 1 and float(np.max(np.abs(r - r[:1]))) <= tol:
        return False
    return True


def run_parity(model_bytes: bytes, compiled, inputs: Mapping[str, np.ndarray], *, half: bool,
               tolerance: float) -> list[ParityRow]:
    """Run the ONNX graph in ONNX Runtime (CPU) and the torch module (fp32) on ``inputs``
    ({name: float32 (N, C, H, W)}); one :class:`ParityRow` per ONNX output (a graph output
    that is no output of the module, from ``extra_outputs``, is compared with the blob's
    value inside the forward pass). Each row also says whether the reference varies with
    the input (:attr:`ParityRow.varies`).

    Raises:
        ExportError: ONNX Runtime cannot load or run the graph, an output's shape differs,
            or the torch reference is not finite.
    """
    import torch

    try:
        sess = _ort_session(model_bytes)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ExportError(f"ONNX Runtime cannot load the exported graph: {_short(e)}") from None
    feeds = {k: (v.astype(np.float16) if half else v) for k, v in inputs.items()}
    try:
        got = sess.run(None, feeds)
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"ONNX Runtime cannot run the exported graph: {_short(e)}") from None
    names = [o.name for o in sess.get_outputs()]
    del sess  # the session holds a copy of every weight
    ref = reference_outputs(compiled, inputs, names)
    size = next(((v.shape[2], v.shape[3]) for v in inputs.values() if v.ndim == 4), None)
    for name in names:
        r = ref[name]
        if r.is_floating_point() and not bool(torch.isfinite(r).all()):
            bad = int((~torch.isfinite(r)).sum())
            raise ExportError(
                f"the torch module itself gives {bad} non-finite values (NaN/inf) in output '{name}' "
                f"on a standard-normal input, so parity cannot be measured. An untrained net does "
                "this: Caffe's initial BatchNorm statistics are 0, and each BatchNorm then divides "
                "by sqrt(eps). Load trained weights (or fcnkit.deploy.model.fill_untrained for a "
                "benchmark), or export with --no-check")
    rows = []
    for name, value in zip(names, got):
        r = ref[name].detach().float().numpy()
        if tuple(value.shape) != tuple(r.shape):
            raise ExportError(f"output '{name}': ONNX Runtime gives shape {tuple(value.shape)}, "
                              f"torch {tuple(r.shape)}")
        max_abs, rel = error_stats(np.asarray(value, dtype=np.float32), r)
        span = (float(r.min()), float(r.max())) if r.size else (math.nan, math.nan)
        rows.append(ParityRow(name, tuple(r.shape), max_abs, rel, tolerance, size, _varies(r), span))
    return rows


def constant_reference_warning(rows: Sequence[ParityRow]) -> str | None:
    """The warning for parity rows whose torch reference does not vary with the input (None
    when every one varies): such a comparison passes whatever the graph computes."""
    flat = [r for r in rows if not r.varies]
    if not flat:
        return None
    outs = ", ".join(dict.fromkeys(
        f"'{r.output}' ({r.value_range[0]:.4g} everywhere)" if r.value_range[0] == r.value_range[1]
        else f"'{r.output}' ({r.value_range[0]:.4g}..{r.value_range[1]:.4g}, the same for every sample)"
        for r in flat))
    return (f"parity was NOT meaningful: the torch output {outs} does not change with the random input, "
            "so ONNX Runtime would agree with it whatever the graph computes. The net is untrained "
            "(Caffe fills a layer without a weight_filler with 0) or saturated. Export with trained "
            "weights (--weights X.caffemodel) to check the graph, or, for a speed benchmark only, "
            "with --fill-untrained (fcnkit.deploy.model.fill_untrained: seeded He-normal weights)")


# --------------------------------------------------------------------------------------
# export_onnx
# --------------------------------------------------------------------------------------

def _check_opset(opset: int) -> int:
    import onnx

    try:
        opset = int(opset)
    except (TypeError, ValueError):
        raise InputError(f"--opset must be an integer, got '{opset}'") from None
    top = onnx.defs.onnx_opset_version()
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is not supported: Caffe's Softmax along one axis needs "
                          f"opset >= {MIN_OPSET} (older Softmax flattens the trailing axes)")
    if opset > top:
        raise ExportError(f"opset {opset} is newer than the installed onnx package knows "
                          f"(onnx {onnx.__version__} goes up to opset {top})")
    return opset


def export_onnx(compiled, path: str | Path, *, opset: int = DEFAULT_OPSET, dtype: str = "fp32",
                batch: int | str | None = "dynamic", dynamic_hw: bool = False,
                tile: tuple[int, int] | str | None = None, check: bool = True,
                tolerance: float | None = None, seed: int = 0, parity_batch: int = 2,
                source: str | None = None, bands: Sequence[str] | None = None,
                classes: Sequence[str] | None = None,
                metadata: Mapping[str, Any] | None = None,
                extra_outputs: Sequence[str] = (), fuse: bool = True) -> ExportResult:
    """Export a compiled net to an ONNX file, check it, and compare it with torch.

    Args:
        compiled: a :class:`fcnkit.compile.CompiledNet` (or a
            :class:`fcnkit.deploy.model.ModelSource`, whose band/class names are used).
        path: the ``.onnx`` file to write (atomically; nothing is written when a check fails).
        opset: the ``ai.onnx`` opset of the file (>= 13; 17, 18 and 20 are tested). The
            file's opset is asserted to equal it.
        dtype: ``fp32`` or ``fp16`` (weights, activations, inputs and outputs in that type).
        batch: ``"dynamic"``/None (a dynamic batch axis named ``batch``) or a fixed batch N.
        dynamic_hw: make H and W dynamic when the net allows it; when it does not, they stay
            static and :attr:`ExportResult.notes` says why (:func:`dynamic_hw_blockers`).
        tile: (H, W) in pixels to export at (recompiles the net); default: the compiled size.
        check: run the checker, shape inference and the ONNX Runtime parity run.
        tolerance: relative parity tolerance; default 1e-4 (fp32) / :data:`FP16_TOLERANCE`.
        seed: seed of the random parity input (standard normal).
        parity_batch: batch size of the parity input when the batch axis is dynamic.
        source, bands, classes, metadata: recorded in the file's ``metadata_props``.
        extra_outputs: Caffe blob names to expose as additional graph outputs, after the
            net's own (e.g. ``score``, the scores before the Softmax, to compare the graph
            where probabilities saturate); each is parity-checked too.
        fuse: fuse each BatchNorm followed by its in-place Scale into one
            BatchNormalization node (same values; the parity run compares with the unfused
            torch module).

    Returns:
        :class:`ExportResult` (``.summary()`` for one line). When a torch reference does
        not vary with the random input, :attr:`ExportResult.warnings` says that parity was
        not meaningful (and :attr:`ExportResult.meaningful` is False).

    Raises:
        ExportError: the exporter fails, the file's opset differs from the request, the
            checker or shape inference rejects the graph, ONNX Runtime cannot run it, or an
            output differs from torch beyond the tolerance.
        InputError: bad option values, or an extra output the net does not compute.
        ShapeError: the net cannot take the requested tile.
        OutputError: the file cannot be written.
    """
    import onnx
    import torch

    from fcnkit.deploy._common import write_public
    from fcnkit.deploy.model import ModelSource, deploy_shapes, reshape

    t0 = time.perf_counter()
    if isinstance(compiled, ModelSource):
        src = compiled
        compiled = src.compiled
        source = source or src.source
        bands = bands if bands is not None else src.bands
        classes = classes if classes is not None else src.classes
    path = Path(path)
    opset = _check_opset(opset)
    dtype = canonical_dtype(dtype, allowed=("fp32", "fp16"))
    half = dtype == "fp16"
    fixed_batch = parse_batch(batch)
    tile = parse_tile(tile)
    if tolerance is None:
        tolerance = FP16_TOLERANCE if half else FP32_TOLERANCE
    if not tolerance > 0:
        raise InputError(f"the parity tolerance must be positive, got {tolerance}")
    if parity_batch < 1:
        raise InputError(f"parity_batch must be >= 1, got {parity_batch}")
    if compiled.module.training:
        raise ExportError("the compiled net is in TRAIN mode (Dropout/BatchNorm behave as in "
                          "training); compile it for TEST (the default phase) before exporting")
    if not compiled.inputs:
        raise ExportError("the net has no inputs to export")
    if not compiled.outputs:
        raise ExportError("the net has no outputs to export")

    compiled = reshape(compiled, deploy_shapes(compiled.input_shapes, tile, fixed_batch))
    shapes = {k: tuple(v) for k, v in compiled.input_shapes.items()}
    notes: list[str] = []
    warnings_: list[str] = []
    want_hw = bool(dynamic_hw)
    if want_hw:
        if not any(len(s) == 4 for s in shapes.values()):
            raise InputError("--dynamic-hw needs an N,C,H,W image input")
        blockers = dynamic_hw_blockers(compiled)
        if blockers:
            want_hw = False
            first = next(s for s in shapes.values() if len(s) == 4)
            notes.append(f"H and W stay static at {first[2]}x{first[3]}: " + "; ".join(blockers))
    dynamic_batch = fixed_batch is None

    module, table, out_names_wanted = _export_module(compiled, half, extra_outputs, fuse)
    example = _random_inputs(shapes, seed)
    args = tuple(torch.from_numpy(example[n]).to(torch.float16 if half else torch.float32)
                 for n in compiled.inputs)
    dyn = None
    if dynamic_batch or want_hw:
        bdim = torch.export.Dim("batch") if dynamic_batch else None
        hdim = torch.export.Dim("height") if want_hw else None
        wdim = torch.export.Dim("width") if want_hw else None
        dyn = []
        for n in compiled.inputs:
            spec = {}
            if len(shapes[n]) >= 1 and bdim is not None:
                spec[0] = bdim
            if len(shapes[n]) == 4 and want_hw:
                spec[2], spec[3] = hdim, wdim
            dyn.append(spec or None)
        dyn = tuple(dyn)  # one entry per positional input of the GraphModule

    with _quiet() as log:
        try:
            program = torch.onnx.export(
                module, args, dynamo=True, opset_version=opset, input_names=list(compiled.inputs),
                output_names=out_names_wanted, dynamic_shapes=dyn, external_data=False,
                custom_translation_table=table or None, optimize=True, verbose=False)
            model = program.model_proto
            del program  # its IR model holds a second copy of the weights
        except Exception as e:  # noqa: BLE001 - the exporter raises many exception types
            hint = ""
            if want_hw:
                hint = (" (H and W were asked to be dynamic; the graph may fix them: try without "
                        "--dynamic-hw)")
            raise ExportError(f"torch.onnx.export failed{hint}: {_short(e)}") from None

    got = _opset_of(model)
    if got != opset:
        reason = _conversion_reason(log.records)
        raise ExportError(f"asked for opset {opset} but the exporter produced opset {got}: the ONNX "
                          f"version converter could not convert the graph"
                          + (f" ({reason})" if reason else "")
                          + f"; use an opset >= {max(18, MIN_OPSET)} or one it can convert to")

    in_names = [v.name for v in model.graph.input if v.name not in {i.name for i in model.graph.initializer}]
    out_names = [v.name for v in model.graph.output]
    if len(in_names) != len(compiled.inputs) or len(out_names) != len(out_names_wanted):
        raise ExportError(f"the exported graph has inputs {in_names} and outputs {out_names}; "
                          f"expected {compiled.inputs} -> {out_names_wanted}")
    renames = {o: n for o, n in zip(in_names + out_names, list(compiled.inputs) + out_names_wanted)
               if o != n}
    _rename_values(model, renames)

    meta = _metadata(compiled, source=source, bands=bands, classes=classes, tile=tile, dtype=dtype,
                     opset=opset, dynamic_batch=dynamic_batch, dynamic_hw=want_hw, extra=metadata,
                     outputs=out_names_wanted)
    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    from fcnkit import __version__

    model.producer_name = "fcnkit"
    model.producer_version = __version__
    model.doc_string = f"{meta['fcnkit.source']}: exported by fcnkit {__version__} (torch.onnx dynamo exporter)"

    try:
        data = model.SerializeToString()
    except ValueError as e:  # protobuf refuses messages over 2 GiB
        raise ExportError(f"the model is too large for one ONNX protobuf (2 GiB): {e}") from None
    if len(data) > MAX_PROTO_BYTES:
        raise ExportError(f"the model is {len(data) / 2**30:.2f} GiB, more than one ONNX protobuf "
                          "can hold (2 GiB)")
    # Read what the result reports off the proto now and drop it: the bytes are all that
    # is needed from here on, and the proto is one more copy of every weight while the
    # checker and ONNX Runtime make theirs.
    info = inspect_onnx(model)
    node_types = dict(Counter(n.op_type for n in model.graph.node))
    out_types = {v.name: v.type.tensor_type.elem_type for v in model.graph.output}
    del model

    parity: list[ParityRow] = []
    if check:
        try:
            # full_check also runs strict shape inference over the whole graph.
            onnx.checker.check_model(data, full_check=True)
        except Exception as e:  # noqa: BLE001 - onnx.checker.ValidationError, InferenceError
            raise ExportError(f"onnx.checker (full check, with shape inference) rejects the exported "
                              f"graph: {_short(e)}") from None
        for name, elem in out_types.items():
            if elem != (10 if half else 1):
                raise ExportError(f"output '{name}' has ONNX element type {elem}, expected {dtype}")
        pb = parity_batch if dynamic_batch else fixed_batch
        run_shapes = {k: ((pb,) + tuple(s[1:]) if len(s) >= 1 else s) for k, s in shapes.items()}
        parity += run_parity(data, compiled, _random_inputs(run_shapes, seed + 1), half=half,
                             tolerance=tolerance)
        if want_hw:
            other = {k: (s[0], s[1], s[2] + 32, s[3] + 32) if len(s) == 4 else s
                     for k, s in run_shapes.items()}
            bigger = reshape(compiled, other)
            try:
                parity += run_parity(data, bigger, _random_inputs(other, seed + 2), half=half,
                                     tolerance=tolerance)
            except ExportError as e:
                raise ExportError(f"the graph does not allow dynamic H and W: {e}; export without "
                                  "--dynamic-hw") from None
        flat = constant_reference_warning(parity)
        if flat:
            warnings_.append(flat)
        bad = [r for r in parity if not r.ok]
        if bad:
            worst = max(bad, key=lambda r: r.relative)
            raise ExportError(f"parity check failed: output '{worst.output}' differs from torch by "
                              f"max abs {worst.max_abs:.3g}, relative {worst.relative:.3g} > tolerance "
                              f"{worst.tolerance:g} (ONNX Runtime CPU, {dtype}); no file was written")
    else:
        notes.append("checks skipped (check=False): the file was not validated or compared with torch")

    write_public(path, data)
    return ExportResult(
        path=path, opset=got, dtype=dtype,
        inputs={n: s for n, s, _ in info.inputs}, outputs={n: s for n, s, _ in info.outputs},
        parity=parity, dynamic_batch=dynamic_batch, dynamic_hw=want_hw, notes=notes, metadata=meta,
        node_types=node_types, size_bytes=len(data), seconds=time.perf_counter() - t0,
        warnings=warnings_)


def export_model(model: str | Path, path: str | Path, *, weights: str | Path | None = None,
                 tile: tuple[int, int] | str | None = None, batch: int | str | None = "dynamic",
                 input_shapes: Mapping[str | None, Sequence[int]] | None = None,
                 fill_untrained: bool = False, **kwargs) -> ExportResult:
    """:func:`export_onnx` for a MODEL argument: a prototxt or zoo model name (with
    ``weights``, a caffemodel), or a compiled model directory (see
    :func:`fcnkit.deploy.model.load_model`); ``input_shapes`` overrides the declared input
    shapes (``--input-shape``).

    ``fill_untrained`` gives every all-zero weight tensor seeded He-normal values first
    (:func:`fcnkit.deploy.model.fill_untrained`), so that an untrained net computes
    something input-dependent and the parity run means something; the exported weights are
    then random, for benchmarks only (a note says so)."""
    from fcnkit.deploy.model import fill_untrained as fill
    from fcnkit.deploy.model import load_model

    tile = parse_tile(tile)
    fixed = parse_batch(batch)
    src = load_model(model, weights=weights, tile=tile, batch=fixed, input_shapes=input_shapes)
    changed = fill(src.compiled) if fill_untrained else None
    from fcnkit.deploy.tiling_info import PREPROCESS_META, preprocess_for

    pre = preprocess_for(model, weights)  # the stretch the model was trained with travels along
    if pre is not None:
        kwargs["metadata"] = {**(kwargs.get("metadata") or {}), PREPROCESS_META: json.dumps(pre)}
    result = export_onnx(src, path, batch=batch, **kwargs)
    if changed is not None:
        result.notes.append(f"--fill-untrained: {len(changed)} untrained tensor(s) got seeded random values "
                            "(He-normal weights, BatchNorm variance 1); the file's weights are NOT trained: "
                            "use it for speed benchmarks only")
    return result
