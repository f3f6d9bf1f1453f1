"""Python values -> fields of Caffe protobuf messages, for the net-specification DSL.

The rules of Caffe's ``python/caffe/net_spec.py`` (``assign_proto``), made strict and with
messages a user can act on:

- a ``dict`` fills a sub-message (``weight_filler=dict(type="msra")``), recursively; a
  message instance of the right type is copied;
- a repeated field takes a list or a single value (``kernel_size=3`` or ``[3, 3]``,
  ``param=[dict(lr_mult=1), dict(lr_mult=2)]``);
- an enum field takes the value's name (``pool="MAX"``) or its number
  (``caffe_pb2.PoolingParameter.MAX``);
- an unknown field name or a value of the wrong type is a
  :class:`fcnkit.errors.NetDefinitionError` that names the layer, the message and the
  closest field names.
"""

from __future__ import annotations

import difflib
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from fcnkit.errors import NetDefinitionError


def field_names(msg: Message) -> list[str]:
    """The field names of a message's type."""
    return [f.name for f in msg.DESCRIPTOR.fields]


def has_field(msg: Message, name: str) -> bool:
    return name in msg.DESCRIPTOR.fields_by_name


def unknown_field_error(where: str, msg_names: list[str], key: str, candidates: list[str]) -> NetDefinitionError:
    """The error for a keyword that is no field of any candidate message."""
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return NetDefinitionError(f"{where}: '{key}' is not a field of {' or '.join(msg_names)}{hint}")


def _scalar(field: FieldDescriptor, value: Any, where: str) -> Any:
    if field.type == FieldDescriptor.TYPE_ENUM:
        enum = field.enum_type
        if isinstance(value, str):
            ev = enum.values_by_name.get(value)
            if ev is None:
                raise NetDefinitionError(
                    f"{where}: '{value}' is not a value of {enum.name} (field '{field.name}'); "
                    f"expected one of {', '.join(v.name for v in enum.values)}")
            return ev.number
        if isinstance(value, bool) or not isinstance(value, int) or value not in enum.values_by_number:
            raise NetDefinitionError(
                f"{where}: {value!r} is not a value of {enum.name} (field '{field.name}'); "
                f"expected one of {', '.join(v.name for v in enum.values)}")
        return value
    return value


def assign(msg: Message, key: str, value: Any, where: str) -> None:
    """Set ``msg.<key>`` from a Python value (see the module docstring).

    Args:
        msg: the message to fill.
        key: a field name of ``msg``.
        value: a scalar, enum name, dict, message, or a list of those for repeated fields.
        where: the start of error messages (``layer 'conv1' (Convolution)``).

    Raises:
        NetDefinitionError: no such field, a list for a single field, a bad enum value or a
            value protobuf refuses (wrong type, out of range).
    """
    field = msg.DESCRIPTOR.fields_by_name.get(key)
    if field is None:
        raise unknown_field_error(where, [msg.DESCRIPTOR.name], key, field_names(msg))
    what = f"{where}: field '{key}' of {msg.DESCRIPTOR.name}"
    try:
        if field.is_repeated:
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            container = getattr(msg, key)
            if field.message_type is not None:
                for v in values:
                    fill(container.add(), v, where)
            else:
                container.extend(_scalar(field, v, where) for v in values)
        elif isinstance(value, (list, tuple)):
            raise NetDefinitionError(f"{what} holds one value, got the list {list(value)!r}")
        elif field.message_type is not None:
            fill(getattr(msg, key), value, where)
        else:
            setattr(msg, key, _scalar(field, value, where))
    except (TypeError, ValueError) as e:
        raise NetDefinitionError(f"{what} cannot take {value!r}: {e}") from None


def fill(msg: Message, value: Any, where: str) -> None:
    """Fill a sub-message from a dict (field -> value) or copy a message of its type.

    Raises:
        NetDefinitionError: ``value`` is neither, or a key is not a field.
    """
    if isinstance(value, Message):
        if value.DESCRIPTOR.full_name != msg.DESCRIPTOR.full_name:
            raise NetDefinitionError(f"{where}: expected a {msg.DESCRIPTOR.name}, got a "
                                     f"{value.DESCRIPTOR.name}")
        msg.CopyFrom(value)
        return
    if not isinstance(value, dict):
        raise NetDefinitionError(f"{where}: a {msg.DESCRIPTOR.name} is given as a dict of its "
                                 f"fields ({', '.join(field_names(msg))}), got {value!r}")
    for k, v in value.items():
        assign(msg, k, v, where)
