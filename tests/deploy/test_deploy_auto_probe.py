"""backend="auto" on the CPU picks the fastest of torch, ONNX Runtime and ONNX Runtime with
one intra-op thread by a timed probe (fcnkit.deploy.auto_probe), stored in the export's
cache record and reused by the next Predictor; a corrupt or foreign record probes again;
FCNKIT_AUTO_PROBE=0 skips it. Timings are injected (a fake clock or fake medians): what is
tested is the decision, never this machine's speed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcnkit.deploy import auto_probe
from fcnkit.deploy.onnx import cache as onnx_cache
from fcnkit.deploy.predictor import Predictor
from fcnkit.runtime import available_cpus, cpu_model
from tests.deploy.deploy_helpers import rand
from tests.deploy.test_deploy_auto import write_small_fcn


class FakeClock:
    """A clock that only the fake calls advance: call ``name`` takes durations[name][i] s
    on its i-th call (the last value repeated)."""

    def __init__(self, durations: dict):
        self.now, self.durations, self.count = 0.0, durations, dict.fromkeys(durations, 0)

    def __call__(self) -> float:
        return self.now

    def calls(self) -> dict:
        def make(name):
            def call():
                seq = self.durations[name]
                self.now += seq[min(self.count[name], len(seq) - 1)]
                self.count[name] += 1
            return call
        return {name: make(name) for name in self.durations}


def test_medians_early_stop_and_budget():
    # clearly apart from the first rounds: stop after MIN_ROUNDS (plus the warm-up call each);
    # torch, 2.5x behind after round 1, is not called again
    clock = FakeClock({"torch": [9.0, 0.5], "onnxruntime": [9.0, 0.2], "onnxruntime-1thread": [9.0, 0.3]})
    ms, rounds = auto_probe.time_candidates(clock.calls(), clock=clock, budget_s=100)
    assert rounds == auto_probe.MIN_ROUNDS and clock.count == {"torch": 2, "onnxruntime": 3, "onnxruntime-1thread": 3}
    assert ms == pytest.approx({"torch": 500.0, "onnxruntime": 200.0, "onnxruntime-1thread": 300.0})
    assert auto_probe.pick_winner(ms) == "onnxruntime"
    # overlapping (noisy) timings: every round up to MAX_ROUNDS; medians, not means, decide
    noisy = {"torch": [0.1, 0.30, 0.31, 0.29, 0.30, 0.30, 0.30, 0.30],
             "onnxruntime": [0.1, 0.25, 0.40, 0.26, 0.26, 0.90, 0.26, 0.26]}
    clock = FakeClock(noisy)
    ms, rounds = auto_probe.time_candidates(clock.calls(), clock=clock, budget_s=100)
    assert rounds == auto_probe.MAX_ROUNDS
    assert ms == pytest.approx({"torch": 300.0, "onnxruntime": 260.0})
    assert auto_probe.pick_winner(ms) == "onnxruntime"
    # the time budget stops it after the round that exceeded it, clear leader or not
    budget = {"torch": [1.0, 3.0, 2.0, 3.0], "onnxruntime": [1.0, 2.5, 3.5, 2.5]}
    clock = FakeClock(budget)
    assert auto_probe.time_candidates(clock.calls(), clock=clock, budget_s=12.0)[1] == 3  # 5.5, 11, 16.5 s
    clock = FakeClock(budget)
    assert auto_probe.time_candidates(clock.calls(), clock=clock, budget_s=100.0)[1] == auto_probe.MAX_ROUNDS
    clock = FakeClock(budget)  # never fewer than MIN_ROUNDS rounds
    assert auto_probe.time_candidates(clock.calls(), clock=clock, budget_s=1.0)[1] == auto_probe.MIN_ROUNDS
    # a call shorter than min_call_s is repeated within its round (the mean of those calls);
    # durations in 1/1024 s so that the sums are exact
    clock = FakeClock({"torch": [1 / 1024], "onnxruntime": [4 / 1024]})
    ms, rounds = auto_probe.time_candidates(clock.calls(), clock=clock, min_call_s=20 / 1024)
    assert ms == {"torch": 1000 / 1024, "onnxruntime": 4000 / 1024} and rounds == auto_probe.MIN_ROUNDS
    assert clock.count["torch"] == 1 + 20 * rounds and clock.count["onnxruntime"] == 1 + 5 * rounds
    # a candidate that fails is left out; all failing is an error
    clock = FakeClock({"torch": [0.2]})

    def broken():
        raise RuntimeError("no kernel")

    ms, _ = auto_probe.time_candidates({**clock.calls(), "onnxruntime": broken}, clock=clock)
    assert ms == pytest.approx({"torch": 200.0})
    with pytest.raises(ValueError, match="no candidate ran .onnxruntime: no kernel"):
        auto_probe.time_candidates({"onnxruntime": broken})
    # ties go to the earlier candidate (ONNX Runtime, as before the probe existed)
    assert auto_probe.pick_winner({"torch": 1.0, "onnxruntime-1thread": 1.0, "onnxruntime": 1.0}) == "onnxruntime"


GOOD = {"version": 1, "date": "2026-01-01T00:00:00+00:00", "batch": 1, "tile": [16, 16], "rounds": 2,
        "ms": {"onnxruntime": 2.0, "onnxruntime-1thread": 1.0, "torch": 3.0}, "winner": "onnxruntime-1thread"}


@pytest.mark.parametrize("damage", [
    {"winner": "tensorrt"}, {"winner": "torch", "ms": {"onnxruntime": 1.0}}, {"ms": {"torch": float("nan")}},
    {"ms": {"torch": -1.0}}, {"ms": "fast"}, {"tile": "16x16"}, {"version": 0}, {"cpu": "another CPU"},
    {"cores": 64}, {"fcnkit": "0.0.1"}, None])
def test_a_corrupt_or_foreign_record_is_not_used(damage):
    machine = auto_probe.this_machine()
    good = auto_probe.ProbeResult.from_record({**GOOD, **machine}, machine)
    assert good is not None and good.winner == "onnxruntime-1thread" and good.recorded and good.tile == (16, 16)
    assert auto_probe.ProbeResult.from_record({**good.to_record(), **machine}, machine) == good
    record = "not an object" if damage is None else {**GOOD, **machine, **damage}
    assert auto_probe.ProbeResult.from_record(record, machine) is None


@pytest.fixture
def probes(monkeypatch, tmp_path):
    """A fresh FCNKIT_CACHE_DIR, FCNKIT_AUTO_PROBE unset, and fake medians: set
    ``probes.ms[(H, W)]`` to the medians the probe at that tile "measures"; ``probes.runs``
    lists the tiles probed (each candidate is still called once, so it must run)."""

    class Probes:
        ms: dict = {}
        runs: list = []

    monkeypatch.setenv(onnx_cache.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(auto_probe.PROBE_ENV, raising=False)
    state = Probes()
    state.ms, state.runs = {}, []
    real = auto_probe.run_probe

    def fake_times(calls, **kw):
        for call in calls.values():
            call()
        # a candidate a test does not name is far behind (the spinning session, say)
        return {name: state.ms[state.runs[-1]].get(name, 99.0) for name in calls}, 3

    def run_probe(calls, tile, **kw):
        state.runs.append(tuple(tile))
        return real(calls, tile, **kw)

    monkeypatch.setattr(auto_probe, "time_candidates", fake_times)
    monkeypatch.setattr(auto_probe, "run_probe", run_probe)
    return state


def _record(cache_dir):
    (meta,) = [json.loads(p.read_text()) for p in sorted((cache_dir / "onnx").glob("*.json"))]
    return meta


def _torch_reference(proto, x):
    import torch

    from fcnkit.deploy.model import load_model

    module = load_model(proto, tile=x.shape[2:]).compiled.module.eval()  # the plain module, layer by layer
    with torch.inference_mode():
        return module(torch.from_numpy(x))["prob"].numpy()


def test_the_choice_is_recorded_and_reused(probes, tmp_path):
    proto = write_small_fcn(tmp_path)
    probes.ms[(16, 16)] = {"torch": 3.0, "onnxruntime": 2.0, "onnxruntime-1thread": 1.0, "onnxruntime-spin": 4.0}
    first = Predictor.from_path(proto, device="cpu")
    assert probes.runs == [(16, 16)] and first.backend == "onnxruntime"
    assert first._impl.sessions[(16, 16)].session.get_session_options().intra_op_num_threads == 1
    assert "1 intra-op thread" in first.backend_detail and "measured" in first.backend_detail
    stored = _record(tmp_path / "cache")["auto_probe"]
    assert stored["winner"] == "onnxruntime-1thread" and stored["ms"] == probes.ms[(16, 16)]
    assert stored["tile"] == [16, 16] and stored["batch"] == 1
    assert {k: stored[k] for k in ("cpu", "cores", "fcnkit")} == auto_probe.this_machine()
    again = Predictor.from_path(proto, device="cpu")  # reads the record: no second probe
    assert probes.runs == [(16, 16)] and again.backend == "onnxruntime"
    assert "recorded" in again.backend_detail and "onnxruntime-1thread 1 ms" in again.backend_detail
    x = rand((3, 4, 16, 16), seed=1)
    want = _torch_reference(proto, x)
    assert np.abs(again.predict(x) - want).max() <= 1e-5
    # a foreign record (another CPU) is measured again and replaced
    meta_path = next((tmp_path / "cache" / "onnx").glob("*.json"))
    meta = json.loads(meta_path.read_text())
    meta["auto_probe"]["cpu"] = "another CPU"
    meta_path.write_text(json.dumps(meta))
    probes.ms[(16, 16)] = {"torch": 1.0, "onnxruntime": 2.0, "onnxruntime-1thread": 3.0}
    third = Predictor.from_path(proto, device="cpu")
    assert probes.runs == [(16, 16)] * 2 and third.backend == "torch" and "torch" in third.backend_detail
    assert _record(tmp_path / "cache")["auto_probe"]["cpu"] == cpu_model()
    assert np.abs(third.predict(x) - want).max() <= 1e-5


def test_each_tile_size_has_its_own_choice_and_outputs_match(probes, tmp_path):
    proto = write_small_fcn(tmp_path)
    probes.ms[(16, 16)] = {"torch": 2.0, "onnxruntime": 1.0, "onnxruntime-1thread": 3.0}
    probes.ms[(24, 20)] = {"torch": 1.0, "onnxruntime": 2.0, "onnxruntime-1thread": 3.0}
    probes.ms[(8, 12)] = {"torch": 3.0, "onnxruntime": 2.0, "onnxruntime-1thread": 1.0}
    p = Predictor.from_path(proto, device="cpu")
    assert p.backend == "onnxruntime" and "per usable core" in p.backend_detail
    for hw, backend in (((24, 20), "torch"), ((8, 12), "onnxruntime"), ((16, 16), "onnxruntime")):
        x = rand((2, 4, *hw), seed=hw[0])
        assert np.abs(p.predict(x) - _torch_reference(proto, x)).max() <= 1e-5, hw
        assert p.backend == backend, hw
    assert probes.runs == [(16, 16), (24, 20), (8, 12)]
    assert p._impl.sessions[(8, 12)].session.get_session_options().intra_op_num_threads == 1


def test_the_probe_can_be_turned_off(probes, tmp_path, monkeypatch):
    monkeypatch.setenv(auto_probe.PROBE_ENV, "0")
    proto = write_small_fcn(tmp_path)
    p = Predictor.from_path(proto, device="cpu")
    assert probes.runs == [] and p.backend == "onnxruntime" and "FCNKIT_AUTO_PROBE=0" in p.backend_detail
    assert p._impl.sessions[(16, 16)].session.get_session_options().intra_op_num_threads == available_cpus()
    assert "auto_probe" not in _record(tmp_path / "cache")
    monkeypatch.setenv(auto_probe.PROBE_ENV, "1")  # back on: the same entry gets its probe
    probes.ms[(16, 16)] = {"torch": 1.0, "onnxruntime": 2.0, "onnxruntime-1thread": 3.0}
    assert Predictor.from_path(proto, device="cpu").backend == "torch" and probes.runs == [(16, 16)]


def test_concurrent_probes_wait_for_each_other(tmp_path):
    import threading

    entered = threading.Event()

    def second():
        with auto_probe.probe_lock(tmp_path / "k.lock"):
            entered.set()

    with auto_probe.probe_lock(tmp_path / "k.lock"):
        worker = threading.Thread(target=second)
        worker.start()
        assert not entered.wait(0.3)  # blocked while the first holds the lock
    assert entered.wait(10)
    worker.join(10)
    with auto_probe.probe_lock(tmp_path / "missing" / "k.lock"):  # cannot be made: runs unlocked
        pass


def test_a_spinning_session_wins_when_it_is_fastest(probes, tmp_path):
    proto = write_small_fcn(tmp_path)
    probes.ms[(16, 16)] = {"torch": 3.0, "onnxruntime": 2.0, "onnxruntime-1thread": 2.5, "onnxruntime-spin": 1.0}
    p = Predictor.from_path(proto, device="cpu")
    options = p._impl.sessions[(16, 16)].session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert "spinning when idle" in p.backend_detail
    x = rand((2, 4, 16, 16), seed=3)
    assert np.abs(p.predict(x) - _torch_reference(proto, x)).max() <= 1e-5


def test_one_usable_core_times_only_the_distinct_candidates(monkeypatch):
    import fcnkit.runtime

    monkeypatch.setattr(fcnkit.runtime, "available_cpus", lambda: 1)
    assert auto_probe.candidates() == ("onnxruntime", "torch")
    monkeypatch.setattr(fcnkit.runtime, "available_cpus", lambda: 2)
    assert auto_probe.candidates() == auto_probe.CANDIDATES
