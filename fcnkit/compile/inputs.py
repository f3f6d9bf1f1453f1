"""Inputs of ``fcnkit run`` / ``fcnkit verify``: the net compiled for the shapes of the input
arrays (read and checked by :mod:`fcnkit.compile.input_files`), and the per-layer reference
of ``verify``.

Nothing here unpickles: arrays are read by :mod:`fcnkit.npyio` (header checked first, numeric
dtypes only, size within the memory limit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fcnkit.errors import InputError
from fcnkit.npyio import is_npy, read_npz


def compile_for_inputs(net, weights: Any, inputs: dict[str, np.ndarray], deploy: bool,
                       allow_missing_weights: bool = False):
    """The net compiled for the shapes of ``inputs`` (one array per net input), with the
    caffemodel ``weights`` (a path) or fillers.

    Raises:
        InputError: an array for a blob that is no input, or an input without an array.
        WeightsError: see ``allow_missing_weights`` of :func:`fcnkit.compile.compile_net`
        (and what :func:`fcnkit.compile.compile_net` raises)
    """
    from fcnkit.compile import compile_net

    names = [net.blob_name[b] for b in net.inputs]
    missing = [n for n in inputs if n not in names]
    if missing:
        raise InputError(f"--input names {missing}, but the net's inputs are {names}")
    shapes = {k: tuple(v.shape) for k, v in inputs.items()}
    # the path, not a CaffeModel: compile_net then holds the weights once (no copy)
    compiled = compile_net(net, weights or None, shapes, deploy=deploy,
                           allow_missing_weights=allow_missing_weights)
    absent = [n for n in compiled.inputs if n not in inputs]
    if absent:
        raise InputError(f"the net has the inputs {compiled.inputs} but no array was given for "
                         f"{absent}; give each as --input name=file.npy")
    return compiled


def read_reference(path: Path) -> dict[str, np.ndarray]:
    """The per-layer reference of ``fcnkit verify``: an ``.npz`` keyed by layer name or by
    blob name (:mod:`fcnkit.compile.verify`).

    Raises:
        InputError: unreadable, not a zip of numeric .npy arrays, or a single ``.npy`` array;
        LimitError: the arrays exceed the memory limit.
    """
    if is_npy(path):
        raise InputError(f"{path}: is one array (.npy), not an .npz of per-layer outputs "
                         "keyed by layer or blob name (np.savez(path, conv1=..., pool1=...))")
    return read_npz(path)
