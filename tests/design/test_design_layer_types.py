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

#: Module -> (comparisons it still makes, why). Keep this short and justified; the test
#: fails when a module makes more, and when it makes fewer (then lower the count), so the
#: list can only shrink.
ALLOWED = {
    # upgrade_proto.cpp's UpgradeNetBatchNorm rule acts on the NetParameter before any
    # layer object exists; fcnkit.caffe sits below fcnkit.layers and cannot ask a layer
    "fcnkit/caffe/upgrade.py": (1, "Caffe's file-format upgrade (upgrade_proto.cpp)"),
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


def test_no_type_string_comparisons_outside_layers():
    caffe_types = set(registered_types())
    found = [f for m in modules()
             if not m.path.startswith("fcnkit/layers/") and m.path not in ALLOWED
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


def test_allow_list_only_shrinks():
    caffe_types = set(registered_types())
    counts = {m.path: len(type_comparisons(m, caffe_types)) for m in modules() if m.path in ALLOWED}
    assert set(counts) == set(ALLOWED), "allow-list entries for modules that do not exist"
    assert counts == {path: n for path, (n, _) in ALLOWED.items()}, (
        "the allowed type-string comparisons changed: a new one (ask the layer instead) or one "
        "removed (lower its count in ALLOWED)")


def test_surgery_asks_the_layer_contract():
    """The surgery attributes hold for exactly the Caffe types the recipes name (Long et
    al. 2015: InnerProduct -> Convolution, Deconvolution upsampling; Flatten bypass;
    Pooling skips; Input shapes), and InnerProduct reads ``transpose`` from its param."""
    from fcnkit.caffe import caffe_pb2
    from fcnkit.layers import get

    def holders(attr):
        return {t for t in registered_types() if getattr(get(t), attr)}

    assert holders("spatial_filter") == {"Convolution"}
    assert holders("upsampling_filter") == {"Deconvolution"}
    assert holders("fully_connected") == {"InnerProduct"}
    assert holders("flattens") == {"Flatten"}
    assert holders("pools") == {"Pooling"}
    assert holders("declares_input_shape") == {"Input"}
    assert {t for t in registered_types() if get(t).scores_classes()} == {"Convolution", "InnerProduct"}
    lp = caffe_pb2.LayerParameter(type="InnerProduct")
    assert get("InnerProduct").stores_transposed(lp) is False
    lp.inner_product_param.transpose = True
    assert get("InnerProduct").stores_transposed(lp) is True
    assert get("Convolution").stores_transposed(lp) is False
