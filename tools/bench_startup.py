"""Start-up times of fcnkit's commands against their baselines (issue 16, item 4).

Every figure is taken in a fresh process; the kinds run in interleaved rounds (each round
runs every kind once, in a new random order, with a short sleep between them) and each row
gives the median and interquartile range. Printed as differences over a baseline:

- ``fcnkit compile`` (no arguments: the bundled FCN-8s deploy net, the README's
  ``make demo``) and ``fcnkit export`` of a 2-convolution prototxt (3 -> 8 -> 2 channels,
  32 x 32, weights from its fillers, the checker and the parity run included): wall time of
  ``python -m fcnkit ...`` minus that of ``python -c "import torch"``; target <= 1 s;
- ``fcnkit.load(DIR)`` of FCN-8s with 8 input bands (a compiled directory made once in a
  temporary folder; ~512 MiB of float32 weights), timed inside a process that has already
  imported ``torch, fcnkit, safetensors.torch``, each tensor then touched once per 4 KiB
  page, minus ``safetensors.torch.load_file`` of the same file touched the same way;
  target <= 0.4 s.

``import onnx`` is printed for information: onnx imports ``ml_dtypes``, whose version 0.7.0
takes about a second to import (it registers its NumPy ufunc loops one by one); fcnkit's
``pyproject.toml`` therefore asks for ``ml_dtypes<0.7``.

The children byte-compile fcnkit into a temporary ``PYTHONPYCACHEPREFIX`` (an installed
package has its ``.pyc`` files; a checkout run with ``PYTHONDONTWRITEBYTECODE`` would
otherwise recompile fcnkit in every process), and one untimed warm-up round fills it and
the page cache. Figures from a machine shared with other work are noisy: compare the
differences of one run, and look at the load average printed at both ends.

Usage::

    PYTHONPATH=. python tools/bench_startup.py [--rounds 5] [--gap 0.2] [--keep DIR]
        [--compare DIR]   # another checkout (e.g. `git worktree add DIR COMMIT`), timed alongside
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Stats, interleaved, load_line, machine_line  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = {"compile": 1.0, "export": 1.0, "load": 0.4}

TWO_CONV = """name: "two_conv"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 32 dim: 32 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1
    weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param { num_output: 2 kernel_size: 3 pad: 1
    weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.1 } } }
"""

PREPARE = """
import sys
from fcnkit import zoo
from fcnkit.compile import compile_net, save_compiled
from fcnkit.graph import load_net
compiled = compile_net(load_net(zoo.build("fcn8s_8band")), None, {None: (1, 8, 512, 512)}, deploy=True)
save_compiled(compiled, sys.argv[1], force=True)
"""

# In-process timing (imports done first: they are not what is measured), then every page of
# every tensor read once: safetensors maps its file lazily, so an untouched load reads nothing.
LOAD_CHILD = """
import json, sys, time
import torch, fcnkit, safetensors.torch
def touch(tensors):
    return sum(float(t.reshape(-1)[::max(1, 4096 // t.element_size())].sum()) for t in tensors if t.numel())
what, target = sys.argv[1], sys.argv[2]
t = time.perf_counter()
if what == "read":
    touch(safetensors.torch.load_file(target + "/weights.safetensors").values())
else:
    touch(fcnkit.load(target).module.state_dict().values())
print(json.dumps({"s": time.perf_counter() - t}))
"""


def _env(pycache: Path, fcnkit_root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(fcnkit_root) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _wall(argv: list[str], env: dict, cwd: Path):
    """A callable running ``argv`` and returning its wall time in seconds (a failure
    stops the benchmark with the child's stderr)."""

    def run() -> float:
        t0 = time.perf_counter()
        done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - t0
        if done.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        return elapsed

    return run


def _self_timed(argv: list[str], env: dict, cwd: Path):
    """A callable running ``argv`` (a child printing {"s": seconds} last) and returning
    the child's own figure."""

    def run() -> float:
        done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{' '.join(argv[:3])} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        return float(json.loads(done.stdout.strip().splitlines()[-1])["s"])

    return run


def _versions(env: dict, cwd: Path) -> str:
    code = ("import importlib.metadata as m, fcnkit, ml_dtypes\n"
            "print(', '.join(f'{p} {m.version(p)}' for p in ('torch', 'onnx', 'onnxruntime', 'numpy', 'typer')),"
            " f'ml_dtypes {ml_dtypes.__version__}; fcnkit from {fcnkit.__file__}', sep=', ')")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True)
    return out.stdout.strip() or out.stderr.strip()[-300:]


def _row(name: str, stats: Stats, base: Stats | None, target: float | None) -> str:
    line = f"  {name:<38} {stats.median / 1e3:7.3f} s  (IQR {stats.q1 / 1e3:.3f}-{stats.q3 / 1e3:.3f})"
    if base is None:
        return line
    over = (stats.median - base.median) / 1e3
    verdict = "met" if over <= target else "NOT met"
    return line + f"   over its baseline: {over:+.3f} s  (target <= {target:g} s: {verdict})"


def _kinds(tag: str, env: dict, work: Path, fcn8s: Path) -> dict:
    """{name: callable} of the fcnkit runs for one checkout (``env``), names suffixed by ``tag``."""
    py = sys.executable
    return {
        f"fcnkit compile{tag}": _wall([py, "-m", "fcnkit", "compile"], env, work),
        f"fcnkit export{tag}": _wall([py, "-m", "fcnkit", "export", "two_conv.prototxt", "-o",
                                      "two_conv.onnx", "--allow-missing-weights"], env, work),
        f"fcnkit.load{tag}": _self_timed([py, "-c", LOAD_CHILD, "load", str(fcn8s)], env, work),
    }


def _report(res: dict, tags: dict, size: int) -> None:
    """Print the rows of one run: the baselines, then each checkout's rows against them."""
    torch_s, read_s = res["import torch"], res["read + touch weights"]
    print(_row("python -c 'import torch'", torch_s, None, None))
    print(_row("python -c 'import onnx' (info)", res["import onnx"], None, None))
    print(_row(f"read FCN-8s weights ({size / 2**20:.0f} MiB)", read_s, None, None))
    for tag, label in tags.items():
        print(f"{label}:")
        print(_row("fcnkit compile (bundled FCN-8s)", res[f"fcnkit compile{tag}"], torch_s, TARGET_S["compile"]))
        print(_row("fcnkit export (2 convolutions)", res[f"fcnkit export{tag}"], torch_s, TARGET_S["export"]))
        print(_row("fcnkit.load(FCN-8s dir)", res[f"fcnkit.load{tag}"], read_s, TARGET_S["load"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    ap.add_argument("--gap", type=float, default=0.2, help="seconds of sleep between runs")
    ap.add_argument("--keep", type=Path, default=None,
                    help="work folder to keep (and reuse: the FCN-8s directory is made once)")
    ap.add_argument("--compare", type=Path, default=None,
                    help="another fcnkit checkout (e.g. an earlier commit) timed in the same rounds")
    args = ap.parse_args()

    print(machine_line())
    print(f"{load_line()} (start)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="fcnkit-bench-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    env = _env(work / "pycache", ROOT)
    print(_versions(env, work))
    py = sys.executable
    (work / "two_conv.prototxt").write_text(TWO_CONV)
    fcn8s = work / "fcn8s"
    if not (fcn8s / "fcnkit.json").is_file():
        t0 = time.perf_counter()
        subprocess.run([py, "-c", PREPARE, str(fcn8s)], env=env, cwd=work, check=True)
        print(f"FCN-8s 8-band directory made in {time.perf_counter() - t0:.1f} s: {fcn8s}")
    kinds = {"import torch": _wall([py, "-c", "import torch"], env, work),
             "import onnx": _wall([py, "-c", "import onnx"], env, work),
             "read + touch weights": _self_timed([py, "-c", LOAD_CHILD, "read", str(fcn8s)], env, work),
             **_kinds("", env, work, fcn8s)}
    tags = {"": f"this checkout ({ROOT})"}
    if args.compare is not None:
        other = _env(work / "pycache", args.compare.resolve())
        print(f"--compare: {_versions(other, work)}")
        kinds.update(_kinds(" [compare]", other, work, fcn8s))
        tags[" [compare]"] = f"--compare {args.compare}"
    res = interleaved(kinds, rounds=args.rounds, warmup=1, gap_s=args.gap)
    print(f"{load_line()} (end)")
    print(f"\nmedians of {args.rounds} rounds, each kind in a fresh process:")
    _report(res, tags, (fcn8s / "weights.safetensors").stat().st_size)
    print(f"\n(python {platform.python_version()}; work folder {work}"
          f"{'' if args.keep else ', removed'})")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
