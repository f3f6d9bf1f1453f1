"""The nets a solver trains and tests (Caffe's Solver::InitTrainNet / InitTestNets),
compiled with fcnkit's compiler, their data layers fed by fcnkit's datasets.

Where the net comes from: exactly one of ``train_net_param``, ``train_net``, ``net_param``,
``net`` (Caffe's rule). Test nets: ``test_net_param`` / ``test_net`` entries, then
``net_param`` / ``net`` again in the TEST phase for the remaining ``test_iter`` entries.
A net path is taken as written (Caffe: relative to the current folder) and, if no such file
exists, relative to the solver's folder.

Data layers: Data, ImageData, HDF5Data, WindowData, MemoryData, DummyData (fcnkit input
layers) and Python layers without bottoms are replaced by the dataset's batches: their
tops become inputs of the compiled module, with the shapes of the dataset's batches; their
``transform_param`` (mean, scale, crop, mirror) and sources are ignored: the dataset does
its own stretch and augmentation (docs/train.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from fcnkit.caffe import caffe_pb2
from fcnkit.errors import InputError, NetDefinitionError
from fcnkit.train.params import layer_module

#: Layer types replaced by the dataset input when they have no bottoms.
def _resolve(name: str, solver_path: str | None, what: str) -> Path:
    given = Path(name)
    candidates = [given]
    if solver_path is not None and not given.is_absolute():
        candidates.append(Path(solver_path).parent / given)
    for c in candidates:
        if c.is_file():
            return c
    where = solver_path or "solver"
    raise InputError(f"{where}: {what} '{name}' does not exist (looked at "
                     f"{', '.join(str(c) for c in candidates)}); fix the path in the solver")


def _read_net(name: str, solver_path: str | None, what: str) -> tuple[caffe_pb2.NetParameter, str]:
    from fcnkit.caffe import read_prototxt

    path = _resolve(name, solver_path, what)
    return read_prototxt(path).param, str(path)


def _embedded(param: caffe_pb2.NetParameter, where: str | None) -> caffe_pb2.NetParameter:
    """A copy of a net embedded in the solver, upgraded to V2 as Caffe does."""
    from fcnkit.caffe.upgrade import upgrade_net

    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    upgrade_net(out, path=where)
    return out


def train_net_param(solver, solver_path: str | None = None) -> tuple[caffe_pb2.NetParameter, str | None]:
    """The train net of a solver: (NetParameter, its path or None when embedded).

    Raises:
        InputError: no train net, more than one, or the named file is missing.
    """
    given = [f for f in ("train_net_param", "train_net", "net_param", "net") if solver.HasField(f)]
    where = solver_path or "solver"
    if len(given) != 1:
        raise InputError(f"{where}: give exactly one of net, net_param, train_net, "
                         f"train_net_param (found {', '.join(given) or 'none'})")
    field = given[0]
    if field.endswith("_param"):
        return _embedded(getattr(solver, field), solver_path), None
    return _read_net(getattr(solver, field), solver_path, field)


def test_net_params(solver, solver_path: str | None = None) -> list[tuple[caffe_pb2.NetParameter, str | None]]:
    """The test nets of a solver (one per ``test_iter`` entry).

    Raises:
        InputError: test_iter count does not match the test nets, or a file is missing.
    """
    nets = [(_embedded(p, solver_path), None) for p in solver.test_net_param]
    nets += [_read_net(n, solver_path, "test_net") for n in solver.test_net]
    remaining = len(solver.test_iter) - len(nets)
    if remaining > 0 and (solver.HasField("net") or solver.HasField("net_param")):
        generic = (_embedded(solver.net_param, solver_path), None) if solver.HasField("net_param") else \
            _read_net(solver.net, solver_path, "net")
        nets += [generic] * remaining
    if len(nets) != len(solver.test_iter):
        raise InputError(f"{solver_path or 'solver'}: {len(solver.test_iter)} test_iter value(s) "
                         f"for {len(nets)} test net(s); give one test_iter per test net")
    return nets


def is_data_layer(layer: caffe_pb2.LayerParameter) -> bool:
    """Whether ``layer`` is a data source: no bottoms, and a registered layer of role
    ``"input"`` (Data, ImageData, HDF5Data, Input, ...) or a Python layer (the data layers
    of fcn.berkeleyvision.org's nets are Python layers, which fcnkit never imports)."""
    if len(layer.bottom):
        return False
    from fcnkit.layers import lookup

    cls = lookup(layer.type)
    return cls is not None and cls.role == "input"  # Python: registered, role "input"


def feed_data_layers(param: caffe_pb2.NetParameter, shapes: Mapping[str, tuple]) -> caffe_pb2.NetParameter:
    """A copy of ``param`` whose data layers (:func:`is_data_layer`) are
    Input layers with the shapes of the dataset's batches.

    Args:
        param: a V2 NetParameter.
        shapes: top blob name -> batch shape, e.g. {"data": (N, C, H, W), "label": (N, 1, H, W)}.

    Raises:
        InputError: a data layer has a top the dataset does not provide.
    """
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    for layer in out.layer:
        if not is_data_layer(layer):
            continue
        missing = [t for t in layer.top if t not in shapes]
        if missing:
            raise InputError(f"layer '{layer.name}' ({layer.type}) has top(s) "
                             f"{', '.join(missing)} that the dataset does not provide (it gives "
                             f"{', '.join(shapes)}); name the tops data and label")
        kept = caffe_pb2.LayerParameter()
        kept.name, kept.type = layer.name, "Input"
        kept.top.extend(layer.top)
        kept.include.extend(layer.include)
        kept.exclude.extend(layer.exclude)
        for t in layer.top:
            kept.input_param.shape.add().dim.extend(int(d) for d in shapes[t])
        layer.CopyFrom(kept)
    return out


def compile_phase(param, path: str | None, phase: str, state_msg, shapes: Mapping[str, tuple],
                  weights=None, seed: int = 0):
    """Feed the data layers, filter the net for ``phase`` (+ the solver's train_state /
    test_state stages and level) and compile it.

    Returns:
        A :class:`fcnkit.compile.CompiledNet` in that phase.

    Raises:
        InputError, NetDefinitionError, WeightsError: as load_net / compile_net.
    """
    from fcnkit.caffe.prototxt import NetSource
    from fcnkit.compile import compile_net
    from fcnkit.graph import load_net

    fed = feed_data_layers(param, shapes)
    level = int(state_msg.level) if state_msg is not None else 0
    stages = list(state_msg.stage) if state_msg is not None else []
    source = NetSource(fed, path) if path else fed
    net = load_net(source, phase=phase, level=level, stages=stages)
    # caffe train --weights: fine-tuning leaves new layers as their fillers make them, and
    # zero-initialised ones are deliberate (fcn.berkeleyvision's score layers have no filler)
    return compile_net(net, weights, seed=seed, allow_missing_weights=True)


def loss_terms(compiled) -> list[tuple[str, float]]:
    """(output blob name, loss weight) of every top with a non-zero loss weight.

    Raises:
        NetDefinitionError: a weighted top is consumed by another layer (not an output).
    """
    terms = []
    for node in compiled.net.layers:
        for top, weight in zip(node.tops, node.layer.loss_weights()):
            if weight == 0:
                continue
            name = compiled.net.blob_name[top]
            if name not in compiled.outputs:
                raise NetDefinitionError(f"{node.where()}: its top '{name}' has loss weight "
                                         f"{weight} but is used by another layer; fcnkit sums "
                                         "only net outputs into the loss")
            terms.append((name, weight))
    return terms


def share_weights(test, train) -> None:
    """Caffe's ShareTrainedLayersWith: the test net's layers use the train net's tensors
    (same layer name)."""
    trained = {n.name for n in train.net.layers if n.layer.param_names()}
    for node in test.net.layers:
        if node.name not in trained or not node.layer.param_names():
            continue
        src, dst = layer_module(train, node.name), layer_module(test, node.name)
        for name, p in src.named_parameters(recurse=False):
            setattr(dst, name, p)
        for name, b in src.named_buffers(recurse=False):
            dst.register_buffer(name, b)


def scored_loss(compiled):
    """(score blob id, label blob id, classes, ignore_label) of the first loss layer over
    (N, C, H, W) or (N, C) scores with a label bottom, or None."""
    for node in compiled.net.layers:
        if node.role != "loss" or len(node.bottoms) != 2:
            continue
        shape = compiled.analysis.shapes[node.bottoms[0]]
        if len(shape) in (2, 4) and shape[1] > 1:
            return node.bottoms[0], node.bottoms[1], int(shape[1]), getattr(node.layer, "ignore_label", None)
    return None
