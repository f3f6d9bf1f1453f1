"""Reading a deployed ONNX file without running it: opset, graph inputs and outputs,
``metadata_props``, and which outputs come straight from a Softmax node (TensorRT and the
Predictor read files through this too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcnkit.deploy._common import ONNX_TO_NUMPY
from fcnkit.errors import InputError


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


def opset_of(model) -> int:
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
    return OnnxInfo(path, opset_of(model), io(g.input), io(g.output), meta, soft)
