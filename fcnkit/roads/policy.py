"""Navigation policies on a road probability map: the gridworld MDP of the SpaceNet roads
article, solved by policy iteration and by value iteration (Sutton & Barto, *Reinforcement
Learning: An Introduction*, 2nd ed., 2018, sections 4.3 and 4.4).

The MDP:

* states: the pixels of the map, or blocks of k x k pixels (``block=k``; a block's road
  probability is the max, or the mean, of its pixels'); the goal cell is terminal (value 0);
* actions: 0 up (row - 1), 1 right (col + 1), 2 down (row + 1), 3 left (col - 1);
* transitions: the move into the target cell t succeeds with probability p_t (t's road
  probability; a target outside the grid has p = 0). On failure the agent stays where it is
  (default) or, with ``slip=True``, slips to one of the two cells perpendicular to the action,
  each with probability (1 - p_t) / 2 (staying when that cell is outside the grid);
* rewards: ``-step_cost`` for every step, plus ``goal_reward`` on entering the goal;
  discount ``gamma``.

Every sweep updates the whole grid at once: the four actions' successor values are gathers of
the value array at the neighbour indices (a shift of the grid by one cell), so the cost per
sweep is a handful of array operations over rows x cols cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fcnkit.errors import InputError

#: (drow, dcol) of actions 0 up, 1 right, 2 down, 3 left.
ACTIONS = ((-1, 0), (0, 1), (1, 0), (0, -1))
#: Action value written at the goal (and as the GeoTIFF's nodata).
GOAL_ACTION = 255


@dataclass
class Gridworld:
    """The MDP over a (rows, cols) grid of road probabilities.

    Attributes:
        prob: float64 (rows, cols), P(road) per cell.
        goal: (row, col) of the goal cell.
        gamma, step_cost, goal_reward, slip: as in the module docstring.

    Raises:
        InputError: gamma outside (0, 1), a negative step cost, a goal outside the grid or on
            a cell of probability 0.
    """

    prob: np.ndarray
    goal: tuple[int, int]
    gamma: float = 0.99
    step_cost: float = 0.01
    goal_reward: float = 1.0
    slip: bool = False

    def __post_init__(self):
        if not 0.0 < self.gamma < 1.0:
            raise InputError(f"--gamma must lie in (0, 1), not {self.gamma}")
        if self.step_cost < 0:
            raise InputError(f"--step-cost must be >= 0, not {self.step_cost}")
        rows, cols = self.prob.shape
        if not (0 <= self.goal[0] < rows and 0 <= self.goal[1] < cols):
            raise InputError(f"goal cell {self.goal} lies outside the {rows} x {cols} grid")
        if self.prob[self.goal] <= 0:
            raise InputError(f"the goal cell {self.goal} has road probability 0: no move can "
                             "enter it; put the goal on a road")
        flat = np.arange(rows * cols).reshape(rows, cols)
        goal_flat = self.goal[0] * cols + self.goal[1]
        self.goal_flat = goal_flat
        self.targets, self.p_move, self.r_move = [], [], []
        for dr, dc in ACTIONS:
            inside = np.zeros((rows, cols), bool)
            inside[max(0, -dr):rows - max(0, dr), max(0, -dc):cols - max(0, dc)] = True
            target = np.where(inside, np.roll(flat, (-dr, -dc), axis=(0, 1)), flat).ravel()
            self.targets.append(target)
            self.p_move.append(np.where(inside.ravel(), self.prob.ravel()[target], 0.0))
            self.r_move.append(self.goal_reward * (target == goal_flat) * inside.ravel())

    def outcomes(self, action: int):
        """[(probability (n,), successor flat index (n,), reward on arrival (n,))] of taking
        ``action`` in every cell (n = rows * cols), the step cost excluded."""
        p, t, r = self.p_move[action], self.targets[action], self.r_move[action]
        if not self.slip:
            return [(p, t, r), (1.0 - p, None, 0.0)]
        sides = (action + 1) % 4, (action + 3) % 4
        fail = (1.0 - p) / 2
        return [(p, t, r)] + [(fail, self.targets[s], self.r_move[s]) for s in sides]

    def compiled_actions(self):
        """:meth:`compile` of the four actions' outcomes, made once."""
        if getattr(self, "_compiled", None) is None:
            self._compiled = [self.compile(self.outcomes(a)) for a in range(4)]
        return self._compiled

    def compile(self, outs):
        """Outcomes folded for sweeps: (constant (n,), [(probability, successor index or
        None)]) with Q = constant + gamma * sum p * V[successor]; the constant holds the step
        cost and the expected reward, which do not depend on V."""
        const = np.full(self.prob.size, -self.step_cost)
        for p, _, r in outs:
            const += p * r
        return const, [(p, t) for p, t, _ in outs]

    def sweep_q(self, values: np.ndarray, compiled) -> np.ndarray:
        """Q of compiled outcomes (:meth:`compile`) given state values (n,)."""
        const, terms = compiled
        acc = np.zeros_like(values)
        for p, t in terms:
            acc += p * (values if t is None else values[t])
        acc *= self.gamma
        acc += const
        return acc

    def q_value(self, values: np.ndarray, outs) -> np.ndarray:
        """Expected return (n,) of one action's outcomes given state values (n,)."""
        q = np.full(values.shape, -self.step_cost)
        for p, t, r in outs:
            q += p * (r + self.gamma * (values if t is None else values[t]))
        return q


@dataclass
class Solution:
    """A solved gridworld.

    Attributes:
        actions: uint8 (rows, cols), the greedy action per cell (:data:`GOAL_ACTION` at goal).
        values: float64 (rows, cols), the state values.
        iterations: sweeps (value iteration) or improvement steps (policy iteration).
        sweeps: total whole-grid sweeps.
        converged: the stopping rule was met before the sweep limit.
    """

    actions: np.ndarray
    values: np.ndarray
    iterations: int
    sweeps: int
    converged: bool


def _greedy(world: Gridworld, values: np.ndarray, current=None, eps: float = 1e-12):
    q = np.stack([world.sweep_q(values, c) for c in world.compiled_actions()])
    best = q.argmax(axis=0)
    if current is not None:  # keep the current action unless another is strictly better
        keep = q[current, np.arange(q.shape[1])] >= q.max(axis=0) - eps
        best = np.where(keep, current, best)
    return best, q.max(axis=0)


def _finish(world, policy, values, iterations, sweeps, converged) -> Solution:
    actions = policy.astype(np.uint8)
    actions[world.goal_flat] = GOAL_ACTION
    shape = world.prob.shape
    return Solution(actions.reshape(shape), values.reshape(shape), iterations, sweeps, converged)


def value_iteration(world: Gridworld, *, tol: float = 1e-9, max_sweeps: int = 100_000) -> Solution:
    """Value iteration: V <- max_a Q(V, a) over the whole grid until max |dV| < ``tol``."""
    values = np.zeros(world.prob.size)
    compiled = world.compiled_actions()
    for sweep in range(1, max_sweeps + 1):
        new = world.sweep_q(values, compiled[0])
        for c in compiled[1:]:
            np.maximum(new, world.sweep_q(values, c), out=new)
        new[world.goal_flat] = 0.0
        delta = float(np.abs(new - values).max())
        values = new
        if delta < tol:
            break
    policy, _ = _greedy(world, values)
    return _finish(world, policy, values, sweep, sweep, delta < tol)


def policy_iteration(world: Gridworld, *, tol: float = 1e-9, max_sweeps: int = 100_000,
                     eval_sweeps: int = 20) -> Solution:
    """Policy iteration: iterative policy evaluation by whole-grid sweeps (starting from the
    previous policy's values) and greedy improvement, until the policy is stable.

    Each evaluation runs at most ``eval_sweeps`` sweeps before the next improvement (modified
    policy iteration, Puterman, *Markov Decision Processes*, 1994, section 6.5; ``eval_sweeps``
    large gives the textbook algorithm); the policy is declared stable only when it is the
    greedy policy of its own converged values (max |dV| < ``tol``), an action changing only
    for a strictly better one. It therefore ends at the same optimal policy, much sooner.
    """
    values = np.zeros(world.prob.size)
    policy, _ = _greedy(world, values)
    sweeps, iterations, stable = 0, 0, False
    while not stable and sweeps < max_sweeps:
        iterations += 1
        compiled = world.compile(_policy_outcomes(world, policy))
        for _ in range(min(eval_sweeps, max_sweeps - sweeps)):
            sweeps += 1
            new = world.sweep_q(values, compiled)
            new[world.goal_flat] = 0.0
            delta = float(np.abs(new - values).max())
            values = new
            if delta < tol:
                break
        improved, _ = _greedy(world, values, policy)
        stable = delta < tol and bool(np.array_equal(improved, policy))
        policy = improved
    return _finish(world, policy, values, iterations, sweeps, stable)


def _policy_outcomes(world: Gridworld, policy: np.ndarray):
    """Outcomes of following ``policy`` (n,) in every cell, gathered per cell."""
    per_action = [world.outcomes(a) for a in range(4)]
    merged = []
    for k in range(len(per_action[0])):
        p = np.choose(policy, [np.broadcast_to(o[k][0], policy.shape) for o in per_action])
        r = np.choose(policy, [np.broadcast_to(o[k][2], policy.shape) for o in per_action])
        t = None if per_action[0][k][1] is None else np.choose(policy, [o[k][1] for o in per_action])
        merged.append((p, t, r))
    return merged


def block_probabilities(prob: np.ndarray, block: int, reduce: str = "max") -> np.ndarray:
    """Road probability of k x k blocks ((rows/k, cols/k), rounded up; the padding is p = 0).

    ``reduce``: "max" (a block is as passable as its best pixel, so a narrow road still
    crosses it) or "mean"."""
    if block < 1:
        raise InputError(f"--block must be >= 1, not {block}")
    if reduce not in ("max", "mean"):
        raise InputError(f"--block-reduce must be max or mean, not {reduce}")
    if block == 1:
        return prob.astype(np.float64)
    rows, cols = prob.shape
    br, bc = -(-rows // block), -(-cols // block)
    padded = np.zeros((br * block, bc * block), np.float64)
    padded[:rows, :cols] = prob
    blocks = padded.reshape(br, block, bc, block)
    return blocks.max(axis=(1, 3)) if reduce == "max" else blocks.mean(axis=(1, 3))


def follow(actions: np.ndarray, start, max_steps: int | None = None) -> tuple[list, bool]:
    """The path from ``start`` (row, col) taking each cell's action, assuming every move
    succeeds; stops at the goal (:data:`GOAL_ACTION`), at a cell already visited (a loop, or a
    move off the grid) or after ``max_steps`` (default rows * cols).

    Returns (list of (row, col) from start to the last cell, reached_goal).
    """
    rows, cols = actions.shape
    r, c = int(start[0]), int(start[1])
    if not (0 <= r < rows and 0 <= c < cols):
        raise InputError(f"start {start} lies outside the {rows} x {cols} policy grid")
    path, seen = [(r, c)], {(r, c)}
    for _ in range(max_steps or rows * cols):
        a = int(actions[r, c])
        if a == GOAL_ACTION:
            return path, True
        dr, dc = ACTIONS[a]
        r, c = r + dr, c + dc
        if not (0 <= r < rows and 0 <= c < cols) or (r, c) in seen:
            return path, False
        path.append((r, c))
        seen.add((r, c))
    return path, int(actions[r, c]) == GOAL_ACTION


def quiver_png(prob: np.ndarray, actions: np.ndarray, goal, *, arrows: int = 40,
               dpi: int = 100) -> bytes:
    """A PNG of the policy: the road probability in grey, one arrow per cell of a
    ``arrows`` x ``arrows`` subsampling (matplotlib ``quiver``, Agg backend), the goal as a red
    dot, like Figure 21 of the SpaceNet roads article. ``prob`` and ``actions`` (rows, cols)."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows, cols = actions.shape
    step = max(1, -(-max(rows, cols) // arrows))
    rr, cc = np.mgrid[step // 2:rows:step, step // 2:cols:step]
    act = actions[rr, cc].astype(int)
    moving = act != GOAL_ACTION
    drow = np.array([a[0] for a in ACTIONS] + [0])[np.where(moving, act, 4)]
    dcol = np.array([a[1] for a in ACTIONS] + [0])[np.where(moving, act, 4)]
    fig = Figure(figsize=(8, 8 * rows / max(cols, 1)), dpi=dpi)
    ax = fig.add_subplot()
    ax.imshow(prob, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.quiver(cc[moving], rr[moving], dcol[moving], drow[moving], color="tab:orange",
              angles="xy", scale_units="xy", scale=1.0 / (0.8 * step), width=0.004,
              headwidth=4, headlength=4.5, headaxislength=4)
    ax.plot([goal[1]], [goal[0]], "o", color="red", markersize=10)
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()
