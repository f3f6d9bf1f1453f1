"""The ``metadata_props`` fcnkit writes into an exported ONNX file: everything a user of
the file alone needs to know about the model (source, versions, bands, tile, classes, crop
offsets, output kinds, dtype, opset, dynamic axes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence


def onnx_metadata(compiled, *, source: str | None, bands, classes, tile, dtype, opset, dynamic_batch,
                  dynamic_hw, extra: Mapping[str, Any] | None,
                  outputs: Sequence[str] | None = None) -> dict[str, str]:
    """The ``metadata_props`` of an export, ``{"fcnkit.<key>": string}`` (JSON for lists and
    flags): every key fcnkit writes is set here, in one place. ``extra`` adds keys (a key
    without a dot gets the ``fcnkit.`` prefix; non-strings are JSON-encoded); ``tile`` is
    accepted for the caller's symmetry, the tile recorded is the compiled input's H, W."""
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
        kinds[name] = prod.layer.output_kind if prod is not None else "scores"
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


def write_metadata(model, meta: Mapping[str, str]) -> None:
    """Replace the model's ``metadata_props`` by ``meta`` and set its producer fields."""
    from fcnkit import __version__

    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    model.producer_name = "fcnkit"
    model.producer_version = __version__
    model.doc_string = f"{meta['fcnkit.source']}: exported by fcnkit {__version__} (torch.onnx dynamo exporter)"
