"""Caffe's solvers in PyTorch: SGDSolver::ApplyUpdate and each solver's ComputeUpdateValue
(BVLC caffe src/caffe/solvers/sgd_solver.cpp, nesterov_solver.cpp, adagrad_solver.cpp,
rmsprop_solver.cpp, adadelta_solver.cpp, adam_solver.cpp).

One update (iteration ``it``), with ``g`` the summed gradient of the ``iter_size``
forward/backward passes:

1. ``rate`` from the lr policy (:mod:`fcnkit.train.lr_policy`).
2. ClipGradients: if ``clip_gradients >= 0`` and the L2 norm of all gradients (before the
   iter_size division) exceeds it, every gradient is scaled by clip / norm.
3. Normalize: ``g /= iter_size``.
4. Regularize: ``g += weight_decay * decay_mult * w`` (L2) or ``* sign(w)`` (L1).
5. ComputeUpdateValue with ``lr = rate * lr_mult``:
   SGD       ``v = m v + lr g``;  ``u = v``
   Nesterov  ``v' = m v + lr g``;  ``u = (1 + m) v' - m v``
   AdaGrad   ``h += g^2``;  ``u = lr g / (sqrt(h) + delta)``
   RMSProp   ``h = d h + (1 - d) g^2`` (d = rms_decay);  ``u = lr g / (sqrt(h) + delta)``
   AdaDelta  ``h = m h + (1 - m) g^2``;  ``s = g sqrt((delta + h2) / (delta + h))``;
             ``h2 = m h2 + (1 - m) s^2``;  ``u = lr s``
   Adam      ``m1 = b1 m1 + (1 - b1) g``;  ``m2 = b2 m2 + (1 - b2) g^2``;
             ``u = lr sqrt(1 - b2^t) / (1 - b1^t) * m1 / (sqrt(m2) + delta)``, t = it + 1
6. ``w -= u``.

Differences from torch.optim (why these are not torch's optimizers):

- SGD: torch keeps ``v = m v + g`` and steps ``w -= lr v``; Caffe folds the learning rate
  into the history (``v = m v + lr g``, ``w -= v``). Equal while lr is constant, different
  after every lr change (a step of the policy). torch's ``dampening`` has no Caffe analogue.
- Nesterov: torch steps ``w -= lr (g + m v)``; Caffe's ``(1 + m) v' - m v`` with lr folded in.
- AdaGrad: torch has ``lr_decay`` and ``initial_accumulator_value`` (Caffe: none, 0); the
  same formula otherwise, eps outside the sqrt in both.
- RMSProp: torch's ``alpha`` is Caffe's ``rms_decay``; Caffe forbids momentum; torch adds
  eps outside the sqrt too, but has ``centered`` / momentum variants Caffe lacks.
- AdaDelta: torch applies ``lr`` to the step but accumulates the unscaled step in h2, as
  Caffe; torch's eps default 1e-6 vs Caffe's ``delta`` default 1e-8 (same formula).
- Adam: torch divides by ``sqrt(m2 / (1 - b2^t)) + eps`` (eps added after the bias
  correction); Caffe uses ``sqrt(m2) + delta`` and folds the correction into the rate,
  so the effective epsilon differs by the factor sqrt(1 - b2^t).
- Weight decay: Caffe adds it to the gradient (as torch's ``weight_decay``, not AdamW),
  scaled per blob by decay_mult, and supports L1; clipping happens before the decay and
  before the iter_size division; torch's ``clip_grad_norm_`` is usually called on the
  final gradient.
- Every blob has its own lr_mult/decay_mult (torch: param groups).
"""

from __future__ import annotations

import math

import torch

from fcnkit.errors import InputError
from fcnkit.train.lr_policy import check_policy, learning_rate

SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")
#: Solvers with a second history set (Caffe's AdaDeltaPreSolve / AdamPreSolve).
_TWO_HISTORIES = ("AdaDelta", "Adam")


def check_solver(solver, where: str = "solver") -> None:
    """Check the solver type, its momentum constraints, regularization and lr policy.

    Raises:
        InputError: unknown ``type`` or ``regularization_type``, momentum given to
            AdaGrad/RMSProp (Caffe refuses it), iter_size < 1, or a bad lr_policy.
    """
    if solver.type not in SOLVER_TYPES:
        raise InputError(f"{where}: unknown solver type '{solver.type}'; Caffe's types are "
                         f"{', '.join(SOLVER_TYPES)}")
    if solver.type in ("AdaGrad", "RMSProp") and solver.momentum != 0:
        raise InputError(f"{where}: momentum cannot be used with {solver.type} (Caffe refuses "
                         "it); remove `momentum`")
    if solver.regularization_type not in ("L1", "L2"):
        raise InputError(f"{where}: unknown regularization_type "
                         f"'{solver.regularization_type}'; use L2 or L1")
    if solver.iter_size < 1:
        raise InputError(f"{where}: iter_size must be at least 1, got {solver.iter_size}")
    check_policy(solver, where)


class CaffeSolver:
    """Caffe's update rules over a list of :class:`fcnkit.train.params.LearnableParam`.

    Gradients are read from ``param.tensor.grad`` (None counts as zeros, as Caffe's
    cleared diff); the update is applied in place to trainable tensors.

    Attributes:
        iter: Caffe's ``iter_`` (updates applied so far).
        current_step: Caffe's ``current_step_`` (lr policy state, saved in solverstate).
        history: Caffe's ``history_``: one tensor per param (torch layout), then a second
            set for AdaDelta (update history) and Adam (second moment).
    """

    def __init__(self, solver, params, where: str = "solver"):
        check_solver(solver, where)
        self.solver, self.params = solver, list(params)
        self.iter, self.current_step = 0, 0
        sets = 2 if solver.type in _TWO_HISTORIES else 1
        self.history = [torch.zeros_like(p.tensor, memory_format=torch.contiguous_format)
                        for _ in range(sets) for p in self.params]

    def rate(self) -> float:
        """Learning rate of the current iteration (advances ``current_step`` as Caffe)."""
        rate, self.current_step = learning_rate(self.solver, self.iter, self.current_step)
        return rate

    @torch.no_grad()
    def apply_update(self) -> float:
        """Caffe's ApplyUpdate, then ``iter += 1`` (Solver::Step). Returns the rate used."""
        rate = self.rate()
        grads = [p.tensor.grad if p.tensor.grad is not None else torch.zeros_like(p.tensor)
                 for p in self.params]
        self._clip(grads)
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if self.solver.iter_size > 1:
                g = g * (1.0 / self.solver.iter_size)
            g = self._regularize(p, g)
            update = self._update_value(i, g, rate * p.lr_mult)
            if p.trainable:
                p.tensor.sub_(update)
        self.iter += 1
        return rate

    def _clip(self, grads) -> None:
        clip = float(self.solver.clip_gradients)
        if clip < 0:
            return
        norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
        if norm > clip:
            for g in grads:
                g.mul_(clip / norm)

    def _regularize(self, p, g):
        decay = float(self.solver.weight_decay) * p.decay_mult
        if not decay:
            return g
        w = p.tensor.detach()
        if self.solver.regularization_type == "L2":
            return g + decay * w
        return g + decay * torch.sign(w)

    def _update_value(self, i: int, g, lr: float):
        s, kind = self.solver, self.solver.type
        h = self.history[i]
        if kind in ("SGD", "Nesterov"):
            m = float(s.momentum)
            if kind == "SGD":
                h.mul_(m).add_(g, alpha=lr)
                return h.clone()
            previous = h.clone()
            h.mul_(m).add_(g, alpha=lr)
            return (1 + m) * h - m * previous
        delta = float(s.delta)
        if kind in ("AdaGrad", "RMSProp"):
            if kind == "AdaGrad":
                h.add_(g * g)
            else:
                d = float(s.rms_decay)
                h.mul_(d).add_(g * g, alpha=1 - d)
            return lr * (g / (torch.sqrt(h) + delta))
        h2 = self.history[len(self.params) + i]
        if kind == "AdaDelta":
            m = float(s.momentum)
            h.mul_(m).add_(g * g, alpha=1 - m)
            step = g * torch.sqrt((delta + h2) / (delta + h))
            h2.mul_(m).add_(step * step, alpha=1 - m)
            return lr * step
        b1, b2, t = float(s.momentum), float(s.momentum2), self.iter + 1
        correction = math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        h.mul_(b1).add_(g, alpha=1 - b1)
        h2.mul_(b2).add_(g * g, alpha=1 - b2)
        return (lr * correction) * (h / (torch.sqrt(h2) + delta))
