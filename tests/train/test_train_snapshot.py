"""Acceptance 2: snapshots (Caffe's files) and exact resume; SIGINT; atomic writes."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from fcnkit.caffe import caffe_pb2
from fcnkit.caffe.prototxt import parse_prototxt
from fcnkit.caffe.solver import parse_solver
from fcnkit.cli.main import main
from fcnkit.errors import InputError, OutputError
from fcnkit.train.loop import ListSource, Trainer, TrainOptions
from fcnkit.train.nets import compile_phase
from tests.train._nets import SMALL_NET, data_stream

NET = parse_prototxt(SMALL_NET).param


def make_trainer(solver_text: str, prefix, **options):
    s = parse_solver(solver_text + f' snapshot_prefix: "{prefix}"')
    source = ListSource([{"data": torch.tensor(d, dtype=torch.float32),
                          "label": torch.tensor(l, dtype=torch.float32)}
                         for d, l in data_stream(8)])
    compiled = compile_phase(NET, None, "TRAIN", None, source.shapes, seed=5)
    return Trainer(s, compiled, NET, source, options=TrainOptions(log=lambda m: None, **options))


def weights(trainer):
    return [p.tensor.detach().clone() for p in trainer.params]


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
def test_resume_ten_plus_ten_equals_twenty(tmp_path, kind):
    solver = (f'type: "{kind}" base_lr: 0.01 lr_policy: "step" gamma: 0.5 stepsize: 6 '
              'momentum: 0.9 weight_decay: 0.001 iter_size: 2 max_iter: 20 snapshot: 10')
    straight = make_trainer(solver, tmp_path / "a")
    result = straight.solve()
    assert [p[0].name for p in result.snapshots] == ["a_iter_10.caffemodel", "a_iter_20.caffemodel"]

    resumed = make_trainer(solver, tmp_path / "b")
    resumed.solve(resume=tmp_path / "a_iter_10.solverstate")
    assert resumed.solver.iter == 20
    for x, y in zip(weights(straight), weights(resumed)):
        assert torch.equal(x, y)
    for x, y in zip(straight.solver.history, resumed.solver.history):
        assert torch.equal(x, y)

    # protobuf's own parser reads both files; the history has Caffe's count and shapes
    state = caffe_pb2.SolverState()
    state.ParseFromString((tmp_path / "a_iter_20.solverstate").read_bytes())
    assert state.iter == 20 and state.learned_net.endswith("a_iter_20.caffemodel")
    assert state.current_step == 3
    assert len(state.history) == (12 if kind == "Adam" else 6)
    assert list(state.history[4].shape.dim) == [3, 12]  # ip weight (num_output, K)
    model = caffe_pb2.NetParameter()
    model.ParseFromString((tmp_path / "a_iter_20.caffemodel").read_bytes())
    ip = next(layer for layer in model.layer if layer.name == "ip")
    assert np.allclose(np.array(ip.blobs[0].data).reshape(3, 12),
                       straight.train.module.ip.weight.detach().numpy())


def test_snapshot_loads_in_compile(tmp_path, capsys):
    trainer = make_trainer('base_lr: 0.01 lr_policy: "fixed" max_iter: 3', tmp_path / "s")
    trainer.solve()
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(SMALL_NET)
    assert main(["compile", str(deploy), "-w", str(tmp_path / "s_iter_3.caffemodel")]) == 0
    assert "ip" in capsys.readouterr().out


def test_sigint_writes_a_snapshot_and_stops(tmp_path):
    def interrupt(it):
        if it == 4:
            os.kill(os.getpid(), signal.SIGINT)

    trainer = make_trainer('base_lr: 0.01 lr_policy: "fixed" max_iter: 50 snapshot_after_train: false',
                           tmp_path / "i", on_iter=interrupt)
    result = trainer.solve()
    assert result.stopped == "SIGINT" and result.iter == 4
    assert (tmp_path / "i_iter_4.caffemodel").is_file()
    assert (tmp_path / "i_iter_4.solverstate").is_file()


def test_failed_snapshot_leaves_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    trainer = make_trainer('base_lr: 0.01 lr_policy: "fixed" max_iter: 2', blocker / "p")
    with pytest.raises(OutputError):
        trainer.solve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_bad_solverstate_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.solverstate"
    bad.write_bytes(b"\xff\xff\xff")
    trainer = make_trainer('base_lr: 0.01 lr_policy: "fixed" max_iter: 2', tmp_path / "p")
    with pytest.raises(InputError, match="not a binary Caffe SolverState"):
        trainer.solve(resume=bad)
    make_trainer('base_lr: 0.01 lr_policy: "fixed" max_iter: 2', tmp_path / "sgd").solve()
    adam = make_trainer('type: "Adam" base_lr: 0.01 lr_policy: "fixed" max_iter: 4', tmp_path / "r")
    with pytest.raises(InputError, match="6 history blobs, but a Adam solver of this net has 12"):
        adam.solve(resume=tmp_path / "sgd_iter_2.solverstate")


def test_weights_initialise_from_a_snapshot(tmp_path):
    first = make_trainer('base_lr: 0.01 lr_policy: "fixed" max_iter: 3', tmp_path / "w")
    first.solve()
    s = parse_solver('base_lr: 0.01 lr_policy: "fixed" max_iter: 0')
    source = ListSource([{"data": torch.zeros(2, 3, 6, 6), "label": torch.zeros(2)}])
    compiled = compile_phase(NET, None, "TRAIN", None, source.shapes,
                             weights=tmp_path / "w_iter_3.caffemodel", seed=99)
    assert compiled.weights.loaded == ["conv1", "conv2", "ip"]
    for p, q in zip(first.params, Trainer(s, compiled, NET, source).params):
        assert torch.equal(p.tensor, q.tensor)


def test_channels_last_trains_like_contiguous(tmp_path):
    solver = 'type: "SGD" base_lr: 0.01 momentum: 0.9 lr_policy: "fixed" max_iter: 4'
    plain = make_trainer(solver, tmp_path / "a")
    plain.solve()
    nhwc = make_trainer(solver, tmp_path / "b", channels_last=True)
    nhwc.solve()
    for x, y in zip(weights(plain), weights(nhwc)):
        assert torch.allclose(x, y, rtol=1e-5, atol=1e-6)


def test_embedded_v1_net_is_upgraded_and_blobs_lr_becomes_lr_mult(tmp_path):
    from fcnkit.train.nets import compile_phase as compile_
    from fcnkit.train.nets import train_net_param
    from fcnkit.train.params import learnable_params
    from fcnkit.train.run import train_from_solver

    text = ('net_param { input: "data" input_shape { dim: 2 dim: 3 dim: 6 dim: 6 } '
            'input: "label" input_shape { dim: 2 } '
            'layers { name: "ip" type: INNER_PRODUCT bottom: "data" top: "ip" blobs_lr: 2 '
            'blobs_lr: 1 weight_decay: 0 weight_decay: 1 inner_product_param { num_output: 3 '
            'weight_filler { type: "gaussian" std: 0.1 } } } '
            'layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip" bottom: "label" top: "loss" } } '
            f'base_lr: 0.01 lr_policy: "fixed" max_iter: 2 snapshot_prefix: "{tmp_path / "v1"}"')
    solver_path = tmp_path / "solver.prototxt"
    solver_path.write_text(text)
    source = ListSource([{"data": torch.ones(2, 3, 6, 6), "label": torch.tensor([0.0, 2.0])}])
    param, _ = train_net_param(parse_solver(text))
    params = learnable_params(compile_(param, None, "TRAIN", None, source.shapes))
    assert [(p.layer, p.lr_mult, p.decay_mult) for p in params] == [("ip", 2.0, 0.0), ("ip", 1.0, 1.0)]
    result = train_from_solver(solver_path, source=source, options=TrainOptions(log=lambda m: None))
    assert result.iter == 2 and (tmp_path / "v1_iter_2.caffemodel").is_file()


def test_patience_stops_when_the_test_loss_does_not_improve(tmp_path):
    from fcnkit.train.loop import TestNet

    s = parse_solver('base_lr: 0 lr_policy: "fixed" max_iter: 20 test_interval: 2 test_iter: 1 '
                     f'snapshot_prefix: "{tmp_path / "p"}"')
    source = ListSource([{"data": torch.ones(2, 3, 6, 6), "label": torch.tensor([0.0, 1.0])}])
    train = compile_phase(NET, None, "TRAIN", None, source.shapes)
    test = compile_phase(NET, None, "TEST", None, source.shapes)
    trainer = Trainer(s, train, NET, source, [TestNet(test, source, 1)],
                      TrainOptions(log=lambda m: None, patience=1))
    result = trainer.solve()
    assert result.stopped == "patience" and result.iter == 2
    assert [it for it, _ in result.tests] == [0, 2]
    assert (tmp_path / "p_iter_2.caffemodel").is_file()
