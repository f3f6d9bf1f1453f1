"""Parameter values computed when a NetSpec is built, not typed (``offset="auto"``).

A :class:`Deferred` subclass is registered for one (layer type, parameter) pair with
:func:`deferred_field`; :class:`fcnkit.netspec.spec.LayerFn` turns a string given for
that parameter into an instance (:func:`parse_deferred`), and ``NetSpec.to_proto`` asks
each instance, in layer order, to set its value in the built NetParameter
(:func:`resolve_deferred`). The spec module knows no layer type; the per-type rules live
with their value class (:mod:`fcnkit.netspec.crops`).
"""

from __future__ import annotations

from typing import Any, Callable

from fcnkit.errors import NetDefinitionError

_FIELDS: dict[tuple[str, str], type["Deferred"]] = {}


class Deferred:
    """A parameter value computed when the net is built (base class; see
    :class:`fcnkit.netspec.crops.CropOffset`)."""

    def resolve(self, net: Any, lp: Any) -> None:
        """Set the value in ``lp`` (a LayerParameter of ``net``, the NetParameter being
        built, whose earlier layers are final)."""
        raise NotImplementedError


def deferred_field(type_name: str, key: str) -> Callable[[type[Deferred]], type[Deferred]]:
    """Class decorator: string values of parameter ``key`` of ``type_name`` layers become
    instances of the class (built from the string)."""

    def register(cls: type[Deferred]) -> type[Deferred]:
        _FIELDS[(type_name, key)] = cls
        return cls

    return register


def parse_deferred(type_name: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the string values of registered deferred parameters replaced by
    their :class:`Deferred` instances (other values unchanged).

    Raises:
        NetDefinitionError: the string is not a mode the value class knows.
    """
    out = dict(params)
    for key, value in params.items():
        cls = _FIELDS.get((type_name, key))
        if cls is not None and isinstance(value, str):
            out[key] = cls(value)
    return out


def resolve_deferred(net: Any, deferred: list[tuple[Any, Any]]) -> None:
    """Resolve every deferred value of ``net`` in place, in layer order.

    Args:
        net: the NetParameter being built.
        deferred: ``[(LayerParameter in net, LayerFn)]`` in layer order.

    Raises:
        NetDefinitionError: a deferred value on a parameter it was not made for.
        FcnkitError: what the value's ``resolve`` raises (e.g. OffsetError).
    """
    for lp, fn in deferred:
        for key, value in fn.deferred.items():
            if _FIELDS.get((fn.type_name, key)) is not type(value):
                raise NetDefinitionError(f"layer '{lp.name}': no deferred value is defined for "
                                         f"{fn.type_name}.{key}")
            value.resolve(net, lp)
