"""Acceptance 3: 2 CPU processes (gloo, DistributedDataParallel) with batch B equal one
process with batch 2B to 1e-5 after 5 iterations (iter_size 2, momentum, weight decay and
a learning-rate step included)."""

from __future__ import annotations

import numpy as np
import torch.multiprocessing as mp

from tests.train._ddp_worker import batches_2b, ddp_main, train


def test_two_processes_equal_one_with_double_batch(tmp_path):
    out = tmp_path / "ddp.npz"
    # fork: the children inherit the imported modules (spawn would import torch twice more)
    mp.start_processes(ddp_main, args=(2, str(tmp_path / "store"), str(out)), nprocs=2,
                       join=True, start_method="fork")
    ddp = np.load(out)
    single = train(batches_2b(10), str(tmp_path / "single"))
    assert len(ddp.files) == len(single)
    for k, want in enumerate(single):
        got = ddp[f"arr_{k}"]
        assert np.abs(got - want).max() <= 1e-5 * max(1.0, np.abs(want).max()), k
    moved = train(batches_2b(10)[:1], str(tmp_path / "other"))
    assert any(np.abs(a - b).max() > 1e-3 for a, b in zip(moved, single))
