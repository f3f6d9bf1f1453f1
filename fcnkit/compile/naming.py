"""Names of the compiled module's submodules, from Caffe layer names.

Its own module so that the builder and the weight loader (which both name submodules)
import it without importing each other.
"""

from __future__ import annotations

import builtins
import keyword
import re

import torch
import torch.fx


#: Attributes every GraphModule instance sets in ``__init__`` (``training``, ``meta``, ...):
#: a submodule of that name would replace them (``hasattr`` on the class misses them).
_INSTANCE_ATTRS = frozenset({"training", "meta", "shape_env", "graph", "code", "forward"})
#: Names that fx's generated forward() already uses (``self``, its globals, builtins): a
#: forward() argument or an fx node (named after its submodule) must not shadow them.
_RESERVED_ARGS = frozenset({"self", "torch", "inf", "nan", "device", "NoneType", "fx_pytree",
                            "pytree", "operator", "getitem"}) | frozenset(dir(builtins))
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def safe_identifier(text: str, prefix: str = "layer_") -> str:
    """An ASCII Python identifier made from ``text`` (a name read from an input file), the
    only form in which such text may reach generated code (torch.fx writes submodule and
    placeholder names into the ``forward`` source it executes).

    ASCII letters, digits and '_' are kept, every other ASCII character becomes '_' and
    every other character ``u<hex code point>`` (so that names in other scripts stay
    distinct); ``prefix`` is put before a result that would start with a digit or '_' (or
    be empty), and '_' after a Python keyword. The result matches ``[A-Za-z][A-Za-z0-9_]*``.
    """
    out = "".join(c if c.isascii() and (c.isalnum() or c == "_") else
                  ("_" if c.isascii() else f"u{ord(c):x}") for c in text)
    if not out or not out[0].isalpha():
        out = prefix + out
    if keyword.iskeyword(out):
        out += "_"
    if not _PLAIN.match(out):  # not an assert: it must hold under python -O too
        raise RuntimeError(f"safe_identifier made {out!r}, not an identifier")
    return out


def module_name(layer_name: str) -> str:
    """Submodule name for a Caffe layer: a plain ASCII identifier, never the raw name.

    The name is kept when it is already one (``conv1``, ``fc6_conv``); otherwise it is
    made one by :func:`safe_identifier` ('.', which torch reserves for nesting, '-', '/',
    quotes, control characters become '_': ``fc6-conv`` -> ``fc6_conv``, ``inception_3a/1x1``
    -> ``inception_3a_1x1``; a name starting with '_' or a digit gets the prefix
    ``layer_``). '_' is appended to a Python keyword (``class`` -> ``class_``) and to a
    name torch's modules already use (``double``, ``train``, ``training``, ``forward`` ->
    ``double_``) and to ``self``, ``torch`` and Python's builtins, which the generated code
    uses (``max`` -> ``max_``). Two layers whose names give the same module name are refused by
    :func:`compile_net`; :attr:`CompiledNet.layer_of_module` maps the names back.

    Why: torch.fx writes the submodule name into the Python source of ``forward`` (as
    ``getattr(self, "NAME")`` when it is not an identifier, unescaped), so a layer name
    holding a quote would run as code (issue 15).
    """
    name = safe_identifier(layer_name)
    if name in _INSTANCE_ATTRS or name in _RESERVED_ARGS or hasattr(torch.fx.GraphModule, name):
        return name + "_"
    return name
