"""Inputs of ``fcnkit run`` / ``fcnkit verify``: ``.npy`` arrays matched to the net's input
blobs, the net compiled for their shapes, and the per-layer reference of ``verify``.

Nothing here unpickles: arrays are read with ``allow_pickle=False``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fcnkit.errors import InputError


def load_npy_inputs(specs: Sequence[str], input_names: Sequence[str]) -> dict[str, np.ndarray]:
    """{input blob name: float32 array} from ``--input`` specs: ``x.npy`` (the net's first
    input, or ``data``) or ``name=x.npy`` once per input.

    Raises:
        InputError: several specs without names, a missing file, or a file that is not a
            plain .npy array.
    """
    arrays = {}
    for spec in specs:
        if "=" in spec and not Path(spec).exists():
            name, _, path = spec.partition("=")
        else:
            if len(specs) > 1:
                raise InputError("with several --input options each must be name=file.npy")
            name, path = (input_names[0] if input_names else "data"), spec
        p = Path(path)
        if not p.is_file():
            raise InputError(f"input file {p} does not exist")
        try:
            arr = np.load(p, allow_pickle=False)
        except ValueError as e:
            raise InputError(f"{p}: not a plain .npy array ({e}); fcnkit never unpickles data") from None
        arrays[name] = np.ascontiguousarray(arr, dtype=np.float32)
    return arrays


def compile_for_inputs(net, weights: Any, inputs: dict[str, np.ndarray], deploy: bool):
    """The net compiled for the shapes of ``inputs`` (one array per net input), with the
    caffemodel ``weights`` (a path) or fillers.

    Raises:
        InputError: an array for a blob that is no input, or an input without an array.
        (and what :func:`fcnkit.compile.compile_net` raises)
    """
    from fcnkit import caffe
    from fcnkit.compile import compile_net

    names = [net.blob_name[b] for b in net.inputs]
    missing = [n for n in inputs if n not in names]
    if missing:
        raise InputError(f"--input names {missing}, but the net's inputs are {names}")
    model = caffe.read_caffemodel(weights) if weights else None
    shapes = {k: tuple(v.shape) for k, v in inputs.items()}
    compiled = compile_net(net, model, shapes, deploy=deploy)
    absent = [n for n in compiled.inputs if n not in inputs]
    if absent:
        raise InputError(f"the net has the inputs {compiled.inputs} but no array was given for "
                         f"{absent}; give each as --input name=file.npy")
    return compiled


def read_reference(path: Path) -> dict[str, np.ndarray]:
    """The per-layer reference of ``fcnkit verify``: an ``.npz`` keyed by layer name.

    Raises:
        InputError: unreadable, or a single ``.npy`` array.
    """
    try:
        ref = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read the reference npz ({e})") from None
    if not isinstance(ref, np.lib.npyio.NpzFile):
        raise InputError(f"{path}: is one array (.npy), not an .npz of per-layer outputs "
                         "keyed by layer name (np.savez(path, conv1=..., pool1=...))")
    return dict(ref)
