"""``Predictor(backend="auto")`` on the CPU for a Caffe model (fp32): the fastest of
fcnkit's CPU paths for that model on this machine, per tile size.

Each tile size (H, W) gets the cached ONNX export (:mod:`fcnkit.deploy.onnx.cache`); then a
timed probe (:mod:`fcnkit.deploy.auto_probe`) compares the torch inference module, ONNX
Runtime with fcnkit's session options and ONNX Runtime with one intra-op thread on a
batch-1 tile of zeros, and the winner runs that tile size. The probe's figures and choice
are stored in the export's cache record, so a later process on the same machine (CPU model,
usable cores) reads the choice instead of probing. ``FCNKIT_AUTO_PROBE=0``: no probe, ONNX
Runtime with the default session options.

Where an export is impossible (a layer without an exact ONNX form, a parity failure, an
unwritable cache), that tile size runs on the torch backend instead. Every choice and its
reason are logged at debug level (``logging.getLogger("fcnkit.deploy.auto_backend")``).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np

from fcnkit.deploy.backends import _OrtBackend, _TorchBackend

log = logging.getLogger(__name__)

#: What each candidate of the probe is, in words (``Predictor.backend_detail``).
_WORDS = {"torch": "torch (fcnkit's inference module)",
          "onnxruntime": "onnxruntime (one intra-op thread per usable core)",
          "onnxruntime-1thread": "onnxruntime (1 intra-op thread)",
          "onnxruntime-spin": "onnxruntime (one intra-op thread per usable core, spinning when idle)"}


class AutoCpuBackend:
    """The ``auto`` CPU backend: float32 (N, C, H, W) batches in, the chosen backend's
    post-processed results out; any tile size (``info.tile`` is None), each size on the
    path its probe chose, or on torch where that size cannot be exported.

    Build with :meth:`open`. Attributes: ``info`` (:class:`ModelInfo`), ``sessions``
    ({(H, W): backend}), ``choices`` ({(H, W): (candidate, description)}), ``name`` (the
    backend that ran last: ``onnxruntime`` or ``torch``), ``detail`` (what ran last and why).
    """

    def __init__(self, source, weights):
        self.source, self.weights = source, weights
        self.sessions: dict[tuple[int, int], Any] = {}
        self.choices: dict[tuple[int, int], tuple[str, str]] = {}
        self._torch: _TorchBackend | None = None
        self._last: tuple[int, int] | None = None
        self.info = None

    @classmethod
    def open(cls, source, weights=None, tile: tuple[int, int] | None = None) -> "AutoCpuBackend":
        """The backend with its first tile size chosen (``tile``; None: the declared size).

        Raises:
            what :func:`fcnkit.deploy.onnx.cache.cached_export` raises (the model cannot be
            exported, the cache cannot be written) or ONNX Runtime's errors; the Predictor
            then opens the torch backend.
        """
        self = cls(source, weights)
        hw, backend, choice = self._choose(tile)
        self.sessions[hw], self.choices[hw], self._last = backend, choice, hw
        self.info = dataclasses.replace(backend.info, tile=None, fixed_batch=None, max_batch=None)
        return self

    @property
    def name(self) -> str:
        return self.sessions[self._last].name

    @property
    def detail(self) -> str:
        return self.choices[self._last][1]

    # ----------------------------------------------------------------------------------
    def _choose(self, tile: tuple[int, int] | None):
        """((H, W), backend, (candidate, description)) for ``tile`` (None: declared size)."""
        from fcnkit.deploy import auto_probe
        from fcnkit.deploy.onnx.cache import cached_export, read_record

        entry = cached_export(self.source, self.weights, tile=tile, dtype="fp32")
        log.debug("backend auto: %s ONNX export %s (%s)", "made" if entry.exported else "cached",
                  entry.path, self.source)
        if not auto_probe.probe_enabled():
            be = _OrtBackend(entry.path, "cpu", None)
            return be.info.tile, be, ("onnxruntime", f"{_WORDS['onnxruntime']}; {auto_probe.PROBE_ENV}=0: no probe")
        with auto_probe.probe_lock(entry.path.with_suffix(".lock")):
            result = auto_probe.ProbeResult.from_record(read_record(entry).get("auto_probe"), auto_probe.this_machine())
            if result is None:
                hw, be, result = self._probe(entry)
        if result.recorded:
            log.debug("backend auto: %s", result.describe())
            be = self._make(result.winner, entry.path)
            hw = be.info.tile or tuple(result.tile)
        return hw, be, (result.winner, f"{_WORDS[result.winner]}; chosen by auto: {result.describe()}")

    def _make(self, candidate: str, onnx_path):
        """The backend of one probe candidate (ONNX Runtime opens the checked cache file
        ``onnx_path`` itself)."""
        if candidate == "torch":
            return self._torch_backend()
        return _OrtBackend(onnx_path, "cpu", None, intra_op_threads=1 if candidate == "onnxruntime-1thread" else None,
                           spinning=candidate == "onnxruntime-spin")

    def _probe(self, entry):
        """Build every candidate, time them (:func:`fcnkit.deploy.auto_probe.run_probe`) on
        one batch-1 tile of zeros, store the result in the entry's record; returns ((H, W),
        the winner's backend, the :class:`ProbeResult`). A candidate that cannot be built is
        left out (reason at debug level).

        Raises:
            ONNX Runtime's error: the default ONNX Runtime session cannot be made.
        """
        from fcnkit.deploy import auto_probe
        from fcnkit.deploy.onnx.cache import update_record
        from fcnkit.runtime import tune_for_inference

        tune_for_inference()  # torch is timed with the threads and heap it will run with
        ort_default = self._make("onnxruntime", entry.path)
        hw = ort_default.info.tile
        built = {"onnxruntime": ort_default}
        for candidate in auto_probe.candidates()[1:]:
            try:
                built[candidate] = self._make(candidate, entry.path)
            except Exception as e:  # noqa: BLE001 - the others can still run
                log.debug("backend auto: candidate %s not available for %s (%s)", candidate, self.source, e)
        x = np.zeros((1, ort_default.info.channels, *hw), np.float32)
        calls = {name: _call(be, x) for name, be in built.items()}
        result = auto_probe.run_probe(calls, hw)
        update_record(entry, auto_probe=result.to_record())
        if result.winner != "torch" and self._torch not in self.sessions.values():
            self._torch = None  # its weights are not kept for nothing
        return hw, built[result.winner], result

    def _torch_backend(self) -> _TorchBackend:
        if self._torch is None:
            from fcnkit.deploy.model import load_model

            self._torch = _TorchBackend(load_model(self.source, weights=self.weights), "cpu", "fp32", False)
        return self._torch

    def _backend(self, hw: tuple[int, int]):
        """The backend for tiles of ``hw`` (H, W), chosen on first use; torch when the
        export at that size fails (reason at debug level)."""
        be = self.sessions.get(hw)
        if be is not None:
            return be
        try:
            got, be, choice = self._choose(hw)
        except Exception as e:  # noqa: BLE001 - any failure means: run this size on torch
            log.debug("backend auto: no ONNX Runtime session at %dx%d for %s (%s); using torch",
                      hw[0], hw[1], self.source, e)
            be, choice = self._torch_backend(), ("torch", f"{_WORDS['torch']}; no ONNX export at this tile ({e})")
        self.sessions[hw], self.choices[hw] = be, choice
        return be

    def run(self, batches, output, softmax, labels):
        """Yield the post-processed result of each batch (all of one tile size, as the
        Predictor cuts them)."""
        first: np.ndarray | None = None
        for b in batches:
            first = b
            break
        if first is None:
            return

        def chain():
            yield first
            yield from batches

        hw = tuple(int(d) for d in first.shape[2:])
        be = self._backend(hw)
        self._last = hw
        yield from be.run(chain(), output, softmax, labels)


def _call(backend, x: np.ndarray):
    """A call running ``backend`` on ``x`` as the Predictor does (its first output, raw)."""
    output = backend.info.outputs[0]

    def call():
        for _ in backend.run(iter([x]), output, False, False):
            pass

    return call
