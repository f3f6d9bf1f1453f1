"""Benchmark: `fcnkit train`'s loop (Caffe's SGD, fcnkit.train.loop.Trainer) against a
hand-written PyTorch loop (torch.optim.SGD) on the same compiled model, the same chips
(synthetic 8-band scenes, fcnkit.train.chips with DataLoader workers) and the same batch.

Prints images/s of both (median of interleaved rounds), their ratio (target >= 0.95), and
the fraction of fcnkit's step time spent waiting for data. Usage:

    PYTHONPATH=. python tools/bench_train.py [--iters 30] [--rounds 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from fcnkit.caffe.prototxt import format_prototxt, parse_prototxt
from fcnkit.caffe.solver import parse_solver
from fcnkit.geo.synth import make_scene
from fcnkit.train.chips import Chips, ChipSource
from fcnkit.train.dataset import compute_stretch, find_pairs
from fcnkit.train.loop import Trainer, TrainOptions
from fcnkit.train.nets import compile_phase
from fcnkit.zoo.tiramisu import TiramisuConfig, tiramisu

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/benchlib.py
from benchlib import cpu_model  # noqa: E402


def make_source(root: Path, workers: int, batch: int, chip: int) -> ChipSource:
    for k in range(6):
        make_scene(root / "images" / f"b_img{k}.tif", root / "geojson" / f"b_img{k}.geojson",
                   192, k, gsd=1.0, path_label=root / "labels" / f"b_img{k}_label.tif")
    pairs = find_pairs(root / "images", root / "labels")
    pre = compute_stretch([p.image for p in pairs], list(range(1, 9)))
    return ChipSource(Chips(pairs, pre, chip), batch, seed=0, augment=True, workers=workers)


def net_param():
    net = tiramisu("bench_tiramisu", TiramisuConfig((2, 2), 2, (2, 2), 8, 16), 8, 2, True)
    return parse_prototxt(format_prototxt(net.to_proto())).param


def run_fcnkit(param, source, iters: int) -> tuple[float, float]:
    """(images/s, data-wait fraction) of fcnkit's Trainer."""
    compiled = compile_phase(param, None, "TRAIN", None, source.shapes, seed=0)
    solver = parse_solver(f'type: "SGD" base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005 '
                          f'lr_policy: "fixed" max_iter: {iters} snapshot_after_train: false')
    trainer = Trainer(solver, compiled, param, source, options=TrainOptions(log=lambda m: None))
    result = trainer.solve()
    return iters * source.batch / result.step_s, result.data_wait_s / result.step_s


def run_torch(param, source, iters: int) -> float:
    """images/s of a hand-written loop over the same compiled module and batches."""
    compiled = compile_phase(param, None, "TRAIN", None, source.shapes, seed=0)
    model = compiled.module
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01,
                          momentum=0.9, weight_decay=0.0005)
    batches = source.batches(0)
    start = time.perf_counter()
    for _ in range(iters):
        batch = next(batches)
        loss = model(batch["data"], batch["label"])["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return iters * source.batch / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--chip", type=int, default=48)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = make_source(Path(tmp), args.workers, args.batch, args.chip)
        param = net_param()
        ours, theirs, waits = [], [], []
        for r in range(args.rounds):  # interleaved, alternating which goes first
            order = ("fcnkit", "torch") if r % 2 == 0 else ("torch", "fcnkit")
            for which in order:
                if which == "fcnkit":
                    speed, wait = run_fcnkit(param, source, args.iters)
                    ours.append(speed)
                    waits.append(wait)
                else:
                    theirs.append(run_torch(param, source, args.iters))
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"model: tiny FC-DenseNet (8 bands), batch {args.batch} x {args.chip}x{args.chip}, "
          f"{args.iters} iterations x {args.rounds} rounds, {args.workers} DataLoader workers")
    print(f"fcnkit train : {statistics.median(ours):8.2f} images/s  (rounds: "
          + ", ".join(f"{v:.2f}" for v in ours) + ")")
    print(f"torch loop   : {statistics.median(theirs):8.2f} images/s  (rounds: "
          + ", ".join(f"{v:.2f}" for v in theirs) + ")")
    print(f"ratio fcnkit / torch: {statistics.median(ours) / statistics.median(theirs):.3f} "
          "(target >= 0.95)")
    print(f"data wait: {100 * statistics.median(waits):.1f} % of fcnkit's step time")


if __name__ == "__main__":
    main()
