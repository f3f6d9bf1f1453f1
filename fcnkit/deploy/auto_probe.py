"""The timed probe behind ``Predictor(backend="auto")`` on the CPU: which of fcnkit's CPU
paths runs a given model fastest on this machine.

Candidates (:data:`CANDIDATES`):

- ``torch``: the compiled net's inference module (fused, channels-last;
  ``CompiledNet.inference_module()``), as the torch backend runs it;
- ``onnxruntime``: ONNX Runtime on the cached export with fcnkit's session options (one
  intra-op thread per usable core; :func:`fcnkit.deploy.backends.session_options`);
- ``onnxruntime-1thread``: the same with one intra-op thread (no hand-off between threads
  at each node: on tiny nets the wake-ups cost more than the parallel work saves);
- ``onnxruntime-spin``: one intra-op thread per usable core that spin while idle instead of
  sleeping (``session.intra_op.allow_spinning=1``, ONNX Runtime's own default): on a quiet
  machine the hand-off at each node of a tiny net is then a spin, not a wake-up (LeNet at
  batch 1: 117 µs, against 197 µs with one thread and 141 µs for OpenCV 4.10 dnn, one
  interleaved run); under contention spinning threads steal the cores others need, which
  the probe sees as a slower median. The two variants are timed only when more than one
  core is usable.

Why a probe: issue 16 measured the fastest path to depend on the model (on a 2-core Xeon at
1 x 8 x 512 x 512: FC-DenseNet56 torch 1,453 ms vs ONNX Runtime 2,382 ms; FCN-8s torch 1,962
vs ONNX Runtime 1,616; LeNet ONNX Runtime 0.27 ms vs torch 0.76 ms), so no fixed rule picks
it. What is measured: one batch-1 tile of zeros at the tile size being opened, each
candidate called once to warm up (first-call costs: oneDNN primitive creation, the ORT
arena), then interleaved rounds (the order rotates each round; a call shorter than
:data:`MIN_CALL_S` is repeated and averaged; a candidate far behind is dropped after a
round) until, from round :data:`MIN_ROUNDS` on, one candidate is clearly ahead (its slowest
call faster than every other's fastest) or :data:`BUDGET_S` seconds of timed calls are
spent, and at :data:`MAX_ROUNDS` rounds in any case; the smallest median wins. The result
is stored in the export cache entry's record (:func:`fcnkit.deploy.onnx.cache.update_record`)
with the CPU model, the usable cores and the fcnkit version; a later process on the same
machine reads the choice instead of probing (the cache key already covers the model,
weights, tile and fcnkit version). A record that does not parse, names an unknown candidate
or comes from another CPU / core count is ignored and the probe runs again. Processes that
open the same model at once probe one after the other (:func:`probe_lock`). ``FCNKIT_AUTO_PROBE=0`` skips the probe: ONNX Runtime
with the default session options, as before the probe existed.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger("fcnkit.deploy.auto_backend")

#: The CPU paths compared; on equal medians the earlier one wins (ONNX Runtime as before).
CANDIDATES = ("onnxruntime", "onnxruntime-1thread", "torch", "onnxruntime-spin")
#: Environment variable: ``0`` (or false/no/off) skips the probe (ONNX Runtime, default options).
PROBE_ENV = "FCNKIT_AUTO_PROBE"
#: Version of the record's ``auto_probe`` field; another version is probed again.
RECORD_VERSION = 1
#: Timed rounds: at least MIN_ROUNDS before stopping early, at most MAX_ROUNDS.
MIN_ROUNDS, MAX_ROUNDS = 2, 5
#: Seconds of timed calls after which no new round starts (the warm-up calls not counted).
BUDGET_S = 8.0
#: A candidate whose fastest call is this many times slower than the leader's slowest is
#: no longer timed (the best two always are).
DROP_RATIO = 1.5
#: Seconds a candidate is called for, at least, in each round (tiny nets: many calls).
MIN_CALL_S = 0.01
#: Seconds of sleep before each timed call, not counted: the previous candidate's threads
#: (ONNX Runtime's spinning pool, torch's OpenMP team, which spin-wait after their work)
#: go idle first, so that no candidate is timed against another one's leftover spinning.
SETTLE_S = 0.05


def candidates() -> tuple[str, ...]:
    """The candidates worth timing in this process: all of :data:`CANDIDATES`, less the
    one-thread and spinning variants where only one core is usable (they would be the
    default session again)."""
    from fcnkit.runtime import available_cpus

    if available_cpus() > 1:
        return CANDIDATES
    return tuple(c for c in CANDIDATES if c not in ("onnxruntime-1thread", "onnxruntime-spin"))


def probe_enabled() -> bool:
    """False when ``FCNKIT_AUTO_PROBE`` is 0 / false / no / off."""
    return os.environ.get(PROBE_ENV, "").strip().lower() not in ("0", "false", "no", "off")


def this_machine() -> dict:
    """{"cpu": model name, "cores": usable cores (:func:`fcnkit.runtime.available_cpus`),
    "fcnkit": version}: what a stored probe result must match to be reused."""
    from fcnkit import __version__
    from fcnkit.runtime import available_cpus, cpu_model

    return {"cpu": cpu_model(), "cores": available_cpus(), "fcnkit": __version__}


@dataclass
class ProbeResult:
    """What the probe measured for one model at one tile on one machine.

    Attributes:
        ms: {candidate: median milliseconds per batch-1 call}.
        winner: the candidate with the smallest median (one of :data:`CANDIDATES`).
        rounds: timed rounds run.
        machine: :func:`this_machine` where it was measured.
        date: UTC time of the measurement (ISO 8601).
        tile: (H, W) pixels of the probe's tile.
        recorded: True when read from the cache record (not measured in this process).
    """

    ms: dict
    winner: str
    rounds: int
    machine: dict
    date: str
    tile: tuple
    recorded: bool = False

    def to_record(self) -> dict:
        """The JSON object stored under ``auto_probe`` in the cache record."""
        return {"version": RECORD_VERSION, **self.machine, "date": self.date, "batch": 1,
                "tile": list(self.tile), "rounds": self.rounds,
                "ms": {k: round(v, 4) for k, v in self.ms.items()}, "winner": self.winner}

    @classmethod
    def from_record(cls, record, machine: dict) -> "ProbeResult | None":
        """The stored result when ``record`` is a valid probe of ``machine``, else None."""
        if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
            return None
        if any(record.get(k) != v for k, v in machine.items()):
            return None  # another CPU, core count or fcnkit version
        ms, winner, tile = record.get("ms"), record.get("winner"), record.get("tile")
        if not isinstance(ms, dict) or winner not in CANDIDATES or winner not in ms:
            return None
        if not all(k in CANDIDATES and isinstance(v, (int, float)) and math.isfinite(v) and v > 0
                   for k, v in ms.items()):
            return None
        if not (isinstance(tile, list) and len(tile) == 2 and all(isinstance(d, int) for d in tile)):
            return None
        return cls({k: float(v) for k, v in ms.items()}, winner, int(record.get("rounds") or 0), dict(machine),
                   str(record.get("date", "")), tuple(tile), recorded=True)

    def describe(self) -> str:
        """One line: the winner and each candidate's median, e.g. ``onnxruntime-1thread
        (probe at 28x28, batch 1: onnxruntime-1thread 0.19 ms, onnxruntime 0.27 ms, torch
        0.76 ms; recorded 2026-12-02)``."""
        figures = ", ".join(f"{k} {_ms(v)} ms" for k, v in sorted(self.ms.items(), key=lambda kv: kv[1]))
        when = f"recorded {self.date[:10]}" if self.recorded else f"measured, {self.rounds} rounds"
        return f"{self.winner} (probe at {self.tile[0]}x{self.tile[1]}, batch 1: {figures}; {when})"


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


@contextlib.contextmanager
def probe_lock(path: Path):
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the block, so that
    processes opening the same model at once (Ray actors on one machine) probe one after
    the other instead of disturbing each other's timings, and the later ones read the first
    one's record. Without ``fcntl`` (Windows) or where the file cannot be made (a read-only
    cache), the block runs unlocked."""
    try:
        import fcntl

        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except (ImportError, OSError) as e:
        log.debug("backend auto: probe not locked (%s)", e)
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def pick_winner(ms: dict) -> str:
    """The candidate with the smallest median (ties: the earlier in :data:`CANDIDATES`).

    Raises:
        ValueError: ``ms`` is empty.
    """
    if not ms:
        raise ValueError("no candidate was timed")
    order = {name: i for i, name in enumerate(CANDIDATES)}
    return min(ms, key=lambda name: (ms[name], order.get(name, len(order))))


def _clearly_ahead(times: dict) -> bool:
    """Whether the candidate with the smallest median has its slowest call faster than every
    other candidate's fastest call."""
    leader = pick_winner({k: statistics.median(v) for k, v in times.items()})
    return all(max(times[leader]) < min(v) for k, v in times.items() if k != leader)


def _far_behind(times: dict, active: list[str]) -> set[str]:
    """The active candidates to time no more: those whose fastest call is slower than
    :data:`DROP_RATIO` times the leader's slowest, keeping the best two by median."""
    medians = {k: statistics.median(times[k]) for k in active}
    ranked = sorted(active, key=lambda k: medians[k])
    worst_of_leader = max(times[ranked[0]])
    return {k for k in ranked[2:] if min(times[k]) > DROP_RATIO * worst_of_leader}


def _timed(call: Callable[[], object], clock: Callable[[], float], min_call_s: float) -> tuple[float, float]:
    """(mean ms per call, seconds spent): ``call`` repeated until ``min_call_s`` has passed."""
    elapsed, n = 0.0, 0
    while elapsed < min_call_s and n < 1000:
        t0 = clock()
        call()
        elapsed, n = elapsed + (clock() - t0), n + 1
    return 1e3 * elapsed / n, elapsed


def _warmed_up(calls: dict[str, Callable[[], object]]) -> list[str]:
    """Call each candidate once (untimed); returns those that ran (a failure is logged at
    debug level and leaves the candidate out).

    Raises:
        ValueError: none ran.
    """
    ran, errors = [], []
    for name, call in calls.items():
        try:
            call()
        except Exception as e:  # noqa: BLE001 - the other candidates can still run
            log.debug("backend auto: candidate %s failed its first call (%s: %s)", name, type(e).__name__, e)
            errors.append(f"{name}: {e}")
        else:
            ran.append(name)
    if not ran:
        raise ValueError(f"no candidate ran ({'; '.join(errors)})")
    return ran


def time_candidates(calls: dict[str, Callable[[], object]], *, clock: Callable[[], float] = time.perf_counter,
                    min_rounds: int = MIN_ROUNDS, max_rounds: int = MAX_ROUNDS,
                    budget_s: float = BUDGET_S, min_call_s: float = MIN_CALL_S,
                    settle_s: float = SETTLE_S) -> tuple[dict, int]:
    """Median milliseconds per call of each of ``calls`` ({name: callable}), timed side by
    side: one warm-up call each (a candidate whose call raises is left out), then rounds
    calling each once, the order rotated every round. From ``min_rounds`` rounds on it stops when one is clearly ahead (its slowest call
    faster than every other's fastest) or ``budget_s`` seconds of timed calls are spent; at
    ``max_rounds`` in any case. After each round, a candidate far behind
    (:func:`_far_behind`) is no longer called (the best two always are). A call shorter
    than ``min_call_s`` seconds is repeated within its round and the mean taken (a tiny
    net's per-call overhead is then measured over many calls). Before each timed call the
    probe sleeps ``settle_s`` seconds (:data:`SETTLE_S`; not counted). ``clock``: seconds
    (injected by tests).

    Returns:
        ({name: median ms}, rounds run), for the candidates that ran.

    Raises:
        ValueError: every candidate raised.
    """
    active = _warmed_up(calls)
    times: dict[str, list[float]] = {name: [] for name in active}
    spent, rounds = 0.0, 0
    while rounds < max_rounds:
        for name in active[rounds % len(active):] + active[:rounds % len(active)]:
            if settle_s > 0:
                time.sleep(settle_s)
            ms, seconds = _timed(calls[name], clock, min_call_s)
            times[name].append(ms)
            spent += seconds
        rounds += 1
        if len(active) < 2 or (rounds >= min_rounds and (spent >= budget_s or _clearly_ahead(times))):
            break
        dropped = _far_behind(times, active)
        active = [k for k in active if k not in dropped]
    return {name: statistics.median(ts) for name, ts in times.items()}, rounds


def run_probe(calls: dict[str, Callable[[], object]], tile: tuple[int, int], *,
              clock: Callable[[], float] = time.perf_counter) -> ProbeResult:
    """Time ``calls`` (:func:`time_candidates`) and return the :class:`ProbeResult` for
    ``tile`` on this machine; the figures are logged at debug level.

    Raises:
        ValueError: ``calls`` is empty.
    """
    if not calls:
        raise ValueError("no candidate to probe")
    ms, rounds = time_candidates(calls, clock=clock)
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    result = ProbeResult(ms, pick_winner(ms), rounds, this_machine(), date, tuple(tile))
    log.debug("backend auto: %s", result.describe())
    return result
