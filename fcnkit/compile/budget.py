"""Memory needed by a compiled net, computed from shapes before anything is allocated.

A prototxt declares sizes (``num_output: 2147483647``, a 10^12-element deconvolution top)
that torch would try to allocate as soon as the module is built or run; this module sizes
every parameter blob and every top blob (float32: 4 bytes per element) from the shapes of
the analysis and refuses the net above :func:`fcnkit.limits.memory_limit`, naming the layer.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from fcnkit.layers import Shape, prod
from fcnkit.limits import check_bytes

#: Bytes per element: fcnkit computes in float32.
ITEM_BYTES = 4


def check_net_memory(layers: Sequence, shapes: Mapping[str, Shape]) -> dict[str, int]:
    """Check the parameters and activations of ``layers`` (graph nodes with ``impl``,
    ``bottoms``, ``tops``; ``shapes``: blob id -> shape) against the memory limit.

    Checked, in this order: each layer's parameter blobs; all parameters together; each
    layer's working set during its forward (all parameters + its bottoms + its tops).

    Returns:
        {"params": bytes of all parameter blobs, "peak": bytes of the largest working set}.

    Raises:
        LimitError: a check exceeds the limit (names the layer, or "the parameters of the
            net", and the bytes).
    """
    param_bytes = {}
    for node in layers:
        if node.role == "input":
            continue
        own = sum(prod(s) for s in node.layer.param_shapes([shapes[b] for b in node.bottoms])) * ITEM_BYTES
        check_bytes(own, f"{node.where()}: its parameters")
        param_bytes[node.name] = own
    total = sum(param_bytes.values())
    check_bytes(total, "the parameters of the net")
    peak = total
    for node in layers:
        act = sum(prod(shapes[b]) for b in (*node.bottoms, *node.tops)) * ITEM_BYTES
        check_bytes(total + act, f"{node.where()}: its bottoms and tops (with the net's "
                                 f"{total:,} bytes of parameters)")
        peak = max(peak, total + act)
    return {"params": total, "peak": peak}
