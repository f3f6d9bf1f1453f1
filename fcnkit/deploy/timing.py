"""Per-layer forward times of a compiled net, like ``caffe time`` (tools/caffe.cpp).

``caffe time`` runs a few forward passes and prints the mean time of each layer and of the
whole pass. fcnkit does the same for two backends:

- ``torch``: the fx GraphModule is run node by node by a ``torch.fx.Interpreter`` that
  times each node; a node's time goes to the Caffe layer whose blob it computes (nodes that
  compute no blob, e.g. a tuple ``getitem``, are added to the next layer's time). The total
  is timed separately on the plain module (no per-node overhead).
- ``onnxruntime``: the net is exported to ONNX and run with ONNX Runtime's profiler; the
  ``kernel_time`` events of each node are summed per node name and mapped to the Caffe
  layer whose submodule name the node name starts with (``/conv1/Conv`` -> ``conv1``).

Warm-up passes are run first and not counted. Times are wall-clock milliseconds, the
median over the timed passes (the mean is reported too, as Caffe does).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BACKENDS = ("torch", "onnxruntime")


@dataclass
class LayerTime:
    """Forward time of one Caffe layer over the timed passes (milliseconds per pass)."""

    layer: str
    type: str
    median_ms: float
    mean_ms: float


@dataclass
class TimingResult:
    """The result of :func:`time_forward`.

    Attributes:
        backend: ``torch`` or ``onnxruntime``.
        iterations: timed passes; ``warmup``: passes run first and not counted.
        layers: per-layer times, in net order (layers that ran no node are absent).
        total_median_ms, total_mean_ms: one whole forward pass (milliseconds).
        input_shapes: Caffe input name -> (N, C, H, W) used.
    """

    backend: str
    iterations: int
    warmup: int
    layers: list[LayerTime]
    total_median_ms: float
    total_mean_ms: float
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


def _stats(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples) * 1e3, statistics.fmean(samples) * 1e3


def _layer_rows(compiled, per_layer: dict[str, list[float]]) -> list[LayerTime]:
    """Rows in net order, then the backend's own nodes (type ``-``) by name."""
    rows = []
    names = [n.name for n in compiled.net.layers]
    for name in names + sorted(set(per_layer) - set(names)):
        samples = per_layer.get(name)
        if samples:
            med, mean = _stats(samples)
            kind = compiled.net.layer(name).type if name in names else "-"
            rows.append(LayerTime(name, kind, med, mean))
    return rows


def _time_torch(compiled, inputs, iterations: int, warmup: int):
    import torch

    layer_of_node = {n: compiled.net.producer[b].name for n, b in compiled.blob_of_node.items()
                     if b in compiled.net.producer}
    sync = torch.cuda.synchronize if any(t.is_cuda for t in inputs) else (lambda: None)
    pass_times: list[dict[str, float]] = []

    class Timer(torch.fx.Interpreter):
        def run_node(self, n):
            sync()
            t0 = time.perf_counter()
            out = super().run_node(n)
            sync()
            self.carry += time.perf_counter() - t0
            layer = layer_of_node.get(n.name)
            if layer is not None:
                self.times[layer] = self.times.get(layer, 0.0) + self.carry
                self.carry = 0.0
            return out

    with torch.no_grad():
        for i in range(warmup + iterations):
            timer = Timer(compiled.module)
            timer.times, timer.carry = {}, 0.0
            timer.run(*inputs)
            if i >= warmup:
                pass_times.append(timer.times)
        totals = []
        for i in range(warmup + iterations):
            sync()
            t0 = time.perf_counter()
            compiled.module(*inputs)
            sync()
            if i >= warmup:
                totals.append(time.perf_counter() - t0)
    per_layer: dict[str, list[float]] = {}
    for times in pass_times:
        for layer, t in times.items():
            per_layer.setdefault(layer, []).append(t)
    return per_layer, totals


def _time_onnxruntime(compiled, inputs, iterations: int, warmup: int, workdir: Path):
    from fcnkit.deploy.onnx import export_onnx

    path = workdir / "net.onnx"
    export_onnx(compiled, path, batch=None, check=False)
    feeds = {name: t.numpy() for name, t in zip(compiled.inputs, inputs)}
    return profile_onnx(path, feeds, iterations, warmup, compiled.layer_of_module)


def profile_onnx(path: Path, feeds: dict, iterations: int, warmup: int,
                 layer_of_module: dict[str, str]) -> tuple[dict[str, list[float]], list[float]]:
    """Run an ONNX file with ONNX Runtime's profiler (CPU) and group the node times by
    Caffe layer (:func:`onnx_node_layers`, :func:`profile_per_layer`).

    Args:
        path: the ``.onnx`` file; feeds: one (N, C, H, W) float32 array per graph input, in
            the graph's input order (the dict's keys are not used as names).
        iterations, warmup: timed passes and passes run first.
        layer_of_module: submodule name -> Caffe layer name.

    Returns:
        (layer -> seconds per timed pass, whole-pass seconds per timed pass).

    Raises:
        BackendUnavailableError: onnxruntime is not installed.
    """
    from fcnkit.errors import BackendUnavailableError

    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailableError("--backend onnxruntime needs the onnxruntime package "
                                      "(pip install onnxruntime)") from None
    with tempfile.TemporaryDirectory(prefix="fcnkit-profile-") as tmp:
        opts = ort.SessionOptions()
        # EXTENDED fuses (Conv+Add, Gemm+Relu) but keeps node names; ALL adds the NCHWc
        # layout pass, which renames the convolutions, so their times could not be attributed
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feed = {i.name: a for i, a in zip(session.get_inputs(), feeds.values())}
        for _ in range(warmup + iterations):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    return profile_per_layer(events, warmup, onnx_node_layers(path, layer_of_module))


def onnx_node_layers(path: Path, layer_of_module: dict[str, str]) -> dict[str, str]:
    """ONNX node name -> Caffe layer name, for the nodes of an exported net.

    A node named after a layer maps to it; otherwise the torch exporter's
    ``pkg.torch.onnx.name_scopes`` metadata (``['', 'conv1', 'conv2d']``: the submodule
    path of the node) names the submodule, mapped back by ``layer_of_module``.
    """
    import ast

    import onnx

    layers = set(layer_of_module.values())
    mapping = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        if node.name in layers:
            mapping[node.name] = node.name
            continue
        for prop in node.metadata_props:
            if prop.key != "pkg.torch.onnx.name_scopes":
                continue
            try:
                scopes = ast.literal_eval(prop.value)  # a list of strings, never code
            except (ValueError, SyntaxError):
                break
            hit = next((layer_of_module[s] for s in scopes if s in layer_of_module), None)
            if hit is not None:
                mapping[node.name] = hit
    return mapping


def profile_per_layer(events: list[dict], warmup: int,
                      layer_of_node: dict[str, str]) -> tuple[dict[str, list[float]], list[float]]:
    """Group an ONNX Runtime profile (the JSON list of trace events) by Caffe layer.

    Args:
        events: the profile; ``model_run`` events (category ``Session``) delimit the
            passes, ``<node>_kernel_time`` events (category ``Node``, ``dur`` in
            microseconds) time each node.
        warmup: passes at the start to leave out.
        layer_of_node: ONNX node name -> Caffe layer name (:func:`onnx_node_layers`).

    Returns:
        (layer -> seconds per timed pass, whole-pass seconds per timed pass); a node of no
        layer (a layout reorder inserted by ONNX Runtime) is counted under its own name.
        A fused node (``fused conv1``) counts for the layer of the first node it fused.
    """
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])
    timed = runs[warmup:]
    per_layer: dict[str, list[float]] = {}
    for run in timed:
        lo, hi = run["ts"], run["ts"] + run["dur"]
        sums: dict[str, float] = {}
        for e in events:
            name = e.get("name", "")
            if e.get("cat") != "Node" or not name.endswith("_kernel_time") or not lo <= e["ts"] <= hi:
                continue
            node = name[: -len("_kernel_time")].removeprefix("fused ")
            layer = layer_of_node.get(node, node)
            sums[layer] = sums.get(layer, 0.0) + e["dur"] * 1e-6
        for layer, t in sums.items():
            per_layer.setdefault(layer, []).append(t)
    return per_layer, [r["dur"] * 1e-6 for r in timed]


def time_forward(compiled, backend: str = "torch", iterations: int = 50, warmup: int = 5,
                 seed: int = 0, device: str = "cpu") -> TimingResult:
    """Time forward passes of a compiled net per layer and in total, like ``caffe time``.

    Args:
        compiled: a :class:`fcnkit.compile.CompiledNet`; its inputs are random normal
            float32 arrays of the compile-time (N, C, H, W) shapes.
        backend: ``torch`` or ``onnxruntime`` (CPU execution provider).
        iterations: timed passes (>= 1); warmup: passes run first and not counted (>= 0).
        seed: seed of the random inputs.
        device: torch device for the torch backend (``cpu``, ``cuda``); the module is
            moved there (and stays there). CUDA passes are timed between
            ``torch.cuda.synchronize()`` calls.

    Returns:
        A :class:`TimingResult` (milliseconds).

    Raises:
        InputError: unknown backend, iterations < 1 or warmup < 0.
        BackendUnavailableError: onnxruntime or the device is not available.
        ExportError: the ONNX export fails (onnxruntime backend).
    """
    import torch

    from fcnkit.errors import BackendUnavailableError, InputError

    if backend not in BACKENDS:
        raise InputError(f"--backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    if iterations < 1 or warmup < 0:
        raise InputError(f"--iterations must be >= 1 and --warmup >= 0 (got {iterations}, {warmup})")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailableError("--device cuda: torch sees no CUDA device")
    gen = torch.Generator().manual_seed(seed)
    shapes = compiled.input_shapes
    inputs = [torch.randn(tuple(shapes[n]), generator=gen) for n in compiled.inputs]
    if backend == "torch":
        compiled.module.to(device)
        per_layer, totals = _time_torch(compiled, [t.to(device) for t in inputs], iterations, warmup)
    else:
        with tempfile.TemporaryDirectory(prefix="fcnkit-time-") as tmp:
            per_layer, totals = _time_onnxruntime(compiled, inputs, iterations, warmup, Path(tmp))
    med, mean = _stats(totals)
    return TimingResult(backend, iterations, warmup, _layer_rows(compiled, per_layer), med, mean,
                        {n: tuple(shapes[n]) for n in compiled.inputs})
