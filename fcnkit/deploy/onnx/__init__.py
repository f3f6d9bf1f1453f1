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
  at the tile size unless ``dynamic_hw`` is asked for: Caffe's ceil-and-clip pooling sizes and
  Crop sizes are then computed in the graph from the input's shape
  (:meth:`fcnkit.layers.Layer.dynamic_export_module`), and a net with layers that fix C x H
  x W (InnerProduct, Flatten, Reshape: :func:`dynamic_hw_blockers`) is an ExportError;
- nodes are named after the Caffe layers that produce them (``conv4-2``; a layer's other
  nodes ``conv4-2/1``, ...), initializers ``layer/weight``, ``PReLU1/slope``
  (:mod:`fcnkit.deploy.onnx.naming`);
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

The package, one module per job: :mod:`~fcnkit.deploy.onnx.export` (:func:`export_onnx`,
:func:`export_model`), :mod:`~fcnkit.deploy.onnx.rewrite` (the graph rewritten for export),
:mod:`~fcnkit.deploy.onnx.parity` (ONNX Runtime vs torch), :mod:`~fcnkit.deploy.onnx.inspect`
(reading a file), :mod:`~fcnkit.deploy.onnx.metadata` (``metadata_props``),
:mod:`~fcnkit.deploy.onnx.exporter_log` (the exporter's log and errors).

Sources: torch.onnx documentation (``dynamo=True`` exporter, ``dynamic_shapes``,
``custom_translation_table``); ONNX operator specs (LRN-13, Softmax-13, Slice);
Caffe ``src/caffe/layers/lrn_layer.cpp``.
"""

from fcnkit.deploy.onnx.export import (DEFAULT_OPSET, MAX_PROTO_BYTES, MIN_OPSET, ExportResult,
                                       export_model, export_onnx)
from fcnkit.deploy.onnx.inspect import OnnxInfo, inspect_onnx
from fcnkit.deploy.onnx.metadata import onnx_metadata
from fcnkit.deploy.onnx.parity import (CONSTANT_REFERENCE, FP16_TOLERANCE, FP32_TOLERANCE, ParityRow,
                                       constant_reference_warning, reference_outputs, run_parity,
                                       varies)
from fcnkit.deploy.onnx.rewrite import dynamic_hw_blockers, fused_pairs, resolve_blob

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "MAX_PROTO_BYTES", "FP32_TOLERANCE", "FP16_TOLERANCE",
           "CONSTANT_REFERENCE", "ExportResult", "ParityRow", "OnnxInfo", "export_onnx",
           "export_model", "inspect_onnx", "onnx_metadata", "run_parity", "reference_outputs",
           "constant_reference_warning", "varies", "dynamic_hw_blockers", "fused_pairs",
           "resolve_blob"]
