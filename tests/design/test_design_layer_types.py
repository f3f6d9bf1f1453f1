"""One Caffe layer type, one place (issue 14, acceptance 1): outside fcnkit/layers/, no
package code compares a layer's Caffe type string; it asks the layer (the Layer contract
in fcnkit/layers/base.py).

A comparison is an ``==``, ``!=``, ``in`` or ``not in`` with a type expression on one side
(an attribute ``.type`` / ``.type_name``, or a name ``type_name`` / ``layer_type``) and a
registered Caffe type string on another: a literal, a tuple/list/set of literals, or a
module-level name bound to such a collection. Writing a type (``lp.type = "Crop"``) is not
a comparison.
"""

from __future__ import annotations

import ast

from fcnkit.layers import registered_types
from tests.design._source import Module, modules

#: Module -> why it may compare type strings. Keep this short and justified.
ALLOWED = {
    # Net surgery implements recipes stated on named Caffe types (Long et al.'s fc -> conv:
    # InnerProduct -> Convolution; the FCN head's score Convolution, upsampling
    # Deconvolution and Crop; conv1 band adaptation; Input shapes). The types are the
    # recipes' vocabulary. To do: express them through the Layer contract (issue 14).
    "fcnkit/surgery/": "net-surgery recipes on named types (to be moved, issue 14)",
    # upgrade_proto.cpp's UpgradeNetBatchNorm rule acts on the NetParameter before any
    # layer object exists; fcnkit.caffe sits below fcnkit.layers and cannot ask a layer
    "fcnkit/caffe/upgrade.py": "Caffe's file-format upgrade (upgrade_proto.cpp)",
}

TYPE_NAMES = {"type_name", "layer_type"}


def _is_type_expr(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr in ("type", "type_name")) or \
        (isinstance(node, ast.Name) and node.id in TYPE_NAMES)


def _strings(node: ast.AST, constants: dict[str, set[str]]) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*(_strings(e, constants) for e in node.elts)) if node.elts else set()
    if isinstance(node, ast.Starred):
        return _strings(node.value, constants)
    if isinstance(node, ast.Name):
        return constants.get(node.id, set())
    return set()


def _module_constants(tree: ast.Module) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    out[t.id] = _strings(node.value, {})
    return out


def type_comparisons(mod: Module, caffe_types: set[str]) -> list[str]:
    """``path:line: source`` of each comparison of a Caffe type string in ``mod``."""
    constants = _module_constants(mod.tree)
    found = []
    for node in ast.walk(mod.tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        if not any(_is_type_expr(o) for o in operands):
            continue
        hits = set().union(*(_strings(o, constants) for o in operands)) & caffe_types
        if hits:
            found.append(f"{mod.path}:{node.lineno}: {ast.unparse(node)}")
    return found


def _allowed(path: str) -> bool:
    return any(path == a or (a.endswith("/") and path.startswith(a)) for a in ALLOWED)


def test_no_type_string_comparisons_outside_layers():
    caffe_types = set(registered_types())
    found = [f for m in modules()
             if not m.path.startswith("fcnkit/layers/") and not _allowed(m.path)
             for f in type_comparisons(m, caffe_types)]
    assert found == [], ("compare a Caffe type string outside fcnkit/layers/ (ask the layer "
                         "instead, fcnkit/layers/base.py):\n" + "\n".join(found))


def test_detector_finds_each_form():
    caffe_types = set(registered_types())
    src = '''
SCORERS = ("Convolution", "InnerProduct")
def f(node, lp, type_name, dev):
    a = node.type == "Crop"
    b = lp.type in ("Split", "Silence")
    c = node.type not in SCORERS
    d = type_name != "Deconvolution"
    e = dev.type == "cuda"          # not a Caffe type
    g = node.op_type == "Softmax"   # an ONNX op, not a layer's type
    lp.type = "Crop"                # a write
'''
    mod = Module("x", "fcnkit/x.py", ast.parse(src), 0)
    lines = [f.split(":")[1] for f in type_comparisons(mod, caffe_types)]
    assert lines == ["4", "5", "6", "7"]


def test_allow_list_entries_exist_and_are_needed():
    # an entry that allows nothing should be removed
    caffe_types = set(registered_types())
    mods = modules()
    for entry in ALLOWED:
        hits = [f for m in mods if m.path == entry or (entry.endswith("/") and m.path.startswith(entry))
                for f in type_comparisons(m, caffe_types)]
        assert hits, f"allow-list entry {entry} allows nothing; remove it"
