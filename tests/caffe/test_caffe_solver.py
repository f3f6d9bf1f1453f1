"""Solver prototxt reading (fcnkit.caffe.solver)."""

from __future__ import annotations

import pytest

from fcnkit.caffe import parse_solver, read_solver
from fcnkit.errors import CaffeFormatError, UpgradeError

SOLVER = """# FCN-style solver
net: "train.prototxt"
test_iter: 736
test_interval: 999999999
display: 20
average_loss: 20
lr_policy: "fixed"
base_lr: 1e-10
momentum: 0.99
iter_size: 1
max_iter: 100000
weight_decay: 0.0005
snapshot: 4000
snapshot_prefix: "snapshot/train"
test_initialization: false
"""


def test_read_solver(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text(SOLVER)
    solver = read_solver(path)
    assert solver.net == "train.prototxt"
    assert list(solver.test_iter) == [736]
    assert solver.base_lr == pytest.approx(1e-10)
    assert solver.lr_policy == "fixed" and solver.momentum == pytest.approx(0.99)
    assert not solver.test_initialization
    assert solver.type == "SGD" and not solver.HasField("type")


def test_legacy_solver_type_is_upgraded():
    solver = parse_solver('solver_type: ADAM\nbase_lr: 0.001\nmomentum2: 0.999')
    assert solver.type == "Adam" and not solver.HasField("solver_type")
    solver = parse_solver("solver_type: NESTEROV")
    assert solver.type == "Nesterov"


def test_solver_type_and_type_together_are_refused():
    with pytest.raises(UpgradeError, match="solver_type"):
        parse_solver('solver_type: SGD\ntype: "Adam"', "s.prototxt")


def test_solver_errors_have_positions(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text('base_lr: 0.01\nlr_polcy: "step"\n')
    with pytest.raises(CaffeFormatError) as info:
        read_solver(path)
    assert (info.value.line, info.value.column) == (2, 1)
    assert "unknown field 'lr_polcy' in SolverParameter" in str(info.value)
    assert "did you mean 'lr_policy'?" in str(info.value)
    with pytest.raises(CaffeFormatError, match="not found"):
        read_solver(tmp_path / "missing.prototxt")
