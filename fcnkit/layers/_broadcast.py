"""The shape rules shared by Scale and Bias (Caffe scale_layer.cpp, bias_layer.cpp).

The operand (a learned blob with one bottom, or ``bottom[1]``) covers the axes
``axis .. axis + operand.ndim`` of ``bottom[0]`` and is broadcast over the others. A
learned operand has ``bottom[0].shape[axis : axis + num_axes]`` (``num_axes = -1``: to
the end; 0: a scalar). A 0-axis operand is a scalar whatever ``axis`` says.
"""

from __future__ import annotations

from fcnkit.errors import ShapeError
from fcnkit.layers import Shape, canonical_axis


def learned_shape(layer, bottom: Shape, axis: int, num_axes: int) -> Shape:
    """Shape of the learned operand for a one-bottom Scale/Bias."""
    if num_axes < -1:
        raise layer.error(f"num_axes must be >= 0, or -1 for all axes after axis; got {num_axes}")
    a = canonical_axis(axis, len(bottom), layer)
    end = len(bottom) if num_axes == -1 else a + num_axes
    if end > len(bottom):
        raise layer.error(f"the operand would cover axes {a}..{end - 1} of a {len(bottom)}-D "
                          f"bottom {bottom} (axis {axis}, num_axes {num_axes})", ShapeError)
    return tuple(bottom[a:end])


def operand_view(layer, bottom: Shape, operand: Shape, axis: int) -> tuple[int, ...]:
    """The shape to view the operand as so that it broadcasts against ``bottom``.

    Raises:
        ShapeError: the operand does not match ``bottom`` from ``axis`` on.
    """
    if len(operand) == 0:
        return ()
    a = canonical_axis(axis, len(bottom), layer)
    if a + len(operand) > len(bottom) or tuple(bottom[a:a + len(operand)]) != tuple(operand):
        raise layer.error(f"operand shape {tuple(operand)} does not match bottom shape "
                          f"{tuple(bottom)} from axis {a}", ShapeError)
    return tuple(operand) + (1,) * (len(bottom) - a - len(operand))
