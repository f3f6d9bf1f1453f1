"""What every benchmark script prints about the machine it ran on (figures from different
machines are not comparable: compare only ratios measured in one run)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_line() -> str:
    """One line: CPU model, cores, load average (1 min), Python version."""
    try:
        load = f"{os.getloadavg()[0]:.2f}"
    except OSError:
        load = "n/a"
    return (f"CPU: {cpu_model()}; {os.cpu_count()} cores; load average {load}; "
            f"python {platform.python_version()}")


# --------------------------------------------------------------------------------------
# Fair timing: interleaved rounds in random order, with gaps; medians and spreads
# --------------------------------------------------------------------------------------

def available_cores() -> int:
    """Cores this process may run on (``os.sched_getaffinity``), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def load_line() -> str:
    """One line: load averages (1, 5, 15 min) against the cores this process may use; a
    load above the core count means other processes competed for the CPU during the run."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average n/a"
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min) on {available_cores()} usable cores"


class Stats:
    """Median and interquartile range of a list of timings (milliseconds)."""

    def __init__(self, times_ms):
        import statistics

        self.times = sorted(times_ms)
        self.n = len(self.times)
        self.median = statistics.median(self.times) if self.times else float("nan")
        if self.n >= 2:
            q = statistics.quantiles(self.times, n=4, method="inclusive")
            self.q1, self.q3 = q[0], q[2]
        else:
            self.q1 = self.q3 = self.median

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    def __str__(self) -> str:
        return f"{self.median:.2f} ms (IQR {self.q1:.2f}-{self.q3:.2f}, n={self.n})"


def interleaved(fns, rounds: int = 5, warmup: int = 1, gap_s: float = 0.05, seed: int = 0,
                min_round_s: float = 0.0) -> dict:
    """Time callables side by side: ``warmup`` untimed calls each, then ``rounds`` rounds,
    each calling every function once in a fresh random order with ``gap_s`` seconds of sleep
    between calls (so that one backend's tail of work or heat does not land on the next),
    and returns {name: :class:`Stats`} of the milliseconds per call.

    ``fns``: {name: callable}. A callable that returns a float reports its own elapsed
    seconds (a child process timing itself, leaving out the pipe); otherwise the call is
    timed here with ``time.perf_counter``. ``min_round_s``: repeat a fast call within a
    round until that long has passed and record the mean of those calls (per-call overhead
    of tiny nets is then measured over many calls, not one).
    """
    import random
    import time

    rng = random.Random(seed)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict = {name: [] for name in fns}
    names = list(fns)
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            time.sleep(gap_s)
            total, calls, t_end = 0.0, 0, time.perf_counter() + min_round_s
            while True:
                t0 = time.perf_counter()
                got = fns[name]()
                elapsed = got if isinstance(got, float) else time.perf_counter() - t0
                total, calls = total + elapsed, calls + 1
                if time.perf_counter() >= t_end:
                    break
            times[name].append(1e3 * total / calls)
    return {name: Stats(ts) for name, ts in times.items()}


def conv_ceiling(rounds: int = 7) -> tuple[float, str]:
    """The machine's measured ceiling for the zoo's work, in GFLOP/s: a oneDNN 3x3
    convolution 512 -> 512 channels on a 1 x 512 x 64 x 64 input in channels-last (NHWC)
    layout through torch (2 FLOP per multiply-add: 2 * 512 * 512 * 9 * 64 * 64 = 19.3
    GFLOP), median of ``rounds`` calls with torch's current thread count. Returns
    (GFLOP/s, a description line)."""
    import torch

    x = torch.randn(1, 512, 64, 64).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(512, 512, 3, padding=1, bias=False).eval().to(memory_format=torch.channels_last)
    flop = 2 * 512 * 512 * 9 * 64 * 64
    with torch.inference_mode():
        stats = interleaved({"conv": lambda: conv(x)}, rounds=rounds, warmup=2, gap_s=0.0)["conv"]
    gflops = flop / (stats.median / 1e3) / 1e9
    mkldnn = torch.backends.mkldnn.is_available()
    return gflops, (f"conv ceiling: 3x3 conv 512->512 at 64x64 NHWC ({'oneDNN' if mkldnn else 'no oneDNN'}, "
                    f"{torch.get_num_threads()} threads): {stats} = {gflops:.1f} GFLOP/s")
