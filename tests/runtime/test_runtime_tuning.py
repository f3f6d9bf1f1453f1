"""fcnkit.runtime: glibc heap thresholds and intra-op threads, applied by the CLI entry
point and the Predictor, never by ``import fcnkit`` (issue 16, item 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fcnkit import runtime

ROOT = Path(__file__).resolve().parents[2]

# Child process: set up as asked, then free and re-allocate a 64 MiB NumPy array three
# times and count the minor page faults of the re-allocations (getrusage). glibc mmaps
# such a block and unmaps it on free unless the thresholds are raised, so each round
# faults in all of its 16384 pages again; with the thresholds raised the heap keeps them.
CHILD = r"""
import json, os, resource, sys
how = sys.argv[1]
import fcnkit
if how == "entry":
    from fcnkit.cli.main import main
    main(["layers"])
from fcnkit import runtime
import numpy as np
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = np.ones(8 << 20); del a
before = faults()
for _ in range(3):
    a = np.ones(8 << 20); del a
print(json.dumps({"tuned": runtime.malloc_tuned(), "faults": faults() - before,
                  "omp": os.environ.get("OMP_NUM_THREADS")}))
"""


def _child(how: str, **env) -> dict:
    full = {k: v for k, v in os.environ.items()
            if k not in ("FCNKIT_MALLOC_TUNING", "OMP_NUM_THREADS", "FCNKIT_NUM_THREADS",
                         "FCNKIT_THREAD_TUNING")}
    full.update(PYTHONPATH=str(ROOT), NUMPY_MADVISE_HUGEPAGE="0", **env)
    out = subprocess.run([sys.executable, "-c", CHILD, how], env=full, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


needs_glibc = pytest.mark.skipif(runtime._glibc() is None, reason="mallopt tuning is glibc-only")


@needs_glibc
def test_import_does_not_tune_and_entry_point_does():
    plain = _child("import")
    entry = _child("entry")
    pages = 3 * (64 << 20) // 4096
    assert plain["tuned"] is False and plain["omp"] is None
    assert plain["faults"] > 0.9 * pages  # every round maps fresh zeroed pages
    assert entry["tuned"] is True
    assert entry["faults"] < 0.05 * pages  # the heap kept the freed block
    assert entry["omp"] == str(runtime.available_cpus())


@needs_glibc
def test_opt_outs_are_honoured():
    off = _child("entry", FCNKIT_MALLOC_TUNING="0", OMP_NUM_THREADS="1")
    assert off["tuned"] is False
    assert off["faults"] > 0.9 * 3 * (64 << 20) // 4096
    assert off["omp"] == "1"  # the user's choice stays


def test_cgroup_quota_v2_and_v1(tmp_path):
    proc = tmp_path / "cgroup"
    root = tmp_path / "fs"
    (root / "a" / "b").mkdir(parents=True)
    (root / "cpu.max").write_text("max 100000\n")
    (root / "a" / "cpu.max").write_text("150000 100000\n")
    (root / "a" / "b" / "cpu.max").write_text("300000 100000\n")
    proc.write_text("0::/a/b\n")
    assert runtime._cgroup_quota(root, proc) == pytest.approx(1.5)  # the tightest ancestor
    (root / "a" / "cpu.max").write_text("max 100000\n")
    assert runtime._cgroup_quota(root, proc) == pytest.approx(3.0)
    v1 = tmp_path / "v1"
    (v1 / "cpu" / "job").mkdir(parents=True)
    (v1 / "cpu" / "job" / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu" / "job" / "cpu.cfs_period_us").write_text("100000\n")
    proc.write_text("4:memory:/x\n1:cpu,cpuacct:/job\n")
    assert runtime._cgroup_quota(v1, proc) == pytest.approx(0.5)
    (v1 / "cpu" / "job" / "cpu.cfs_quota_us").write_text("-1\n")
    assert runtime._cgroup_quota(v1, proc) is None
    assert runtime._cgroup_quota(tmp_path / "none", tmp_path / "missing") is None


def test_available_cpus_is_capped_by_quota(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(runtime, "_cgroup_quota", lambda: 1.2)
    assert runtime.available_cpus() == 2  # ceil(1.2)
    monkeypatch.setattr(runtime, "_cgroup_quota", lambda: None)
    assert runtime.available_cpus() == 4


def test_threads_lowered_never_raised_and_user_choice_kept(monkeypatch):
    import torch

    saved = torch.get_num_threads()
    try:
        for var in ("OMP_NUM_THREADS", "FCNKIT_NUM_THREADS", "FCNKIT_THREAD_TUNING"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setattr(runtime, "available_cpus", lambda: 1)
        torch.set_num_threads(2)
        assert runtime.tune_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(runtime, "available_cpus", lambda: 3)
        runtime.tune_threads()
        assert torch.get_num_threads() == 1  # a smaller pool stays
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        torch.set_num_threads(2)
        monkeypatch.setattr(runtime, "available_cpus", lambda: 1)
        assert runtime.tune_threads() is None and torch.get_num_threads() == 2
        monkeypatch.setenv("FCNKIT_NUM_THREADS", "1")
        assert runtime.tune_threads() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(saved)
