"""Read solver prototxt files (text SolverParameter).

Follows Caffe's ReadSolverParamsFromTextFileOrDie (src/caffe/util/upgrade_proto.cpp): parse
strictly, then UpgradeSolverAsNeeded (legacy enum ``solver_type`` -> string ``type``).
Nets embedded in the solver (``net_param``, ``train_net_param``, ``test_net_param``) are left
as written, as Caffe's solver does.
"""

from __future__ import annotations

from pathlib import Path

from fcnkit.caffe import caffe_pb2
from fcnkit.caffe.textformat import parse_text, read_text_file
from fcnkit.caffe.upgrade import upgrade_solver


def parse_solver(text: str, path: str | Path | None = None) -> caffe_pb2.SolverParameter:
    """Parse solver prototxt text.

    Returns:
        The SolverParameter, with ``solver_type`` upgraded to ``type``.

    Raises:
        CaffeFormatError: syntax error or unknown field (with line and column).
        UpgradeError: both ``solver_type`` and ``type`` are set.
    """
    solver = caffe_pb2.SolverParameter()
    parse_text(text, solver, None if path is None else str(path))
    upgrade_solver(solver, None if path is None else str(path))
    return solver


def read_solver(path: str | Path) -> caffe_pb2.SolverParameter:
    """Read a solver prototxt file; see :func:`parse_solver`.

    Raises:
        CaffeFormatError: the file cannot be read or does not parse.
        UpgradeError: both ``solver_type`` and ``type`` are set.
    """
    return parse_solver(read_text_file(path), path)
