"""Caffe's learning-rate policies (SGDSolver::GetLearningRate, src/caffe/solvers/sgd_solver.cpp).

With ``it`` the current iteration (0-based, the one about to be applied):

- fixed:     base_lr
- step:      base_lr * gamma ^ floor(it / stepsize)
- exp:       base_lr * gamma ^ it
- inv:       base_lr * (1 + gamma * it) ^ (-power)
- multistep: base_lr * gamma ^ current_step, where current_step advances by at most one
             per call once ``it >= stepvalue[current_step]`` (Caffe keeps it in the
             solverstate, so it is state, not a function of ``it``)
- poly:      base_lr * (1 - it / max_iter) ^ power
- sigmoid:   base_lr * 1 / (1 + exp(-gamma * (it - stepsize)))
"""

from __future__ import annotations

import math

from fcnkit.errors import InputError

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")


def check_policy(solver, where: str = "solver") -> None:
    """Check that the solver's lr_policy is known and has the fields it needs.

    Raises:
        InputError: unknown policy, or a required field (stepsize, max_iter) missing/zero.
    """
    policy = solver.lr_policy
    if policy not in POLICIES:
        raise InputError(f"{where}: unknown lr_policy '{policy}'; Caffe's policies are "
                         f"{', '.join(POLICIES)}")
    if policy == "step" and solver.stepsize <= 0:
        raise InputError(f"{where}: lr_policy 'step' needs a positive stepsize")
    if policy == "poly" and solver.max_iter <= 0:
        raise InputError(f"{where}: lr_policy 'poly' needs a positive max_iter")


def learning_rate(solver, it: int, current_step: int) -> tuple[float, int]:
    """The learning rate of iteration ``it`` and the updated ``current_step``.

    Args:
        solver: a caffe_pb2.SolverParameter (base_lr, lr_policy, gamma, power, stepsize,
            stepvalue, max_iter).
        it: the iteration about to be applied (Caffe's ``iter_``).
        current_step: Caffe's ``current_step_`` (the solverstate field).

    Returns:
        (rate, current_step); ``step`` sets current_step to floor(it / stepsize) and
        ``multistep`` advances it, as Caffe does; other policies leave it unchanged.

    Raises:
        InputError: see :func:`check_policy`.
    """
    check_policy(solver)
    base, policy = float(solver.base_lr), solver.lr_policy
    gamma, power = float(solver.gamma), float(solver.power)
    if policy == "fixed":
        return base, current_step
    if policy == "step":
        current_step = it // solver.stepsize
        return base * gamma ** current_step, current_step
    if policy == "exp":
        return base * gamma ** it, current_step
    if policy == "inv":
        return base * (1.0 + gamma * it) ** (-power), current_step
    if policy == "multistep":
        steps = list(solver.stepvalue)
        if current_step < len(steps) and it >= steps[current_step]:
            current_step += 1
        return base * gamma ** current_step, current_step
    if policy == "poly":
        return base * (1.0 - it / float(solver.max_iter)) ** power, current_step
    return base * (1.0 / (1.0 + math.exp(-gamma * (it - solver.stepsize)))), current_step
