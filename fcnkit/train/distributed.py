"""Training under ``torchrun``: one process per GPU (or CPU process, gloo), PyTorch's
DistributedDataParallel; fcnkit writes no scheduler of its own.

Semantics (as Caffe's multi-GPU training, tools/caffe.cpp ``-gpu 0,1`` with NCCL): the
batch of the net is per process, gradients are averaged over the W processes (DDP), so W
processes with batch B equal one process with batch W*B when the loss is normalised by a
count that is the same in every process (FULL, BATCH_SIZE, or VALID without ignored
pixels). ``iter_size`` accumulates per process as in one process. Process r reads global
batch indices n*W + r (n = iter*iter_size + k), so the W batches of a step are the W
slices of the one-process batch W*B. Rank 0 logs, tests and writes snapshots; a stop
request (SIGINT, --patience) on any rank stops all of them after the same iteration.
"""

from __future__ import annotations

import os

import torch


def init_from_env(device: str) -> str:
    """Join the process group torchrun describes (WORLD_SIZE > 1); return the device to
    use (``cuda:LOCAL_RANK`` for CUDA). Backend: nccl for CUDA, gloo for the CPU."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    cuda = device.startswith("cuda")
    dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return device


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def any_rank(flag: bool, device) -> bool:
    """True on every rank if ``flag`` is true on any (an all-reduce of one number)."""
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around ``module`` (device_ids for CUDA)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)
