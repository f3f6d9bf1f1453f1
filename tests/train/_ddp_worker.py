"""Process body of the DDP test (imported by spawned processes)."""

from __future__ import annotations

import numpy as np
import torch
import torch._dynamo  # noqa: F401  (DDP's constructor imports it: once here, not per child)

# imported here, before the test forks, so that the children do not import them again
from fcnkit.caffe.prototxt import parse_prototxt
from fcnkit.caffe.solver import parse_solver
from fcnkit.train.loop import ListSource, Trainer, TrainOptions
from fcnkit.train.nets import compile_phase
from tests.train._nets import SMALL_NET, data_stream

SOLVER = ('type: "SGD" base_lr: 0.05 lr_policy: "step" gamma: 0.5 stepsize: 3 momentum: 0.9 '
          'weight_decay: 0.01 max_iter: 5 snapshot_after_train: false iter_size: 2')


def batches_2b(n: int):
    """n batches of 4 items (data (4, 3, 6, 6), label (4,))."""
    return [{"data": torch.tensor(d, dtype=torch.float32), "label": torch.tensor(l, dtype=torch.float32)}
            for d, l in data_stream(n, seed=11, batch=4)]


def train(items, prefix: str):
    torch.manual_seed(0)
    net = parse_prototxt(SMALL_NET).param
    source = ListSource(items)
    compiled = compile_phase(net, None, "TRAIN", None, source.shapes, seed=2)
    trainer = Trainer(parse_solver(SOLVER + f' snapshot_prefix: "{prefix}"'), compiled, net,
                      source, options=TrainOptions(log=lambda m: None))
    trainer.solve()
    return [p.tensor.detach().numpy().copy() for p in trainer.params]


def ddp_main(rank: int, world: int, store: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        halves = []
        for b in batches_2b(10):  # per-process batch B = 2: global index n*W + r is half r
            halves += [{k: v[:2] for k, v in b.items()}, {k: v[2:] for k, v in b.items()}]
        weights = train(halves, f"{out}_unused")
        if rank == 0:
            np.savez(out, *weights)
    finally:
        dist.destroy_process_group()
