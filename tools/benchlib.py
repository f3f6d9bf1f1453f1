"""What every benchmark script prints about the machine it ran on (figures from different
machines are not comparable: compare only ratios measured in one run)."""

from __future__ import annotations

import os
import platform

from fcnkit.runtime import available_cpus, cpu_model  # noqa: F401 - the benchmarks import them from here


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

def load_line() -> str:
    """One line: load averages (1, 5, 15 min) against the cores this process may use; a
    load above the core count means other processes competed for the CPU during the run."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average n/a"
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min) on {available_cpus()} usable cores"


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


#: (channels, H = W) of the 3x3 stride-1 convolutions whose best throughput is the ceiling:
#: the widths and sizes of VGG's stages (FCN-8s), the zoo's heaviest work.
CEILING_SHAPES = ((512, 64), (256, 128), (128, 256), (512, 32))


def _conv_call(torch, channels: int, hw: int):
    """A zero-argument call running one 3x3 convolution ``channels -> channels`` on a
    1 x channels x hw x hw channels-last input, on a weight prepacked for oneDNN where torch
    has it (what fcnkit's inference module runs), else torch's eager conv2d."""
    x = torch.randn(1, channels, hw, hw).contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 3, 3)
    if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise"):
        packed = torch._C._nn.mkldnn_reorder_conv2d_weight(w.to_mkldnn(), [1, 1], [1, 1], [1, 1], 1,
                                                           list(x.shape))
        return lambda: torch.ops.mkldnn._convolution_pointwise(x, packed, None, [1, 1], [1, 1], [1, 1], 1,
                                                               "none", [], "")
    w = w.contiguous(memory_format=torch.channels_last)
    return lambda: torch.nn.functional.conv2d(x, w, None, 1, 1)


def conv_ceiling(rounds: int = 7) -> tuple[float, str]:
    """The machine's measured ceiling for the zoo's work, in GFLOP/s: the best throughput
    of oneDNN 3x3 convolutions in channels-last (NHWC) layout through torch, on weights
    prepacked once (:data:`CEILING_SHAPES`: 512 -> 512 channels at 64x64, 19.3 GFLOP, as
    issue 16 measured it, and VGG's other stage sizes, because one shape alone can sit
    below what the CPU reaches on others; 2 FLOP per multiply-add), each the median of
    ``rounds`` interleaved calls with torch's current thread count. Returns (GFLOP/s, a
    description line giving every shape's figure)."""
    import torch

    calls = {f"{c}->{c} at {hw}x{hw}": (_conv_call(torch, c, hw), 2 * c * c * 9 * hw * hw)
             for c, hw in CEILING_SHAPES}
    with torch.inference_mode():
        stats = interleaved({k: fn for k, (fn, _) in calls.items()}, rounds=rounds, warmup=2, gap_s=0.0)
    rates = {k: calls[k][1] / (stats[k].median / 1e3) / 1e9 for k in calls}
    best = max(rates, key=rates.get)
    mkldnn = torch.backends.mkldnn.is_available()
    shapes = ", ".join(f"{k} {rates[k]:.0f}" for k in calls)
    return rates[best], (f"conv ceiling: best 3x3 NHWC conv ({'oneDNN, prepacked' if mkldnn else 'no oneDNN'}, "
                         f"{torch.get_num_threads()} threads) {best}: {stats[best]} = {rates[best]:.1f} GFLOP/s "
                         f"(GFLOP/s per shape: {shapes})")
