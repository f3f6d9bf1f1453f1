"""The JSON form of the ``fcnkit compile`` report."""

from __future__ import annotations

from typing import Any, Sequence


def compile_report(compiled, crops: Sequence[Any]) -> dict:
    """``fcnkit compile --format json``: per layer its type, top shapes (Caffe axis order),
    learnable parameters and FLOPs (2 per multiply-add); totals; the module's inputs and
    outputs; each Crop layer's declared and computed offsets (pixels; ``crops`` from
    :func:`fcnkit.analysis.crop_table`)."""
    net, analysis = compiled.net, compiled.analysis
    return {
        "name": net.name,
        "layers": [{"name": n.name, "type": n.type,
                    "tops": {net.blob_name[t]: list(analysis.shapes[t]) for t in n.tops},
                    "params": analysis.costs[n.name].params, "flops": analysis.costs[n.name].flops}
                   for n in net.layers],
        "total_params": analysis.total_params, "total_flops": analysis.total_flops,
        "inputs": compiled.inputs, "outputs": compiled.outputs,
        "crops": [{"layer": c.layer, "declared": c.declared, "computed": c.computed} for c in crops],
    }
