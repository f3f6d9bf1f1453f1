"""Benchmark of fcnkit's torch CPU path (issue 16, items 1 and 3): prints, per zoo model at
1 x 8 x SIZE x SIZE, the forward time of the compiled module unfused vs fused vs fused +
channels-last, each with and without the glibc heap thresholds of fcnkit.runtime
(variants interleaved in random order per round; medians and spreads; ratios are the
figures to compare), then the time and peak RSS of ``fcnkit.load`` of FCN-8s (8 bands) and
of ``compile_net`` from its caffemodel, in fresh subprocesses, against reading the weights
alone (the weights touched page by page after each: safetensors maps its file lazily).

The thresholds are process-wide, so "without" sets glibc's own steady state back (mmap
threshold 32 MiB, the most its dynamic threshold reaches, and trim threshold 64 MiB) and
"with" fcnkit's (1 GiB each), between forwards of the same process.

    PYTHONPATH=. python tools/bench_torch_path.py [--size 512] [--rounds 3]
        [--models fcn8s_8band,tiramisu56_8band] [--skip-forward] [--skip-load]
        [--load-pythonpath DIR]   # e.g. an older checkout, for a before/after of the load
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine_line  # noqa: E402

WORK = Path(tempfile.gettempdir()) / "fcnkit_bench_torch_path"


def _set_malloc(tuned: bool) -> None:
    from fcnkit import runtime

    libc = runtime._glibc()
    if libc is None:
        return
    mmap, trim = (runtime.MALLOC_THRESHOLD_BYTES,) * 2 if tuned else (32 << 20, 64 << 20)
    libc.mallopt(runtime.M_MMAP_THRESHOLD, mmap)
    libc.mallopt(runtime.M_TRIM_THRESHOLD, trim)


def _compiled(name: str, size: int):
    import torch

    from fcnkit import zoo
    from fcnkit.compile import compile_net
    from fcnkit.graph import load_net

    compiled = compile_net(load_net(zoo.build(name)), None, {None: (1, 8, size, size)}, deploy=True)
    compiled.module.eval()
    with torch.no_grad():  # fillers leave var 0: 1/sqrt(eps) per BatchNorm overflows a deep net
        for name_, t in compiled.module.named_buffers():
            if name_.endswith("running_var"):
                t.fill_(1.0)
    return compiled


def bench_forward(name: str, size: int, rounds: int) -> None:
    import torch

    compiled = _compiled(name, size)
    x = torch.rand(1, 8, size, size, generator=torch.Generator().manual_seed(0))
    modules = {"unfused": compiled.module,
               "fused": compiled.inference_module(fuse=True, channels_last=False),
               "fused+CL": compiled.inference_module(fuse=True, channels_last=True, prepack=False),
               "fused+CL+prepack": compiled.inference_module(fuse=True, channels_last=True, prepack=True)}
    variants = [(m, tuned) for m in modules for tuned in (False, True)]
    times: dict = {v: [] for v in variants}
    with torch.inference_mode():
        ref = compiled.module(x)
        for v in variants:  # warm-up, and the check that they agree
            _set_malloc(v[1])
            out = modules[v[0]](x)
            err = max(float((out[k] - ref[k]).abs().max()) for k in ref)
            assert err <= 1e-4, (name, v, err)
        for _ in range(rounds):
            random.shuffle(variants)
            for v in variants:
                _set_malloc(v[1])
                t = time.perf_counter()
                modules[v[0]](x)
                times[v].append(time.perf_counter() - t)
                time.sleep(0.2)
    base = statistics.median(times[("unfused", False)])
    print(f"\n{name} 1x8x{size}x{size}, {rounds} rounds, {torch.get_num_threads()} threads")
    for v in sorted(times, key=lambda v: (list(modules).index(v[0]), v[1])):
        med = statistics.median(times[v])
        spread = f"{min(times[v]) * 1e3:.0f}-{max(times[v]) * 1e3:.0f}"
        print(f"  {v[0]:16s} malloc {'tuned' if v[1] else 'glibc':5s}  median {med * 1e3:8.1f} ms "
              f"(range {spread})  speed-up x{base / med:.2f}")


# Peak RSS is the kernel's VmHWM, reset at the start of the child (/proc/self/clear_refs
# "5", Linux >= 4.0): a forked child starts with its parent's high-water mark otherwise.
PEAK = r"""
def reset_peak():
    try:
        open("/proc/self/clear_refs", "w").write("5")
    except OSError:
        pass
def peak_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
reset_peak()
"""

LOAD_CHILD = PEAK + r"""
import json, sys, time
what, target = sys.argv[1], sys.argv[2]
import torch, fcnkit, safetensors.torch  # imports are not what is measured
from fcnkit.compile import compile_net
from fcnkit.graph import load_net
def touch(tensors):  # read one value per 4 KiB page: a lazily mapped file is read in
    return sum(float(t.detach().reshape(-1)[::1024].sum()) for t in tensors)
t = time.perf_counter()
if what == "read_safetensors":
    touch(safetensors.torch.load_file(target + "/weights.safetensors").values())
elif what == "load":
    touch(fcnkit.load(target).module.state_dict().values())
elif what == "read_caffemodel":
    from fcnkit import caffe
    caffe.read_caffemodel(target + "/w.caffemodel")
else:
    compile_net(load_net(target + "/net.prototxt"), target + "/w.caffemodel", deploy=True)
dt = time.perf_counter() - t
print(json.dumps({"s": dt, "rss_mib": peak_mib(), "fcnkit": fcnkit.__file__}))
"""


def _prepare_fcn8s() -> Path:
    """FCN-8s, 8 bands, filled once: a compiled-model directory and a caffemodel."""
    if (WORK / "fcn8s" / "w.caffemodel").is_file():
        return WORK / "fcn8s"
    from fcnkit import caffe
    from fcnkit.compile import export_blobs, save_compiled

    compiled = _compiled("fcn8s_8band", 512)
    save_compiled(compiled, WORK / "fcn8s", force=True)
    caffe.write_caffemodel(WORK / "fcn8s" / "w.caffemodel", compiled.net.param, export_blobs(compiled))
    return WORK / "fcn8s"


def _child(what: str, target: Path, pythonpath: str) -> dict:
    env = dict(os.environ, PYTHONPATH=pythonpath)
    # cwd too: `python -c` puts the working directory first on sys.path
    out = subprocess.run([sys.executable, "-c", LOAD_CHILD, what, str(target)], env=env,
                         cwd=pythonpath, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["fcnkit"].startswith(str(Path(pythonpath).resolve())), result["fcnkit"]
    return result


def bench_load(rounds: int, pythonpath: str) -> None:
    target = _prepare_fcn8s()
    size = (target / "weights.safetensors").stat().st_size
    base = subprocess.run([sys.executable, "-c", PEAK + "import torch, fcnkit, safetensors.torch\n"
                           "print(peak_mib())"],
                          env=dict(os.environ, PYTHONPATH=pythonpath), cwd=pythonpath, capture_output=True,
                          text=True, check=True)
    imports_mib = float(base.stdout.strip())
    kinds = ["read_safetensors", "load", "read_caffemodel", "compile_net"]
    res: dict = {k: [] for k in kinds}
    for _ in range(rounds):
        random.shuffle(kinds)
        for k in kinds:
            res[k].append(_child(k, target, pythonpath))
    print(f"\nFCN-8s 8 bands: weights {size / 2**20:.0f} MiB; fcnkit from {pythonpath}; "
          f"{rounds} rounds; RSS after the imports alone {imports_mib:.0f} MiB")
    for k in ["read_safetensors", "load", "read_caffemodel", "compile_net"]:
        s = statistics.median(r["s"] for r in res[k])
        rss = statistics.median(r["rss_mib"] for r in res[k])
        print(f"  {k:17s} median {s:6.2f} s   peak RSS {rss:6.0f} MiB = {rss * 2**20 / size:.2f}x "
              f"the weights ({(rss - imports_mib) * 2**20 / size:.2f}x over the imports)")
    over = statistics.median(r["s"] for r in res["load"]) - statistics.median(
        r["s"] for r in res["read_safetensors"])
    print(f"  fcnkit.load over reading the weights: {over:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="fcn8s_8band,tiramisu56_8band")
    ap.add_argument("--skip-forward", action="store_true")
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--load-pythonpath", default=str(Path(__file__).resolve().parents[1]))
    args = ap.parse_args()
    print(machine_line())
    import torch

    print(f"torch {torch.__version__}; intra-op threads {torch.get_num_threads()}")
    if not args.skip_forward:
        for name in args.models.split(","):
            bench_forward(name, args.size, args.rounds)
    if not args.skip_load:
        bench_load(args.rounds, args.load_pythonpath)


if __name__ == "__main__":
    main()
