#!/usr/bin/env python3
"""Mutation fuzzer of fcnkit's readers and commands (issue 15). Prints figures; exit 1 when
a bug class is not empty.

Cases are mutations (tools/fuzz_mutators.py) of the real files in ../shared/data/caffe:
prototxts (run through ``offsets``, and ``compile`` for the small nets), caffemodels
(``compile NET -w MUTANT``), a compiled directory (``fcnkit.load`` + a forward pass) and
array files (``run --input``, ``verify --reference``). Each case runs in a child forked
from this process (fcnkit and torch already imported: no start-up per case) under an
address-space cap (RLIMIT_AS) and a time limit, and is classified:

- accepted: the command succeeded (exit 0) or a check failed (exit 1);
- refused: an FcnkitError (exit 2, a message);
- bug classes: other exception (anything else, from fcnkit's code or a library), timeout,
  memory (MemoryError or an allocation refused under the cap), crash (a signal).

fcnkit's memory limit (:mod:`fcnkit.limits`) is set to half the cap's headroom in each
case, so that a net fcnkit accepts fits under the cap: a "memory" case is an allocation
that fcnkit's size checks missed, and a large valid net is refused quickly, not timed out.

Bugs are deduplicated by class, exception type and innermost fcnkit frame; one reproducer
per bug is saved under ``--out`` (the mutated file(s) and the command, ``case.json``).

Usage: python tools/fuzz.py [--cases 10000] [--seed 0] [--jobs 2] [--timeout 20]
       [--mem-gib 4] [--out fuzz-out] [--quiet]
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import random
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]
DATA = ROOT.parent / "shared" / "data" / "caffe"

import fuzz_mutators as mut  # noqa: E402

BUG_CLASSES = ("other exception", "timeout", "memory", "crash")
#: Nets small enough to compile (parameters filled) in a fraction of a second.
SMALL = ["bvlc_caffe/v2/examples/net_surgery/conv.prototxt", "lenet_ahmdtaha/mnist_deploy.prototxt",
         "bvlc_caffe/v2/examples/cifar10/cifar10_quick.prototxt", "resnet50_stem_htshinichi/test.prototxt",
         "fsrcnn_espcn_wangxuewen99/FSRCNN_mat.prototxt", "bvlc_caffe/v0_legacy/examples/lenet/lenet.prototxt"]
PAIRS = [("lenet_ahmdtaha/mnist_deploy.prototxt", "lenet_ahmdtaha/lenet_iter_10000.caffemodel"),
         ("resnet50_stem_htshinichi/test.prototxt", "resnet50_stem_htshinichi/test.caffemodel"),
         ("fsrcnn_espcn_wangxuewen99/FSRCNN_mat.prototxt", "fsrcnn_espcn_wangxuewen99/fsrcnn_snapshot_iter_2546000.caffemodel"),
         ("bvlc_caffe/v2/examples/cifar10/cifar10_quick.prototxt", "cifar10quick_ikkichung/cifar10_quick_iter_5000.caffemodel")]
ORACLE = ("lenet_ahmdtaha/mnist_deploy.prototxt", "lenet_ahmdtaha/lenet_iter_10000.caffemodel",
          "lenet_ahmdtaha/opencv_oracle_lenet_ahmdtaha")


def make_case(rng: random.Random, work: Path, compiled: Path) -> dict:
    """One case: the mutated file(s) written under ``work`` and what to run on them."""
    kind = rng.choice(["prototxt", "prototxt", "prototxt", "caffemodel", "compiled", "npy", "npz"])
    if kind == "prototxt":
        small = rng.random() < 0.6
        seed = rng.choice(SMALL if small else sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*.prototxt")))
        m = rng.choice(mut.TEXT)
        data = (DATA / seed).read_bytes()
        for _ in range(rng.choice([1, 1, 2, 3])):
            data = m(data, rng)
        (work / "net.prototxt").write_bytes(data)
        cmd = ["compile", "net.prototxt"] if small and rng.random() < 0.7 else ["offsets", "net.prototxt", "--format", "json"]
        return {"kind": kind, "seed": seed, "mutator": m.__name__, "argv": cmd}
    if kind == "caffemodel":
        net, model = rng.choice(PAIRS)
        m = rng.choice(mut.BINARY)
        (work / "w.caffemodel").write_bytes(m((DATA / model).read_bytes(), rng))
        shutil.copy(DATA / net, work / "net.prototxt")
        return {"kind": kind, "seed": model, "mutator": m.__name__,
                "argv": ["compile", "net.prototxt", "-w", "w.caffemodel"]}
    if kind == "compiled":
        shutil.copytree(compiled, work / "c")
        name, m = rng.choice([("fcnkit.json", mut.json_mutation), ("net.prototxt", rng.choice(mut.TEXT)),
                              ("weights.safetensors", rng.choice(mut.BINARY))])
        p = work / "c" / name
        p.write_bytes(m(p.read_bytes(), rng))
        return {"kind": kind, "seed": "compiled " + name, "mutator": m.__name__, "api": "load"}
    net, model, oracle = ORACLE
    shutil.copy(DATA / net, work / "net.prototxt")
    if kind == "npy":
        (work / "x.npy").write_bytes(mut.npy_mutation((DATA / oracle / "input.npy").read_bytes(), rng))
        return {"kind": kind, "seed": "input.npy", "mutator": "npy_mutation",
                "argv": ["run", "net.prototxt", "--input", "x.npy", "-o", "out.npz"]}
    shutil.copy(DATA / oracle / "input.npy", work / "x.npy")
    (work / "ref.npz").write_bytes(mut.npz_mutation((DATA / oracle / "layer_outputs.npz").read_bytes(), rng))
    return {"kind": kind, "seed": "layer_outputs.npz", "mutator": "npz_mutation",
            "argv": ["verify", "net.prototxt", "-w", str(DATA / model), "--input", "x.npy", "--reference", "ref.npz"]}


def _frame(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if f"{os.sep}fcnkit{os.sep}" in f.filename] or frames
    if not ours:
        return "?"
    f = ours[-1]
    return f"{Path(f.filename).name}:{f.lineno} ({f.name})"


def _reraise(e):
    raise e


def run_child(case: dict, work: Path) -> dict:
    """In the forked child: run the case and classify it (never returns an exception)."""
    import fcnkit.cli.main as cli
    from fcnkit.errors import FcnkitError

    cli._internal_error = _reraise   # let the child see what the CLI would report as a bug
    cli._out_of_memory = _reraise
    os.chdir(work)
    sys.stdout = sys.stderr = open(os.devnull, "w")
    try:
        if "api" in case:
            import torch

            import fcnkit

            c = fcnkit.load(work / "c")
            with torch.no_grad():
                c.module(*[torch.zeros(s) for s in c.input_shapes.values()])
            return {"class": "accepted"}
        code = cli.main(case["argv"])
        return {"class": {0: "accepted", 1: "accepted", 2: "refused"}.get(code, "other exception"),
                "detail": f"exit {code}"}
    except FcnkitError:
        return {"class": "refused"}
    except MemoryError as e:
        return {"class": "memory", "detail": f"MemoryError at {_frame(e)}"}
    except BaseException as e:  # noqa: BLE001 - classifying is the point
        memory = isinstance(e, RuntimeError) and "allocate" in str(e)
        return {"class": "memory" if memory else "other exception",
                "detail": f"{type(e).__name__} at {_frame(e)}", "message": str(e)[:300]}


def fork_case(case: dict, work: Path, mem_bytes: int, limit_bytes: int = 0):
    """Fork a child that runs ``case`` under an address-space cap of ``mem_bytes`` and
    fcnkit's memory limit ``limit_bytes``; returns (pid, the read end of its result pipe)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        try:
            faulthandler.disable()  # a crash is classified from the signal, not dumped
            os.setpgid(0, 0)
            if mem_bytes:
                resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
            if limit_bytes:  # the environment: the CLI resets a limit set in the process
                os.environ["FCNKIT_MEMORY_LIMIT"] = str(limit_bytes)
            result = run_child(case, work)
        except BaseException as e:  # noqa: BLE001
            result = {"class": "other exception", "detail": f"{type(e).__name__} in the harness"}
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    return pid, read


def _finish(pid: int, read: int, timed_out: bool) -> dict:
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    chunks = []
    while True:
        b = os.read(read, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(read)
    if timed_out:
        return {"class": "timeout", "detail": "timeout"}
    if os.WIFSIGNALED(status):
        return {"class": "crash", "detail": f"signal {os.WTERMSIG(status)}"}
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        return {"class": "crash", "detail": f"no result (status {status})"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per case")
    ap.add_argument("--mem-gib", type=float, default=4.0, help="address space added per case (GiB)")
    ap.add_argument("--out", type=Path, default=Path("fuzz-out"))
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        print(f"fuzz: the seed folder {DATA} is missing", file=sys.stderr)
        return 2
    import torch  # noqa: F401 - imported once here, inherited by every forked case

    import fcnkit.cli.main  # noqa: F401
    from fcnkit.compile import compile_net, save_compiled
    from fcnkit.graph import load_net

    torch.set_num_threads(1)
    base = Path(tempfile.mkdtemp(prefix="fcnkit-fuzz-"))
    compiled = base / "compiled"
    save_compiled(compile_net(load_net(DATA / ORACLE[0]), DATA / ORACLE[1]), compiled)
    _warm_up(base)
    vm = _vm_bytes()
    mem = int(vm + args.mem_gib * 2**30) if args.mem_gib > 0 else 0
    # fcnkit's own limit at half the headroom: what it lets through must fit under the cap,
    # so a "memory" case is an allocation that its checks missed, not a large valid net
    limit = int(args.mem_gib * 2**30 / 2) if args.mem_gib > 0 else 0
    rng = random.Random(args.seed)
    counts, bugs, running = Counter(), {}, {}
    t0 = time.perf_counter()
    done = 0
    for i in range(args.cases):
        while len(running) >= args.jobs:
            done += _collect(running, args, counts, bugs, block=True)
        work = base / f"case{i}"
        work.mkdir()
        case = make_case(rng, work, compiled)
        pid, read = fork_case(case, work, mem, limit)
        running[read] = (pid, time.perf_counter(), case, work, i)
    while running:
        done += _collect(running, args, counts, bugs, block=True)
    elapsed = time.perf_counter() - t0
    _report(args, counts, bugs, elapsed, base)
    shutil.rmtree(base, ignore_errors=True)
    return 1 if any(counts[c] for c in BUG_CLASSES) else 0


def _warm_up(base: Path) -> None:
    """Run each command once in this process, so that the lazy imports and first-call
    set-up (typer, rich, torch dispatch) are inherited by every forked case instead of
    being paid again in each (0.4 s a case otherwise)."""
    import contextlib
    import io

    import fcnkit.cli.main as cli

    net, model, oracle = (str(DATA / p) for p in ORACLE)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for argv in (["compile", net, "-w", model], ["offsets", net, "--format", "json"],
                     ["run", net, "--input", f"{oracle}/input.npy", "-o", str(base / "warm.npz")],
                     ["verify", net, "-w", model, "--input", f"{oracle}/input.npy",
                      "--reference", f"{oracle}/layer_outputs.npz"]):
            cli.main(argv)


def _vm_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _collect(running: dict, args, counts: Counter, bugs: dict, block: bool) -> int:
    now = time.perf_counter()
    wait = min(start + args.timeout for _, start, *_ in running.values()) - now
    ready, _, _ = select.select(list(running), [], [], max(0.0, wait) if block else 0)
    finished = 0
    for fd in list(running):
        pid, start, case, work, i = running[fd]
        timed_out = fd not in ready and time.perf_counter() - start > args.timeout
        if fd not in ready and not timed_out:
            continue
        del running[fd]
        result = _finish(pid, fd, timed_out)
        cls = result["class"]
        counts[cls] += 1
        finished += 1
        if not args.quiet and sum(counts.values()) % 500 == 0:
            print(f"... {sum(counts.values())} cases, {dict(counts)}", flush=True)
        if cls in BUG_CLASSES:
            key = f"{cls}: {result.get('detail', '')}"
            if key not in bugs:
                bugs[key] = _save_reproducer(args.out, key, case, work, result, len(bugs))
            if not args.quiet:
                print(f"case {i}: {key} [{case['kind']} {case['seed']} {case['mutator']}]", flush=True)
        shutil.rmtree(work, ignore_errors=True)
    return finished


def _save_reproducer(out: Path, key: str, case: dict, work: Path, result: dict, n: int) -> str:
    dest = out / f"bug{n:03d}"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(work, dest, ignore=shutil.ignore_patterns("out.npz"))
    (dest / "case.json").write_text(json.dumps({**case, "result": result, "key": key}, indent=2) + "\n")
    return str(dest)


def _report(args, counts: Counter, bugs: dict, elapsed: float, base: Path) -> None:
    total = sum(counts.values())
    from benchlib import cpu_model

    cpu = cpu_model()
    print(f"fcnkit fuzz: {total} cases, seed {args.seed}, {args.jobs} job(s), {elapsed:.1f} s "
          f"({elapsed / max(total, 1) * 1000:.0f} ms/case), {cpu}")
    for cls in ("accepted", "refused", *BUG_CLASSES):
        print(f"  {cls:16s} {counts[cls]}")
    for key, where in bugs.items():
        print(f"  bug: {key} -> {where}")


if __name__ == "__main__":
    sys.exit(main())
