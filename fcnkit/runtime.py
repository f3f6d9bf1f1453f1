"""Process settings for inference speed: the C allocator and the intra-op thread count.

Applied by fcnkit's command-line entry point and by :class:`fcnkit.deploy.Predictor`
(:func:`tune_for_inference`), never by ``import fcnkit``: a library user's process is left as
it was unless it asks for a Predictor.

Allocator (``FCNKIT_MALLOC_TUNING=0`` turns it off). glibc serves every allocation above
``M_MMAP_THRESHOLD`` (128 KiB, rising to at most 32 MiB) with its own ``mmap`` and gives it
back with ``munmap`` when freed, so every large activation of every forward pass is a fresh
mapping that the kernel zeroes page by page (one minor page fault per 4 KiB page: 2.26 M
faults and 4.4 s of kernel time per FC-DenseNet56 forward at 512 x 512, issue 16). Raising
``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` to :data:`MALLOC_THRESHOLD_BYTES` keeps freed
blocks in the heap for the next pass (glibc ``mallopt(3)``; constants from glibc's
``malloc/malloc.h``). The cost: up to that many freed bytes stay mapped by the process.
Elsewhere than glibc (musl, macOS, Windows) it does nothing.

Threads (``OMP_NUM_THREADS`` or ``FCNKIT_NUM_THREADS`` set by the user win; ``FCNKIT_THREAD_TUNING=0``
turns it off). torch sizes its intra-op pool from the machine's cores, not from those this
process may use (CPU affinity, a cgroup CPU quota in a container or a job scheduler); more
threads than usable cores make every parallel region wait for a descheduled thread (a
2-thread pool on a contended core: 0.08 ms -> 48 ms, issue 16). :func:`available_cpus`
counts the usable cores as ONNX Runtime does (affinity, then the cgroup quota).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import sys
from pathlib import Path

#: glibc malloc.h: mallopt parameter numbers.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Bytes below which allocations come from the heap, and freed bytes kept at its top
#: (1 GiB: larger than any single activation of the zoo's nets at 8 x 512 x 512).
MALLOC_THRESHOLD_BYTES = 1 << 30

_state = {"malloc": False, "threads": None}


def _env_off(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("0", "false", "no", "off")


def _glibc():
    """The process's glibc as a ctypes library, or None on any other C library."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()  # only glibc has it (musl does not)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        return libc
    except (OSError, AttributeError):
        return None


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds to :data:`MALLOC_THRESHOLD_BYTES` (see the
    module docstring), once per process. Returns whether the thresholds are in effect.
    Never raises: it is a no-op with ``FCNKIT_MALLOC_TUNING=0`` or without glibc."""
    if _state["malloc"]:
        return True
    if _env_off("FCNKIT_MALLOC_TUNING"):
        return False
    libc = _glibc()
    if libc is None:
        return False
    ok = libc.mallopt(M_MMAP_THRESHOLD, MALLOC_THRESHOLD_BYTES) == 1
    ok = libc.mallopt(M_TRIM_THRESHOLD, MALLOC_THRESHOLD_BYTES) == 1 and ok
    _state["malloc"] = ok
    return ok


def malloc_tuned() -> bool:
    """Whether :func:`tune_malloc` has set the thresholds in this process."""
    return _state["malloc"]


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup"), proc: Path = Path("/proc/self/cgroup")
                  ) -> float | None:
    """The cgroup CPU quota of this process in cores (quota / period), or None without one.

    cgroup v2: ``cpu.max`` (``"QUOTA PERIOD"`` or ``"max PERIOD"``) of the process's group
    and of each parent, the smallest; cgroup v1: ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``
    (quota -1: none). Unreadable files count as no quota."""
    quotas = []
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        rel = path.strip("/")
        if hid == "0" and controllers == "":
            parts = rel.split("/") if rel else []
            for i in range(len(parts), -1, -1):
                quotas.append(_ratio_v2(root.joinpath(*parts[:i], "cpu.max")))
        elif "cpu" in controllers.split(","):
            base = root / "cpu" if (root / "cpu").is_dir() else root / controllers
            quotas.append(_ratio_v1(base.joinpath(*([rel] if rel else []))))
    quotas = [q for q in quotas if q is not None]
    return min(quotas) if quotas else None


def _ratio_v2(path: Path) -> float | None:
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _ratio_v1(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError, ZeroDivisionError):
        return None


def available_cpus() -> int:
    """Cores this process may use (>= 1): its CPU affinity (``os.sched_getaffinity``, else
    ``os.cpu_count``), capped by the cgroup CPU quota rounded up."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def inference_threads() -> int | None:
    """The intra-op thread count fcnkit chooses, or None when the user chose (the
    environment variable ``OMP_NUM_THREADS`` or ``FCNKIT_NUM_THREADS`` is set) or turned
    the choice off (``FCNKIT_THREAD_TUNING=0``). ``FCNKIT_NUM_THREADS`` is applied by
    :func:`tune_threads` itself; this returns :func:`available_cpus` otherwise."""
    if _env_off("FCNKIT_THREAD_TUNING") or os.environ.get("OMP_NUM_THREADS"):
        return None
    return available_cpus()


def tune_threads() -> int | None:
    """Set the intra-op thread count for inference; returns the count set, or None.

    ``FCNKIT_NUM_THREADS=N`` (a positive integer) sets N. Otherwise, unless
    :func:`inference_threads` defers to the user: when torch is already imported, its pool is
    lowered to :func:`available_cpus` (never raised: a smaller count set with
    ``torch.set_num_threads`` stays); before torch is imported, ``OMP_NUM_THREADS`` is set
    in the environment, which torch (and OpenMP, MKL) read when they start."""
    explicit = os.environ.get("FCNKIT_NUM_THREADS", "").strip()
    want = int(explicit) if explicit.isdigit() and int(explicit) > 0 else None
    if want is None:
        want = inference_threads()
        if want is None:
            return None
    torch = sys.modules.get("torch")
    if torch is None:
        os.environ["OMP_NUM_THREADS"] = str(want)
    elif explicit or torch.get_num_threads() > want:
        torch.set_num_threads(want)
    _state["threads"] = want
    return want


def tune_for_inference() -> None:
    """:func:`tune_malloc` and :func:`tune_threads`: what fcnkit's entry points and the
    Predictor apply before running a net. Never raises."""
    tune_malloc()
    try:
        tune_threads()
    except (RuntimeError, ValueError):  # torch refuses after its pool started in some builds
        pass


def cpu_model() -> str:
    """The CPU model name (``model name`` of /proc/cpuinfo on Linux, else what
    :mod:`platform` knows): what a speed figure or a timed choice was measured on."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
