"""Issue 15, acceptance 4: outputs survive crashes. A run killed (SIGKILL) at any point of
``compile -o`` or ``export`` over an existing output leaves the earlier output or the new
one, complete; the next run removes the temporaries the killed one left; ``compile -o DIR
--onnx F`` writes both or neither; write problems are found before the work."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fcnkit.cli.main import main

NET = """name: "k"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 dim: 16 dim: 16 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: NUM kernel_size: 3 weight_filler { type: "gaussian" } } }
"""


def _net(tmp_path, num, name="k.prototxt"):
    p = tmp_path / name
    p.write_text(NET.replace("NUM", str(num)))
    return p


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _num_output(out: Path) -> int:
    """num_output of the compiled conv, from a complete output directory (checks that
    every file is there and the weights file is whole)."""
    from safetensors.numpy import load_file

    assert sorted(p.name for p in out.iterdir()) == ["fcnkit.json", "model.py", "net.prototxt",
                                                    "weights.safetensors"]
    return load_file(str(out / "weights.safetensors"))["conv.weight"].shape[0]


def test_stale_temporaries_are_removed_and_an_orphaned_old_output_restored(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compile", str(_net(tmp_path, 2)), "-o", str(out)]) == 0
    dead = _dead_pid()
    # a run killed between the two renames of a swap: no output, the earlier one aside
    os.rename(out, tmp_path / f".out.{dead}.abcd1234.old")
    (tmp_path / f".out.{dead}.efgh5678.tmp").mkdir()
    (tmp_path / f".out.{dead}.efgh5678.tmp" / "weights.safetensors").write_bytes(b"half")
    (tmp_path / f".x.onnx.{dead}.zzzz.tmp").write_bytes(b"half an onnx")
    alive = tmp_path / f".out.{os.getpid()}.mine0000.tmp"  # a live process's: kept
    alive.mkdir()
    from fcnkit.atomic import atomic_open, clean_stale

    removed = clean_stale(out)
    assert _num_output(out) == 2  # restored
    assert _hidden(tmp_path) == [alive.name]
    assert sorted(p.name for p in removed) == sorted([f".out.{dead}.abcd1234.old", f".out.{dead}.efgh5678.tmp",
                                                     f".x.onnx.{dead}.zzzz.tmp"])
    # a write cleans its folder first (once per process)
    import fcnkit.atomic

    fcnkit.atomic._cleaned.discard(tmp_path)
    (tmp_path / f".y.npz.{dead}.qqqq.tmp").write_bytes(b"half")
    with atomic_open(tmp_path / "x.onnx") as f:
        f.write(b"new")
    assert _hidden(tmp_path) == [alive.name]


@pytest.mark.parametrize("no_exchange", [False, True])
def test_replacing_an_output_with_and_without_rename_exchange(tmp_path, capsys, monkeypatch, no_exchange):
    if no_exchange:
        monkeypatch.setenv("FCNKIT_NO_RENAME_EXCHANGE", "1")
    out = tmp_path / "out"
    assert main(["compile", str(_net(tmp_path, 2)), "-o", str(out)]) == 0
    assert main(["compile", str(_net(tmp_path, 3)), "-o", str(out)]) == 0
    assert _num_output(out) == 3
    assert _hidden(tmp_path) == []


def test_exchange_swaps_two_directories(tmp_path):
    from fcnkit.atomic import exchange

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "in_a").touch()
    if not exchange(tmp_path / "a", tmp_path / "b"):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not offered here (the two-rename path is tested)")
    assert (tmp_path / "b" / "in_a").exists() and not (tmp_path / "a" / "in_a").exists()


def test_compile_with_a_bad_onnx_path_touches_nothing(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert main(["compile", str(_net(tmp_path, 2)), "-o", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (tmp_path / "afile").write_text("x")
    code = main(["compile", str(_net(tmp_path, 3)), "-o", str(out), "--onnx", str(tmp_path / "afile" / "m.onnx")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and f"{tmp_path / 'afile' / 'm.onnx'}: cannot write it" in err
    # the export itself fails (after compiling): the directory is not replaced either
    import fcnkit.deploy.onnx
    from fcnkit.errors import ExportError

    def failing(*a, **k):
        raise ExportError("simulated parity failure")

    monkeypatch.setattr(fcnkit.deploy.onnx, "export_onnx", failing)
    code = main(["compile", str(_net(tmp_path, 3)), "-o", str(out), "--onnx", str(tmp_path / "m.onnx")])
    assert code == 2 and "simulated parity failure" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not (tmp_path / "m.onnx").exists() and _hidden(tmp_path) == []


def test_full_disk_during_compile(tmp_path):
    """RLIMIT_FSIZE makes writes past 64 KiB fail (EFBIG) as a full disk would: compile -o
    reports the directory and leaves the earlier output and no temporary."""
    out = tmp_path / "out"
    small, big = _net(tmp_path, 2, "small.prototxt"), _net(tmp_path, 1024, "big.prototxt")  # 147 KiB of weights
    assert main(["compile", str(small), "-o", str(out)]) == 0
    import resource

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a forked child: no second torch import
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        sys.stdout = sys.stderr = os.fdopen(write, "w")
        rc = main(["compile", str(big), "-o", str(out)])
        sys.stderr.flush()
        os._exit(rc)
    os.close(write)
    with os.fdopen(read) as f:
        text = f.read()
    _, status = os.waitpid(pid, 0)
    err = " ".join(text.split())
    assert os.waitstatus_to_exitcode(status) == 2, text
    assert f"error: {out}: cannot write it (" in err and "Traceback" not in err
    assert _num_output(out) == 2 and _hidden(tmp_path) == []


def _kill_at_random_points(args, n_kills, seed, duration):
    """Run ``main(args)`` in forked children, each SIGKILLed at a random time within
    ``duration`` (seconds: that of an uninterrupted run); yields after each kill."""
    def child():
        sys.stdout = sys.stderr = open(os.devnull, "w")
        os._exit(main(args))

    rng = random.Random(seed)
    for _ in range(n_kills):
        pid = os.fork()
        if pid == 0:
            child()
        time.sleep(rng.uniform(0, duration))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        yield


def test_sigkill_during_compile_leaves_old_or_new(tmp_path, capsys):
    out = tmp_path / "out"
    new = _net(tmp_path, 512, "new.prototxt")
    t0 = time.perf_counter()
    assert main(["compile", str(new), "-o", str(out)]) == 0
    duration = time.perf_counter() - t0
    assert main(["compile", str(_net(tmp_path, 2, "old.prototxt")), "-o", str(out)]) == 0
    for _ in _kill_at_random_points(["compile", str(new), "-o", str(out)], 4, 1, duration):
        assert _num_output(out) in (2, 512)
        from fcnkit.atomic import clean_stale

        clean_stale(out)
        assert _hidden(tmp_path) == []
        if _num_output(out) == 512:  # put the old one back: the next kill replaces it again
            assert main(["compile", str(_net(tmp_path, 2, "old.prototxt")), "-o", str(out)]) == 0
    capsys.readouterr()


def test_sigkill_during_export_leaves_old_or_new(tmp_path, capsys):
    import onnx

    model = tmp_path / "m.onnx"
    assert main(["export", str(_net(tmp_path, 2, "old.prototxt")), "-o", str(model)]) == 0
    new = _net(tmp_path, 6, "new.prototxt")
    t0 = time.perf_counter()  # the export to kill, timed once torch is warm
    assert main(["export", str(new), "-o", str(tmp_path / "timed" / "m.onnx")]) == 0
    duration = time.perf_counter() - t0
    from fcnkit.atomic import clean_stale

    for _ in _kill_at_random_points(["export", str(new), "-o", str(model)], 2, 2, duration):
        m = onnx.load(str(model))
        onnx.checker.check_model(m)
        assert m.graph.output[0].type.tensor_type.shape.dim[1].dim_value in (2, 6)
        clean_stale(model)  # what the next export does first
        assert _hidden(tmp_path) == []
    capsys.readouterr()


def test_too_little_free_space_is_found_before_writing(tmp_path, capsys, monkeypatch):
    import collections
    import shutil

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    out = tmp_path / "out"
    code = main(["compile", str(_net(tmp_path, 512, "big.prototxt")), "-o", str(out)])
    err = " ".join(capsys.readouterr().err.split())
    # 512 x 4 x 3 x 3 weights + 512 biases, 4 bytes each, + 1 MiB for the small files
    assert code == 2 and f"{out}: cannot write it: it needs about {(512 * 36 + 512) * 4 + 2**20:,} bytes" in err
    assert "has 1,000 bytes free" in err and not out.exists() and _hidden(tmp_path) == []
