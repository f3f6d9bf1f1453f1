"""Names of the compiled module's submodules, from Caffe layer names.

Its own module so that the builder and the weight loader (which both name submodules)
import it without importing each other.
"""

from __future__ import annotations

import keyword

import torch
import torch.fx


def module_name(layer_name: str) -> str:
    """Submodule name for a Caffe layer: the layer name, with '.' (which torch reserves
    for nesting) replaced by '_', and '_' appended to a Python keyword (``class`` ->
    ``class_``: torch.fx writes ``self.class(...)`` in its generated code otherwise) and to
    the name of a torch module attribute (``double``, ``train``, ``forward`` ->
    ``double_``: torch refuses to shadow them). Other characters (``fc6-conv``,
    ``inception_3a/1x1``) are kept: fx reaches them with ``getattr``."""
    name = layer_name.replace(".", "_")
    if keyword.iskeyword(name) or hasattr(torch.fx.GraphModule, name):
        return name + "_"
    return name
