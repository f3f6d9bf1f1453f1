"""``Predictor(backend="auto")`` on the CPU for a Caffe model: ONNX Runtime on a cached
export (:mod:`fcnkit.deploy.onnx.cache`), one session per tile size.

Why ONNX Runtime: on the zoo at 8 bands 512x512 it ran FCN-8s 2.0x and FC-DenseNet56 4.2x
faster than fcnkit's torch CPU path in the measurements of issue 16, and its per-call
overhead is lower on small nets; the export it needs is paid once, then read from the cache.
A compiled torch module is built for one input size, and so is the exported graph (static
H and W): each new tile size gets its own export (cached too). Where an export is
impossible (a layer without an exact ONNX form, a parity failure, an unwritable cache),
that tile size runs on the torch backend instead, and the reason is logged at debug level
(``logging.getLogger("fcnkit.deploy.auto_backend")``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from fcnkit.deploy.backends import ModelInfo, _OrtBackend, _TorchBackend

log = logging.getLogger(__name__)


def _ort_session(source, weights, tile) -> _OrtBackend:
    """An ONNX Runtime CPU session on the cached fp32 export of ``source`` at ``tile``.

    Raises:
        FcnkitError (ExportError, OutputError, ...), OSError or an ONNX Runtime error: no
        session could be made; the caller falls back to torch.
    """
    from fcnkit.deploy.onnx.cache import cached_export

    entry = cached_export(source, weights, tile=tile, dtype="fp32")
    log.debug("backend auto: %s ONNX export %s (%s)", "made" if entry.exported else "cached",
              entry.path, source)
    return _OrtBackend(entry.data, "cpu", None)


class CachedOrtBackend:
    """The ``auto`` CPU backend: float32 (N, C, H, W) batches in, the ``_OrtBackend``
    post-processing out; any tile size (``info.tile`` is None), each size on its own
    cached export, or on torch where that size cannot be exported.

    Build with :meth:`open`. Attributes: ``info`` (:class:`ModelInfo`), ``sessions``
    ({(H, W): backend}).
    """

    name = "onnxruntime"

    def __init__(self, source, weights, first_tile: tuple[int, int], first: _OrtBackend):
        self.source, self.weights = source, weights
        self.sessions: dict[tuple[int, int], Any] = {first_tile: first}
        info = first.info
        self.info = ModelInfo(info.input, info.channels, None, list(info.outputs), set(info.probabilities),
                              info.band_names, info.class_names, None, None, info.receptive_field,
                              info.output_stride, info.halo, info.preprocess)
        self._torch: _TorchBackend | None = None

    @classmethod
    def open(cls, source, weights=None, tile: tuple[int, int] | None = None) -> "CachedOrtBackend":
        """The backend with its first session at ``tile`` (None: the declared size).

        Raises:
            what :func:`_ort_session` raises; the Predictor then opens the torch backend.
        """
        first = _ort_session(source, weights, tile)
        shape = first.info.tile
        if first.info.fixed_batch is not None or shape is None:
            raise ValueError("the cached export is not a dynamic-batch, fixed-tile graph")
        return cls(source, weights, tuple(shape), first)

    def _backend(self, hw: tuple[int, int]):
        """The session for tiles of ``hw`` (H, W), exported on first use; torch when the
        export at that size fails (reason at debug level)."""
        be = self.sessions.get(hw)
        if be is not None:
            return be
        try:
            be = _ort_session(self.source, self.weights, hw)
        except Exception as e:  # noqa: BLE001 - any failure means: run this size on torch
            log.debug("backend auto: no ONNX Runtime session at %dx%d for %s (%s); using torch",
                      hw[0], hw[1], self.source, e)
            be = self._torch_backend()
        self.sessions[hw] = be
        return be

    def _torch_backend(self) -> _TorchBackend:
        if self._torch is None:
            from fcnkit.deploy.model import load_model

            self._torch = _TorchBackend(load_model(self.source, weights=self.weights), "cpu", "fp32", False)
        return self._torch

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

        be = self._backend(tuple(int(d) for d in first.shape[2:]))
        yield from be.run(chain(), output, softmax, labels)
