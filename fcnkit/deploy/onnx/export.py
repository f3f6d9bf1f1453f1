"""export_onnx: a compiled net to a checked ONNX file (see :mod:`fcnkit.deploy.onnx`)."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from fcnkit.deploy._common import canonical_dtype, parse_batch, parse_tile
from fcnkit.deploy.onnx.exporter_log import conversion_reason, quiet_exporter, short_error
from fcnkit.deploy.onnx.inspect import inspect_onnx, opset_of
from fcnkit.deploy.onnx.metadata import onnx_metadata, write_metadata
from fcnkit.deploy.onnx.naming import folded_layers, name_nodes
from fcnkit.deploy.onnx.parity import (FP16_TOLERANCE, FP32_TOLERANCE, ParityRow,
                                       constant_reference_warning, random_inputs, run_parity)
from fcnkit.deploy.onnx.result import ExportResult
from fcnkit.deploy.onnx.rewrite import dynamic_hw_blockers, fused_pairs, module_for_export, rename_values
from fcnkit.deploy.onnx.torchscript import can_use_torchscript, torchscript_export
from fcnkit.errors import ExportError, InputError


#: What ``export_onnx(exporter=...)`` accepts.
EXPORTERS = ("dynamo", "auto")

#: Opset written when none is asked for.
DEFAULT_OPSET = 18


#: Lowest opset fcnkit exports: Softmax before opset 13 flattens the trailing axes instead
#: of normalising along one axis (CAFFE_FACTS.md), so Caffe's Softmax has no exact form.
MIN_OPSET = 13


#: Largest ONNX file written as one protobuf (the protobuf limit is 2 GiB).
MAX_PROTO_BYTES = 2**31 - 1


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
                classes: Sequence[str] | None = None, metadata: Mapping[str, Any] | None = None,
                extra_outputs: Sequence[str] = (), fuse: bool = True, exporter: str = "dynamo") -> ExportResult:
    """Export a compiled net to an ONNX file, check it, and compare it with torch.

    Args:
        compiled: a :class:`fcnkit.compile.CompiledNet` (or a
            :class:`fcnkit.deploy.model.ModelSource`, whose band/class names are used).
        path: the ``.onnx`` file to write (atomically; nothing is written when a check fails).
        opset: the ``ai.onnx`` opset of the file (>= 13; 17, 18 and 20 are tested). The
            file's opset is asserted to equal it.
        dtype: ``fp32`` or ``fp16`` (weights, activations, inputs and outputs in that type).
        batch: ``"dynamic"``/None (a dynamic batch axis named ``batch``) or a fixed batch N.
        dynamic_hw: make H and W dynamic; a net with layers that fix them is an
            ExportError naming them (:func:`dynamic_hw_blockers`).
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
        exporter: ``dynamo``, or ``auto`` (TorchScript where it applies: :mod:`~.torchscript`).

    Returns:
        :class:`ExportResult` (``.summary()`` for one line). When a torch reference does
        not vary with the random input, :attr:`ExportResult.warnings` says that parity was
        not meaningful (and :attr:`ExportResult.meaningful` is False).

    Raises:
        ExportError: the exporter fails, the file's opset differs from the request, the
            checker or shape inference rejects the graph, ONNX Runtime cannot run it, an
            output differs from torch beyond the tolerance, or ``dynamic_hw`` is refused.
        InputError: bad option values, or an extra output the net does not compute.
        ShapeError: the net cannot take the requested tile.
        OutputError: the file cannot be written.
    """
    from fcnkit.deploy._common import write_public

    t0 = time.perf_counter()
    compiled, source, bands, classes = _unpack_source(compiled, source, bands, classes)
    path = Path(path)
    opts = _options(compiled, opset, dtype, batch, tile, tolerance, parity_batch)
    compiled, shapes, want_hw, notes = _prepare(compiled, opts, dynamic_hw)
    dynamic_batch = opts.fixed_batch is None
    module, table, out_names = module_for_export(compiled, opts.half, extra_outputs, fuse, want_hw)
    model, got = _run_exporter(module, compiled, shapes, opts, table, out_names, dynamic_batch, want_hw,
                               exporter, seed)
    meta = onnx_metadata(compiled, source=source, bands=bands, classes=classes, tile=opts.tile,
                         dtype=opts.dtype, opset=opts.opset, dynamic_batch=dynamic_batch,
                         dynamic_hw=want_hw, extra=metadata, outputs=out_names)
    data, (info, node_types, out_types) = _finish(model, compiled, out_names, fuse, meta)
    del model
    parity, warnings_ = [], []
    if check:
        parity, warnings_ = _check_and_compare(data, compiled, shapes, opts, out_types, dynamic_batch, want_hw, seed)
    else:
        notes.append("checks skipped (check=False): the file was not validated or compared with torch")

    write_public(path, data)
    return ExportResult(
        path=path, opset=got, dtype=opts.dtype,
        inputs={n: s for n, s, _ in info.inputs}, outputs={n: s for n, s, _ in info.outputs},
        parity=parity, dynamic_batch=dynamic_batch, dynamic_hw=want_hw, notes=notes, metadata=meta,
        node_types=node_types, size_bytes=len(data), seconds=time.perf_counter() - t0,
        warnings=warnings_)


@dataclass(frozen=True)
class _Options:
    """The checked options of one export."""

    opset: int
    dtype: str
    half: bool
    fixed_batch: int | None
    tile: tuple[int, int] | None
    tolerance: float
    parity_batch: int


def _unpack_source(compiled, source, bands, classes):
    """(CompiledNet, source, bands, classes): a ModelSource's names where none are given."""
    from fcnkit.deploy.model import ModelSource

    if not isinstance(compiled, ModelSource):
        return compiled, source, bands, classes
    src = compiled
    return (src.compiled, source or src.source, bands if bands is not None else src.bands,
            classes if classes is not None else src.classes)


def _options(compiled, opset, dtype, batch, tile, tolerance, parity_batch) -> _Options:
    """Check the options and that the net can be exported at all.

    Raises:
        InputError, ExportError: see :func:`export_onnx`.
    """
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
    return _Options(opset, dtype, half, fixed_batch, tile, tolerance, parity_batch)


def _prepare(compiled, opts: _Options, dynamic_hw: bool):
    """The net recompiled at the export's tile and batch; its input shapes; whether H and W
    will be dynamic; the notes so far.

    Raises:
        ExportError: dynamic H and W asked for a net with layers that fix them.
    """
    from fcnkit.deploy.model import deploy_shapes, reshape

    compiled = reshape(compiled, deploy_shapes(compiled.input_shapes, opts.tile, opts.fixed_batch))
    shapes = {k: tuple(v) for k, v in compiled.input_shapes.items()}
    notes: list[str] = []
    want_hw = bool(dynamic_hw)
    if want_hw:
        if not any(len(s) == 4 for s in shapes.values()):
            raise InputError("--dynamic-hw needs an N,C,H,W image input")
        blockers = dynamic_hw_blockers(compiled)
        if blockers:
            raise ExportError("--dynamic-hw cannot be honoured: " + "; ".join(blockers)
                              + "; export without --dynamic-hw (H and W fixed at the tile, see --tile)")
    return compiled, shapes, want_hw, notes


def _dynamic_shapes(compiled, shapes, dynamic_batch: bool, want_hw: bool):
    """``dynamic_shapes`` for ``torch.onnx.export``: one entry per positional input of the
    GraphModule (batch axis 0, H and W axes 2 and 3 of N, C, H, W inputs), or None."""
    import torch

    if not (dynamic_batch or want_hw):
        return None
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
    return tuple(dyn)


def _run_exporter(module, compiled, shapes, opts: _Options, table, out_names, dynamic_batch: bool,
                  want_hw: bool, exporter: str, seed: int):
    """(ModelProto, its opset): ``torch.onnx.export(dynamo=True)`` of ``module`` on a seeded
    example input (with ``exporter="auto"``, the TorchScript exporter first where it
    applies), its output silenced; the opset asserted to be the one asked for.

    Raises:
        ExportError: the exporter fails, or writes another opset.
    """
    import torch

    if exporter not in EXPORTERS:
        raise InputError(f"exporter must be one of {', '.join(EXPORTERS)}, got '{exporter}'")
    example = random_inputs(shapes, seed)
    args = tuple(torch.from_numpy(example[n]).to(torch.float16 if opts.half else torch.float32)
                 for n in compiled.inputs)
    model = None
    if exporter == "auto" and can_use_torchscript(opts.half, want_hw, table) is None:
        with quiet_exporter():
            try:
                model = torchscript_export(module, args, opset=opts.opset, input_names=compiled.inputs,
                                           output_names=out_names, dynamic_batch=dynamic_batch)
            except Exception:  # noqa: BLE001 - any failure of the trace: the dynamo exporter decides
                model = None
    if model is not None and opset_of(model) == opts.opset:
        return model, opts.opset
    dyn = _dynamic_shapes(compiled, shapes, dynamic_batch, want_hw)
    with quiet_exporter() as log:
        try:
            program = torch.onnx.export(
                module, args, dynamo=True, opset_version=opts.opset, input_names=list(compiled.inputs),
                output_names=out_names, dynamic_shapes=dyn, external_data=False,
                custom_translation_table=table or None, optimize=True, verbose=False)
            model = program.model_proto
            del program  # its IR model holds a second copy of the weights
        except Exception as e:  # noqa: BLE001 - the exporter raises many exception types
            hint = ""
            if want_hw:
                hint = (" (H and W were asked to be dynamic; the graph may fix them: try without "
                        "--dynamic-hw)")
            raise ExportError(f"torch.onnx.export failed{hint}: {short_error(e)}") from None
    got = opset_of(model)
    if got != opts.opset:
        reason = conversion_reason(log.records)
        raise ExportError(f"asked for opset {opts.opset} but the exporter produced opset {got}: the ONNX "
                          f"version converter could not convert the graph"
                          + (f" ({reason})" if reason else "")
                          + f"; use an opset >= {max(18, MIN_OPSET)} or one it can convert to")
    return model, got


def _finish(model, compiled, out_names: Sequence[str], fuse: bool, meta) -> tuple[bytes, tuple]:
    """Name the graph's values and nodes after Caffe's blobs and layers, write the metadata,
    serialise; returns the bytes and what the result reports, read off the proto now so that
    the caller can drop it (the proto is one more copy of every weight while the checker and
    ONNX Runtime make theirs)."""
    _name_values(model, compiled, out_names)
    _name_nodes(model, compiled, fuse)
    write_metadata(model, meta)
    return _serialise(model), _described(model)

def _name_values(model, compiled, out_names: Sequence[str]) -> None:
    """Name the graph's inputs and outputs after the Caffe blobs.

    Raises:
        ExportError: the graph has other inputs or outputs than the net.
    """
    in_names = [v.name for v in model.graph.input if v.name not in {i.name for i in model.graph.initializer}]
    got_out = [v.name for v in model.graph.output]
    if len(in_names) != len(compiled.inputs) or len(got_out) != len(out_names):
        raise ExportError(f"the exported graph has inputs {in_names} and outputs {got_out}; "
                          f"expected {compiled.inputs} -> {out_names}")
    renames = {o: n for o, n in zip(in_names + got_out, list(compiled.inputs) + list(out_names))
               if o != n}
    rename_values(model, renames)


def _name_nodes(model, compiled, fuse: bool) -> None:
    """Nodes and initializers named after the Caffe layers (:mod:`fcnkit.deploy.onnx.naming`)."""
    table = compiled.layer_of_module
    fused = {}
    if fuse:
        fused = {table[first.target]: [table[second.target]]
                 for first, second, _ in fused_pairs(compiled, compiled.module.graph)}
    name_nodes(model, table, fused, folded_layers(compiled))


def _described(model):
    """(OnnxInfo, {op type: count}, {output name: ONNX element type}) of the model."""
    return (inspect_onnx(model), dict(Counter(n.op_type for n in model.graph.node)),
            {v.name: v.type.tensor_type.elem_type for v in model.graph.output})


def _serialise(model) -> bytes:
    """The model as bytes.

    Raises:
        ExportError: it is over the 2 GiB a protobuf can hold.
    """
    try:
        data = model.SerializeToString()
    except ValueError as e:  # protobuf refuses messages over 2 GiB
        raise ExportError(f"the model is too large for one ONNX protobuf (2 GiB): {e}") from None
    if len(data) > MAX_PROTO_BYTES:
        raise ExportError(f"the model is {len(data) / 2**30:.2f} GiB, more than one ONNX protobuf "
                          "can hold (2 GiB)")
    return data


def _check_and_compare(data: bytes, compiled, shapes, opts: _Options, out_types, dynamic_batch: bool,
           want_hw: bool, seed: int) -> tuple[list[ParityRow], list[str]]:
    """(parity rows, warnings): onnx.checker with full shape inference, the outputs' element
    type, ONNX Runtime vs torch at the export size (and 32 pixels larger with dynamic H
    and W).

    Raises:
        ExportError: a check fails (nothing has been written).
    """
    import onnx

    from fcnkit.deploy.model import reshape

    try:
        # full_check also runs strict shape inference over the whole graph.
        onnx.checker.check_model(data, full_check=True)
    except Exception as e:  # noqa: BLE001 - onnx.checker.ValidationError, InferenceError
        raise ExportError(f"onnx.checker (full check, with shape inference) rejects the exported "
                          f"graph: {short_error(e)}") from None
    for name, elem in out_types.items():
        if elem != (10 if opts.half else 1):
            raise ExportError(f"output '{name}' has ONNX element type {elem}, expected {opts.dtype}")
    pb = opts.parity_batch if dynamic_batch else opts.fixed_batch
    run_shapes = {k: ((pb,) + tuple(s[1:]) if len(s) >= 1 else s) for k, s in shapes.items()}
    parity = run_parity(data, compiled, random_inputs(run_shapes, seed + 1), half=opts.half,
                        tolerance=opts.tolerance)
    if want_hw:
        other = {k: (s[0], s[1], s[2] + 32, s[3] + 32) if len(s) == 4 else s
                 for k, s in run_shapes.items()}
        bigger = reshape(compiled, other)
        try:
            parity += run_parity(data, bigger, random_inputs(other, seed + 2), half=opts.half,
                                 tolerance=opts.tolerance)
        except ExportError as e:
            raise ExportError(f"the graph does not allow dynamic H and W: {e}; export without "
                              "--dynamic-hw") from None
    flat = constant_reference_warning(parity)
    bad = [r for r in parity if not r.ok]
    if bad:
        worst = max(bad, key=lambda r: r.relative)
        raise ExportError(f"parity check failed: output '{worst.output}' differs from torch by "
                          f"max abs {worst.max_abs:.3g}, relative {worst.relative:.3g} > tolerance "
                          f"{worst.tolerance:g} (ONNX Runtime CPU, {opts.dtype}); no file was written")
    return parity, [flat] if flat else []


def export_model(model: str | Path, path: str | Path, *, weights: str | Path | None = None,
                 tile: tuple[int, int] | str | None = None, batch: int | str | None = "dynamic",
                 input_shapes: Mapping[str | None, Sequence[int]] | None = None,
                 fill_untrained: bool = False, allow_missing_weights: bool = False,
                 stages: Sequence[str] = (), classes: int | None = None,
                 **kwargs) -> ExportResult:
    """:func:`export_onnx` for a MODEL argument: a prototxt or zoo model name (with
    ``weights``, a caffemodel), or a compiled model directory (see
    :func:`fcnkit.deploy.model.load_model`; a zoo name without ``weights`` takes its
    bundled weight set and preprocess JSON, :mod:`fcnkit.zoo.bundled`); ``input_shapes`` overrides the declared input
    shapes (``--input-shape``); ``stages`` and ``classes`` prepare a prototxt as
    :func:`fcnkit.deploy.model.load_model` says (DIGITS templates).

    ``fill_untrained`` gives every all-zero weight tensor seeded He-normal values first
    (:func:`fcnkit.deploy.model.fill_untrained`), so that an untrained net computes
    something input-dependent and the parity run means something; the exported weights are
    then random, for benchmarks only (a note says so). With ``weights``, the weights load
    report (:mod:`fcnkit.compile.load_report`) comes first in the notes, a renamed layer in
    the warnings; ``allow_missing_weights`` as in :func:`fcnkit.compile.compile_net`.

    Raises:
        WeightsError: unless ``allow_missing_weights``, no layer loads from ``weights`` or a
            layer that would be all zeros is not in it; nothing is written."""
    from fcnkit.deploy.model import fill_untrained as fill
    from fcnkit.deploy.model import load_model

    from fcnkit.zoo.bundled import default_weights

    tile = parse_tile(tile)
    fixed = parse_batch(batch)
    weights = default_weights(model, weights)  # a zoo name: its bundled weight set, if any
    src = load_model(model, weights=weights, tile=tile, batch=fixed, input_shapes=input_shapes,
                     allow_missing_weights=allow_missing_weights, stages=stages, classes=classes)
    changed = fill(src.compiled) if fill_untrained else None
    from fcnkit.deploy.tiling_info import PREPROCESS_META, preprocess_for

    pre = preprocess_for(model, weights)  # the stretch the model was trained with travels along
    if pre is not None:
        kwargs["metadata"] = {**(kwargs.get("metadata") or {}), PREPROCESS_META: json.dumps(pre)}
    result = export_onnx(src, path, batch=batch, **kwargs)
    loaded = src.compiled.load_report
    if loaded is not None:
        result.notes.insert(0, loaded.summary())
        result.warnings.extend(loaded.warnings())
    if changed is not None:
        result.notes.append(f"--fill-untrained: {len(changed)} untrained tensor(s) got seeded random values "
                            "(He-normal weights, BatchNorm variance 1); the file's weights are NOT trained: "
                            "use it for speed benchmarks only")
    return result
