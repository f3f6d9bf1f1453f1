"""Acceptance 1: fcnkit's solvers equal a NumPy transcription of Caffe's update rules.

The transcription below is written from Caffe's sources (src/caffe/solvers/*.cpp,
SGDSolver::ApplyUpdate / GetLearningRate), independently of fcnkit.train. Gradients of
the test net come from a plain torch.nn.functional forward written here (not the
compiled module), so only the network's weights are shared with the code under test.
Everything runs in float64 so that 20 iterations compare to 1e-6 relative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fcnkit.caffe.solver import parse_solver
from fcnkit.caffe.prototxt import parse_prototxt
from fcnkit.compile import compile_net
from fcnkit.errors import InputError, NetDefinitionError
from fcnkit.graph import load_net
from fcnkit.train.params import learnable_params
from fcnkit.train.solver import CaffeSolver
from tests.train._nets import SMALL_NET, data_stream

ITERS = 20
CLIPPED: list[int] = []  # iterations at which the transcription clipped
ORDER = [("conv1", "weight"), ("conv1", "bias"), ("conv2", "weight"), ("conv2", "bias"),
         ("ip", "weight"), ("ip", "bias")]
LR_MULT = [1, 1, 1, 0, 2, 1]
DECAY_MULT = [1, 1, 2, 1, 0, 1]


def reference_grads(w: list[np.ndarray], data, label) -> list[np.ndarray]:
    """Gradients of the SMALL_NET loss (SoftmaxWithLoss, VALID normalisation) in float64."""
    t = [torch.tensor(a, requires_grad=True) for a in w]
    x = F.relu(F.conv2d(torch.tensor(data), t[0], t[1], padding=1))
    x = F.conv2d(x, t[2], t[3], stride=2)
    logits = F.linear(x.flatten(1), t[4], t[5])
    loss = F.cross_entropy(logits, torch.tensor(label).long(), reduction="mean")
    return [g.numpy() for g in torch.autograd.grad(loss, t)]


def reference_rate(s, it: int, step: int) -> tuple[float, int]:
    """GetLearningRate (sgd_solver.cpp)."""
    base, gamma, power = s.base_lr, s.gamma, s.power
    if s.lr_policy == "fixed":
        return base, step
    if s.lr_policy == "step":
        step = it // s.stepsize
        return base * math.pow(gamma, step), step
    if s.lr_policy == "exp":
        return base * math.pow(gamma, it), step
    if s.lr_policy == "inv":
        return base * math.pow(1 + gamma * it, -power), step
    if s.lr_policy == "multistep":
        if step < len(s.stepvalue) and it >= s.stepvalue[step]:
            step += 1
        return base * math.pow(gamma, step), step
    if s.lr_policy == "poly":
        return base * math.pow(1 - it / s.max_iter, power), step
    return base / (1 + math.exp(-gamma * (it - s.stepsize))), step


def reference_run(s, w0, batches):
    """Caffe's Solver::Step + SGDSolver::ApplyUpdate + ComputeUpdateValue, in NumPy."""
    w = [a.copy() for a in w0]
    n = len(w)
    hist = [np.zeros_like(a) for a in w] * 1 + [np.zeros_like(a) for a in w]
    step = 0
    for it in range(ITERS):
        diff = [np.zeros_like(a) for a in w]
        for k in range(s.iter_size):
            data, label = batches[it * s.iter_size + k]
            for i, g in enumerate(reference_grads(w, data, label)):
                if LR_MULT[i] != 0:  # param_propagate_down false: diff stays 0
                    diff[i] += g
        rate, step = reference_rate(s, it, step)
        if s.clip_gradients >= 0:  # ClipGradients, before Normalize
            norm = math.sqrt(sum(float((d * d).sum()) for d in diff))
            if norm > s.clip_gradients:
                CLIPPED.append(it)
                diff = [d * (s.clip_gradients / norm) for d in diff]
        for i in range(n):
            d = diff[i] / s.iter_size
            decay = s.weight_decay * DECAY_MULT[i]
            if decay:
                d = d + decay * (w[i] if s.regularization_type == "L2" else np.sign(w[i]))
            lr = rate * LR_MULT[i]
            h, h2 = hist[i], hist[n + i]
            if s.type == "SGD":
                h[...] = s.momentum * h + lr * d
                u = h.copy()
            elif s.type == "Nesterov":
                prev = h.copy()
                h[...] = s.momentum * h + lr * d
                u = (1 + s.momentum) * h - s.momentum * prev
            elif s.type == "AdaGrad":
                h += d * d
                u = lr * d / (np.sqrt(h) + s.delta)
            elif s.type == "RMSProp":
                h[...] = s.rms_decay * h + (1 - s.rms_decay) * d * d
                u = lr * d / (np.sqrt(h) + s.delta)
            elif s.type == "AdaDelta":
                h[...] = s.momentum * h + (1 - s.momentum) * d * d
                upd = d * np.sqrt((s.delta + h2) / (s.delta + h))
                h2[...] = s.momentum * h2 + (1 - s.momentum) * upd * upd
                u = lr * upd
            else:  # Adam
                t = it + 1
                corr = math.sqrt(1 - s.momentum2 ** t) / (1 - s.momentum ** t)
                h[...] = s.momentum * h + (1 - s.momentum) * d
                h2[...] = s.momentum2 * h2 + (1 - s.momentum2) * d * d
                u = lr * corr * h / (np.sqrt(h2) + s.delta)
            w[i] = w[i] - u
    return w


def fcnkit_run(s, batches):
    """The code under test: compiled SMALL_NET (float64) + CaffeSolver."""
    net = load_net(parse_prototxt(SMALL_NET), phase="TRAIN")
    compiled = compile_net(net, seed=3)
    compiled.module.double()
    params = learnable_params(compiled)
    w0 = [p.tensor.detach().numpy().copy() for p in params]
    solver = CaffeSolver(s, params)
    for it in range(ITERS):
        for p in params:
            p.tensor.grad = None
        for k in range(s.iter_size):
            data, label = batches[it * s.iter_size + k]
            out = compiled.module(torch.tensor(data), torch.tensor(label))
            out["loss"].backward()
        solver.apply_update()
    return w0, [p.tensor.detach().numpy() for p in params], solver


CASES = {
    "sgd-fixed": 'type: "SGD" lr_policy: "fixed" base_lr: 0.01 momentum: 0.9 weight_decay: 0.01',
    "sgd-step-mid": 'type: "SGD" lr_policy: "step" base_lr: 0.01 gamma: 0.1 stepsize: 10 '
                    'momentum: 0.9 weight_decay: 0.005',
    "sgd-exp": 'lr_policy: "exp" base_lr: 0.01 gamma: 0.95 momentum: 0.8',
    "sgd-inv": 'lr_policy: "inv" base_lr: 0.01 gamma: 0.1 power: 0.75 momentum: 0.9',
    "sgd-multistep": 'lr_policy: "multistep" base_lr: 0.01 gamma: 0.5 stepvalue: 5 '
                     'stepvalue: 12 momentum: 0.9',
    "sgd-poly": 'lr_policy: "poly" base_lr: 0.01 power: 0.9 momentum: 0.9',
    "sgd-sigmoid": 'lr_policy: "sigmoid" base_lr: 0.01 gamma: -0.3 stepsize: 10 momentum: 0.9',
    "sgd-l1": 'lr_policy: "fixed" base_lr: 0.01 momentum: 0.9 weight_decay: 0.01 '
              'regularization_type: "L1"',
    "sgd-iter_size2": 'lr_policy: "step" base_lr: 0.01 gamma: 0.5 stepsize: 7 momentum: 0.9 '
                      'weight_decay: 0.001 iter_size: 2',
    "sgd-clip": 'lr_policy: "fixed" base_lr: 0.05 momentum: 0.9 clip_gradients: 0.1 iter_size: 2',
    "nesterov": 'type: "Nesterov" lr_policy: "step" base_lr: 0.01 gamma: 0.1 stepsize: 10 '
                'momentum: 0.95 weight_decay: 0.01',
    "adagrad": 'type: "AdaGrad" lr_policy: "fixed" base_lr: 0.05 weight_decay: 0.01 delta: 1e-6',
    "rmsprop": 'type: "RMSProp" lr_policy: "step" base_lr: 0.01 gamma: 0.5 stepsize: 10 '
               'rms_decay: 0.95 weight_decay: 0.01',
    "adadelta": 'type: "AdaDelta" lr_policy: "fixed" base_lr: 1.0 momentum: 0.95 delta: 1e-6 '
                'weight_decay: 0.01',
    "adam": 'type: "Adam" lr_policy: "step" base_lr: 0.01 gamma: 0.5 stepsize: 10 momentum: 0.9 '
            'momentum2: 0.999 weight_decay: 0.005 clip_gradients: 1.0',
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_solver_matches_caffe_transcription(case):
    torch.set_default_dtype(torch.float32)
    s = parse_solver(CASES[case] + (" max_iter: 25" if "poly" in case else ""))
    batches = data_stream(ITERS * s.iter_size)
    CLIPPED.clear()
    w0, got, solver = fcnkit_run(s, batches)
    want = reference_run(s, w0, batches)
    for (layer, name), g, e, a0 in zip(ORDER, got, want, w0):
        scale = max(float(np.abs(e).max()), 1e-12)
        assert float(np.abs(g - e).max()) / scale <= 1e-6, (case, layer, name)
    assert np.array_equal(got[3], w0[3]), "lr_mult 0 must freeze conv2's bias"
    assert not np.allclose(got[0], w0[0]), "weights must have moved"
    assert solver.iter == ITERS
    if s.clip_gradients >= 0:
        assert CLIPPED, "the clip threshold must be reached in this case"


def test_unknown_solver_type_and_policy_are_clear_errors():
    net = load_net(parse_prototxt(SMALL_NET), phase="TRAIN")
    params = learnable_params(compile_net(net))
    with pytest.raises(InputError, match="unknown solver type 'Adamax'"):
        CaffeSolver(parse_solver('type: "Adamax" lr_policy: "fixed"'), params)
    with pytest.raises(InputError, match="unknown lr_policy 'cosine'"):
        CaffeSolver(parse_solver('lr_policy: "cosine"'), params)
    with pytest.raises(InputError, match="momentum cannot be used with AdaGrad"):
        CaffeSolver(parse_solver('type: "AdaGrad" lr_policy: "fixed" momentum: 0.9'), params)


SHARED = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } } }
layer { name: "a" type: "Convolution" bottom: "data" top: "a" param { name: "w" lr_mult: 3 }
  convolution_param { num_output: 2 kernel_size: 1 bias_term: false weight_filler { type: "gaussian" } } }
layer { name: "b" type: "Convolution" bottom: "a" top: "b" param { name: "w" %s }
  convolution_param { num_output: 2 kernel_size: 1 bias_term: false weight_filler { type: "gaussian" } } }
"""


def test_shared_params_are_one_blob_with_summed_gradient():
    compiled = compile_net(load_net(parse_prototxt(SHARED % ""), phase="TRAIN"))
    params = learnable_params(compiled)
    assert [(p.layer, p.lr_mult, p.sharers) for p in params] == [("a", 3.0, (("b", "weight"),))]
    a, b = compiled.module.a, compiled.module.b
    assert a.weight is b.weight
    x = torch.randn(1, 2, 4, 4)
    compiled.module(x)["b"].sum().backward()
    w = a.weight.detach().clone().requires_grad_(True)
    F.conv2d(F.conv2d(x, w), w).sum().backward()
    assert torch.allclose(a.weight.grad, w.grad, rtol=1e-6)


def test_shared_params_with_different_lr_mult_are_refused():
    with pytest.raises(NetDefinitionError, match="shared param 'w' has lr_mult 1.0 here"):
        learnable_params(compile_net(load_net(parse_prototxt(SHARED % "lr_mult: 1"),
                                              phase="TRAIN")))
