"""The training loop: Caffe's Solver::Solve / Solver::Step / Solver::TestAll over a compiled
net, fed by a batch source.

One iteration (Solver::Step): clear gradients; test first if ``iter % test_interval == 0``
(and ``iter > 0`` or ``test_initialization``); ``iter_size`` forward/backward passes whose
losses (sum over loss tops of loss_weight x top) are averaged for display and whose
gradients add up; the smoothed loss over ``average_loss`` iterations; the update
(:class:`fcnkit.train.solver.CaffeSolver`); ``iter += 1``; a snapshot when
``iter % snapshot == 0``. After ``max_iter``: a snapshot (``snapshot_after_train``, unless
one was just written) and a last test. SIGINT (Ctrl-C) finishes the current iteration,
writes a snapshot and stops, as ``caffe train`` does.

Data: the source gives the batch of global index ``iter * iter_size + k`` (k < iter_size),
so a run resumed from a solverstate sees exactly the batches the uninterrupted run saw.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Mapping, Protocol

import torch

from fcnkit.errors import NetDefinitionError
from fcnkit.train.metrics import confusion, iou_per_class, pixel_accuracy
from fcnkit.train.nets import loss_terms, scored_loss, share_weights
from fcnkit.train.params import learnable_params
from fcnkit.train.snapshot import restore, write_snapshot
from fcnkit.train.solver import CaffeSolver


class BatchSource(Protocol):
    """Where batches come from: ``batches(start, step)`` yields {top name: tensor} for global
    batch indices start, start + step, start + 2 step, ...; ``shapes`` gives each top's
    batch shape. (Under torchrun, process r of W reads indices n W + r.)"""

    shapes: Mapping[str, tuple]

    def batches(self, start: int, step: int = 1) -> Iterator[dict[str, torch.Tensor]]: ...


@dataclass
class ListSource:
    """A fixed list of batches, repeated cyclically (tests, small experiments)."""

    items: list

    @property
    def shapes(self) -> dict[str, tuple]:
        return {k: tuple(v.shape) for k, v in self.items[0].items()}

    def batches(self, start: int, step: int = 1) -> Iterator[dict[str, torch.Tensor]]:
        i = start
        while True:
            yield self.items[i % len(self.items)]
            i += step


@dataclass
class TrainOptions:
    """Run options that are not in the solver.

    Attributes:
        device: torch device ("cpu", "cuda", "cuda:1").
        amp: None, "bf16" or "fp16": autocast on CUDA (fp16 with dynamic loss scaling);
            ignored on the CPU.
        channels_last: NHWC memory format for the module and the image batches.
        compile: wrap the module with torch.compile.
        patience: stop when the test loss has not improved for this many tests (0: never).
        csv_path: write a CSV log (iter, phase, name, value) here, atomically.
        log: receives one line of text per display/test/snapshot event.
        on_iter: called with the iteration count after every update (progress bars).
        apls: at each test, ``apls(forward)`` -> mean APLS of the first test net over the
            validation scenes (:class:`fcnkit.train.apls_eval.SceneApls`), logged as ``apls``.
        tensorboard: also log every figure as TensorBoard scalars into this folder
            (rank 0; needs the tensorboard package, :mod:`fcnkit.train.tblog`).
    """

    device: str = "cpu"
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    patience: int = 0
    csv_path: Path | None = None
    log: Callable[[str], None] = print
    on_iter: Callable[[int], None] | None = None
    apls: Callable | None = None
    tensorboard: Path | None = None


@dataclass
class TestNet:
    """A test net (TEST phase), its batch source and Caffe's ``test_iter``."""

    compiled: object
    source: BatchSource
    iters: int


@dataclass
class TrainResult:
    """What a run did: final iteration, snapshots written, last test metrics, why it stopped."""

    iter: int = 0
    snapshots: list = field(default_factory=list)
    tests: list = field(default_factory=list)
    stopped: str = "max_iter"
    last_loss: float = float("nan")
    data_wait_s: float = 0.0
    step_s: float = 0.0


class Trainer:
    """Caffe's solver loop over a compiled TRAIN net; see the module docstring.

    Args:
        solver: caffe_pb2.SolverParameter (checked by CaffeSolver).
        train: the compiled TRAIN net (fcnkit.compile.CompiledNet).
        net_param: the NetParameter written into snapshot caffemodels.
        source: the training :class:`BatchSource`.
        tests: :class:`TestNet` list (Caffe's test nets; weights are shared with ``train``).
        options: :class:`TrainOptions`.
        preprocess_json: preprocess JSON text written beside each snapshot, or None.
        prefix: snapshot prefix (default: the solver's ``snapshot_prefix``).

    Raises:
        InputError: bad solver settings (type, lr policy, iter_size...).
        NetDefinitionError: the net has no loss, or bad ParamSpecs.
    """

    def __init__(self, solver, train, net_param, source: BatchSource, tests=(),
                 options: TrainOptions | None = None, preprocess_json: str | None = None,
                 prefix: str | None = None, where: str = "solver"):
        self.param, self.train, self.net_param, self.source = solver, train, net_param, source
        self.options = options or TrainOptions()
        self.device = torch.device(self.options.device)
        train.module.to(self.device)
        if self.options.channels_last:
            train.module.to(memory_format=torch.channels_last)
        self.params = learnable_params(train)
        self.solver = CaffeSolver(solver, self.params, where)
        self.terms = loss_terms(train)
        if not self.terms:
            raise NetDefinitionError(f"{where}: the train net has no loss layer (no top with a "
                                     "loss weight); add e.g. a SoftmaxWithLoss layer")
        self.tests = list(tests)
        for t in self.tests:
            share_weights(t.compiled, train)
        self.preprocess_json, self.where = preprocess_json, where
        self.prefix = prefix if prefix is not None else (solver.snapshot_prefix or "snapshot")
        from fcnkit.train.distributed import rank_and_world, wrap

        self.rank, self.world = rank_and_world()
        if self.rank != 0:
            self.options = replace(self.options, log=lambda line: None, csv_path=None)
        self.module = wrap(train.module, self.device) if self.world > 1 else train.module
        if self.options.compile:
            self.module = torch.compile(self.module)
        self.result = TrainResult()
        self.rows: list[tuple] = []
        self._scalars = None  # fcnkit.train.tblog.ScalarLog with --tensorboard
        self._stop = False
        self._losses: deque = deque(maxlen=max(1, solver.average_loss))
        self._best, self._bad_tests = float("inf"), 0
        self._scale = 2.0 ** 16  # fp16 dynamic loss scale

    # ---------------------------------------------------------------- one pass

    def _inputs(self, compiled, batch) -> list[torch.Tensor]:
        out = []
        for name in compiled.inputs:
            t = batch[name].to(self.device, non_blocking=True)
            if self.options.channels_last and t.dim() == 4 and t.shape[1] > 1:
                t = t.contiguous(memory_format=torch.channels_last)
            out.append(t)
        return out

    def _autocast(self):
        amp = self.options.amp
        if amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
        return torch.autocast("cpu", enabled=False)

    def forward_backward(self, batch, sync: bool = True) -> float:
        """One forward/backward pass; returns the weighted loss (Net::ForwardBackward).
        ``sync`` False: under DDP, keep the gradient local (iter_size accumulation)."""
        if not sync and self.world > 1:
            with self.module.no_sync():
                return self.forward_backward(batch)
        with self._autocast():
            outputs = self.module(*self._inputs(self.train, batch))
            loss = sum(w * outputs[name].float().sum() for name, w in self.terms)
        scale = self._scale if self.options.amp == "fp16" and self.device.type == "cuda" else 1.0
        (loss * scale).backward()
        return float(loss.detach())

    def _unscale(self) -> bool:
        """fp16: divide gradients by the loss scale; False (and a smaller scale) on overflow."""
        if not (self.options.amp == "fp16" and self.device.type == "cuda"):
            return True
        grads = [p.tensor.grad for p in self.params if p.tensor.grad is not None]
        finite = all(bool(torch.isfinite(g).all()) for g in grads)
        if not finite:
            self._scale /= 2
            return False
        for g in grads:
            g.div_(self._scale)
        return True

    # ---------------------------------------------------------------- Caffe's Step

    def step(self, stop_iter: int) -> None:
        """Run iterations until ``solver.iter == stop_iter`` (or a stop request)."""
        p, s = self.param, self.solver
        batches = self.source.batches(s.iter * p.iter_size * self.world + self.rank, self.world)
        while s.iter < stop_iter and not self._stop:
            for q in self.params:
                q.tensor.grad = None
            if p.test_interval and s.iter % p.test_interval == 0 and (
                    s.iter > 0 or p.test_initialization) and self.rank == 0:
                self.test_all()
            if self._sync_stop():
                break
            t0 = time.perf_counter()
            loss = sum(self.forward_backward(self._next(batches), k == p.iter_size - 1)
                       for k in range(p.iter_size))
            loss /= p.iter_size
            if not self._unscale():
                continue  # fp16 overflow: skip the update, as torch's GradScaler does
            self._losses.append(loss)
            smoothed = sum(self._losses) / len(self._losses)
            shown = p.display and s.iter % p.display == 0
            rate = s.apply_update()
            self.result.step_s += time.perf_counter() - t0
            self.result.last_loss = smoothed
            if shown:
                self.options.log(f"Iteration {s.iter - 1}, loss = {smoothed:.6g}, lr = {rate:.6g}")
                self._record([(s.iter - 1, "train", "loss", smoothed), (s.iter - 1, "train", "lr", rate)])
            if self.options.on_iter:
                self.options.on_iter(s.iter)
            if p.snapshot and s.iter % p.snapshot == 0:
                self.snapshot()
            self._sync_stop()

    def _next(self, batches):
        """The next batch, timing the wait (TrainResult.data_wait_s)."""
        t0 = time.perf_counter()
        batch = next(batches)
        self.result.data_wait_s += time.perf_counter() - t0
        return batch

    def _sync_stop(self) -> bool:
        """The stop request, agreed by all ranks under torchrun."""
        if self.world > 1:
            from fcnkit.train.distributed import any_rank

            self._stop = any_rank(self._stop, self.device)
        return self._stop

    def solve(self, resume: str | Path | None = None) -> TrainResult:
        """Caffe's Solver::Solve: optionally restore a solverstate, train to max_iter,
        snapshot, test. Installs a SIGINT handler (main thread only) for the run."""
        if resume is not None:
            restore(resume, self.train, self.solver)
            self.options.log(f"Resumed from {resume} at iteration {self.solver.iter}")
        if self.options.tensorboard is not None and self.rank == 0 and self._scalars is None:
            from fcnkit.train.tblog import ScalarLog

            self._scalars = ScalarLog(self.options.tensorboard)
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            self.step(self.param.max_iter)
            p, it = self.param, self.solver.iter
            if self._stop or (p.snapshot_after_train and (not p.snapshot or it % p.snapshot)):
                self.snapshot()
            if not self._stop and p.test_interval and it % p.test_interval == 0 and self.rank == 0:
                self.test_all()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            self._write_csv()
            if self._scalars is not None:
                self._scalars.close()
                self._scalars = None
        self.result.iter = self.solver.iter
        return self.result

    def _on_sigint(self, signum, frame) -> None:
        self.options.log("SIGINT: stopping after this iteration, with a snapshot")
        self._stop, self.result.stopped = True, "SIGINT"

    def snapshot(self) -> tuple[Path, Path] | None:
        """Write PREFIX_iter_N.caffemodel and .solverstate (Solver::Snapshot); rank 0 only."""
        if self.rank != 0:
            return None
        self.train.module.to(memory_format=torch.contiguous_format)
        paths = write_snapshot(self.train, self.solver, self.net_param, self.prefix,
                               self.preprocess_json)
        if self.options.channels_last:
            self.train.module.to(memory_format=torch.channels_last)
        self.result.snapshots.append(paths)
        self.options.log(f"Snapshotting to binary proto file {paths[0]}; solver state to {paths[1]}")
        return paths

    # ---------------------------------------------------------------- Caffe's TestAll

    def test_all(self) -> list[dict]:
        """Run every test net for its test_iter batches (weights shared with the train net).

        Returns (and logs, and appends to the CSV) one dict per test net: the mean of each
        scalar output, ``loss`` (sum of loss weight x output), and for nets with a
        classification loss over (N, C, H, W) scores: ``pixel_accuracy`` and ``iou_<c>`` per
        class from the confusion matrix of argmax(score) against the label.
        """
        results = []
        for k, test in enumerate(self.tests):
            metrics = self._test_one(test)
            if k == 0 and self.options.apls is not None:
                metrics["apls"] = self.options.apls(self._scorer(test.compiled))
            results.append(metrics)
            it = self.solver.iter
            self.options.log(f"Iteration {it}, Testing net (#{k}): " + ", ".join(
                f"{name} = {value:.6g}" for name, value in metrics.items()))
            self._record([(it, f"test{k}", name, value) for name, value in metrics.items()])
        self.result.tests.append((self.solver.iter, results))
        if results and self.options.patience:
            loss = results[0].get("loss", float("inf"))
            if loss < self._best:
                self._best, self._bad_tests = loss, 0
            else:
                self._bad_tests += 1
                if self._bad_tests >= self.options.patience:
                    self.options.log(f"Test loss has not improved for {self._bad_tests} tests "
                                     f"(patience {self.options.patience}): stopping")
                    self._stop, self.result.stopped = True, "patience"
        return results

    def _test_one(self, test: TestNet) -> dict:
        compiled = test.compiled
        terms = loss_terms(compiled)
        scored = scored_loss(compiled)
        sums: dict[str, float] = {}
        matrix = None
        batches = test.source.batches(0)
        with torch.no_grad(), self._autocast():
            for _ in range(test.iters):
                values = compiled.run_all(*self._inputs(compiled, next(batches)))
                for name in compiled.outputs:
                    v = values[compiled.net.final[name]]
                    if v.numel() == 1:
                        sums[name] = sums.get(name, 0.0) + float(v)
                if scored is not None and values[scored[1]].shape[1:2] == (1,):
                    score_id, label_id, classes, ignore = scored
                    m = confusion(values[score_id].float(), values[label_id], classes, ignore)
                    matrix = m if matrix is None else matrix + m
        metrics = {name: total / test.iters for name, total in sums.items()}
        metrics["loss"] = sum(w * metrics.get(name, 0.0) for name, w in terms)
        if matrix is not None:
            metrics["pixel_accuracy"] = pixel_accuracy(matrix)
            for c, value in enumerate(iou_per_class(matrix)):
                metrics[f"iou_{c}"] = value
        return metrics

    def _scorer(self, compiled):
        """images (B, C, H, W) -> the scores of the net's loss (B, K, H, W), no gradient."""
        scored = scored_loss(compiled)
        if scored is None:
            from fcnkit.errors import InputError

            raise InputError("--apls needs a test net whose loss layer takes (N, C, H, W) scores")
        score_id = scored[0]

        def forward(images: torch.Tensor) -> torch.Tensor:
            n, _, h, w = images.shape
            batch = {"data": images, "label": torch.zeros(n, 1, h, w)}
            with torch.no_grad(), self._autocast():
                return compiled.run_all(*self._inputs(compiled, batch))[score_id].float()
        return forward

    def _record(self, rows: list[tuple]) -> None:
        """Keep (iter, phase, name, value) rows for the CSV and TensorBoard."""
        self.rows += rows
        self._write_csv()
        if self._scalars is not None:
            self._scalars.write(rows)

    def _write_csv(self) -> None:
        if self.options.csv_path is None:
            return
        from fcnkit.atomic import write_text

        lines = ["iter,phase,name,value"] + [f"{i},{ph},{n},{v:.9g}" for i, ph, n, v in self.rows]
        write_text(self.options.csv_path, "\n".join(lines) + "\n")
