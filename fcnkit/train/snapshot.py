"""Snapshots as Caffe writes them (Solver::Snapshot, SGDSolver::SnapshotSolverStateToBinaryProto,
RestoreSolverStateFromBinaryProto in BVLC caffe src/caffe/solver.cpp and sgd_solver.cpp).

``PREFIX_iter_N.caffemodel``: the trained net (NetParameter with blobs, Caffe's binary
format, written by :func:`fcnkit.caffe.write_caffemodel`) and ``PREFIX_iter_N.solverstate``:
a SolverState message (``iter``, ``learned_net`` = the caffemodel's path, ``current_step``,
``history`` = one BlobProto per learnable param in Caffe's shape, then the second set of
AdaDelta/Adam). Both are written atomically, the caffemodel first, so a solverstate never
names a missing or partial caffemodel. Beside every caffemodel, when the training data
has a stretch, ``PREFIX_iter_N.preprocess.json`` (contracts.md) is written too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fcnkit.atomic import write_bytes, write_text
from fcnkit.caffe import caffe_pb2
from fcnkit.caffe.blobs import array_to_blob, blob_to_array
from fcnkit.errors import InputError

#: Largest solverstate fcnkit reads (bytes): history is at most twice the weights.
MAX_STATE_BYTES = 8 << 30


def snapshot_paths(prefix: str, it: int) -> tuple[Path, Path]:
    """(caffemodel, solverstate) paths of iteration ``it``: Caffe's ``PREFIX_iter_N``."""
    return Path(f"{prefix}_iter_{it}.caffemodel"), Path(f"{prefix}_iter_{it}.solverstate")


def _node_and_shapes(compiled, layer: str):
    node = compiled.net.layer(layer)
    return node, [compiled.analysis.shapes[b] for b in node.bottoms]


def history_to_caffe(compiled, param, tensor: torch.Tensor) -> np.ndarray:
    """One history tensor (torch layout of ``param``) -> array in Caffe's blob shape."""
    node, bshapes = _node_and_shapes(compiled, param.layer)
    shapes = node.layer.param_shapes(bshapes)
    names = node.layer.param_names()
    tensors = {n: np.zeros(s, np.float32) for n, s in zip(names, shapes)}
    tensors[param.torch_name] = tensor.detach().cpu().float().numpy()
    if not node.layer.learnable()[param.index]:  # statistics: Caffe layout is a reshape
        return tensors[param.torch_name].reshape(shapes[param.index])
    return node.layer.torch_to_params(tensors, bshapes)[param.index]


def history_from_caffe(compiled, param, array: np.ndarray, where: str) -> np.ndarray:
    """Inverse of :func:`history_to_caffe` (Caffe blob -> torch layout)."""
    node, bshapes = _node_and_shapes(compiled, param.layer)
    shapes = node.layer.param_shapes(bshapes)
    if int(np.prod(shapes[param.index])) != array.size:
        raise InputError(f"{where}: history of layer '{param.layer}' blob {param.index} has "
                         f"{array.size} values, the net needs {tuple(shapes[param.index])}; "
                         "the solverstate belongs to another net")
    if not node.layer.learnable()[param.index]:
        return array.reshape(tuple(param.tensor.shape))
    blobs = [np.zeros(s, np.float32) for s in shapes]
    blobs[param.index] = array.reshape(shapes[param.index])
    return node.layer.params_to_torch(blobs, bshapes)[param.torch_name]


def write_snapshot(compiled, solver, net_param, prefix: str,
                   preprocess_json: str | None = None) -> tuple[Path, Path]:
    """Write PREFIX_iter_N.caffemodel, .solverstate (and .preprocess.json) atomically.

    Args:
        compiled: the trained :class:`fcnkit.compile.CompiledNet`.
        solver: the :class:`fcnkit.train.solver.CaffeSolver` (iter, current_step, history).
        net_param: the NetParameter stored in the caffemodel (the net as trained).
        prefix: Caffe's ``snapshot_prefix`` (a path prefix, relative to the current folder).
        preprocess_json: text of the preprocess JSON (contracts.md), or None.

    Returns:
        (caffemodel path, solverstate path).

    Raises:
        OutputError: a file cannot be written (nothing partial is left behind).
    """
    from fcnkit.caffe import write_caffemodel
    from fcnkit.compile import export_blobs

    model_path, state_path = snapshot_paths(prefix, solver.iter)
    write_caffemodel(model_path, net_param, export_blobs(compiled))
    if preprocess_json is not None:
        write_text(Path(str(model_path)[: -len(".caffemodel")] + ".preprocess.json"),
                   preprocess_json)
    state = caffe_pb2.SolverState()
    state.iter = solver.iter
    state.learned_net = str(model_path)
    state.current_step = solver.current_step
    n = len(solver.params)
    for k, tensor in enumerate(solver.history):
        state.history.append(array_to_blob(history_to_caffe(compiled, solver.params[k % n], tensor)))
    write_bytes(state_path, state.SerializeToString())
    return model_path, state_path


def read_solverstate(path: str | Path) -> caffe_pb2.SolverState:
    """Parse a binary SolverState.

    Raises:
        InputError: missing, too large, or not a SolverState.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_STATE_BYTES:
            raise InputError(f"{path}: {size} bytes is larger than any solverstate fcnkit reads")
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read the solverstate ({e.strerror})") from None
    state = caffe_pb2.SolverState()
    try:
        state.ParseFromString(data)
    except Exception:  # protobuf's DecodeError: the file is not a SolverState
        raise InputError(f"{path}: not a binary Caffe SolverState (a truncated or foreign "
                         "file?); give a .solverstate written by fcnkit train or Caffe") from None
    return state


def learned_net_path(state, state_path: str | Path) -> Path:
    """The caffemodel a solverstate names: as written (Caffe: relative to the current
    folder), else beside the solverstate.

    Raises:
        InputError: the solverstate names no caffemodel, or it is missing.
    """
    if not state.learned_net:
        raise InputError(f"{state_path}: the solverstate names no caffemodel (learned_net); "
                         "give the weights with --weights")
    given = Path(state.learned_net)
    for candidate in (given, Path(state_path).parent / given.name):
        if candidate.is_file():
            return candidate
    raise InputError(f"{state_path}: its caffemodel '{state.learned_net}' is missing (looked "
                     f"there and beside the solverstate)")


def restore(state_path: str | Path, compiled, solver) -> Path:
    """Caffe's Solver::Restore: weights from ``learned_net``, iter, current_step, history.

    Returns:
        The caffemodel the weights were loaded from.

    Raises:
        InputError: unreadable state, missing caffemodel, or a history that does not fit
            the solver (another net or another solver type).
    """
    from fcnkit.compile.weights import initialise

    state = read_solverstate(state_path)
    if len(state.history) != len(solver.history):
        raise InputError(
            f"{state_path}: {len(state.history)} history blobs, but a {solver.solver.type} "
            f"solver of this net has {len(solver.history)}; the solverstate belongs to another "
            "net or solver type")
    model_path = learned_net_path(state, state_path)
    _load_weights(compiled, model_path, initialise)
    n = len(solver.params)
    with torch.no_grad():
        for k, blob in enumerate(state.history):
            param = solver.params[k % n]
            array = history_from_caffe(compiled, param, blob_to_array(blob, f"history {k}"),
                                       str(state_path))
            solver.history[k].copy_(torch.from_numpy(np.ascontiguousarray(array))
                                    .reshape(solver.history[k].shape))
    solver.iter, solver.current_step = int(state.iter), int(state.current_step)
    return model_path


def _load_weights(compiled, model_path: Path, initialise) -> None:
    """Copy the caffemodel's blobs into the compiled net (shared params stay tied)."""
    from fcnkit import caffe

    model = caffe.read_caffemodel(model_path)
    layers = [n for n in compiled.net.layers if n.role != "input"]
    from fcnkit.train.params import layer_module

    modules = {n.name: layer_module(compiled, n.name) for n in layers if n.layer.param_names()}
    blobs = {k: v for k, v in model.blobs.items() if k in modules}
    initialise(compiled.net, [n for n in layers if n.name in blobs], modules,
               compiled.analysis.shapes, blobs, 0, str(model_path))
